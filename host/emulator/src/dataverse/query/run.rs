//! Running a query: filtering (with navigation paths and key lookups
//! instead of scans), ordering and paging.

use serde_json::Value;

use super::{MAX_PAGE, QueryOptions};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::Table;
use crate::dataverse::store::{EnvData, Row};
use crate::odata::filter::{self, Expr};

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
pub(super) fn with_navigation(env: &EnvData, table: &Table, row: &Row, navs: &[String]) -> Value {
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

/// `$orderby` order of two rows; nulls sort first ascending, as in SQL Server.
pub(super) fn order_rows(a: &Row, b: &Row, orderby: &[(String, bool)]) -> std::cmp::Ordering {
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

pub fn order_values(x: &Value, y: &Value) -> std::cmp::Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => filter::compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Whether a row passes the `$filter` (navigation paths resolved as needed).
pub(super) fn matches(
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
    // Expansions are checked even when no row matches.
    for e in &o.expand {
        super::check_expand(env, table, e)?;
    }
    let Some(rows) = env.rows(&table.logical_name) else {
        return Ok((Vec::new(), None, 0));
    };
    let Bounds { cap, size, start } = Bounds::of(o, page_size);
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
    Ok(page(matched, o, page_size))
}

/// Where a page lies in a query's result: at most `cap` rows in all
/// (`$top`, ignored when a page size is requested: "Page results"), pages
/// of `size`, this one from `start` (`$skiptoken`).
struct Bounds {
    cap: usize,
    size: usize,
    start: usize,
}

impl Bounds {
    fn of(o: &QueryOptions, page_size: Option<usize>) -> Bounds {
        Bounds {
            cap: match (page_size, o.top) {
                (None, Some(top)) => top,
                _ => usize::MAX,
            },
            size: page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE),
            start: o.skiptoken.unwrap_or(0),
        }
    }
}

/// One page of the rows a query matched (in result order): the page, the
/// offset of the next page (if any) and the `$count` value (at most 5000).
pub fn page<'d>(
    mut matched: Vec<&'d Row>,
    o: &QueryOptions,
    page_size: Option<usize>,
) -> (Vec<&'d Row>, Option<usize>, usize) {
    let Bounds { cap, size, start } = Bounds::of(o, page_size);
    let count = matched.len().min(MAX_PAGE);
    matched.truncate(cap);
    let start = start.min(matched.len());
    let end = (start + size).min(matched.len());
    let next = (end < matched.len()).then_some(end);
    (matched[start..end].to_vec(), next, count)
}

/// `column eq literal` conjuncts of a filter (top level or under `and`).
pub(super) fn equalities<'e>(e: &'e Expr, out: &mut Vec<(&'e str, &'e filter::Literal)>) {
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
pub(super) fn key_lookup(env: &EnvData, table: &Table, e: &Expr) -> Option<Option<uuid::Uuid>> {
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
