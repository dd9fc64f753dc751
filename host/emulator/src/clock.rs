//! The emulator's clock: system time plus a settable offset, so tests can
//! expire tokens and assertions without sleeping.

use time::OffsetDateTime;
use time::macros::format_description;

/// Current emulator time with `offset_secs` applied.
pub fn now(offset_secs: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs)
}

/// Entra's `timestamp` format: `2025-01-01 10:00:00Z`.
pub fn entra_timestamp(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// ISO 8601 / RFC 3339 with a `Z` suffix, as Graph and Dataverse write times.
pub fn iso(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}
