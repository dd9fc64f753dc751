//! Fault injection for the Web API (control API `/_emulator/faults`, seed
//! `[[faults]]`): 429s, 5xx, latency and dropped connections, decided
//! deterministically so tests can assert exact outcomes.

use serde::{Deserialize, Serialize};

use crate::seed::{FaultAction, FaultRule};

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
    pub fn new(rule: FaultRule) -> Result<Self, String> {
        if let FaultAction::Status { status } = rule.action
            && !(500..=599).contains(&status)
        {
            return Err(format!("status {status} is not a 5xx status"));
        }
        if rule.every == Some(0) {
            return Err("every must be at least 1".into());
        }
        if rule.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err("probability must be between 0 and 1".into());
        }
        if let Some(m) = &rule.method
            && axum::http::Method::from_bytes(m.as_bytes()).is_err()
        {
            return Err(format!("'{m}' is not an HTTP method"));
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

/// The faults that apply to one request, in rule order. With `explicit`,
/// only rules naming `env` apply (the Entra token endpoint, `env` =
/// `"entra"`, is never hit by rules meant for every environment).
pub fn decide(
    rules: &mut [FaultState],
    env: &str,
    method: &str,
    path: &str,
    explicit: bool,
) -> Vec<FaultAction> {
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
            .map(|_| !decide(&mut r, "e", "POST", "accounts", false).is_empty())
            .collect();
        assert_eq!(
            fired,
            [false, false, true, false, true, false, false, false]
        );
        assert!(decide(&mut r, "e", "GET", "accounts", false).is_empty());
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
                .map(|_| !decide(&mut r, "e", "POST", "accounts(1)", false).is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let hits = draw(7).iter().filter(|x| **x).count();
        assert!((40..=80).contains(&hits), "{hits}");
        assert!(FaultState::new(rule(FaultAction::Status { status: 404 })).is_err());
    }
}
