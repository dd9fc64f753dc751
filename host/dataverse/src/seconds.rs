//! Durations a server sends (`expires_in`, `refresh_in`, `interval`,
//! `Retry-After`): one parser, always clamped, because adding an absurd
//! value to an `Instant` panics.

use std::time::Duration;

use serde_json::Value;

/// Longest duration taken from a server; larger values are clamped to it.
pub(crate) const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Seconds sent as a JSON number (integer or not) or a numeric string, as
/// MSAL accepts both; negative, non-finite or non-numeric values are `None`.
pub(crate) fn from_json(v: Option<&Value>) -> Option<Duration> {
    match v? {
        Value::Number(n) => n.as_u64().map(clamp_secs).or_else(|| from_f64(n.as_f64()?)),
        Value::String(s) => from_text(s),
        _ => None,
    }
}

/// Seconds written as text (`"3600"`, `" 2.5 "`, `"1e30"`).
pub(crate) fn from_text(s: &str) -> Option<Duration> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(n) => Some(clamp_secs(n)),
        Err(_) => from_f64(s.parse().ok()?),
    }
}

/// The `Retry-After` header in seconds (Dataverse and Entra send seconds).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    from_text(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

fn clamp_secs(n: u64) -> Duration {
    Duration::from_secs(n).min(MAX)
}

fn from_f64(f: f64) -> Option<Duration> {
    (f.is_finite() && f >= 0.0).then(|| Duration::from_secs_f64(f.min(MAX.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absurd_values_are_clamped_and_junk_is_refused() {
        assert_eq!(
            from_json(Some(&json!(3600))),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            from_json(Some(&json!("3600"))),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(from_json(Some(&json!(1e30))), Some(MAX));
        assert_eq!(from_json(Some(&json!(u64::MAX))), Some(MAX));
        assert_eq!(from_text("99999999999"), Some(MAX));
        assert_eq!(from_text("1.5"), Some(Duration::from_millis(1500)));
        for junk in [
            json!(-1),
            json!("-5"),
            json!("soon"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(from_json(Some(&junk)), None, "{junk}");
        }
        assert_eq!(from_text("NaN"), None);
        assert_eq!(from_text("inf"), None);
        // Clamped values can be added to an Instant without panicking.
        let _later = std::time::Instant::now() + MAX;
    }
}
