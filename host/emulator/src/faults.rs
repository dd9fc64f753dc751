//! Fault injection (control API `/_emulator/faults`, seed `[[faults]]`):
//! 429s, 5xx, latency and dropped connections, decided deterministically so
//! tests can assert exact outcomes. One mechanism, [`serve`], serves the
//! Dataverse Web API and the Entra token endpoint (rules naming the
//! environment `"entra"`); each service only says how its refusals look
//! ([`Refusals`]).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Emulator;
use crate::seed::{FaultAction, FaultRule};

/// Marks a response whose connection must be closed without sending it;
/// the server's service wrapper acts on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// Why a fault rule is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultRuleError {
    /// An injected status outside 500-599.
    #[error("status {0} is not a 5xx status")]
    NotServerError(u16),
    /// `every = 0`.
    #[error("every must be at least 1")]
    EveryZero,
    /// A probability outside 0..=1.
    #[error("probability must be between 0 and 1")]
    Probability,
    /// A method that is not an HTTP method.
    #[error("'{0}' is not an HTTP method")]
    Method(String),
}

/// A rule and its counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultState {
    pub rule: FaultRule,
    /// Matching requests seen.
    pub matched: u64,
    /// Times the fault was applied.
    pub applied: u64,
    rng: u64,
}

impl FaultState {
    /// Validates a rule.
    pub fn new(rule: FaultRule) -> Result<Self, FaultRuleError> {
        if let FaultAction::Status { status } = rule.action
            && !(500..=599).contains(&status)
        {
            return Err(FaultRuleError::NotServerError(status));
        }
        if rule.every == Some(0) {
            return Err(FaultRuleError::EveryZero);
        }
        if rule.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(FaultRuleError::Probability);
        }
        if let Some(m) = &rule.method
            && axum::http::Method::from_bytes(m.as_bytes()).is_err()
        {
            return Err(FaultRuleError::Method(m.clone()));
        }
        // xorshift needs a non-zero state.
        let rng = rule.seed ^ 0x9E37_79B9_7F4A_7C15;
        Ok(FaultState {
            rule,
            matched: 0,
            applied: 0,
            rng: rng.max(1),
        })
    }

    fn matches(&self, env: &str, method: &str, path: &str) -> bool {
        let r = &self.rule;
        r.environment
            .as_deref()
            .is_none_or(|e| e.eq_ignore_ascii_case(env))
            && r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && match r.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => r.path == path,
            }
    }

    fn next_random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Counts a matching request and says whether the fault applies to it.
    fn fire(&mut self) -> bool {
        self.matched += 1;
        let r = &self.rule;
        if self.matched <= r.skip || r.times.is_some_and(|t| self.applied >= t) {
            return false;
        }
        let nth = self.matched - r.skip;
        if r.every.is_some_and(|e| !nth.is_multiple_of(e)) {
            return false;
        }
        if let Some(p) = r.probability
            && self.next_random() >= p
        {
            return false;
        }
        self.applied += 1;
        true
    }
}

/// Which rules a request is matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The environment (`"entra"` for the token endpoint).
    pub env: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The path the rules' `path` matches.
    pub path: &'a str,
    /// Only rules naming `env` apply: the Entra token endpoint is never hit
    /// by rules meant for every environment.
    pub explicit: bool,
}

/// How a service answers an injected refusal.
pub(crate) trait Refusals {
    /// An injected throttle: a 429 with `Retry-After`.
    fn throttled(&self, retry_after_secs: u64) -> Response;
    /// An injected server error with this (5xx) status.
    fn failed(&self, status: StatusCode) -> Response;
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
struct Plan {
    /// The answer instead of handling the request (the first refusal).
    refusal: Option<Response>,
    /// Added to the handling time of a request that is handled.
    latency: Duration,
    /// Close the connection instead of sending the answer.
    drop_after: bool,
}

fn plan(actions: Vec<FaultAction>, refusals: &impl Refusals) -> Plan {
    let mut plan = Plan::default();
    for action in actions {
        match action {
            FaultAction::Latency { ms } => plan.latency += Duration::from_millis(ms),
            FaultAction::Throttle { retry_after_secs } => {
                plan.refusal
                    .get_or_insert_with(|| refusals.throttled(retry_after_secs));
            }
            FaultAction::Status { status } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                plan.refusal.get_or_insert_with(|| refusals.failed(status));
            }
            FaultAction::DropBefore => {
                plan.refusal.get_or_insert_with(|| {
                    let mut resp = StatusCode::SERVICE_UNAVAILABLE.into_response();
                    resp.extensions_mut().insert(DropConnection);
                    resp
                });
            }
            FaultAction::DropAfter => plan.drop_after = true,
        }
    }
    plan
}

/// Serves one request with the faults its rules inject. A refusal
/// (throttle, 5xx, drop before answering) is answered at once, without
/// running `handler`. Otherwise `handler` runs; injected latency is then
/// waited out before its `guard` is released (the Web API's concurrency
/// slot, so a slow request holds it as a slow server would); with
/// `drop_after` the connection closes instead of carrying the answer.
pub(crate) async fn serve<G>(
    emu: &Emulator,
    target: Target<'_>,
    refusals: &impl Refusals,
    handler: impl FnOnce() -> (Response, G),
) -> Response {
    // Most requests meet no rule: a shared lock answers that.
    let actions = if emu.dir.read().faults.is_empty() {
        Vec::new()
    } else {
        decide(&mut emu.dir.write().faults, target)
    };
    let plan = plan(actions, refusals);
    if let Some(refusal) = plan.refusal {
        return refusal;
    }
    let (mut resp, guard) = handler();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    drop(guard);
    if plan.drop_after {
        resp.extensions_mut().insert(DropConnection);
    }
    resp
}

/// The faults that apply to one request, in rule order.
fn decide(rules: &mut [FaultState], target: Target<'_>) -> Vec<FaultAction> {
    let Target {
        env,
        method,
        path,
        explicit,
    } = target;
    rules
        .iter_mut()
        .filter(|r| {
            !explicit
                || r.rule
                    .environment
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(env))
        })
        .filter(|r| r.matches(env, method, path))
        .filter_map(|r| r.fire().then(|| r.rule.action.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> Target<'_> {
        Target {
            env: "e",
            method: "POST",
            path,
            explicit: false,
        }
    }

    fn rule(action: FaultAction) -> FaultRule {
        FaultRule {
            environment: None,
            method: Some("POST".into()),
            path: "accounts*".into(),
            action,
            skip: 0,
            every: None,
            probability: None,
            seed: 0,
            times: None,
        }
    }

    #[test]
    fn skip_every_times_and_seeded_probability_are_deterministic() {
        let mut r = vec![
            FaultState::new(FaultRule {
                skip: 1,
                every: Some(2),
                times: Some(2),
                ..rule(FaultAction::Status { status: 503 })
            })
            .unwrap(),
        ];
        let fired: Vec<bool> = (0..8)
            .map(|_| !decide(&mut r, post("accounts")).is_empty())
            .collect();
        assert_eq!(
            fired,
            [false, false, true, false, true, false, false, false]
        );
        assert!(
            decide(
                &mut r,
                Target {
                    method: "GET",
                    ..post("accounts")
                }
            )
            .is_empty()
        );
        let draw = |seed| {
            let mut r = vec![
                FaultState::new(FaultRule {
                    probability: Some(0.3),
                    seed,
                    ..rule(FaultAction::DropAfter)
                })
                .unwrap(),
            ];
            (0..200)
                .map(|_| !decide(&mut r, post("accounts(1)")).is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let hits = draw(7).iter().filter(|x| **x).count();
        assert!((40..=80).contains(&hits), "{hits}");
        assert!(FaultState::new(rule(FaultAction::Status { status: 404 })).is_err());
    }
}
