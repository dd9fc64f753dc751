//! Serialising rows: selected columns, annotations (formatted values,
//! lookup names) and `$expand`ed navigation properties.

use serde_json::{Map, Value};

use super::{Annotations, Expand, collection_related, parse_options, select_rows, single_related};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Attribute, Kind, Table};
use crate::dataverse::store::{EnvData, Row};
use crate::odata::filter;

pub(super) fn formatted_number(n: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, n.abs());
    let (int, frac) = s
        .split_once('.')
        .map(|(i, f)| (i.to_string(), Some(f.to_string())))
        .unwrap_or((s.clone(), None));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if n < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Serialises a row: `@odata.etag`, then the selected columns (all when no
/// `$select`), the primary key always, and annotations when asked.
pub fn render(
    env: &EnvData,
    table: &Table,
    row: &Row,
    select: Option<&[String]>,
    ann: &Annotations,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("@odata.etag".into(), Value::String(row.etag()));
    let wants = |name: &str| select.is_none_or(|s| s.iter().any(|c| c == name));
    let money_selected = table
        .attributes
        .iter()
        .any(|a| a.kind == Kind::Money && wants(&a.logical_name));
    for a in table.attributes.iter().filter(|a| a.kind != Kind::Other) {
        let name = a.web_api_name();
        let auto =
            name == table.primary_id || (money_selected && name == "_transactioncurrencyid_value");
        if !auto && !wants(&name) {
            continue;
        }
        let v = row.values.get(&name).cloned().unwrap_or(Value::Null);
        if ann.any() && !v.is_null() {
            annotate(&mut out, env, row, a, &name, &v, ann);
        }
        out.insert(name, v);
    }
    out
}

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
const ATTRIBUTE_NAME: &str = "OData.Community.Display.V1.AttributeName";
const LOOKUP_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
const NAV: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";

/// The annotations of column `a` (Web API name `name`, value `v`, not
/// null) the client asked for: its formatted value and, for a lookup, the
/// navigation property and target table.
fn annotate(
    out: &mut Map<String, Value>,
    env: &EnvData,
    row: &Row,
    a: &Attribute,
    name: &str,
    v: &Value,
    ann: &Annotations,
) {
    if let Some(f) = formatted_value(env, row, a, name, v).filter(|_| ann.wants(FORMATTED)) {
        out.insert(format!("{name}@{FORMATTED}"), Value::String(f));
    }
    if a.kind == Kind::Lookup
        && let Some(target) = row.lookup_targets.get(name)
    {
        if ann.wants(NAV) {
            let nav = a
                .targets
                .iter()
                .find(|(t, _)| t == target)
                .or(a.targets.first())
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            out.insert(format!("{name}@{NAV}"), Value::String(nav));
        }
        if ann.wants(LOOKUP_NAME) {
            out.insert(
                format!("{name}@{LOOKUP_NAME}"),
                Value::String(target.clone()),
            );
        }
    }
}

/// Adds a joined row's columns as `alias.column` (the column's logical
/// name, a lookup's GUID as its value), nulls left out, with the
/// `AttributeName`, formatted value and lookup table annotations when
/// asked ("Join tables using FetchXml",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/fetchxml/join-tables>).
pub fn render_aliased(
    env: &EnvData,
    row: &Row,
    alias: &str,
    attributes: &[Attribute],
    ann: &Annotations,
    out: &mut Map<String, Value>,
) {
    for a in attributes {
        let web = a.web_api_name();
        let Some(v) = row.values.get(&web).filter(|v| !v.is_null()).cloned() else {
            continue;
        };
        let key = format!("{alias}.{}", a.logical_name);
        if ann.wants(ATTRIBUTE_NAME) {
            out.insert(
                format!("{key}@{ATTRIBUTE_NAME}"),
                Value::String(a.logical_name.clone()),
            );
        }
        if ann.wants(FORMATTED)
            && let Some(f) = formatted_value(env, row, a, &web, &v)
        {
            out.insert(format!("{key}@{FORMATTED}"), Value::String(f));
        }
        if a.kind == Kind::Lookup
            && ann.wants(LOOKUP_NAME)
            && let Some(target) = row.lookup_targets.get(&web)
        {
            out.insert(
                format!("{key}@{LOOKUP_NAME}"),
                Value::String(target.clone()),
            );
        }
        out.insert(key, v);
    }
}

/// The `FormattedValue` of a value: a choice's label, `Yes`/`No`, money
/// and numbers with separators, a date as Dataverse shows it, a lookup's
/// primary name.
fn formatted_value(
    env: &EnvData,
    row: &Row,
    a: &Attribute,
    name: &str,
    v: &Value,
) -> Option<String> {
    match a.kind {
        Kind::Choice => v
            .as_i64()
            .and_then(|n| a.options.iter().find(|(o, _)| *o == n))
            .map(|(_, l)| l.clone()),
        Kind::Boolean => {
            let opt = if v.as_bool() == Some(true) {
                "TrueOption"
            } else {
                "FalseOption"
            };
            a.raw["OptionSet"][opt]["Label"]
                .as_str()
                .map(String::from)
                .or_else(|| {
                    Some(if v.as_bool() == Some(true) {
                        "Yes".into()
                    } else {
                        "No".into()
                    })
                })
        }
        Kind::Money => v.as_f64().map(|n| format!("${}", formatted_number(n, 2))),
        Kind::Integer | Kind::BigInt => v.as_f64().map(|n| formatted_number(n, 0)),
        Kind::DateTime => v.as_str().and_then(format_datetime),
        Kind::Lookup => {
            let target = row.lookup_targets.get(name)?;
            let tt = env.schema.table(target)?;
            let id = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok())?;
            env.get(target, &id)?
                .values
                .get(&tt.primary_name)?
                .as_str()
                .map(String::from)
        }
        _ => None,
    }
}

/// What every level of an expansion shares.
struct Level<'a> {
    env: &'a EnvData,
    api_base: &'a str,
    ann: &'a Annotations,
    ctx: &'a filter::EvalContext,
}

/// Adds `$expand`ed navigation properties to a rendered row, nested
/// `$expand`s included ("Join tables using OData",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/join-tables>).
/// On an entity set query a collection-valued expansion is a nested next
/// link, as in Dataverse; on a single record, and below the first level,
/// it is the rows themselves.
#[allow(clippy::too_many_arguments)]
pub fn expand_into(
    env: &EnvData,
    table: &Table,
    row: &Row,
    expands: &[Expand],
    on_collection: bool,
    api_base: &str,
    ann: &Annotations,
    ctx: &filter::EvalContext,
    out: &mut Map<String, Value>,
) -> DvResult<()> {
    for e in expands {
        check_expand(env, table, e)?;
    }
    let level = Level {
        env,
        api_base,
        ann,
        ctx,
    };
    expand_level(&level, table, row, expands, on_collection, out)
}

fn expand_level(
    l: &Level,
    table: &Table,
    row: &Row,
    expands: &[Expand],
    on_collection: bool,
    out: &mut Map<String, Value>,
) -> DvResult<()> {
    for e in expands {
        if table.single_nav(&e.nav).is_some() {
            let value = match single_related(l.env, table, row, &e.nav) {
                Some((tt, r)) => Value::Object(rendered(l, &tt, r, &e.options)?),
                None => Value::Null,
            };
            out.insert(e.nav.clone(), value);
            continue;
        }
        let Some((other, rows)) = collection_related(l.env, table, row, &e.nav) else {
            return Err(DvError::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                "0x80040219",
                format!(
                    "The table behind '{}' is not served by the emulator.",
                    e.nav
                ),
            ));
        };
        let o = parse_options(&other, &e.options)?;
        if on_collection {
            let (key, link) = nested_next_link(l, table, row, e);
            out.insert(e.nav.clone(), Value::Array(Vec::new()));
            out.insert(key, Value::String(link));
            continue;
        }
        let mut selected = select_rows(l.env, &other, rows.into_iter(), &o, l.ctx)?;
        if let Some(top) = o.top {
            selected.truncate(top);
        }
        let value = selected
            .iter()
            .map(|r| rendered(l, &other, r, &e.options).map(Value::Object))
            .collect::<DvResult<Vec<_>>>()?;
        out.insert(e.nav.clone(), Value::Array(value));
    }
    Ok(())
}

/// Checks an expansion's options, nested ones included, on their tables,
/// whether or not any row is related.
pub fn check_expand(env: &EnvData, table: &Table, e: &Expand) -> DvResult<()> {
    let target = match table.single_nav(&e.nav) {
        Some((_, target)) => Some(target),
        None => table.collection_nav(&e.nav).map(|c| c.other.as_str()),
    };
    let Some(tt) = target.and_then(|t| env.schema.table(t)) else {
        return Ok(());
    };
    let o = parse_options(tt, &e.options)?;
    o.expand.iter().try_for_each(|n| check_expand(env, tt, n))
}

/// A related row with its expansion's `$select` and nested `$expand`.
fn rendered(
    l: &Level,
    table: &Table,
    row: &Row,
    options: &[(String, String)],
) -> DvResult<Map<String, Value>> {
    let o = parse_options(table, options)?;
    let mut m = render(l.env, table, row, o.select.as_deref(), l.ann);
    expand_level(l, table, row, &o.expand, false, &mut m)?;
    Ok(m)
}

/// `<nav>@odata.nextLink` and the link reading the collection with the
/// expansion's options.
fn nested_next_link(l: &Level, table: &Table, row: &Row, e: &Expand) -> (String, String) {
    let id = row
        .values
        .get(&table.primary_id)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(e.options.iter())
        .finish();
    let sep = if query.is_empty() { "" } else { "?" };
    (
        format!("{}@odata.nextLink", e.nav),
        format!(
            "{}{}({id})/{}{sep}{query}",
            l.api_base, table.entity_set, e.nav
        ),
    )
}

/// `4/7/2023 2:59 PM` (UTC; the emulator's users have no time zone).
pub(super) fn format_datetime(iso: &str) -> Option<String> {
    let t =
        time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339).ok()?;
    let (h, pm) = match t.hour() {
        0 => (12, false),
        h @ 1..=11 => (h, false),
        12 => (12, true),
        h => (h - 12, true),
    };
    Some(format!(
        "{}/{}/{} {}:{:02} {}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        h,
        t.minute(),
        if pm { "PM" } else { "AM" }
    ))
}
