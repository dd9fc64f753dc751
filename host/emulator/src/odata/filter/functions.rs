//! The Dataverse query functions (`Microsoft.Dynamics.CRM.In(...)`,
//! `LastXDays`, `On`, ...): checking a call and resolving it.

use time::Date;

use super::dates::parse_datetime;
use super::grammar::is_ident;
use super::validate::unsupported;
use super::{CRM, Expr, FilterError, Literal};

#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    Day,
    Week,
    Month,
    Year,
}

/// A date range relative to now.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rel {
    /// The calendar day/month/year offset by n from the current one.
    Calendar(Unit, i64),
    /// From midnight this morning back n units, up to now.
    Last(Unit, i64),
    /// From now up to (excluding) midnight tonight plus n units.
    Next(Unit, i64),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum OnMode {
    On,
    OnOrAfter,
    OnOrBefore,
}

/// A checked Dataverse query function call.
pub(super) enum QueryFn<'e> {
    In {
        prop: &'e str,
        values: &'e [Literal],
        negate: bool,
    },
    Between {
        prop: &'e str,
        lo: &'e Literal,
        hi: &'e Literal,
        negate: bool,
    },
    Null {
        prop: &'e str,
        negate: bool,
    },
    UserId {
        prop: &'e str,
        negate: bool,
    },
    Relative {
        prop: &'e str,
        rel: Rel,
    },
    On {
        prop: &'e str,
        date: Date,
        mode: OnMode,
    },
}

/// Dataverse query functions that exist but that this evaluator lacks.
pub(super) const UNSUPPORTED_QUERY_FNS: &[&str] = &[
    "Above",
    "AboveOrEqual",
    "Contains",
    "ContainValues",
    "DoesNotContainValues",
    "EqualBusinessId",
    "EqualUserLanguage",
    "EqualUserOrUserHierarchy",
    "EqualUserOrUserHierarchyAndTeams",
    "EqualUserOrUserTeams",
    "EqualUserTeams",
    "InFiscalPeriod",
    "InFiscalPeriodAndYear",
    "InFiscalYear",
    "InOrAfterFiscalPeriodAndYear",
    "InOrBeforeFiscalPeriodAndYear",
    "LastFiscalPeriod",
    "LastFiscalYear",
    "LastWeek",
    "LastXFiscalPeriods",
    "LastXFiscalYears",
    "LastXHours",
    "NextFiscalPeriod",
    "NextFiscalYear",
    "NextWeek",
    "NextXFiscalPeriods",
    "NextXFiscalYears",
    "NextXHours",
    "NotEqualBusinessId",
    "NotUnder",
    "OlderThanXDays",
    "OlderThanXHours",
    "OlderThanXMinutes",
    "OlderThanXMonths",
    "OlderThanXWeeks",
    "OlderThanXYears",
    "ThisFiscalPeriod",
    "ThisFiscalYear",
    "ThisWeek",
    "Under",
    "UnderOrEqual",
];

/// The named parameters `expected` of `name`, each given exactly once.
pub(super) fn params<'e, const N: usize>(
    name: &str,
    args: &'e [(Option<String>, Expr)],
    expected: [&str; N],
) -> Result<[&'e Expr; N], FilterError> {
    let list = expected.join(", ");
    let mut found: [Option<&'e Expr>; N] = [None; N];
    for (n, e) in args {
        let Some(n) = n else {
            return Err(FilterError::NamedParametersRequired {
                function: name.to_string(),
                expected: list,
            });
        };
        let Some(pos) = expected.iter().position(|x| x == n) else {
            return Err(FilterError::UnknownParameter {
                function: name.to_string(),
                parameter: n.clone(),
                expected: list,
            });
        };
        if found[pos].replace(e).is_some() {
            return Err(FilterError::RepeatedParameter {
                function: name.to_string(),
                parameter: n.clone(),
            });
        }
    }
    let mut out = [&Expr::Lit(Literal::Null); N];
    for ((slot, f), n) in out.iter_mut().zip(found).zip(expected) {
        *slot = f.ok_or_else(|| FilterError::MissingParameter {
            function: name.to_string(),
            parameter: n.to_string(),
        })?;
    }
    Ok(out)
}

pub(super) fn property_name<'e>(name: &str, e: &'e Expr) -> Result<&'e str, FilterError> {
    let p = match e {
        Expr::Lit(Literal::String(s)) => s.as_str(),
        Expr::Property(p) => p.as_str(),
        _ => {
            return Err(FilterError::PropertyNameNotString {
                function: name.to_string(),
            });
        }
    };
    if is_ident(p) {
        Ok(p)
    } else {
        Err(FilterError::InvalidPropertyName {
            function: name.to_string(),
            property: p.to_string(),
        })
    }
}

pub(super) fn property_values<'e>(name: &str, e: &'e Expr) -> Result<&'e [Literal], FilterError> {
    let Expr::Lit(Literal::List(items)) = e else {
        return Err(FilterError::PropertyValuesNotList {
            function: name.to_string(),
        });
    };
    if let Some(bad) = items
        .iter()
        .find(|l| matches!(l, Literal::Null | Literal::List(_)))
    {
        return Err(FilterError::InvalidPropertyValue {
            function: name.to_string(),
            value: format!("{bad:?}"),
        });
    }
    Ok(items)
}

/// The `X` of `LastXDays` and friends: a non-negative 32-bit integer, as a
/// number or a string.
pub(super) fn count_value(name: &str, e: &Expr) -> Result<i64, FilterError> {
    let n = match e {
        Expr::Lit(Literal::Number(n)) if n.fract() == 0.0 => Some(*n),
        Expr::Lit(Literal::String(s)) => s.trim().parse::<i64>().ok().map(|n| n as f64),
        _ => None,
    };
    match n {
        Some(n) if (0.0..=f64::from(i32::MAX)).contains(&n) => Ok(n as i64),
        _ => Err(FilterError::InvalidCount {
            function: name.to_string(),
        }),
    }
}

pub(super) fn date_value(name: &str, e: &Expr) -> Result<Date, FilterError> {
    let s = match e {
        Expr::Lit(Literal::String(s) | Literal::DateTime(s)) => Some(s.as_str()),
        _ => None,
    };
    s.and_then(parse_datetime)
        .map(|(dt, _)| dt.date())
        .ok_or_else(|| FilterError::InvalidDate {
            function: name.to_string(),
        })
}

/// Resolves and checks a `Microsoft.Dynamics.CRM.*` call.
pub(super) fn query_fn<'e>(
    name: &str,
    args: &'e [(Option<String>, Expr)],
) -> Result<QueryFn<'e>, FilterError> {
    let Some(short) = name.strip_prefix(CRM) else {
        return Err(unsupported(name));
    };
    match short {
        "In" | "NotIn" => {
            let [p, v] = params(name, args, ["PropertyName", "PropertyValues"])?;
            let values = property_values(name, v)?;
            if values.is_empty() {
                return Err(FilterError::EmptyPropertyValues {
                    function: name.to_string(),
                });
            }
            Ok(QueryFn::In {
                prop: property_name(name, p)?,
                values,
                negate: short == "NotIn",
            })
        }
        "Between" | "NotBetween" => {
            let [p, v] = params(name, args, ["PropertyName", "PropertyValues"])?;
            let [lo, hi] = property_values(name, v)? else {
                return Err(FilterError::NotTwoPropertyValues {
                    function: name.to_string(),
                });
            };
            Ok(QueryFn::Between {
                prop: property_name(name, p)?,
                lo,
                hi,
                negate: short == "NotBetween",
            })
        }
        "Null" | "NotNull" => {
            let [p] = params(name, args, ["PropertyName"])?;
            Ok(QueryFn::Null {
                prop: property_name(name, p)?,
                negate: short == "NotNull",
            })
        }
        "EqualUserId" | "NotEqualUserId" => {
            let [p] = params(name, args, ["PropertyName"])?;
            Ok(QueryFn::UserId {
                prop: property_name(name, p)?,
                negate: short == "NotEqualUserId",
            })
        }
        _ if fixed_range(short).is_some() || counted_range(short).is_some() => {
            relative(name, short, args)
        }
        "On" | "OnOrAfter" | "OnOrBefore" => {
            let [p, v] = params(name, args, ["PropertyName", "PropertyValue"])?;
            Ok(QueryFn::On {
                prop: property_name(name, p)?,
                date: date_value(name, v)?,
                mode: match short {
                    "On" => OnMode::On,
                    "OnOrAfter" => OnMode::OnOrAfter,
                    _ => OnMode::OnOrBefore,
                },
            })
        }
        _ if UNSUPPORTED_QUERY_FNS.contains(&short) => {
            Err(FilterError::UnimplementedQueryFunction {
                function: name.to_string(),
            })
        }
        _ => Err(unsupported(name)),
    }
}

/// The range of a date function without a count (`Today`, `LastMonth`).
fn fixed_range(short: &str) -> Option<Rel> {
    use Unit::*;
    Some(match short {
        "Today" => Rel::Calendar(Day, 0),
        "Yesterday" => Rel::Calendar(Day, -1),
        "Tomorrow" => Rel::Calendar(Day, 1),
        "ThisMonth" => Rel::Calendar(Month, 0),
        "LastMonth" => Rel::Calendar(Month, -1),
        "NextMonth" => Rel::Calendar(Month, 1),
        "ThisYear" => Rel::Calendar(Year, 0),
        "LastYear" => Rel::Calendar(Year, -1),
        "NextYear" => Rel::Calendar(Year, 1),
        "Last7Days" => Rel::Last(Day, 7),
        "Next7Days" => Rel::Next(Day, 7),
        _ => return None,
    })
}

/// Makes the range of a counted date function from its unit and count.
type RangeOf = fn(Unit, i64) -> Rel;

/// The range maker and unit of a date function with a count
/// (`LastXDays`).
fn counted_range(short: &str) -> Option<(RangeOf, Unit)> {
    use Unit::*;
    Some(match short {
        "LastXDays" => (Rel::Last, Day),
        "NextXDays" => (Rel::Next, Day),
        "LastXWeeks" => (Rel::Last, Week),
        "NextXWeeks" => (Rel::Next, Week),
        "LastXMonths" => (Rel::Last, Month),
        "NextXMonths" => (Rel::Next, Month),
        "LastXYears" => (Rel::Last, Year),
        "NextXYears" => (Rel::Next, Year),
        _ => return None,
    })
}

/// A relative date function: `PropertyName`, and `PropertyValue` (the
/// count) for the counted ones.
fn relative<'e>(
    name: &str,
    short: &str,
    args: &'e [(Option<String>, Expr)],
) -> Result<QueryFn<'e>, FilterError> {
    if let Some(rel) = fixed_range(short) {
        let [p] = params(name, args, ["PropertyName"])?;
        return Ok(QueryFn::Relative {
            prop: property_name(name, p)?,
            rel,
        });
    }
    let Some((mk, unit)) = counted_range(short) else {
        return Err(unsupported(name));
    };
    let [p, v] = params(name, args, ["PropertyName", "PropertyValue"])?;
    Ok(QueryFn::Relative {
        prop: property_name(name, p)?,
        rel: mk(unit, count_value(name, v)?),
    })
}
