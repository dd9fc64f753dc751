//! One record: create, retrieve (with conditional GET), update/upsert and
//! delete, with `If-Match`/`If-None-Match` and `return=representation`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    entity, entity_url, json_body, key_not_found, locate, locate_existing, odata_json, select_of,
    with_preference,
};
use crate::dataverse::Ctx;
use crate::dataverse::caller::app_name;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::Table;
use crate::dataverse::path::Key;
use crate::dataverse::query;
use crate::dataverse::store::EnvData;

fn entity_id_header(resp: &mut Response, cx: &Ctx, table: &Table, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&entity_url(cx, table, id)) {
        resp.headers_mut().insert("OData-EntityId", v);
    }
}

fn represent(
    cx: &Ctx,
    table: &Table,
    id: Uuid,
    pairs: &[(String, String)],
    status: StatusCode,
    expand: bool,
) -> DvResult<Response> {
    let select = select_of(table, pairs)?;
    let d = cx.data.read();
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    // Update with return=representation ignores $expand ("Update and
    // delete table rows using the Web API").
    let expands: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| expand && k == "$expand")
        .cloned()
        .collect();
    let o = query::parse_options(table, &expands)?;
    let body = entity(cx, &d, table, row, select.as_deref(), &o.expand)?;
    let mut resp = odata_json(status, Value::Object(body));
    if let Ok(v) = HeaderValue::from_str(&row.etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(with_preference(resp, cx, false))
}

pub(crate) fn create(
    cx: &Ctx,
    table: &Table,
    body: &Bytes,
    pairs: &[(String, String)],
) -> DvResult<Response> {
    let body = json_body(body)?;
    // Validate $select and $expand before writing, so a bad query loses
    // nothing.
    select_of(table, pairs)?;
    let expands: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "$expand")
        .cloned()
        .collect();
    let o = query::parse_options(table, &expands)?;
    let app = app_user_name(cx, table, &body);
    let id = {
        let mut d = cx.write();
        for e in &o.expand {
            query::check_expand(&d, table, e)?;
        }
        let id = d.create_deep(table, &body, None, cx.caller)?;
        if let Some(name) = app {
            d.name_app_user(table, id, name);
        }
        id
    };
    written(cx, table, id, pairs, StatusCode::CREATED, true)
}

/// The name an application user created from `body` gets: its
/// application's (read before the rows are locked for writing).
pub(crate) fn app_user_name(cx: &Ctx, table: &Table, body: &Map<String, Value>) -> Option<String> {
    let app_id = body
        .get("applicationid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|_| table.logical_name == "systemuser")?;
    Some(app_name(&cx.emu.dir.read(), app_id))
}

/// The answer to a write of row `id`: the row (`status`, with `$expand`
/// applied when `expand`) with `Prefer: return=representation`, else 204
/// with `OData-EntityId`.
fn written(
    cx: &Ctx,
    table: &Table,
    id: Uuid,
    pairs: &[(String, String)],
    status: StatusCode,
    expand: bool,
) -> DvResult<Response> {
    if cx.prefer.representation {
        return represent(cx, table, id, pairs, status, expand);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    entity_id_header(&mut resp, cx, table, id);
    Ok(resp)
}

fn if_match(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

pub(crate) fn retrieve(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    pairs: &[(String, String)],
) -> DvResult<Response> {
    // Only checked here: `represent` applies `$select` itself.
    select_of(table, pairs)?;
    for (k, _) in pairs {
        if k.starts_with('$') && k != "$select" {
            query::parse_options(
                table,
                &pairs
                    .iter()
                    .filter(|(x, _)| x == k)
                    .cloned()
                    .collect::<Vec<_>>(),
            )?;
        }
    }
    let id = {
        let d = cx.data.read();
        locate_existing(&d, table, key)?
    };
    let etag = cx
        .data
        .read()
        .get(&table.logical_name, &id)
        .map(|r| r.etag());
    // Conditional GET: 304 when unchanged, never with $expand or annotations.
    if let (Some(inm), Some(etag)) = (if_match(&cx.headers, header::IF_NONE_MATCH), etag)
        && inm == etag
        && cx.prefer.annotations.is_none()
        && !pairs.iter().any(|(k, _)| k == "$expand")
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    represent(cx, table, id, pairs, StatusCode::OK, true)
}

/// 412 unless `If-Match` is absent, `*`, or the row's current ETag.
fn check_if_match(d: &EnvData, table: &Table, id: Uuid, if_match: Option<&str>) -> DvResult<()> {
    match if_match.filter(|t| *t != "*") {
        Some(tag) if d.get(&table.logical_name, &id).map(|r| r.etag()).as_deref() != Some(tag) => {
            Err(DvError::new(
                StatusCode::PRECONDITION_FAILED,
                "0x80060882",
                "The version of the existing record doesn't match the RowVersion property provided.",
            ))
        }
        _ => Ok(()),
    }
}

/// PATCH: update, or create at that key (the upsert matrix of "Update and
/// delete table rows using the Web API",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api>).
pub(crate) fn upsert(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    body: &Bytes,
    pairs: &[(String, String)],
) -> DvResult<Response> {
    let mut body = json_body(body)?;
    select_of(table, pairs)?;
    let im = if_match(&cx.headers, header::IF_MATCH);
    let inm = if_match(&cx.headers, header::IF_NONE_MATCH);
    let app = app_user_name(cx, table, &body);
    let mut d = cx.write();
    let existing = locate(&d, table, key)?;
    match existing {
        Some(id) => {
            if inm.as_deref() == Some("*") {
                return Err(DvError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80040237",
                    "A record with matching key values already exists.",
                ));
            }
            check_if_match(&d, table, id, im.as_deref())?;
            d.update(table, id, &body, cx.caller)?;
            drop(d);
            written(cx, table, id, pairs, StatusCode::OK, false)
        }
        None => {
            if im.is_some() {
                return Err(key_not_found(table, key));
            }
            let id = key.creation_id(&mut body);
            let id = d.create(table, &body, id, cx.caller)?;
            if let Some(name) = app {
                d.name_app_user(table, id, name);
            }
            drop(d);
            written(cx, table, id, pairs, StatusCode::CREATED, false)
        }
    }
}

pub(crate) fn delete(cx: &Ctx, table: &Table, key: &Key) -> DvResult<Response> {
    let mut d = cx.write();
    let id = locate_existing(&d, table, key)?;
    check_if_match(
        &d,
        table,
        id,
        if_match(&cx.headers, header::IF_MATCH).as_deref(),
    )?;
    d.delete(table, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
