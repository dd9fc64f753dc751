//! `$ref` association endpoints ("Associate and disassociate table rows
//! using the Web API",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api>).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::property::{related_rows, unserved};
use super::{entity_url, json_body, locate_existing, odata_json, row_id};
use crate::dataverse::Ctx;
use crate::dataverse::dispatch::Request;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Attribute, CollectionNav, Table};
use crate::dataverse::path::{Key, Segment};
use crate::dataverse::query;
use crate::dataverse::store::EnvData;

/// `<record>/<navigation property>[(<key>)]/$ref`: sets or clears a
/// lookup (single-valued), or adds or removes a related row
/// (collection-valued).
pub(crate) fn reference(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    nav: &Segment,
    req: &Request,
) -> DvResult<Response> {
    if *req.method == Method::GET {
        return read(cx, table, key, nav);
    }
    let mut d = cx.write();
    let id = locate_existing(&d, table, key)?;
    if let Some((attr, _)) = table.single_nav(&nav.name) {
        single_valued(&mut d, table, id, attr, req)?;
    } else {
        collection_valued(&mut d, table, id, nav, req)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET <record>/<navigation property>/$ref`: the entity URL of the
/// related row (`$metadata#$ref`, 204 when none), or of each related row
/// (`$metadata#Collection($ref)`).
fn read(cx: &Ctx, table: &Table, key: &Key, nav: &Segment) -> DvResult<Response> {
    let d = cx.data.read();
    let id = locate_existing(&d, table, key)?;
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    let name = &nav.name;
    if nav.key.is_some() {
        return Err(DvError::method_not_allowed(
            "Read the references of the whole navigation property, without a key.",
        ));
    }
    if table.single_nav(name).is_some() {
        return Ok(match query::single_related(&d, table, row, name) {
            Some((tt, r)) => odata_json(
                StatusCode::OK,
                json!({"@odata.context": format!("{}$metadata#$ref", cx.api_base), "@odata.id": entity_url(cx, &tt, row_id(&tt, r))}),
            ),
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let (other, rows) = related_rows(&d, table, row, name)?;
    let value: Vec<Value> = rows
        .iter()
        .map(|r| json!({"@odata.id": entity_url(cx, &other, row_id(&other, r))}))
        .collect();
    Ok(odata_json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#Collection($ref)", cx.api_base), "value": value}),
    ))
}

/// The `@odata.id` of the body: the entity URL of the row to relate.
fn body_ref(req: &Request) -> DvResult<String> {
    json_body(req.body)?
        .get("@odata.id")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| DvError::payload("The body must be {\"@odata.id\": \"<entity URL>\"}."))
}

/// `PUT` sets the lookup `attr` to the row the body names; `DELETE`
/// clears it.
fn single_valued(
    d: &mut EnvData,
    table: &Table,
    id: Uuid,
    attr: &Attribute,
    req: &Request,
) -> DvResult<()> {
    match *req.method {
        Method::PUT => {
            let (target, tid) = d.resolve_reference(&body_ref(req)?)?;
            d.set_lookup(table, id, attr, Some((target.logical_name.clone(), tid)))
        }
        Method::DELETE => d.set_lookup(table, id, attr, None),
        _ => Err(DvError::method_not_allowed(
            "Use PUT or DELETE on a single-valued navigation property's $ref.",
        )),
    }
}

/// `POST` relates the row the body names; `DELETE` (with a key or `$id`)
/// unrelates one.
fn collection_valued(
    d: &mut EnvData,
    table: &Table,
    id: Uuid,
    nav: &Segment,
    req: &Request,
) -> DvResult<()> {
    let name = &nav.name;
    let cn = table
        .collection_nav(name)
        .cloned()
        .ok_or_else(|| DvError::segment(format!("Resource not found for the segment '{name}'.")))?;
    let other = d
        .schema
        .table(&cn.other)
        .cloned()
        .ok_or_else(|| unserved(&cn.other))?;
    let target_id = collection_target(d, &other, nav, req)?;
    relate(
        d,
        table,
        id,
        &cn,
        &other,
        target_id,
        *req.method == Method::POST,
    )
}

/// The id of the row a collection `$ref` request adds or removes.
fn collection_target(d: &EnvData, other: &Table, nav: &Segment, req: &Request) -> DvResult<Uuid> {
    match (req.method, &nav.key) {
        (&Method::POST, _) => {
            let (t, tid) = d.resolve_reference(&body_ref(req)?)?;
            if t.logical_name != other.logical_name {
                return Err(DvError::payload(format!(
                    "'{}' relates to '{}', not '{}'.",
                    nav.name, other.logical_name, t.logical_name
                )));
            }
            Ok(tid)
        }
        (&Method::DELETE, Some(Key::Id(tid))) => Ok(*tid),
        (&Method::DELETE, None) => {
            let r = req
                .pairs
                .iter()
                .find(|(k, _)| k == "$id")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    DvError::segment("DELETE of a collection $ref needs $id or a key.")
                })?;
            Ok(d.resolve_reference(&r)?.1)
        }
        _ => Err(DvError::method_not_allowed(
            "Use POST or DELETE on a collection-valued navigation property's $ref.",
        )),
    }
}

/// Adds (`add`) or removes the relation between `id` and `target_id`:
/// through the other table's lookup (one-to-many) or the intersect
/// (many-to-many).
fn relate(
    d: &mut EnvData,
    table: &Table,
    id: Uuid,
    cn: &CollectionNav,
    other: &Table,
    target_id: Uuid,
    add: bool,
) -> DvResult<()> {
    match &cn.referencing_attribute {
        Some(attr_name) => {
            let attr = other.attribute(attr_name).cloned().ok_or_else(|| {
                DvError::segment(format!("'{}' cannot be associated here.", cn.name))
            })?;
            d.set_lookup(
                other,
                target_id,
                &attr,
                add.then(|| (table.logical_name.clone(), id)),
            )
        }
        None => {
            if d.get(&other.logical_name, &target_id).is_none() {
                return Err(DvError::not_found(&other.logical_name, &target_id));
            }
            d.link(
                &cn.relationship,
                &table.logical_name,
                &other.logical_name,
                id,
                target_id,
                add,
            );
            Ok(())
        }
    }
}
