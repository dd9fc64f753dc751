//! Create, update and delete: the caller's row is checked column by column
//! against the table's description (a column it does not know, one the
//! operation cannot set, a value of the wrong type or out of range, a
//! required column missing: invalid input, and nothing is sent), then
//! written in the Web API's shape, lookups as
//! `<navigation>@odata.bind: "/<entity set>(<id>)"`.

use dvhost_sdk::metadata::{ColumnInfo, RequiredLevel, TableDescription};
use dvhost_sdk::serde_json::{Map, Value, json};
use dvhost_sdk::{ActionError, Table};

use crate::action_error;
use crate::columns::{Shape, check_value, is_guid, object, required_on_create, shape, writable};

/// `<table>.create`.
pub fn create(description: &TableDescription, input: Value) -> Result<Value, ActionError> {
    let table = &description.table;
    let fields = object(&input, "the row").map_err(ActionError::InvalidInput)?;
    let mut row = web_row(description, fields, true)?;
    let missing: Vec<&str> = description
        .columns
        .iter()
        .filter(|c| required_on_create(c, &table.primary_id))
        .filter(|c| !fields.contains_key(&c.logical_name))
        .map(|c| c.logical_name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ActionError::invalid_input(format!(
            "a row of {} needs {}",
            table.logical_name,
            missing.join(", ")
        )));
    }
    // The primary key, when given, is the id of the new row.
    let id = match row.remove(&table.primary_id) {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let records = Table::new(&table.logical_name);
    let id = match id {
        Some(id) => records.create_with_id(&id, &row),
        None => records.create(&row),
    }
    .map_err(action_error)?;
    Ok(json!({"id": id}))
}

/// `<table>.update`.
pub fn update(description: &TableDescription, input: Value) -> Result<Value, ActionError> {
    let input = object(&input, "the input").map_err(ActionError::InvalidInput)?;
    only(input, &["id", "row"])?;
    let id = id_of(input)?;
    let fields = input
        .get("row")
        .ok_or_else(|| ActionError::invalid_input("`row` is missing"))?;
    let fields = object(fields, "`row`").map_err(ActionError::InvalidInput)?;
    if fields.is_empty() {
        return Err(ActionError::invalid_input(
            "`row` names no column to change",
        ));
    }
    let row = web_row(description, fields, false)?;
    Table::new(&description.table.logical_name)
        .update(id, &row)
        .map_err(action_error)?;
    Ok(json!({}))
}

/// `<table>.delete`.
pub fn delete(description: &TableDescription, input: Value) -> Result<Value, ActionError> {
    let input = object(&input, "the input").map_err(ActionError::InvalidInput)?;
    only(input, &["id"])?;
    let id = id_of(input)?;
    Table::new(&description.table.logical_name)
        .delete(id)
        .map_err(action_error)?;
    Ok(json!({}))
}

/// Refuses properties of `input` other than `known`.
pub fn only(input: &Map<String, Value>, known: &[&str]) -> Result<(), ActionError> {
    match input.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ActionError::invalid_input(format!(
            "unknown property '{k}' (expected {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The input's `id`, a GUID.
pub fn id_of(input: &Map<String, Value>) -> Result<&str, ActionError> {
    match input.get("id") {
        Some(Value::String(id)) if is_guid(id) => Ok(id),
        Some(other) => Err(ActionError::invalid_input(format!(
            "`id` must be a GUID, not {other}"
        ))),
        None => Err(ActionError::invalid_input("`id` is missing")),
    }
}

/// The caller's `fields` as a Web API row for a create (`creating`) or an
/// update.
pub fn web_row(
    description: &TableDescription,
    fields: &Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, ActionError> {
    let table = &description.table.logical_name;
    let operation = if creating { "a create" } else { "an update" };
    let mut row = Map::new();
    for (name, value) in fields {
        let column = description
            .column(name)
            .ok_or_else(|| ActionError::invalid_input(format!("{table} has no column '{name}'")))?;
        if !writable(column, creating) {
            return Err(ActionError::invalid_input(format!(
                "column '{name}' of {table} cannot be set by {operation}"
            )));
        }
        let Some(shape) = shape(column) else {
            unreachable!("writable columns have a shape");
        };
        let bad = |why: String| ActionError::invalid_input(format!("column '{name}': {why}"));
        if value.is_null() {
            let required = if creating {
                required_on_create(column, &description.table.primary_id)
            } else {
                column.required == RequiredLevel::SystemRequired
            };
            if required {
                return Err(bad("it is required and cannot be null".into()));
            }
        }
        match &shape {
            Shape::Lookup { settable, .. } => {
                let (key, bound) = bind(column, settable, value).map_err(bad)?;
                row.insert(key, bound);
            }
            _ => {
                if !value.is_null() {
                    check_value(&shape, value).map_err(bad)?;
                }
                row.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(row)
}

/// A lookup's value as its `@odata.bind` pair: a GUID for a lookup with one
/// settable target, `{"table", "id"}` for one with several, `null` to clear
/// (through the first target's navigation property: any of them clears the
/// one column).
fn bind(
    column: &ColumnInfo,
    settable: &[dvhost_sdk::metadata::LookupTarget],
    value: &Value,
) -> Result<(String, Value), String> {
    let first = &settable[0];
    if value.is_null() {
        return Ok((format!("{}@odata.bind", first.navigation), Value::Null));
    }
    let (target, id) = match (settable, value) {
        ([only], Value::String(id)) => (only, id.as_str()),
        ([_], _) => return Err(format!("expected the id of a {} row (a GUID)", first.table)),
        (_, Value::Object(pick)) => {
            if let Some(k) = pick.keys().find(|k| *k != "table" && *k != "id") {
                return Err(format!("unknown property '{k}' (expected table, id)"));
            }
            let table = pick.get("table").and_then(Value::as_str).ok_or_else(|| {
                format!("`table` must name one of {}", tables(settable).join(", "))
            })?;
            let target = column.lookup_target(table).ok_or_else(|| {
                format!(
                    "it cannot point to {table}; it points to {}",
                    tables(settable).join(", ")
                )
            })?;
            let id = pick
                .get("id")
                .and_then(Value::as_str)
                .ok_or("`id` must be a GUID")?;
            (target, id)
        }
        _ => {
            return Err(format!(
                "expected {{\"table\", \"id\"}} naming one of {}",
                tables(settable).join(", ")
            ));
        }
    };
    if !is_guid(id) {
        return Err(format!("'{id}' is not a GUID"));
    }
    let (key, reference) = target.bind(id);
    Ok((key, Value::String(reference)))
}

fn tables(targets: &[dvhost_sdk::metadata::LookupTarget]) -> Vec<&str> {
    targets.iter().map(|t| t.table.as_str()).collect()
}
