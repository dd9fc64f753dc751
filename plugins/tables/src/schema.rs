//! The five actions of a table and their JSON Schemas.
//!
//! - `<table>.create`: input is the row, one property per column a create
//!   may set (`required` lists the columns the caller must give); output
//!   `{"id"}`.
//! - `<table>.retrieve`: input `{"id", "select"?}`; output the row.
//! - `<table>.update`: input `{"id", "row"}`, `row` with the columns an
//!   update may set (at least one); output `{}`.
//! - `<table>.delete`: input `{"id"}`; output `{}`.
//! - `<table>.list`: input `{"select"?, "filter"?, "order_by"?, "top"?}`;
//!   output `{"rows", "more"}`.
//!
//! Every input schema closes its objects (`additionalProperties: false`),
//! as [`write`](crate::write) and [`read`](crate::read) refuse what they do
//! not know. Rows read back have one property per readable column, lookups
//! as the id of the row they point to, or as `{"table", "id"}` when they
//! may point to several tables (as they are written).

use dvhost_sdk::dynamic::DynamicAction;
use dvhost_sdk::metadata::{ColumnInfo, RequiredLevel, TableDescription};
use dvhost_sdk::serde_json::{Map, Value, json};

use crate::columns::{
    Direction, Shape, guid_schema, nullable, required_on_create, shape, value_schema, writable,
};

/// Rows `list` returns when the input names no `top`.
pub const DEFAULT_TOP: u32 = 50;
/// Most rows one `list` returns: one Dataverse page at its largest (the
/// plugin's output limit, 4 MiB by default, may end a call before that).
pub const MAX_TOP: u32 = 5000;

/// The table's actions.
pub fn actions(description: &TableDescription) -> Vec<DynamicAction> {
    let table = &description.table.logical_name;
    let shown = match &description.table.display_name {
        Some(name) => format!("{name} ({table})"),
        None => table.clone(),
    };
    let action =
        |operation: &str, description: String, input: Value, output: Value| DynamicAction {
            name: format!("{table}.{operation}"),
            description,
            input_schema: input,
            output_schema: output,
        };
    let empty = json!({"type": "object", "additionalProperties": false});
    vec![
        action(
            "create",
            format!("Creates a row of {shown}; returns its id."),
            create_input(description),
            json!({
                "type": "object",
                "properties": {"id": guid_schema()},
                "required": ["id"],
                "additionalProperties": false,
            }),
        ),
        action(
            "retrieve",
            format!("Reads the row of {shown} with this id."),
            json!({
                "type": "object",
                "properties": {"id": guid_schema(), "select": select_schema(description)},
                "required": ["id"],
                "additionalProperties": false,
            }),
            row_output(description),
        ),
        action(
            "update",
            format!("Changes the given columns of the row of {shown} with this id."),
            json!({
                "type": "object",
                "properties": {"id": guid_schema(), "row": update_row(description)},
                "required": ["id", "row"],
                "additionalProperties": false,
            }),
            empty.clone(),
        ),
        action(
            "delete",
            format!("Deletes the row of {shown} with this id."),
            json!({
                "type": "object",
                "properties": {"id": guid_schema()},
                "required": ["id"],
                "additionalProperties": false,
            }),
            empty,
        ),
        action(
            "list",
            format!(
                "Lists rows of {shown} matching every filter condition, sorted, at most `top` \
                 ({DEFAULT_TOP} unless given, {MAX_TOP} at most); `more` says whether more \
                 rows match."
            ),
            list_input(description),
            json!({
                "type": "object",
                "properties": {
                    "rows": {"type": "array", "items": row_output(description)},
                    "more": {"type": "boolean"},
                },
                "required": ["rows", "more"],
                "additionalProperties": false,
            }),
        ),
    ]
}

/// The columns with a shape, in the metadata's order.
pub fn readable(description: &TableDescription) -> impl Iterator<Item = (&ColumnInfo, Shape<'_>)> {
    description
        .columns
        .iter()
        .filter_map(|c| shape(c).map(|s| (c, s)))
}

fn create_input(description: &TableDescription) -> Value {
    let primary_id = &description.table.primary_id;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (column, shape) in readable(description).filter(|(c, _)| writable(c, true)) {
        let schema = value_schema(column, &shape, Direction::Write);
        if required_on_create(column, primary_id) {
            required.push(column.logical_name.clone());
            properties.insert(column.logical_name.clone(), schema);
        } else {
            properties.insert(column.logical_name.clone(), nullable(schema));
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn update_row(description: &TableDescription) -> Value {
    let mut properties = Map::new();
    for (column, shape) in readable(description).filter(|(c, _)| writable(c, false)) {
        let schema = value_schema(column, &shape, Direction::Write);
        // "SystemRequired attributes can't be set to null" (Update).
        let schema = if column.required == RequiredLevel::SystemRequired {
            schema
        } else {
            nullable(schema)
        };
        properties.insert(column.logical_name.clone(), schema);
    }
    json!({
        "type": "object",
        "properties": properties,
        "minProperties": 1,
        "additionalProperties": false,
    })
}

fn row_output(description: &TableDescription) -> Value {
    let properties: Map<String, Value> = readable(description)
        .map(|(c, s)| {
            let schema = value_schema(c, &s, Direction::Read);
            (c.logical_name.clone(), nullable(schema))
        })
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

fn column_names(description: &TableDescription) -> Vec<String> {
    readable(description)
        .map(|(c, _)| c.logical_name.clone())
        .collect()
}

fn select_schema(description: &TableDescription) -> Value {
    json!({
        "type": "array",
        "items": {"enum": column_names(description)},
        "minItems": 1,
        "uniqueItems": true,
        "description": "The columns to return (all when absent).",
    })
}

/// Comparison operators a column's shape allows; text matches for text.
pub fn operators(shape: &Shape) -> &'static [&'static str] {
    match shape {
        Shape::Text { .. } => &[
            "eq",
            "ne",
            "gt",
            "ge",
            "lt",
            "le",
            "contains",
            "starts_with",
            "ends_with",
        ],
        Shape::Integer { .. }
        | Shape::Number { .. }
        | Shape::DateTime { .. }
        | Shape::Choice { .. } => &["eq", "ne", "gt", "ge", "lt", "le"],
        Shape::Boolean | Shape::Guid | Shape::Lookup { .. } => &["eq", "ne"],
        Shape::Image => &[],
    }
}

fn list_input(description: &TableDescription) -> Value {
    let conditions: Vec<Value> = readable(description)
        .filter(|(_, s)| !operators(s).is_empty())
        .map(|(c, s)| {
            json!({
                "type": "object",
                "properties": {
                    "column": {"const": c.logical_name},
                    "operator": {"enum": operators(&s)},
                    "value": nullable(value_schema(c, &s, Direction::Filter)),
                },
                "required": ["column", "operator", "value"],
                "additionalProperties": false,
            })
        })
        .collect();
    let sortable: Vec<String> = readable(description)
        .filter(|(_, s)| !operators(s).is_empty())
        .map(|(c, _)| c.logical_name.clone())
        .collect();
    json!({
        "type": "object",
        "properties": {
            "select": select_schema(description),
            "filter": {
                "type": "array",
                "items": {"oneOf": conditions},
                "description": "Conditions, all of which a row must meet. `null` is compared \
                                with `eq` (empty) or `ne` (not empty) only; text matches \
                                (`contains`, `starts_with`, `ends_with`) take text.",
            },
            "order_by": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "column": {"enum": sortable},
                        "descending": {"type": "boolean", "default": false},
                    },
                    "required": ["column"],
                    "additionalProperties": false,
                },
            },
            "top": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TOP,
                "default": DEFAULT_TOP,
            },
        },
        "additionalProperties": false,
    })
}
