//! Service protection limits ("Service protection API limits",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>): per
//! user and environment, a sliding window of request count and combined
//! execution time, and a concurrency cap that triggers at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::seed::ServiceProtection;

#[derive(Default)]
struct Window {
    /// Start time and execution time of each request in the window.
    requests: VecDeque<(Instant, Duration)>,
    /// Sum of the execution times in `requests`, kept up to date so that
    /// admitting a request does not re-add the whole window.
    used: Duration,
    active: u64,
}

/// Per-(environment, user) windows.
#[derive(Default)]
pub struct Tracker {
    windows: Mutex<HashMap<(Uuid, Uuid), Window>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: u64,
}

/// An admitted request; dropping it records its execution time.
pub struct Admission {
    tracker: Arc<Tracker>,
    key: (Uuid, Uuid),
    started: Instant,
    /// Requests left in the window after this one.
    pub remaining_requests: u64,
    /// Execution time left in the window.
    pub remaining_time: Duration,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("remaining_requests", &self.remaining_requests)
            .finish_non_exhaustive()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut w = self.tracker.windows.lock();
        if let Some(win) = w.get_mut(&self.key) {
            win.active = win.active.saturating_sub(1);
            if let Some(entry) = win
                .requests
                .iter_mut()
                .rev()
                .find(|(t, _)| *t == self.started)
            {
                entry.1 = self.started.elapsed();
            }
        }
    }
}

/// `1,200.00`: Dataverse formats the remaining seconds with a thousands separator.
pub fn format_seconds(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{frac}")
}

impl Tracker {
    /// Admits a request or says why not.
    pub fn admit(
        self: &Arc<Self>,
        env: Uuid,
        user: Uuid,
        limits: &ServiceProtection,
    ) -> Result<Admission, Throttled> {
        let now = Instant::now();
        let window = Duration::from_secs(limits.window_secs.max(1));
        let mut all = self.windows.lock();
        let w = all.entry((env, user)).or_default();
        while w
            .requests
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            w.requests.pop_front();
        }
        let retry_after = |w: &Window| {
            w.requests
                .front()
                .map(|(t, _)| {
                    (window.saturating_sub(now.duration_since(*t)))
                        .as_secs()
                        .max(1)
                })
                .unwrap_or(1)
        };
        if w.active >= limits.concurrent {
            return Err(Throttled {
                code: "0x80072326",
                message: format!(
                    "Number of concurrent requests exceeded the limit of {}.",
                    limits.concurrent
                ),
                retry_after_secs: 1,
            });
        }
        if w.requests.len() as u64 >= limits.requests {
            return Err(Throttled {
                code: "0x80072322",
                message: format!(
                    "Number of requests exceeded the limit of {} over time window of {} seconds.",
                    limits.requests, limits.window_secs
                ),
                retry_after_secs: retry_after(w),
            });
        }
        let used = w.used;
        let budget = Duration::from_millis(limits.execution_ms);
        if used >= budget {
            return Err(Throttled {
                code: "0x80072321",
                message: format!(
                    "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                    limits.execution_ms, limits.window_secs
                ),
                retry_after_secs: retry_after(w),
            });
        }
        w.requests.push_back((now, Duration::ZERO));
        w.active += 1;
        let remaining_requests = limits.requests - w.requests.len() as u64;
        Ok(Admission {
            tracker: self.clone(),
            key: (env, user),
            started: now,
            remaining_requests,
            remaining_time: budget - used,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_concurrency_and_formats() {
        let t = Arc::new(Tracker::default());
        let limits = ServiceProtection {
            requests: 3,
            window_secs: 300,
            execution_ms: 1_200_000,
            concurrent: 2,
        };
        let (e, u) = (Uuid::new_v4(), Uuid::new_v4());
        let a = t.admit(e, u, &limits).unwrap();
        assert_eq!(a.remaining_requests, 2);
        let b = t.admit(e, u, &limits).unwrap();
        assert_eq!(t.admit(e, u, &limits).unwrap_err().code, "0x80072326");
        drop((a, b));
        t.admit(e, u, &limits).unwrap();
        let err = t.admit(e, u, &limits).unwrap_err();
        assert_eq!(err.code, "0x80072322");
        assert!(
            (299..=300).contains(&err.retry_after_secs),
            "{}",
            err.retry_after_secs
        );
        // Another user is not affected.
        assert!(t.admit(e, Uuid::new_v4(), &limits).is_ok());
        assert_eq!(format_seconds(Duration::from_secs(1200)), "1,200.00");
        assert_eq!(format_seconds(Duration::from_millis(5500)), "5.50");
    }
}
