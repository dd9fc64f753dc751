//! `$apply`: `filter(...)`, `groupby(...)` and `aggregate(...)`
//! ("Aggregate data",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/aggregate-data>).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::options::{check_column, split_top};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Kind, Table};
use crate::dataverse::store::Row;
use crate::odata::filter::{self, Expr};

/// A `$apply` pipeline: optional `filter(...)`, then `groupby`/`aggregate`.
#[derive(Debug, Clone, Default)]
pub struct Apply {
    pub filter: Option<Expr>,
    pub groupby: Vec<String>,
    pub aggregates: Vec<Aggregate>,
}

/// `revenue with sum as total`, or `$count as n` (`source` None).
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub source: Option<String>,
    pub method: String,
    pub alias: String,
}

/// Most rows `$apply` aggregates over ("Aggregate data",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/aggregate-data>).
pub const MAX_AGGREGATE_INPUT: usize = 50_000;

pub(super) fn parse_aggregates(table: &Table, inner: &str) -> DvResult<Vec<Aggregate>> {
    split_top(inner, ',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| {
            let words: Vec<&str> = a.split_whitespace().collect();
            match words[..] {
                ["$count", "as", alias] => Ok(Aggregate {
                    source: None,
                    method: "count".into(),
                    alias: alias.into(),
                }),
                [col, "with", method, "as", alias] => {
                    check_column(table, col)?;
                    if !matches!(method, "sum" | "average" | "min" | "max" | "countdistinct") {
                        return Err(DvError::segment(format!(
                            "The aggregation method '{method}' is not supported."
                        )));
                    }
                    Ok(Aggregate {
                        source: Some(col.into()),
                        method: method.into(),
                        alias: alias.into(),
                    })
                }
                _ => Err(DvError::segment(format!(
                    "Invalid aggregate expression '{a}'."
                ))),
            }
        })
        .collect()
}

/// Parses `filter(...)/groupby((a,b),aggregate(...))` and `aggregate(...)`.
pub(super) fn parse_apply(
    table: &Table,
    v: &str,
    aliases: &HashMap<String, String>,
) -> DvResult<Apply> {
    let mut apply = Apply::default();
    for step in split_top(v, '/').into_iter().map(str::trim) {
        let inner = |name: &str| {
            step.strip_prefix(name)
                .and_then(|r| r.trim_start().strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        if let Some(f) = inner("filter") {
            apply.filter = Some(
                filter::parse_with_aliases(f, aliases)
                    .map_err(|e| DvError::segment(format!("Invalid $apply filter: {e}")))?,
            );
        } else if let Some(g) = inner("groupby") {
            let parts = split_top(g, ',');
            let cols = parts
                .first()
                .and_then(|c| c.trim().strip_prefix('('))
                .and_then(|c| c.strip_suffix(')'))
                .ok_or_else(|| DvError::segment("groupby needs a parenthesised column list."))?;
            for c in cols.split(',').map(str::trim) {
                check_column(table, c)?;
                if table
                    .attributes
                    .iter()
                    .any(|a| a.web_api_name() == c && a.kind == Kind::DateTime)
                {
                    return Err(DvError::segment(format!(
                        "Cannot group by the date and time column '{c}'; use a date grouping in FetchXML."
                    )));
                }
                apply.groupby.push(c.to_string());
            }
            if let Some(rest) = parts.get(1..).filter(|r| !r.is_empty()) {
                let agg = rest.join(",");
                let agg = agg
                    .trim()
                    .strip_prefix("aggregate(")
                    .and_then(|a| a.strip_suffix(')'))
                    .ok_or_else(|| {
                        DvError::segment("groupby takes aggregate(...) as its second argument.")
                    })?;
                apply.aggregates = parse_aggregates(table, agg)?;
            }
        } else if let Some(a) = inner("aggregate") {
            apply.aggregates = parse_aggregates(table, a)?;
        } else {
            return Err(DvError::segment(format!(
                "The $apply transformation '{step}' is not supported."
            )));
        }
    }
    Ok(apply)
}

/// Groups and aggregates rows.
pub fn aggregate(rows: &[&Row], apply: &Apply) -> DvResult<Vec<Value>> {
    if rows.len() > MAX_AGGREGATE_INPUT {
        return Err(DvError::bad_request(
            "0x8004e023",
            format!(
                "AggregateQueryRecordLimit exceeded. Cannot perform this operation on more than {MAX_AGGREGATE_INPUT} records."
            ),
        ));
    }
    let mut groups: Vec<(Vec<Value>, Vec<&Row>)> = Vec::new();
    for r in rows {
        let key: Vec<Value> = apply
            .groupby
            .iter()
            .map(|c| r.values.get(c).cloned().unwrap_or(Value::Null))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    if groups.is_empty() && apply.groupby.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups.sort_by(|(a, _), (b, _)| {
        a.iter()
            .zip(b)
            .map(|(x, y)| filter::compare(x, y).unwrap_or(std::cmp::Ordering::Equal))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(groups
        .into_iter()
        .map(|(key, members)| {
            let mut m = Map::new();
            for (c, v) in apply.groupby.iter().zip(key) {
                m.insert(c.clone(), v);
            }
            for a in &apply.aggregates {
                let v = aggregate_value(a, &members);
                m.insert(a.alias.clone(), v);
            }
            Value::Object(m)
        })
        .collect())
}

/// One aggregate over a group's rows; null where it has no value.
fn aggregate_value(a: &Aggregate, members: &[&Row]) -> Value {
    let number = |n: Option<f64>| {
        n.and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    };
    let nums: Vec<f64> = a
        .source
        .as_ref()
        .map(|c| {
            members
                .iter()
                .filter_map(|r| r.values.get(c).and_then(Value::as_f64))
                .collect()
        })
        .unwrap_or_default();
    match (a.method.as_str(), &a.source) {
        ("count", None) => Value::from(members.len()),
        ("sum", _) => number(Some(nums.iter().sum())),
        ("average", _) if !nums.is_empty() => {
            number(Some(nums.iter().sum::<f64>() / nums.len() as f64))
        }
        ("min", _) => number(nums.iter().copied().reduce(f64::min)),
        ("max", _) => number(nums.iter().copied().reduce(f64::max)),
        ("countdistinct", Some(c)) => {
            let mut seen: Vec<&Value> = Vec::new();
            for r in members {
                if let Some(v) = r.values.get(c).filter(|v| !v.is_null())
                    && !seen.contains(&v)
                {
                    seen.push(v);
                }
            }
            Value::from(seen.len())
        }
        _ => Value::Null,
    }
}
