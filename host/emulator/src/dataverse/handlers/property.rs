//! `<record>/<property>` (read, set, clear a column) and
//! `<record>/<navigation property>` (the related rows).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::collection::{Listing, answer_page, page_size};
use super::{count_text, entity, json_body, locate_existing, odata_json};
use crate::dataverse::Ctx;
use crate::dataverse::dispatch::Request;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Kind, Table};
use crate::dataverse::path::Key;
use crate::dataverse::query;
use crate::dataverse::store::{EnvData, Row};

/// `GET/PUT/DELETE <record>/<property>`, and `GET <record>/<navigation>`.
pub(crate) fn property(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    prop: &str,
    req: &Request,
) -> DvResult<Response> {
    let (method, body) = (req.method, req.body);
    let id = {
        let d = cx.data.read();
        locate_existing(&d, table, key)?
    };
    let attr = table
        .attributes
        .iter()
        .find(|a| a.kind != Kind::Other && a.web_api_name() == prop);
    match (method, attr) {
        (&Method::GET, Some(a)) => {
            let d = cx.data.read();
            let v = d
                .get(&table.logical_name, &id)
                .and_then(|r| r.values.get(&a.web_api_name()).cloned())
                .unwrap_or(Value::Null);
            if v.is_null() {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            Ok(odata_json(
                StatusCode::OK,
                json!({"@odata.context": format!("{}$metadata#{}({id})/{prop}", cx.api_base, table.entity_set), "value": v}),
            ))
        }
        (&Method::PUT, Some(a)) if a.kind != Kind::Lookup => {
            let body = json_body(body)?;
            let value = body
                .get("value")
                .cloned()
                .ok_or_else(|| DvError::payload("The body must be {\"value\": ...}."))?;
            let mut m = Map::new();
            m.insert(a.logical_name.clone(), value);
            cx.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::DELETE, Some(a)) if a.kind != Kind::Lookup => {
            let mut m = Map::new();
            m.insert(a.logical_name.clone(), Value::Null);
            cx.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, None) => navigate(cx, table, id, prop, req),
        _ => Err(DvError::method_not_allowed(format!(
            "The HTTP method '{method}' is not allowed on '{prop}'."
        ))),
    }
}

/// `GET <record>/<navigation property>`: the related row (with `$select`
/// and `$expand`) or rows (queried like a set: `$select`, `$filter`,
/// `$orderby`, `$top`, `$count`, `$expand`, paged with
/// `odata.maxpagesize`). The next link a collection `$expand` on a set
/// leaves is read here.
fn navigate(cx: &Ctx, table: &Table, id: Uuid, nav: &str, req: &Request) -> DvResult<Response> {
    let d = cx.data.read();
    let ctx = cx.eval_context();
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    if let Some((_, target)) = table.single_nav(nav) {
        let tt = d
            .schema
            .table(target)
            .cloned()
            .ok_or_else(|| unserved(target))?;
        // Checked like a retrieve's; only `$select` and `$expand` apply.
        let o = query::parse_options(&tt, req.pairs)?;
        for e in &o.expand {
            query::check_expand(&d, &tt, e)?;
        }
        return Ok(match query::single_related(&d, table, row, nav) {
            Some((tt, r)) => {
                let body = entity(cx, &d, &tt, r, o.select.as_deref(), &o.expand)?;
                odata_json(StatusCode::OK, Value::Object(body))
            }
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let (other, rows) = related_rows(&d, table, row, nav)?;
    let o = query::parse_options(&other, req.pairs)?;
    if o.apply.is_some() {
        return Err(DvError::segment(
            "$apply is not supported on a navigation property; query the set instead.",
        ));
    }
    for e in &o.expand {
        query::check_expand(&d, &other, e)?;
    }
    let page_size = page_size(cx);
    let matched = query::select_rows(&d, &other, rows.into_iter(), &o, &ctx)?;
    let found = query::page(matched, &o, page_size);
    let path = format!("{}({id})/{nav}", table.entity_set);
    let at = Listing {
        path: &path,
        raw_query: req.raw_query,
        page_size,
    };
    answer_page(cx, &d, &other, &o, found, &at)
}

/// `GET <record>/<collection-valued navigation property>/$count`: how many
/// rows are related (at most 5000), as text.
pub(crate) fn related_count(cx: &Ctx, table: &Table, key: &Key, nav: &str) -> DvResult<Response> {
    let d = cx.data.read();
    let id = locate_existing(&d, table, key)?;
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    Ok(count_text(related_rows(&d, table, row, nav)?.1.len()))
}

/// The rows related to `row` through the collection-valued navigation
/// property `nav`, with their table.
pub(crate) fn related_rows<'d>(
    d: &'d EnvData,
    table: &Table,
    row: &Row,
    nav: &str,
) -> DvResult<(Arc<Table>, Vec<&'d Row>)> {
    let cn = table
        .collection_nav(nav)
        .ok_or_else(|| DvError::segment(format!("Resource not found for the segment '{nav}'.")))?;
    query::collection_related(d, table, row, nav).ok_or_else(|| unserved(&cn.other))
}

/// 501 for a relationship whose other table the emulator does not serve.
pub(crate) fn unserved(table: &str) -> DvError {
    DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040219",
        format!("The table '{table}' is not served by the emulator."),
    )
}
