//! Queries on a collection: OData query options (with `$apply` and
//! server-driven paging) and FetchXML.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{context_url, odata_json, with_preference};
use crate::dataverse::Ctx;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::fetchxml;
use crate::dataverse::metadata::Table;
use crate::dataverse::query::{self, Apply, QueryOptions};
use crate::dataverse::store::{EnvData, Row};
use crate::odata::filter::{self, EvalContext};

/// `GET <collection>`: a page of rows selected by the query options (or by
/// `fetchXml`), or their aggregates (`$apply`).
pub(crate) fn query_collection(
    cx: &Ctx,
    table: &Table,
    pairs: &[(String, String)],
    raw_query: Option<&str>,
) -> DvResult<Response> {
    if let Some((_, xml)) = pairs.iter().find(|(k, _)| k == "fetchXml") {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| k.starts_with('$')) {
            return Err(DvError::segment(format!(
                "The query option {k} cannot be combined with fetchXml."
            )));
        }
        return fetch_query(cx, table, xml);
    }
    let o: QueryOptions = query::parse_options(table, pairs)?;
    let ctx = cx.eval_context();
    let d = cx.data.read();
    if let Some(apply) = &o.apply {
        return aggregate(cx, &d, table, &o, apply, &ctx);
    }
    let page_size = page_size(cx);
    let found = query::run(&d, table, &o, page_size, &ctx)?;
    let at = Listing {
        path: &table.entity_set,
        raw_query,
        page_size,
    };
    answer_page(cx, &d, table, &o, found, &at)
}

/// The page size `Prefer: odata.maxpagesize` asks for (1 to 5000).
pub(super) fn page_size(cx: &Ctx) -> Option<usize> {
    cx.prefer.max_page_size.map(|n| n.clamp(1, query::MAX_PAGE))
}

/// Where a page of rows was read: the path below the API base (a set, or
/// a record's collection-valued navigation property), the query as sent
/// and the page size asked for, which its next link repeats.
pub(super) struct Listing<'a> {
    pub(super) path: &'a str,
    pub(super) raw_query: Option<&'a str>,
    pub(super) page_size: Option<usize>,
}

/// The answer to a collection read: the page's rows of `table` with their
/// `$select` and `$expand`, `@odata.count`, the count annotations and the
/// next link.
pub(super) fn answer_page(
    cx: &Ctx,
    d: &EnvData,
    table: &Table,
    o: &QueryOptions,
    (rows, next, count): (Vec<&Row>, Option<usize>, usize),
    at: &Listing,
) -> DvResult<Response> {
    let ctx = cx.eval_context();
    let ann = cx.annotations();
    let mut value: Vec<Value> = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut m = query::render(d, table, r, o.select.as_deref(), &ann);
        query::expand_into(
            d,
            table,
            r,
            &o.expand,
            true,
            &cx.api_base,
            &ann,
            &ctx,
            &mut m,
        )?;
        value.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, o.select.as_deref(), false)),
    );
    if o.count {
        body.insert("@odata.count".into(), Value::from(count));
    }
    if ann.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcount".into(),
            Value::from(if o.count { count as i64 } else { -1 }),
        );
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded".into(),
            Value::Bool(o.count && count >= query::MAX_PAGE),
        );
    }
    body.insert("value".into(), Value::Array(value));
    if let Some(offset) = next {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(next_link(cx, at, offset)),
        );
    }
    Ok(with_preference(
        odata_json(StatusCode::OK, Value::Object(body)),
        cx,
        at.page_size.is_some(),
    ))
}

/// Every row of `table`.
fn all_rows<'d>(d: &'d EnvData, table: &Table) -> Vec<&'d Row> {
    d.rows(&table.logical_name)
        .map(|t| t.rows.values().collect())
        .unwrap_or_default()
}

/// `$apply`: filter (both `$filter` and `filter()`), then group and
/// aggregate.
fn aggregate(
    cx: &Ctx,
    d: &EnvData,
    table: &Table,
    o: &QueryOptions,
    apply: &Apply,
    ctx: &EvalContext,
) -> DvResult<Response> {
    let unordered = QueryOptions {
        orderby: Vec::new(),
        ..o.clone()
    };
    let mut selected =
        query::select_rows(d, table, all_rows(d, table).into_iter(), &unordered, ctx)?;
    if let Some(f) = &apply.filter {
        let mut kept = Vec::with_capacity(selected.len());
        for r in selected {
            if filter::eval_with(f, r.values.as_value(), ctx)? {
                kept.push(r);
            }
        }
        selected = kept;
    }
    let mut value = query::aggregate(&selected, apply)?;
    // Groups may be ordered by their groupby columns, not by aggregate
    // values ("Aggregate data": no $orderby on aggregate values).
    if let Some((c, _)) = o.orderby.iter().find(|(c, _)| !apply.groupby.contains(c)) {
        return Err(DvError::segment(format!(
            "$orderby with $apply may name only groupby columns; '{c}' is not one."
        )));
    }
    value.sort_by(|x, y| {
        o.orderby
            .iter()
            .map(|(c, desc)| {
                let order = query::order_values(&x[c], &y[c]);
                if *desc { order.reverse() } else { order }
            })
            .find(|order| order.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(odata_json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#{}", cx.api_base, table.entity_set), "value": value}),
    ))
}

/// The next page's link: the request exactly, with only `$skiptoken`
/// changed.
fn next_link(cx: &Ctx, at: &Listing, offset: usize) -> String {
    let kept: String = at
        .raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|p| {
            !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
        })
        .collect::<Vec<_>>()
        .join("&");
    let page = offset / at.page_size.unwrap_or(query::MAX_PAGE) + 1;
    let token: String =
        url::form_urlencoded::byte_serialize(query::encode_skiptoken(offset, page).as_bytes())
            .collect();
    let sep = if kept.is_empty() { "" } else { "&" };
    format!("{}{}?{kept}{sep}$skiptoken={token}", cx.api_base, at.path)
}

/// Runs a FetchXML query.
fn fetch_query(cx: &Ctx, table: &Table, xml: &str) -> DvResult<Response> {
    let d = cx.data.read();
    let f = fetchxml::parse(&d.schema, table, xml)?;
    let ctx = cx.eval_context();
    let mut rows = fetchxml::join(&d, table, &f, &ctx)?;
    if let Some(top) = f.top {
        rows.truncate(top);
    }
    let count = f.count.unwrap_or(query::MAX_PAGE).clamp(1, query::MAX_PAGE);
    let page = f.page.unwrap_or(1).max(1);
    let start = ((page - 1) * count).min(rows.len());
    let end = (start + count).min(rows.len());
    let more = end < rows.len();
    let ann = cx.annotations();
    let value: Vec<Value> = rows[start..end]
        .iter()
        .map(|j| {
            let mut m = query::render(&d, table, j.row, f.attributes.as_deref(), &ann);
            fetchxml::strip_nulls(&mut m);
            fetchxml::render_links(&d, &f.links, j, &ann, &mut m);
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, None, false)),
    );
    if ann.wants("Microsoft.Dynamics.CRM.fetchxmlpagingcookie") && more {
        body.insert(
            "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie".into(),
            Value::String(paging_cookie(table, rows[end - 1].row, page)),
        );
    }
    if ann.wants("Microsoft.Dynamics.CRM.morerecords") && more {
        body.insert(
            "@Microsoft.Dynamics.CRM.morerecords".into(),
            Value::Bool(true),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(with_preference(
        odata_json(StatusCode::OK, Value::Object(body)),
        cx,
        false,
    ))
}

/// The paging cookie of page `page` that ends with `last`.
fn paging_cookie(table: &Table, last: &Row, page: usize) -> String {
    let last = last
        .values
        .get(&table.primary_id)
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The inner cookie is URL-encoded twice, as Dataverse sends it.
    let inner = format!(
        "<cookie page=\"{page}\"><{pk} last=\"{{{last}}}\" /></cookie>",
        pk = table.primary_id
    );
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let twice = encode(&encode(&inner));
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{twice}\" istracking=\"False\" />",
        page + 1
    )
}
