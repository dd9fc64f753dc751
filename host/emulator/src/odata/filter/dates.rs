//! Dates: parsing ISO dates, comparing them as instants, and the ranges
//! of the relative date functions.

use serde_json::Value;
use time::macros::date;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::FilterError;
use super::functions::{Rel, Unit};

/// Parses `2024-05-01`, `2024-05-01T10:00`, `2024-05-01T10:00:00.123Z`,
/// `2024-05-01T10:00:00+02:00` (or `+0200`); the offset is `None` when not
/// written.
pub(super) fn parse_datetime(s: &str) -> Option<(PrimitiveDateTime, Option<UtcOffset>)> {
    fn digits(s: &str, n: usize) -> Option<u32> {
        let t = s.get(..n)?;
        if t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(s, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(s.get(5..)?, 2)?).ok()?).ok()?;
    let day = u8::try_from(digits(s.get(8..)?, 2)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some((date.midnight(), None));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = u8::try_from(digits(rest, 2)?).ok()?;
    let rest = rest.get(2..)?.strip_prefix(':')?;
    let minute = u8::try_from(digits(rest, 2)?).ok()?;
    let mut rest = rest.get(2..)?;
    let (mut second, mut nanos) = (0u8, 0u32);
    if let Some(r) = rest.strip_prefix(':') {
        second = u8::try_from(digits(r, 2)?).ok()?;
        rest = r.get(2..)?;
        if let Some(r) = rest.strip_prefix('.') {
            let len = r.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            let frac = r.get(..len.min(9))?;
            nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
            rest = r.get(len..)?;
        }
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let offset = match rest {
        "" => None,
        "Z" | "z" => Some(UtcOffset::UTC),
        _ => {
            let sign: i8 = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.get(1..)?;
            let h = i8::try_from(digits(r, 2)?).ok()?;
            let r = r.get(2..)?;
            let r = r.strip_prefix(':').unwrap_or(r);
            if r.len() != 2 {
                return None;
            }
            let m = i8::try_from(digits(r, 2)?).ok()?;
            Some(UtcOffset::from_hms(sign * h, sign * m, 0).ok()?)
        }
    };
    Some((PrimitiveDateTime::new(date, time), offset))
}

/// The key strings compare by: an ISO date becomes its instant in UTC,
/// written at fixed width (so keys of dates sort chronologically), anything
/// else its lower case. Comparing keys keeps the order total, also when
/// dates and other text are mixed.
pub(super) fn text_key(s: &str) -> String {
    let utc = parse_datetime(s).and_then(|(dt, offset)| {
        dt.assume_offset(offset.unwrap_or(UtcOffset::UTC))
            .checked_to_offset(UtcOffset::UTC)
    });
    match utc {
        Some(t) => format!(
            "{:04}-{:02}-{:02}t{:02}:{:02}:{:02}.{:09}z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        ),
        None => s.to_lowercase(),
    }
}

pub(super) const SAFE_MIN_DATE: Date = date!(0001 - 01 - 02);
pub(super) const SAFE_MAX_DATE: Date = date!(9998 - 12 - 30);

pub(super) fn from_julian(jd: i64) -> Date {
    let lo = i64::from(SAFE_MIN_DATE.to_julian_day());
    let hi = i64::from(SAFE_MAX_DATE.to_julian_day());
    i32::try_from(jd.clamp(lo, hi))
        .ok()
        .and_then(|jd| Date::from_julian_day(jd).ok())
        .unwrap_or(SAFE_MIN_DATE)
}

pub(super) fn add_months(d: Date, n: i64) -> Date {
    let total = (i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1).saturating_add(n);
    let year = total.div_euclid(12);
    if year < 1 {
        return SAFE_MIN_DATE;
    }
    if year > 9998 {
        return SAFE_MAX_DATE;
    }
    let year = year as i32;
    let Ok(month) = Month::try_from(total.rem_euclid(12) as u8 + 1) else {
        return SAFE_MIN_DATE;
    };
    let day = d.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(SAFE_MIN_DATE)
}

/// `d` moved by `n` units, clamped to a range every offset can represent.
pub(super) fn shift(d: Date, unit: Unit, n: i64) -> Date {
    let jd = i64::from(d.to_julian_day());
    match unit {
        Unit::Day => from_julian(jd.saturating_add(n)),
        Unit::Week => from_julian(jd.saturating_add(n.saturating_mul(7))),
        Unit::Month => add_months(d, n),
        Unit::Year => add_months(d, n.saturating_mul(12)),
    }
}

/// The range `rel` covers as (start, end, end inclusive?).
pub(super) fn rel_range(rel: Rel, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime, bool) {
    let offset = now.offset();
    let today = from_julian(i64::from(now.date().to_julian_day()));
    let at = |d: Date| d.midnight().assume_offset(offset);
    match rel {
        Rel::Calendar(unit, k) => {
            let first = match unit {
                Unit::Day | Unit::Week => today,
                Unit::Month => today.replace_day(1).unwrap_or(today),
                Unit::Year => {
                    Date::from_calendar_date(today.year(), Month::January, 1).unwrap_or(today)
                }
            };
            let start = shift(first, unit, k);
            (at(start), at(shift(start, unit, 1)), false)
        }
        Rel::Last(unit, n) => (at(shift(today, unit, -n)), now, true),
        Rel::Next(unit, n) => (now, at(shift(shift(today, Unit::Day, 1), unit, n)), false),
    }
}

/// A record's date value as (instant, calendar date in the user's time
/// zone); `None` for null. Date-only values are calendar dates, so they
/// take the user's offset.
pub(super) fn record_date(
    prop: &str,
    v: &Value,
    offset: UtcOffset,
) -> Result<Option<(OffsetDateTime, Date)>, FilterError> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        other => {
            return Err(FilterError::NotADate {
                property: prop.to_string(),
                value: other.to_string(),
            });
        }
    };
    let Some((dt, written)) = parse_datetime(s) else {
        return Err(FilterError::NotADate {
            property: prop.to_string(),
            value: format!("'{s}'"),
        });
    };
    let date_only = s.len() == 10;
    let instant = dt.assume_offset(match written {
        Some(o) => o,
        None if date_only => offset,
        None => UtcOffset::UTC,
    });
    let local = if date_only {
        dt.date()
    } else {
        instant
            .checked_to_offset(offset)
            .map_or(dt.date(), |t| t.date())
    };
    Ok(Some((instant, local)))
}
