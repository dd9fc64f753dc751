//! Routing a parsed resource path and method to its handler.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{DvError, DvResult};
use super::handlers::collection::query_collection;
use super::handlers::property::{property, related_count};
use super::handlers::record::{create, delete, retrieve, upsert};
use super::handlers::reference::reference;
use super::handlers::{count_text, json_body, odata_json};
use super::metadata::{Schema, Table};
use super::path::Segment;
use super::{Ctx, batch, bulk, csdl, definitions};

/// The namespace prefix of bound actions (`Microsoft.Dynamics.CRM.CreateMultiple`).
const ACTION_PREFIX: &str = "Microsoft.Dynamics.CRM.";

/// One request, its path already split into segments.
pub(super) struct Request<'a> {
    pub method: &'a Method,
    pub segments: &'a [Segment],
    /// The decoded query string.
    pub pairs: &'a [(String, String)],
    pub body: &'a Bytes,
    /// The query string as sent (kept for `@odata.nextLink`).
    pub raw_query: Option<&'a str>,
}

/// The decoded pairs of a query string.
pub(super) fn query_pairs(raw_query: Option<&str>) -> Vec<(String, String)> {
    raw_query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Answers one request (also each operation of a `$batch`).
pub(super) fn dispatch(cx: &Ctx, req: &Request) -> DvResult<Response> {
    let schema = cx.data.read().schema.clone();
    match req.segments {
        [] if req.method == Method::GET => Ok(service_document(cx, &schema)),
        [first, ..] if req.method == Method::GET && first.name == "EntityDefinitions" => {
            let body = definitions::handle(&schema, req.segments, req.pairs, &cx.api_base)?;
            Ok(odata_json(StatusCode::OK, body))
        }
        [one] => one_segment(cx, &schema, req, one),
        [first, second] => two_segments(cx, &schema, req, first, second),
        [
            Segment {
                name,
                key: Some(key),
            },
            nav,
            Segment { name: r, key: None },
        ] if r == "$ref" => {
            let table = table_for(&schema, name)?;
            reference(cx, &table, key, nav, req)
        }
        [
            Segment {
                name,
                key: Some(key),
            },
            nav @ Segment { key: None, .. },
            Segment { name: c, key: None },
        ] if c == "$count" && req.method == Method::GET => {
            let table = table_for(&schema, name)?;
            related_count(cx, &table, key, &nav.name)
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> DvError {
    DvError::new(
        StatusCode::NOT_FOUND,
        "0x80060888",
        "Resource not found for the segment provided in the URL.",
    )
}

fn table_for(schema: &Schema, set: &str) -> DvResult<Arc<Table>> {
    schema.by_set(set).cloned().ok_or_else(|| {
        DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{set}'."),
        )
    })
}

/// `$metadata`, `WhoAmI`, `$batch`, a collection, or a record.
fn one_segment(cx: &Ctx, schema: &Schema, req: &Request, seg: &Segment) -> DvResult<Response> {
    let method = req.method;
    let name = seg.name.as_str();
    match (&seg.key, method) {
        (None, &Method::GET) if name == "$metadata" => metadata_document(schema),
        (None, &Method::GET) if name == "WhoAmI" || name == "WhoAmI()" => Ok(who_am_i(cx)),
        (None, &Method::POST) if name == "$batch" => {
            if cx.in_batch {
                return Err(DvError::payload(
                    "Nested $batch requests are not supported.",
                ));
            }
            batch::handle(cx, &cx.headers, req.body)
        }
        (None, _) => {
            let table = table_for(schema, name)?;
            match *method {
                Method::GET => query_collection(cx, &table, req.pairs, req.raw_query),
                Method::POST => create(cx, &table, req.body, req.pairs),
                _ => Err(DvError::method_not_allowed(format!(
                    "The HTTP method '{method}' is not allowed on the collection '{name}'."
                ))),
            }
        }
        (Some(key), _) => {
            let table = table_for(schema, name)?;
            match *method {
                Method::GET => retrieve(cx, &table, key, req.pairs),
                Method::PATCH => upsert(cx, &table, key, req.body, req.pairs),
                Method::DELETE => delete(cx, &table, key),
                _ => Err(DvError::method_not_allowed(format!(
                    "The HTTP method '{method}' is not allowed on a record."
                ))),
            }
        }
    }
}

/// A bound action on a collection, `<collection>/$count`, or a record's
/// property or navigation property.
fn two_segments(
    cx: &Ctx,
    schema: &Schema,
    req: &Request,
    first: &Segment,
    second: &Segment,
) -> DvResult<Response> {
    match (&first.key, &second.key) {
        (None, None) if req.method == Method::POST && second.name.starts_with(ACTION_PREFIX) => {
            let table = table_for(schema, &first.name)?;
            bulk::handle(
                cx,
                &table,
                &second.name[ACTION_PREFIX.len()..],
                &json_body(req.body)?,
            )
        }
        (None, None) if second.name == "$count" && req.method == Method::GET => {
            let table = table_for(schema, &first.name)?;
            Ok(count(cx, &table))
        }
        (Some(key), None) => {
            let table = table_for(schema, &first.name)?;
            property(cx, &table, key, &second.name, req)
        }
        _ => Err(not_found()),
    }
}

fn metadata_document(schema: &Schema) -> DvResult<Response> {
    let xml = csdl::document(schema).map_err(|e| {
        DvError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "0x80040216",
            format!("The $metadata document could not be written: {e}"),
        )
    })?;
    let mut resp = xml.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Ok(resp)
}

fn who_am_i(cx: &Ctx) -> Response {
    let d = cx.data.read();
    odata_json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", cx.api_base),
            "BusinessUnitId": cx.caller.business_unit,
            "UserId": cx.caller.systemuser,
            "OrganizationId": d.organization_id,
        }),
    )
}

/// `<collection>/$count`: the number of rows (at most 5000), as text.
fn count(cx: &Ctx, table: &Table) -> Response {
    count_text(
        cx.data
            .read()
            .rows(&table.logical_name)
            .map_or(0, |t| t.rows.len()),
    )
}

fn service_document(cx: &Ctx, schema: &Schema) -> Response {
    let mut value: Vec<Value> = schema
        .tables
        .iter()
        .map(|t| json!({"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set}))
        .collect();
    value.push(
        json!({"name": "EntityDefinitions", "kind": "EntitySet", "url": "EntityDefinitions"}),
    );
    odata_json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata", cx.api_base), "value": value}),
    )
}
