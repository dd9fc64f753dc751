//! `<record>/<property>` (read, set, clear a column) and
//! `<record>/<navigation property>` (the related rows).

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{context_url, json_body, locate_existing, odata_json};
use crate::dataverse::Ctx;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Kind, Table};
use crate::dataverse::path::Key;
use crate::dataverse::query;

/// `GET/PUT/DELETE <record>/<property>`, and `GET <record>/<navigation>`.
pub(crate) fn property(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    prop: &str,
    method: &Method,
    body: &Bytes,
) -> DvResult<Response> {
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
            cx.data.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::DELETE, Some(a)) if a.kind != Kind::Lookup => {
            let mut m = Map::new();
            m.insert(a.logical_name.clone(), Value::Null);
            cx.data.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, None) => navigate(cx, table, id, prop),
        _ => Err(DvError::method_not_allowed(format!(
            "The HTTP method '{method}' is not allowed on '{prop}'."
        ))),
    }
}

/// `GET <record>/<navigation property>`: the related row or rows.
fn navigate(cx: &Ctx, table: &Table, id: Uuid, nav: &str) -> DvResult<Response> {
    let d = cx.data.read();
    let ann = cx.annotations();
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    if table.single_nav(nav).is_some() {
        return Ok(match query::single_related(&d, table, row, nav) {
            Some((tt, r)) => {
                let mut body = query::render(&d, &tt, r, None, &ann);
                body.insert(
                    "@odata.context".into(),
                    Value::String(context_url(cx, &tt, None, true)),
                );
                odata_json(StatusCode::OK, Value::Object(body))
            }
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let cn = table
        .collection_nav(nav)
        .ok_or_else(|| DvError::segment(format!("Resource not found for the segment '{nav}'.")))?;
    let (other, rows) =
        query::collection_related(&d, table, row, nav).ok_or_else(|| unserved(&cn.other))?;
    let value: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(query::render(&d, &other, r, None, &ann)))
        .collect();
    Ok(odata_json(
        StatusCode::OK,
        json!({"@odata.context": context_url(cx, &other, None, false), "value": value}),
    ))
}

/// 501 for a relationship whose other table the emulator does not serve.
pub(crate) fn unserved(table: &str) -> DvError {
    DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040219",
        format!("The table '{table}' is not served by the emulator."),
    )
}
