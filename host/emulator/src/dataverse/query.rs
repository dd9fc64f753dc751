//! Query options (`$select`, `$filter`, `$orderby`, `$top`, `$count`,
//! paging) and record serialisation with optional annotations
//! ("Query data using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview>,
//! and its pages on filtering, paging and aggregation).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::{DvError, DvResult};
use super::metadata::{Kind, Table};
use super::store::{EnvData, Row};
use crate::odata::filter::{self, Expr};

/// Largest page and largest `$count` ("Page results",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results>; "Count rows",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/count-rows>).
pub const MAX_PAGE: usize = 5000;

/// Which `@`-annotations the client asked for with `Prefer: odata.include-annotations`.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    patterns: Vec<String>,
}

impl Annotations {
    /// Parses the preference value (`"*"`, or a comma list with wildcards).
    pub fn parse(value: Option<&str>) -> Self {
        let patterns = value
            .map(|v| {
                v.trim_matches('"')
                    .split(',')
                    .map(|p| p.trim().trim_matches('"').to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Annotations { patterns }
    }

    pub fn any(&self) -> bool {
        !self.patterns.is_empty()
    }

    pub fn wants(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| {
            p == "*"
                || p == name
                || p.strip_suffix('*')
                    .is_some_and(|prefix| name.starts_with(prefix))
        })
    }
}

/// The parsed system query options of a request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    pub select: Option<Vec<String>>,
    pub filter: Option<Expr>,
    pub orderby: Vec<(String, bool)>,
    pub top: Option<usize>,
    pub count: bool,
    pub skiptoken: Option<usize>,
    /// Navigation properties the filter walks.
    pub filter_navs: Vec<String>,
    pub expand: Vec<Expand>,
    pub apply: Option<Apply>,
}

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

fn parse_aggregates(table: &Table, inner: &str) -> DvResult<Vec<Aggregate>> {
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
fn parse_apply(table: &Table, v: &str, aliases: &HashMap<String, String>) -> DvResult<Apply> {
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
                let v = match (a.method.as_str(), &a.source) {
                    ("count", None) => Value::from(members.len()),
                    ("sum", _) => serde_json::Number::from_f64(nums.iter().sum())
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                    ("average", _) if !nums.is_empty() => {
                        serde_json::Number::from_f64(nums.iter().sum::<f64>() / nums.len() as f64)
                            .map(Value::Number)
                            .unwrap_or(Value::Null)
                    }
                    ("min", _) => nums
                        .iter()
                        .copied()
                        .reduce(f64::min)
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                    ("max", _) => nums
                        .iter()
                        .copied()
                        .reduce(f64::max)
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                    ("countdistinct", Some(c)) => {
                        let mut seen: Vec<&Value> = Vec::new();
                        for r in &members {
                            if let Some(v) = r.values.get(c).filter(|v| !v.is_null())
                                && !seen.contains(&v)
                            {
                                seen.push(v);
                            }
                        }
                        Value::from(seen.len())
                    }
                    _ => Value::Null,
                };
                m.insert(a.alias.clone(), v);
            }
            Value::Object(m)
        })
        .collect())
}

fn check_column(table: &Table, name: &str) -> DvResult<()> {
    let known = table
        .attributes
        .iter()
        .any(|a| a.kind != Kind::Other && a.web_api_name() == name);
    if known {
        Ok(())
    } else {
        Err(DvError::segment(format!(
            "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{}'.",
            table.logical_name
        )))
    }
}

/// Property paths used by a filter, to reject unknown columns up front.
fn filter_properties<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    match e {
        Expr::Property(p) => out.push(p),
        Expr::Or(a, b) | Expr::And(a, b) | Expr::Cmp(_, a, b) => {
            filter_properties(a, out);
            filter_properties(b, out);
        }
        Expr::Not(a) => filter_properties(a, out),
        Expr::Call(_, args) => args.iter().for_each(|(_, a)| filter_properties(a, out)),
        // Lambda bodies name the collection's columns, checked by their own table.
        Expr::Lambda { path, .. } => out.push(path),
        _ => {}
    }
}

/// One `$expand` item: a navigation property and its nested options.
#[derive(Debug, Clone, Default)]
pub struct Expand {
    pub nav: String,
    pub options: Vec<(String, String)>,
}

/// Splits on `sep` outside parentheses and quotes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses `$expand=nav($select=a,b;$filter=...;$top=5),other`.
pub fn parse_expand(value: &str) -> DvResult<Vec<Expand>> {
    let mut out = Vec::new();
    for item in split_top(value, ',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (nav, opts) = match item.find('(') {
            Some(i) if item.ends_with(')') => (&item[..i], &item[i + 1..item.len() - 1]),
            Some(_) => return Err(DvError::segment(format!("Invalid $expand item '{item}'."))),
            None => (item, ""),
        };
        let mut options = Vec::new();
        for o in split_top(opts, ';')
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| DvError::segment(format!("Invalid $expand option '{o}'.")))?;
            if !matches!(k, "$select" | "$filter" | "$orderby" | "$top") {
                return Err(DvError::segment(format!(
                    "The option {k} is not supported inside $expand."
                )));
            }
            options.push((k.to_string(), v.to_string()));
        }
        out.push(Expand {
            nav: nav.trim().to_string(),
            options,
        });
    }
    Ok(out)
}

/// The row a single-valued navigation property points at, with its table.
pub fn single_related<'d>(
    env: &'d EnvData,
    table: &Table,
    row: &Row,
    nav: &str,
) -> Option<(std::sync::Arc<Table>, &'d Row)> {
    let (attr, _) = table.single_nav(nav)?;
    let web = attr.web_api_name();
    let target = row.lookup_targets.get(&web)?;
    let id = row
        .values
        .get(&web)
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())?;
    let tt = env.schema.table(target)?.clone();
    let r = env.get(target, &id)?;
    Some((tt, r))
}

/// Rows behind a collection-valued navigation property, with their table.
pub fn collection_related<'d>(
    env: &'d EnvData,
    table: &Table,
    row: &Row,
    nav: &str,
) -> Option<(std::sync::Arc<Table>, Vec<&'d Row>)> {
    let cn = table.collection_nav(nav)?;
    let other = env.schema.table(&cn.other)?.clone();
    let id = row
        .values
        .get(&table.primary_id)
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())?;
    let rows = match &cn.referencing_attribute {
        Some(attr) => {
            let web = format!("_{attr}_value");
            let me = id.to_string();
            env.rows(&other.logical_name)
                .map(|t| {
                    t.rows
                        .values()
                        .filter(|r| r.values.get(&web).and_then(Value::as_str) == Some(me.as_str()))
                        .collect()
                })
                .unwrap_or_default()
        }
        None => env
            .linked(
                &cn.relationship,
                &table.logical_name,
                &other.logical_name,
                id,
            )
            .iter()
            .filter_map(|i| env.get(&other.logical_name, i))
            .collect(),
    };
    Some((other, rows))
}

/// A record extended with the navigation properties a filter walks
/// (`primarycontactid/fullname`, `contact_customer_accounts/any(...)`).
fn with_navigation(env: &EnvData, table: &Table, row: &Row, navs: &[String]) -> Value {
    let mut v = row.values.as_value().clone();
    for nav in navs {
        let related = if let Some((_, r)) = single_related(env, table, row, nav) {
            r.values.as_value().clone()
        } else if let Some((_, rows)) = collection_related(env, table, row, nav) {
            Value::Array(rows.iter().map(|r| r.values.as_value().clone()).collect())
        } else {
            Value::Null
        };
        if let Value::Object(m) = &mut v {
            m.insert(nav.clone(), related);
        }
    }
    v
}

/// Parses the query string pairs (already percent- and `+`-decoded).
pub fn parse_options(table: &Table, pairs: &[(String, String)]) -> DvResult<QueryOptions> {
    let mut o = QueryOptions::default();
    let aliases: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k.starts_with('@'))
        .cloned()
        .collect();
    for (k, v) in pairs {
        match k.as_str() {
            "$select" => {
                let cols: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for c in &cols {
                    check_column(table, c)?;
                }
                o.select = Some(cols);
            }
            "$filter" => {
                let expr = filter::parse_with_aliases(v, &aliases)
                    .map_err(|e| DvError::segment(format!("Invalid $filter: {e}")))?;
                let mut props = Vec::new();
                filter_properties(&expr, &mut props);
                for p in props {
                    // Navigation paths (`primarycontactid/fullname`) are checked on their first hop.
                    let first = p.split('/').next().unwrap_or(p);
                    if table.single_nav(first).is_some() || table.collection_nav(first).is_some() {
                        if !o.filter_navs.iter().any(|n| n == first) {
                            o.filter_navs.push(first.to_string());
                        }
                    } else {
                        check_column(table, first)?;
                    }
                }
                o.filter = Some(expr);
            }
            "$orderby" => {
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let mut words = part.split_whitespace();
                    let col = words.next().unwrap_or_default();
                    let desc = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(DvError::segment(format!(
                                "Invalid $orderby direction '{other}'."
                            )));
                        }
                    };
                    check_column(table, col)?;
                    o.orderby.push((col.to_string(), desc));
                }
            }
            "$top" => {
                o.top = Some(v.parse().map_err(|_| {
                    DvError::segment(format!(
                        "Invalid value '{v}' for $top: a non-negative integer is required."
                    ))
                })?)
            }
            "$count" => {
                o.count = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(DvError::segment(format!("Invalid value '{v}' for $count."))),
                }
            }
            "$skiptoken" => {
                o.skiptoken = Some(
                    decode_skiptoken(v)
                        .ok_or_else(|| DvError::segment("The $skiptoken is not valid."))?,
                )
            }
            "$skip" | "$search" | "$format" => {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!("The query parameter {k} is not supported."),
                ));
            }
            "$expand" => {
                let items = parse_expand(v)?;
                for e in &items {
                    if table.single_nav(&e.nav).is_none() && table.collection_nav(&e.nav).is_none()
                    {
                        return Err(DvError::segment(format!(
                            "Could not find a property named '{}' on type 'Microsoft.Dynamics.CRM.{}'.",
                            e.nav, table.logical_name
                        )));
                    }
                }
                o.expand = items;
            }
            "$apply" => o.apply = Some(parse_apply(table, v, &aliases)?),
            "fetchXml" | "$levels" => {
                return Err(DvError::new(
                    axum::http::StatusCode::NOT_IMPLEMENTED,
                    "0x80040219",
                    format!("The query option {k} is not implemented by the emulator yet."),
                ));
            }
            other if other.starts_with('$') => {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!(
                        "The query parameter {other} is not supported. Query option names are case-sensitive."
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// `$skiptoken` is the URL-encoded paging cookie Dataverse uses; ours
/// carries the offset of the next page.
pub fn encode_skiptoken(offset: usize, page: usize) -> String {
    format!(
        "<cookie pagenumber=\"{page}\" pagingcookie=\"%253ccookie%2520page%253d%2522{}%2522%253e%253c%252fcookie%253e\" istracking=\"False\" />",
        offset
    )
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let rest = token.split("%2522").nth(1)?;
    rest.parse().ok()
}

/// `$orderby` order of two rows; nulls sort first ascending, as in SQL Server.
fn order_rows(a: &Row, b: &Row, orderby: &[(String, bool)]) -> std::cmp::Ordering {
    for (col, desc) in orderby {
        let ord = order_values(
            a.values.get(col).unwrap_or(&Value::Null),
            b.values.get(col).unwrap_or(&Value::Null),
        );
        let ord = if *desc { ord.reverse() } else { ord };
        if ord.is_ne() {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

pub(super) fn order_values(x: &Value, y: &Value) -> std::cmp::Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => filter::compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Whether a row passes the `$filter` (navigation paths resolved as needed).
fn matches(
    env: &EnvData,
    table: &Table,
    row: &Row,
    o: &QueryOptions,
    ctx: &filter::EvalContext,
) -> DvResult<bool> {
    match &o.filter {
        None => Ok(true),
        Some(f) if o.filter_navs.is_empty() => {
            filter::eval_with(f, row.values.as_value(), ctx).map_err(DvError::from)
        }
        Some(f) => filter::eval_with(f, &with_navigation(env, table, row, &o.filter_navs), ctx)
            .map_err(DvError::from),
    }
}

/// Filters and orders rows (of `table`) by the query options.
pub fn select_rows<'d>(
    env: &'d EnvData,
    table: &Table,
    candidates: impl Iterator<Item = &'d Row>,
    o: &QueryOptions,
    ctx: &filter::EvalContext,
) -> DvResult<Vec<&'d Row>> {
    let mut matched: Vec<&Row> = Vec::new();
    for row in candidates {
        if matches(env, table, row, o, ctx)? {
            matched.push(row);
        }
    }
    if !o.orderby.is_empty() {
        matched.sort_by(|a, b| order_rows(a, b, &o.orderby));
    }
    Ok(matched)
}

/// Runs a collection query: filter, order, page. Returns the page rows,
/// the offset of the next page (if any) and the `$count` value.
pub fn run<'d>(
    env: &'d EnvData,
    table: &Table,
    o: &QueryOptions,
    page_size: Option<usize>,
    ctx: &filter::EvalContext,
) -> DvResult<(Vec<&'d Row>, Option<usize>, usize)> {
    let Some(rows) = env.rows(&table.logical_name) else {
        return Ok((Vec::new(), None, 0));
    };
    // `$top` is ignored when a page size is requested ("Page results").
    let cap = match (page_size, o.top) {
        (None, Some(top)) => top,
        _ => usize::MAX,
    };
    let size = page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let start = o.skiptoken.unwrap_or(0);
    // Rows are read in result order and the scan stops as soon as the page
    // (plus one row, to know whether a next page exists) and, with $count,
    // the 5000 rows $count can report, are known.
    let wanted = cap
        .min(start.saturating_add(size).saturating_add(1))
        .max(if o.count { MAX_PAGE } else { 0 });
    let keyed = o.filter.as_ref().and_then(|f| key_lookup(env, table, f));
    let order;
    // Equality on the primary key or an alternate key reads at most one row;
    // `$orderby` walks a cached order index; otherwise primary-key order.
    let candidates: Box<dyn Iterator<Item = &Row>> = match (keyed, o.orderby.is_empty()) {
        (Some(id), _) => Box::new(id.and_then(|id| rows.rows.get(&id)).into_iter()),
        (None, false) => {
            order = env.ordered(table, &o.orderby);
            Box::new(order.iter().filter_map(|id| rows.rows.get(id)))
        }
        (None, true) => Box::new(rows.rows.values()),
    };
    let mut matched: Vec<&Row> = Vec::new();
    for row in candidates {
        if matches(env, table, row, o, ctx)? {
            matched.push(row);
            if matched.len() >= wanted {
                break;
            }
        }
    }
    let count = matched.len().min(MAX_PAGE);
    matched.truncate(cap);
    let start = start.min(matched.len());
    let end = (start + size).min(matched.len());
    let next = (end < matched.len()).then_some(end);
    Ok((matched[start..end].to_vec(), next, count))
}

/// `column eq literal` conjuncts of a filter (top level or under `and`).
fn equalities<'e>(e: &'e Expr, out: &mut Vec<(&'e str, &'e filter::Literal)>) {
    use filter::CmpOp;
    match e {
        Expr::And(a, b) => {
            equalities(a, out);
            equalities(b, out);
        }
        Expr::Cmp(CmpOp::Eq, a, b) => match (&**a, &**b) {
            (Expr::Property(p), Expr::Lit(l)) | (Expr::Lit(l), Expr::Property(p)) => {
                out.push((p, l))
            }
            _ => {}
        },
        _ => {}
    }
}

/// Rows a filter pins through the primary key or an alternate key, read
/// from the B-tree or the key index instead of a scan. `None` = scan.
fn key_lookup(env: &EnvData, table: &Table, e: &Expr) -> Option<Option<uuid::Uuid>> {
    use filter::Literal;
    let mut eqs = Vec::new();
    equalities(e, &mut eqs);
    let json = |l: &Literal| match l {
        Literal::String(s) | Literal::DateTime(s) => Some(Value::String(s.clone())),
        Literal::Guid(g) => Some(Value::String(g.to_string())),
        Literal::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number),
        Literal::Bool(b) => Some(Value::Bool(*b)),
        _ => None,
    };
    if let Some((_, l)) = eqs.iter().find(|(p, _)| *p == table.primary_id) {
        let id = match l {
            Literal::Guid(g) => Some(*g),
            Literal::String(s) => uuid::Uuid::parse_str(s).ok(),
            _ => None,
        };
        return Some(id.filter(|id| env.get(&table.logical_name, id).is_some()));
    }
    for key in &table.alternate_keys {
        let cols: Vec<String> = key
            .iter()
            .map(|c| {
                table
                    .attribute(c)
                    .map(|a| a.web_api_name())
                    .unwrap_or_else(|| c.clone())
            })
            .collect();
        let probe: Option<Vec<(String, Value)>> = cols
            .iter()
            .map(|c| {
                eqs.iter()
                    .find(|(p, _)| p == c)
                    .and_then(|(_, l)| json(l))
                    .map(|v| (c.clone(), v))
            })
            .collect();
        if let Some(probe) = probe {
            return Some(env.find_by_key(table, &probe));
        }
    }
    None
}

fn formatted_number(n: f64, decimals: usize) -> String {
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
    const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
    const LOOKUP_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
    const NAV: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";
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
            let formatted = match a.kind {
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
                    let target = row.lookup_targets.get(&name);
                    target.and_then(|t| {
                        let tt = env.schema.table(t)?;
                        let id = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok())?;
                        env.get(t, &id)?
                            .values
                            .get(&tt.primary_name)?
                            .as_str()
                            .map(String::from)
                    })
                }
                _ => None,
            };
            if let Some(f) = formatted.filter(|_| ann.wants(FORMATTED)) {
                out.insert(format!("{name}@{FORMATTED}"), Value::String(f));
            }
            if a.kind == Kind::Lookup
                && let Some(target) = row.lookup_targets.get(&name)
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
        out.insert(name, v);
    }
    out
}

/// Adds `$expand`ed navigation properties to a rendered row. On an entity
/// set query a collection-valued expansion is a nested next link, as in
/// Dataverse; on a single record it is the rows themselves.
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
        if table.single_nav(&e.nav).is_some() {
            let value = match single_related(env, table, row, &e.nav) {
                Some((tt, r)) => {
                    let o = parse_options(&tt, &e.options)?;
                    Value::Object(render(env, &tt, r, o.select.as_deref(), ann))
                }
                None => Value::Null,
            };
            out.insert(e.nav.clone(), value);
            continue;
        }
        let Some((other, rows)) = collection_related(env, table, row, &e.nav) else {
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
            let id = row
                .values
                .get(&table.primary_id)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(e.options.iter())
                .finish();
            let sep = if query.is_empty() { "" } else { "?" };
            out.insert(e.nav.clone(), Value::Array(Vec::new()));
            out.insert(
                format!("{}@odata.nextLink", e.nav),
                Value::String(format!(
                    "{api_base}{}({id})/{}{sep}{query}",
                    table.entity_set, e.nav
                )),
            );
            continue;
        }
        let mut selected = select_rows(env, &other, rows.into_iter(), &o, ctx)?;
        if let Some(top) = o.top {
            selected.truncate(top);
        }
        out.insert(
            e.nav.clone(),
            Value::Array(
                selected
                    .iter()
                    .map(|r| Value::Object(render(env, &other, r, o.select.as_deref(), ann)))
                    .collect(),
            ),
        );
    }
    Ok(())
}

/// `4/7/2023 2:59 PM` (UTC; the emulator's users have no time zone).
fn format_datetime(iso: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptoken_round_trips_and_numbers_format() {
        let t = encode_skiptoken(250, 2);
        assert_eq!(decode_skiptoken(&t), Some(250));
        assert_eq!(decode_skiptoken("garbage"), None);
        assert_eq!(formatted_number(1234567.5, 2), "1,234,567.50");
        assert_eq!(formatted_number(-12.0, 0), "-12");
        assert_eq!(
            format_datetime("2023-04-07T14:59:01Z").unwrap(),
            "4/7/2023 2:59 PM"
        );
    }

    #[test]
    fn annotation_patterns() {
        let a = Annotations::parse(Some("\"OData.Community.Display.V1.*\""));
        assert!(a.wants("OData.Community.Display.V1.FormattedValue"));
        assert!(!a.wants("Microsoft.Dynamics.CRM.lookuplogicalname"));
        assert!(Annotations::parse(Some("\"*\"")).wants("anything"));
        assert!(!Annotations::parse(None).any());
    }
}
