//! The handlers of the Web API's resources, and what they share: finding
//! the row a key names, reading the JSON body, and shaping answers.

pub(crate) mod collection;
pub(crate) mod property;
pub(crate) mod record;
pub(crate) mod reference;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Ctx;
use super::error::{DvError, DvResult};
use super::metadata::Table;
use super::path::Key;
use super::query;
use super::store::{EnvData, Row};

pub(crate) fn json_body(body: &Bytes) -> DvResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::payload("The request body must be a JSON object.")),
        Err(e) => Err(DvError::payload(format!("Invalid JSON. {e}"))),
    }
}

pub(crate) fn odata_json(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, crate::odata::ok(body)).into_response();
    *resp.status_mut() = status;
    resp
}

/// Finds the row a key segment names; a 404 when absent.
pub(crate) fn locate_existing(d: &EnvData, table: &Table, key: &Key) -> DvResult<Uuid> {
    locate(d, table, key)?.ok_or_else(|| key_not_found(table, key))
}

/// Finds the row a key segment names; `Ok(None)` when absent.
pub(crate) fn locate(d: &EnvData, table: &Table, key: &Key) -> DvResult<Option<Uuid>> {
    match key {
        Key::Id(id) => Ok(d.get(&table.logical_name, id).map(|_| *id)),
        Key::Alternate(pairs) => {
            let declared = table.alternate_keys.iter().any(|k| {
                k.len() == pairs.len() && k.iter().all(|c| pairs.iter().any(|(n, _)| n == c))
            });
            let is_lookup_key = pairs
                .iter()
                .all(|(n, _)| n.starts_with('_') && n.ends_with("_value"));
            if !declared && !is_lookup_key {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!(
                        "The key specified does not match any alternate key defined on '{}'.",
                        table.logical_name
                    ),
                ));
            }
            Ok(d.find_by_key(table, pairs))
        }
    }
}

pub(crate) fn key_not_found(table: &Table, key: &Key) -> DvError {
    match key {
        Key::Id(id) => DvError::not_found(&table.logical_name, id),
        Key::Alternate(pairs) => {
            let desc: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}:{}",
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            DvError::new(
                StatusCode::NOT_FOUND,
                "0x80060891",
                format!(
                    "A record with the specified key values does not exist in {} entity. Key values: {}",
                    table.logical_name,
                    desc.join(",")
                ),
            )
        }
    }
}

pub(crate) fn select_of(
    table: &Table,
    pairs: &[(String, String)],
) -> DvResult<Option<Vec<String>>> {
    let relevant: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "$select")
        .cloned()
        .collect();
    Ok(query::parse_options(table, &relevant)?.select)
}

pub(crate) fn context_url(
    cx: &Ctx,
    table: &Table,
    select: Option<&[String]>,
    entity: bool,
) -> String {
    let cols = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    format!(
        "{}$metadata#{}{}{}",
        cx.api_base,
        table.entity_set,
        cols,
        if entity { "/$entity" } else { "" }
    )
}

pub(crate) fn with_preference(mut resp: Response, cx: &Ctx, page_size_used: bool) -> Response {
    if let Some(v) = cx
        .prefer
        .applied(page_size_used)
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        resp.headers_mut().insert("Preference-Applied", v);
    }
    resp
}

/// One row as an entity: its `$select`ed columns (with the annotations
/// asked for), its `$expand`ed relations and its `@odata.context`.
pub(crate) fn entity(
    cx: &Ctx,
    d: &EnvData,
    table: &Table,
    row: &Row,
    select: Option<&[String]>,
    expand: &[query::Expand],
) -> DvResult<Map<String, Value>> {
    let ann = cx.annotations();
    let mut body = query::render(d, table, row, select, &ann);
    let ctx = cx.eval_context();
    query::expand_into(
        d,
        table,
        row,
        expand,
        false,
        &cx.api_base,
        &ann,
        &ctx,
        &mut body,
    )?;
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, select, true)),
    );
    Ok(body)
}

/// A `/$count` answer: the number (at most 5000) as UTF-8 text after a
/// byte order mark ("Retrieve related table records with a query").
pub(crate) fn count_text(n: usize) -> Response {
    let mut resp = format!("\u{feff}{}", n.min(query::MAX_PAGE)).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    resp
}

/// The entity URL of row `id` of `table`, as `OData-EntityId` and
/// `@odata.id` name it.
pub(crate) fn entity_url(cx: &Ctx, table: &Table, id: impl std::fmt::Display) -> String {
    format!("{}{}({id})", cx.api_base, table.entity_set)
}

/// The primary key of `row` of `table`, as text.
pub(crate) fn row_id<'r>(table: &Table, row: &'r Row) -> &'r str {
    row.values
        .get(&table.primary_id)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
