//! The one retry policy of every outbound call: the token endpoint, the Web
//! API, `$batch` and device-code polling all go through [`run`].
//!
//! What may be repeated depends on what the failure says about the first
//! attempt, as Microsoft's ServiceClient and MSAL decide it:
//!
//! - [`Failure::NotRun`]: the server did not run the request (429, or the
//!   connection could not be opened). Always repeated, after `Retry-After`
//!   when the server sent one (clamped), else after a jittered backoff.
//! - [`Failure::Unknown`]: the request may have run (connection dropped after
//!   it was sent, 502/503/504). Repeated only when the request is safe to
//!   repeat ([`Repeat`]).
//! - [`Failure::Unauthorized`]: the token was refused (401). Repeated once;
//!   the caller has dropped the cached token, so the repeat uses a new one.
//! - [`Failure::Final`]: everything else, returned as is.
//!
//! Attempts are bounded by the policy and by the caller's deadline: a wait
//! that would end after the deadline is not started.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;

tokio::task_local! {
    /// Repeats made inside the innermost [`counting_retries`].
    static REPEATS: Arc<AtomicU32>;
}

/// Runs `f` and counts the repeats the retry policy made inside it (every
/// attempt after the first of each request: Web API calls, and the token
/// requests they needed), for an audit record of what one call cost.
/// Counters nest: an outer count includes the inner ones. The count
/// follows `f` wherever it is polled, not a task or a thread.
pub async fn counting_retries<F: Future>(f: F) -> (F::Output, u32) {
    let counter = Arc::new(AtomicU32::new(0));
    let output = REPEATS.scope(counter.clone(), f).await;
    let repeats = counter.load(Ordering::Relaxed);
    let _outside = REPEATS.try_with(|outer| outer.fetch_add(repeats, Ordering::Relaxed));
    (output, repeats)
}

/// Counts one repeat in the enclosing [`counting_retries`], if any.
fn count_repeat() {
    let _outside = REPEATS.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
}

/// What one failed attempt says about whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server did not run the request.
    NotRun {
        /// What the server asked to wait (`Retry-After`), already clamped.
        retry_after: Option<Duration>,
    },
    /// The request may or may not have run.
    Unknown,
    /// The credential was refused.
    Unauthorized,
    /// Not worth repeating.
    Final,
}

/// Whether a request may be repeated after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Reads, PUT, DELETE, PATCH without `If-Match`, token requests.
    Safe,
    /// A create carrying its own id: a repeat that meets "already exists"
    /// after an ambiguous failure means the first attempt landed.
    CreateWithId,
    /// Only failures that prove nothing ran are repeated.
    Never,
}

/// An error that [`run`] can classify and turn into a deadline error.
pub(crate) trait Retryable: Sized + std::fmt::Display {
    /// How this failure should be handled.
    fn failure(&self) -> Failure;
    /// The error for a deadline that passed; `last` is the failure that was
    /// about to be retried, if any.
    fn deadline(last: Option<&Self>) -> Self;
}

/// Limits of one kind of call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt (doubles each time).
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
    /// Longest `Retry-After` honoured; a longer one is clamped to it.
    pub max_retry_after: Duration,
}

/// The Dataverse Web API (ServiceClient retries up to 10 times).
pub(crate) const WEB_API: Policy = Policy {
    max_attempts: 10,
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    max_retry_after: Duration::from_secs(300),
};

/// The Entra token endpoint, for client credentials, refresh and device-code
/// polls (MSAL retries a failed token request a few times only).
pub(crate) const TOKEN: Policy = Policy {
    max_attempts: 4,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(2),
    max_retry_after: Duration::from_secs(60),
};

/// Where the loop is, for an operation that reads an answer differently
/// after an ambiguous failure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// Whether an earlier attempt failed with [`Failure::Unknown`], so it may
    /// have run. It stays set: a later 429 does not undo what the ambiguous
    /// attempt may have done.
    pub after_unknown: bool,
}

/// Runs `op` until it succeeds, fails for good, runs out of attempts or the
/// deadline passes.
pub(crate) async fn run<T, E, F, Fut>(
    policy: &Policy,
    repeat: Repeat,
    deadline: Instant,
    what: &'static str,
    mut op: F,
) -> Result<T, E>
where
    E: Retryable,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = Attempt {
        number: 1,
        after_unknown: false,
    };
    let mut renewed = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(E::deadline(None));
        }
        let e = match tokio::time::timeout(remaining, op(attempt)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => return Err(E::deadline(None)),
        };
        let failure = e.failure();
        let wait = match failure {
            Failure::NotRun { retry_after } => retry_after
                .map(|w| w.min(policy.max_retry_after))
                .unwrap_or_else(|| backoff(policy, attempt.number)),
            Failure::Unknown if repeat != Repeat::Never => backoff(policy, attempt.number),
            Failure::Unauthorized if !renewed => {
                renewed = true;
                Duration::ZERO
            }
            _ => return Err(e),
        };
        if attempt.number >= policy.max_attempts {
            return Err(e);
        }
        if wait >= deadline.saturating_duration_since(Instant::now()) {
            return Err(E::deadline(Some(&e)));
        }
        tracing::debug!(
            what,
            attempt = attempt.number,
            wait_ms = wait.as_millis() as u64,
            error = %e,
            "retrying"
        );
        tokio::time::sleep(wait).await;
        attempt.number += 1;
        count_repeat();
        attempt.after_unknown |= failure == Failure::Unknown;
    }
}

/// Jittered exponential backoff: between half and all of
/// `min(base * 2^(attempt-1), cap)`, so concurrent callers spread out.
pub(crate) fn backoff(policy: &Policy, attempt: u32) -> Duration {
    let doubled = policy
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = doubled.min(policy.cap).as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum E {
        F(Failure),
        Deadline(bool),
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Retryable for E {
        fn failure(&self) -> Failure {
            match self {
                E::F(f) => *f,
                E::Deadline(_) => Failure::Final,
            }
        }
        fn deadline(last: Option<&Self>) -> Self {
            E::Deadline(last.is_some())
        }
    }

    const FAST: Policy = Policy {
        max_attempts: 5,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        max_retry_after: Duration::from_millis(20),
    };

    async fn script(repeat: Repeat, answers: Vec<Result<u32, E>>) -> (Result<u32, E>, u32) {
        let calls = AtomicU32::new(0);
        let answers = parking_lot::Mutex::new(answers.into_iter());
        let r = run(
            &FAST,
            repeat,
            Instant::now() + Duration::from_secs(5),
            "test",
            |a| {
                calls.fetch_add(1, Ordering::Relaxed);
                let next = answers.lock().next().unwrap_or(Ok(a.number));
                async move { next }
            },
        )
        .await;
        (r, calls.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn unknown_outcomes_are_repeated_only_when_safe() {
        let unknown = || Err(E::F(Failure::Unknown));
        assert_eq!(script(Repeat::Safe, vec![unknown()]).await, (Ok(2), 2));
        assert_eq!(
            script(Repeat::Never, vec![unknown()]).await,
            (Err(E::F(Failure::Unknown)), 1)
        );
        let not_run = || Err(E::F(Failure::NotRun { retry_after: None }));
        assert_eq!(script(Repeat::Never, vec![not_run()]).await, (Ok(2), 2));
    }

    #[tokio::test]
    async fn attempts_and_renewals_are_bounded() {
        let unauthorized = || Err(E::F(Failure::Unauthorized));
        assert_eq!(
            script(Repeat::Safe, vec![unauthorized(), unauthorized()]).await,
            (Err(E::F(Failure::Unauthorized)), 2)
        );
        let all_unknown = (0..10).map(|_| Err(E::F(Failure::Unknown))).collect();
        assert_eq!(
            script(Repeat::Safe, all_unknown).await,
            (Err(E::F(Failure::Unknown)), FAST.max_attempts)
        );
        assert_eq!(
            script(Repeat::Safe, vec![Err(E::F(Failure::Final))]).await,
            (Err(E::F(Failure::Final)), 1)
        );
    }

    #[tokio::test]
    async fn a_huge_retry_after_is_clamped_and_a_wait_past_the_deadline_is_not_started() {
        let huge = Err(E::F(Failure::NotRun {
            retry_after: Some(crate::seconds::MAX),
        }));
        // Clamped to 20 ms: the retry happens well within the 5 s deadline.
        let started = Instant::now();
        assert_eq!(script(Repeat::Safe, vec![huge]).await, (Ok(2), 2));
        assert!(started.elapsed() < Duration::from_secs(2));

        let slow = Policy {
            max_retry_after: Duration::from_secs(3600),
            ..FAST
        };
        let r: Result<(), E> = run(
            &slow,
            Repeat::Safe,
            Instant::now() + Duration::from_millis(200),
            "test",
            |_| async {
                Err(E::F(Failure::NotRun {
                    retry_after: Some(Duration::from_secs(99_999_999_999)),
                }))
            },
        )
        .await;
        assert_eq!(r, Err(E::Deadline(true)));
    }

    #[tokio::test]
    async fn repeats_are_counted_per_scope_and_nested_counts_add_up() {
        let not_run = || Err(E::F(Failure::NotRun { retry_after: None }));
        let (r, n) = counting_retries(script(Repeat::Safe, vec![not_run(), not_run()])).await;
        assert_eq!((r, n), ((Ok(3), 3), 2));
        let (_, outer) = counting_retries(async {
            let (_, inner) = counting_retries(script(Repeat::Safe, vec![not_run()])).await;
            assert_eq!(inner, 1);
            script(Repeat::Never, vec![not_run()]).await
        })
        .await;
        assert_eq!(outer, 2);
        let (_, none) = counting_retries(script(Repeat::Safe, vec![])).await;
        assert_eq!(none, 0);
        // Outside any scope the policy runs as before.
        assert_eq!(script(Repeat::Safe, vec![not_run()]).await, (Ok(2), 2));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = Policy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            max_retry_after: Duration::ZERO,
        };
        for _ in 0..100 {
            let first = backoff(&p, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&p, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(backoff(&p, u32::MAX) <= p.cap);
        }
    }
}
