//! Bulk messages on standard tables ("Bulk operation messages",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations>):
//! `CreateMultiple`, `UpdateMultiple`, `UpsertMultiple`, all or nothing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Ctx;
use super::error::{DvError, DvResult};
use super::handlers::record::app_user_name;
use super::handlers::{locate, odata_json};
use super::metadata::Table;
use super::path::{self, Key};
use super::store::EnvData;

const NS: &str = "Microsoft.Dynamics.CRM.";

/// The Targets, each checked for `@odata.type` naming this table.
fn targets(table: &Table, body: &Map<String, Value>) -> DvResult<Vec<Map<String, Value>>> {
    let list = body
        .get("Targets")
        .and_then(Value::as_array)
        .ok_or_else(|| DvError::payload("The body must be {\"Targets\": [...]}."))?;
    let want = format!("{NS}{}", table.logical_name);
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let obj = t
                .as_object()
                .ok_or_else(|| DvError::payload(format!("Target {i} is not an object.")))?;
            match obj.get("@odata.type").and_then(Value::as_str) {
                Some(ty) if ty.trim_start_matches('#') == want => Ok(obj.clone()),
                Some(ty) => Err(DvError::payload(format!(
                    "Target {i} has @odata.type '{ty}', expected '{want}'."
                ))),
                None => Err(DvError::payload(format!(
                    "Target {i} has no @odata.type; every Target must name its type ('{want}')."
                ))),
            }
        })
        .collect()
}

fn primary_id(table: &Table, t: &Map<String, Value>) -> Option<Uuid> {
    t.get(&table.primary_id)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// The names the application users among `targets` get (read before the
/// rows are locked for writing).
fn app_user_names(cx: &Ctx, table: &Table, targets: &[Map<String, Value>]) -> Vec<Option<String>> {
    targets
        .iter()
        .map(|t| app_user_name(cx, table, t))
        .collect()
}

/// `POST <set>/Microsoft.Dynamics.CRM.<Message>`.
pub(super) fn handle(
    cx: &Ctx,
    table: &Table,
    message: &str,
    body: &Map<String, Value>,
) -> DvResult<Response> {
    match message {
        "CreateMultiple" => {
            let targets = targets(table, body)?;
            let names = app_user_names(cx, table, &targets);
            let ids = cx.write().atomically(|d| {
                targets
                    .iter()
                    .zip(names)
                    .map(|(t, name)| {
                        let id = d.create(table, t, None, cx.caller)?;
                        if let Some(name) = name {
                            d.name_app_user(table, id, name);
                        }
                        Ok(id)
                    })
                    .collect::<DvResult<Vec<_>>>()
            })?;
            Ok(odata_json(
                StatusCode::OK,
                json!({"@odata.context": format!("{}$metadata#{NS}CreateMultipleResponse", cx.api_base), "Ids": ids}),
            ))
        }
        "UpdateMultiple" => {
            let targets = targets(table, body)?;
            cx.write().atomically(|d| {
                for (i, t) in targets.iter().enumerate() {
                    let id = primary_id(table, t).ok_or_else(|| {
                        DvError::payload(format!("Target {i} has no {}.", table.primary_id))
                    })?;
                    d.update(table, id, t, cx.caller)?;
                }
                Ok(())
            })?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "UpsertMultiple" => {
            let targets = targets(table, body)?;
            let names = app_user_names(cx, table, &targets);
            cx.write().atomically(|d| {
                for ((i, t), name) in targets.iter().enumerate().zip(names) {
                    upsert_one(cx, d, table, i, t, name)?;
                }
                Ok(())
            })?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "DeleteMultiple" => Err(DvError::bad_request(
            "0x80040219",
            "DeleteMultiple has not yet been implemented.",
        )),
        other => Err(DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{NS}{other}'."),
        )),
    }
}

/// The key of UpsertMultiple target `i`: its `@odata.id`, else its
/// primary key.
fn upsert_key(table: &Table, i: usize, t: &Map<String, Value>) -> DvResult<Key> {
    match (
        t.get("@odata.id").and_then(Value::as_str),
        primary_id(table, t),
    ) {
        (Some(r), _) => {
            let rel = r.rsplit('/').next().unwrap_or(r);
            path::parse(rel)?
                .pop()
                .and_then(|s| s.key)
                .ok_or_else(|| DvError::payload(format!("Target {i} has an invalid @odata.id.")))
        }
        (None, Some(id)) => Ok(Key::Id(id)),
        (None, None) => Err(DvError::payload(format!(
            "Target {i} needs {} or @odata.id.",
            table.primary_id
        ))),
    }
}

/// Updates UpsertMultiple target `i`, or creates it at its key.
fn upsert_one(
    cx: &Ctx,
    d: &mut EnvData,
    table: &Table,
    i: usize,
    t: &Map<String, Value>,
    app_name: Option<String>,
) -> DvResult<()> {
    let key = upsert_key(table, i, t)?;
    match locate(d, table, &key)? {
        Some(id) => d.update(table, id, t, cx.caller)?,
        None => {
            let mut values = t.clone();
            let id = key.creation_id(&mut values);
            let id = d.create(table, &values, id, cx.caller)?;
            if let Some(name) = app_name {
                d.name_app_user(table, id, name);
            }
        }
    }
    Ok(())
}
