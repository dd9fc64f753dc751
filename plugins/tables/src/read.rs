//! Retrieve and list: the columns, filter conditions and sort order the
//! caller names are checked against the table's description and written in
//! the Web API's terms (a lookup is `_<column>_value`); the rows that come
//! back keep only the table's readable columns under their own names,
//! without annotations: a lookup as the id it points to, or as its table
//! and id when it may point to several tables. `list` follows pages
//! inside the invocation until it has `top` rows.

use dvhost_sdk::metadata::{ColumnInfo, TableDescription};
use dvhost_sdk::serde_json::{Map, Value, json};
use dvhost_sdk::{ActionError, Condition, FilterValue, Operator, Record, Table, TextMatch};

use crate::action_error;
use crate::columns::{Shape, check_value, object, shape, web_api_name};
use crate::schema::{DEFAULT_TOP, MAX_TOP, operators, readable};
use crate::write::{id_of, only};

/// Rows per page `list` asks for: at most this, or `top` when smaller, so
/// a long list is read in a few pages rather than one huge answer.
pub const PAGE_SIZE: u32 = 500;

/// `<table>.retrieve`.
pub fn retrieve(description: &TableDescription, input: Value) -> Result<Value, ActionError> {
    let input = object(&input, "the input").map_err(ActionError::InvalidInput)?;
    only(input, &["id", "select"])?;
    let id = id_of(input)?;
    let select = select(description, input.get("select"))?;
    let row = Table::new(&description.table.logical_name)
        .retrieve(id)
        .select(select)
        .run()
        .map_err(action_error)?;
    Ok(Value::Object(output_row(description, row)?))
}

/// `<table>.list`.
pub fn list(description: &TableDescription, input: Value) -> Result<Value, ActionError> {
    let input = object(&input, "the input").map_err(ActionError::InvalidInput)?;
    only(input, &["select", "filter", "order_by", "top"])?;
    let top = match input.get("top") {
        None => DEFAULT_TOP,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(MAX_TOP)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                ActionError::invalid_input(format!("`top` must be a whole number 1 to {MAX_TOP}"))
            })?,
    };
    let mut query = Table::new(&description.table.logical_name)
        .query()
        .select(select(description, input.get("select"))?)
        .page_size(top.min(PAGE_SIZE));
    for condition in conditions(description, input.get("filter"))? {
        query = query.filter(condition);
    }
    for (column, descending) in order(description, input.get("order_by"))? {
        query = if descending {
            query.order_by_desc(column)
        } else {
            query.order_by(column)
        };
    }
    let mut rows = Vec::new();
    let mut page = query.run().map_err(action_error)?;
    let more = loop {
        let mut got = page.rows().map_err(action_error)?.into_iter();
        rows.extend(got.by_ref().take(top as usize - rows.len()));
        if rows.len() == top as usize {
            break got.next().is_some() || page.has_more();
        }
        match page.next().map_err(action_error)? {
            Some(next) => page = next,
            None => break false,
        }
    };
    let rows = rows
        .into_iter()
        .map(|r| output_row(description, r).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"rows": rows, "more": more}))
}

/// The annotation in which Dataverse names a lookup's table.
const LOOKUP_TABLE: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";

/// A row from Dataverse as the output schema says: readable columns only,
/// under their own names, no annotations; a lookup as the id it points
/// to, or, when it may point to several tables (a customer, an owner), as
/// `{"table", "id"}`, the table taken from Dataverse's annotation. A
/// multi-table lookup without that annotation is an error, not a guess.
pub fn output_row(
    description: &TableDescription,
    mut row: Record,
) -> Result<Map<String, Value>, ActionError> {
    let mut out = Map::new();
    for (column, shape) in readable(description) {
        let web = web_api_name(column);
        let Some(value) = row.remove(&web) else {
            continue;
        };
        let value = match (&shape, value) {
            (Shape::Lookup { targets, .. }, Value::String(id)) if targets.len() > 1 => {
                let table = row
                    .remove(&format!("{web}@{LOOKUP_TABLE}"))
                    .and_then(|t| t.as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        ActionError::Failed(format!(
                            "Dataverse did not say which table the {} lookup points to",
                            column.logical_name
                        ))
                    })?;
                json!({"table": table, "id": id})
            }
            (_, value) => value,
        };
        out.insert(column.logical_name.clone(), value);
    }
    Ok(out)
}

fn readable_column<'d>(
    description: &'d TableDescription,
    name: &Value,
    what: &str,
) -> Result<(&'d ColumnInfo, Shape<'d>), ActionError> {
    let table = &description.table.logical_name;
    let name = name
        .as_str()
        .ok_or_else(|| ActionError::invalid_input(format!("{what}: a column is named by text")))?;
    description
        .column(name)
        .and_then(|c| shape(c).map(|s| (c, s)))
        .ok_or_else(|| {
            ActionError::invalid_input(format!("{what}: {table} has no readable column '{name}'"))
        })
}

/// The Web API names of the `select`ed columns (all when absent).
fn select(
    description: &TableDescription,
    value: Option<&Value>,
) -> Result<Vec<String>, ActionError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let names = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
        ActionError::invalid_input("`select` must be a non-empty list of columns")
    })?;
    names
        .iter()
        .map(|n| readable_column(description, n, "select").map(|(c, _)| web_api_name(c)))
        .collect()
}

fn conditions(
    description: &TableDescription,
    value: Option<&Value>,
) -> Result<Vec<Condition>, ActionError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| ActionError::invalid_input("`filter` must be a list of conditions"))?;
    list.iter()
        .enumerate()
        .map(|(i, c)| condition(description, c, &format!("filter[{i}]")))
        .collect()
}

fn condition(
    description: &TableDescription,
    value: &Value,
    at: &str,
) -> Result<Condition, ActionError> {
    let bad = |why: String| ActionError::invalid_input(format!("{at}: {why}"));
    let c = object(value, at).map_err(ActionError::InvalidInput)?;
    if let Some(k) = c
        .keys()
        .find(|k| !["column", "operator", "value"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown property '{k}' (expected column, operator, value)"
        )));
    }
    let (column, shape) =
        readable_column(description, c.get("column").unwrap_or(&Value::Null), at)?;
    let operator = c
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`operator` is missing".into()))?;
    if !operators(&shape).contains(&operator) {
        return Err(bad(format!(
            "column '{}' takes the operators {}, not '{operator}'",
            column.logical_name,
            operators(&shape).join(", ")
        )));
    }
    let value = c
        .get("value")
        .ok_or_else(|| bad("`value` is missing".into()))?;
    let name = web_api_name(column);
    let text_match = match operator {
        "contains" => Some(TextMatch::Contains),
        "starts_with" => Some(TextMatch::StartsWith),
        "ends_with" => Some(TextMatch::EndsWith),
        _ => None,
    };
    if let Some(matching) = text_match {
        let text = value
            .as_str()
            .ok_or_else(|| bad(format!("'{operator}' takes text")))?;
        return Ok(Condition::text(matching, name, text));
    }
    let operator = match operator {
        "eq" => Operator::Eq,
        "ne" => Operator::Ne,
        "gt" => Operator::Gt,
        "ge" => Operator::Ge,
        "lt" => Operator::Lt,
        _ => Operator::Le,
    };
    if value.is_null() {
        if !matches!(operator, Operator::Eq | Operator::Ne) {
            return Err(bad("null is compared with eq or ne only".into()));
        }
        return Ok(Condition::compare(name, operator, FilterValue::Null));
    }
    check_value(&shape, value)
        .map_err(|why| bad(format!("column '{}': {why}", column.logical_name)))?;
    let text = || value.as_str().unwrap_or_default().to_owned();
    let filter_value = match shape {
        Shape::Text { .. } => FilterValue::Text(text()),
        Shape::Integer { .. } | Shape::Choice { .. } => {
            FilterValue::Integer(value.as_i64().unwrap_or_default())
        }
        Shape::Number { .. } => FilterValue::Number(value.as_f64().unwrap_or_default()),
        Shape::Boolean => FilterValue::Boolean(value.as_bool().unwrap_or_default()),
        Shape::DateTime { .. } => FilterValue::DateTime(text()),
        Shape::Guid | Shape::Lookup { .. } => FilterValue::Guid(text()),
        Shape::Image => return Err(bad("image columns cannot be compared".into())),
    };
    Ok(Condition::compare(name, operator, filter_value))
}

fn order(
    description: &TableDescription,
    value: Option<&Value>,
) -> Result<Vec<(String, bool)>, ActionError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| ActionError::invalid_input("`order_by` must be a list"))?;
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let at = format!("order_by[{i}]");
            let o = object(o, &at).map_err(ActionError::InvalidInput)?;
            if let Some(k) = o.keys().find(|k| *k != "column" && *k != "descending") {
                return Err(ActionError::invalid_input(format!(
                    "{at}: unknown property '{k}' (expected column, descending)"
                )));
            }
            let (column, shape) =
                readable_column(description, o.get("column").unwrap_or(&Value::Null), &at)?;
            if operators(&shape).is_empty() {
                return Err(ActionError::invalid_input(format!(
                    "{at}: column '{}' cannot be sorted",
                    column.logical_name
                )));
            }
            let descending = match o.get("descending") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ActionError::invalid_input(format!(
                        "{at}: `descending` is true or false"
                    )));
                }
            };
            Ok((web_api_name(column), descending))
        })
        .collect()
}
