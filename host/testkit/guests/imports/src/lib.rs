//! A dvhost test plugin with one action per import: `records` (create,
//! retrieve, update, upsert, delete, query with every option followed to
//! the last page, create-many, update-many), `metadata` (list-tables,
//! describe-table) and `log`. Each action takes the import's arguments as
//! JSON and answers `{"ok": result}` or `{"error": {kind, status, code,
//! message, retry_after}}`, exactly what the host returned, so end-to-end
//! tests see what a guest sees.

use dvhost_sdk::metadata;
use dvhost_sdk::{
    ActionError, Condition, Error, Expand, FilterValue, Key, KeyValue, Operator, Table, TextMatch,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `{"ok": value}` or `{"error": error}`: never an action failure, so the
/// caller reads the host's error as the guest got it.
fn answer<T: Serialize>(result: Result<T, Error>) -> Result<Value, ActionError> {
    Ok(match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error }),
    })
}

/// A related row or rows to include.
#[derive(Deserialize, JsonSchema)]
struct ExpandInput {
    /// Navigation property.
    navigation: String,
    /// Columns of the related rows.
    #[serde(default)]
    select: Vec<String>,
}

fn expansions(list: Vec<ExpandInput>) -> Vec<Expand> {
    list.into_iter()
        .map(|e| Expand::new(e.navigation).select(e.select))
        .collect()
}

/// A value of an alternate-key column: text, a whole number, or
/// `{"guid": "..."}`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum KeyInput {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A GUID.
    Guid {
        /// Its text.
        guid: String,
    },
}

/// Which row: `id`, or `alternate_key` as `[[column, value], ...]`.
#[derive(Deserialize, JsonSchema)]
struct RowKey {
    /// The row's id.
    id: Option<String>,
    /// An alternate key.
    alternate_key: Option<Vec<(String, KeyInput)>>,
}

impl RowKey {
    fn key(self) -> Result<Key, ActionError> {
        match (self.id, self.alternate_key) {
            (Some(id), None) => Ok(Key::Id(id)),
            (None, Some(parts)) => Ok(Key::alternate(parts.into_iter().map(|(column, value)| {
                let value = match value {
                    KeyInput::Text(text) => KeyValue::Text(text),
                    KeyInput::Integer(n) => KeyValue::Integer(n),
                    KeyInput::Guid { guid } => KeyValue::Guid(guid),
                };
                (column, value)
            }))),
            _ => Err(ActionError::invalid_input(
                "give either id or alternate_key",
            )),
        }
    }
}

/// Input of `create`.
#[derive(Deserialize, JsonSchema)]
struct CreateInput {
    table: String,
    row: Value,
    /// The id to create the row under.
    id: Option<String>,
}

fn create(input: CreateInput) -> Result<Value, ActionError> {
    let table = Table::new(input.table);
    answer(match input.id {
        Some(id) => table.create_with_id(&id, &input.row),
        None => table.create(&input.row),
    })
}

/// Input of `retrieve`.
#[derive(Deserialize, JsonSchema)]
struct RetrieveInput {
    table: String,
    #[serde(flatten)]
    key: RowKey,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default)]
    expand: Vec<ExpandInput>,
}

fn retrieve(input: RetrieveInput) -> Result<Value, ActionError> {
    let table = Table::new(input.table);
    let mut retrieve = table.retrieve(input.key.key()?).select(input.select);
    for e in expansions(input.expand) {
        retrieve = retrieve.expand(e);
    }
    answer(retrieve.run())
}

/// Input of `update`.
#[derive(Deserialize, JsonSchema)]
struct UpdateInput {
    table: String,
    id: String,
    changes: Value,
    /// Only change this version (an `@odata.etag`).
    if_match: Option<String>,
}

fn update(input: UpdateInput) -> Result<Value, ActionError> {
    let table = Table::new(input.table);
    answer(match input.if_match {
        Some(etag) => table.update_if_match(&input.id, &input.changes, &etag),
        None => table.update(&input.id, &input.changes),
    })
}

/// Input of `upsert`.
#[derive(Deserialize, JsonSchema)]
struct UpsertInput {
    table: String,
    #[serde(flatten)]
    key: RowKey,
    row: Value,
}

fn upsert(input: UpsertInput) -> Result<Value, ActionError> {
    let key = input.key.key()?;
    answer(Table::new(input.table).upsert(key, &input.row))
}

/// Input of `delete`.
#[derive(Deserialize, JsonSchema)]
struct DeleteInput {
    table: String,
    id: String,
}

fn delete(input: DeleteInput) -> Result<Value, ActionError> {
    answer(Table::new(input.table).delete(&input.id))
}

/// A filter value: JSON null, boolean, number or text, or
/// `{"guid": "..."}` / `{"date_time": "..."}`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum ValueInput {
    /// A GUID.
    Guid {
        /// Its text.
        guid: String,
    },
    /// A date or date-time.
    DateTime {
        /// Its ISO 8601 text.
        date_time: String,
    },
    /// Anything else, by its JSON type.
    Plain(Value),
}

fn filter_value(value: ValueInput) -> Result<FilterValue, ActionError> {
    Ok(match value {
        ValueInput::Guid { guid } => FilterValue::Guid(guid),
        ValueInput::DateTime { date_time } => FilterValue::DateTime(date_time),
        ValueInput::Plain(Value::Null) => FilterValue::Null,
        ValueInput::Plain(Value::Bool(b)) => FilterValue::Boolean(b),
        ValueInput::Plain(Value::String(s)) => FilterValue::Text(s),
        ValueInput::Plain(Value::Number(n)) => match n.as_i64() {
            Some(i) => FilterValue::Integer(i),
            None => FilterValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        ValueInput::Plain(other) => {
            return Err(ActionError::invalid_input(format!(
                "{other} is not a filter value"
            )));
        }
    })
}

/// A condition: `{column, op, value}` or `{match, column, text}`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum ConditionInput {
    /// `column op value`.
    Compare {
        column: String,
        /// `eq`, `ne`, `gt`, `ge`, `lt` or `le`.
        op: String,
        value: ValueInput,
    },
    /// `contains`, `startswith` or `endswith`.
    Text {
        /// `contains`, `starts-with` or `ends-with`.
        #[serde(rename = "match")]
        matching: String,
        column: String,
        text: String,
    },
}

fn condition(c: ConditionInput) -> Result<Condition, ActionError> {
    Ok(match c {
        ConditionInput::Compare { column, op, value } => {
            let operator = match op.as_str() {
                "eq" => Operator::Eq,
                "ne" => Operator::Ne,
                "gt" => Operator::Gt,
                "ge" => Operator::Ge,
                "lt" => Operator::Lt,
                "le" => Operator::Le,
                other => {
                    return Err(ActionError::invalid_input(format!(
                        "unknown operator {other}"
                    )));
                }
            };
            Condition::compare(column, operator, filter_value(value)?)
        }
        ConditionInput::Text {
            matching,
            column,
            text,
        } => {
            let matching = match matching.as_str() {
                "contains" => TextMatch::Contains,
                "starts-with" => TextMatch::StartsWith,
                "ends-with" => TextMatch::EndsWith,
                other => {
                    return Err(ActionError::invalid_input(format!(
                        "unknown text match {other}"
                    )));
                }
            };
            Condition::text(matching, column, text)
        }
    })
}

/// One `$orderby` column.
#[derive(Deserialize, JsonSchema)]
struct OrderInput {
    column: String,
    #[serde(default)]
    descending: bool,
}

/// Input of `query`.
#[derive(Deserialize, JsonSchema)]
struct QueryInput {
    table: String,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default)]
    filter: Vec<ConditionInput>,
    #[serde(default)]
    order_by: Vec<OrderInput>,
    top: Option<u32>,
    page_size: Option<u32>,
    #[serde(default)]
    count: bool,
    #[serde(default)]
    expand: Vec<ExpandInput>,
}

/// What `query` saw, following `next` to the last page.
#[derive(Serialize)]
struct QueryOutput {
    /// Every row of every page, in order.
    rows: Vec<dvhost_sdk::Record>,
    /// Rows per page.
    pages: Vec<usize>,
    /// The first page's count, when asked for.
    count: Option<u64>,
}

fn query(input: QueryInput) -> Result<Value, ActionError> {
    let mut query = Table::new(input.table).query().select(input.select);
    for c in input.filter {
        query = query.filter(condition(c)?);
    }
    for o in input.order_by {
        query = if o.descending {
            query.order_by_desc(o.column)
        } else {
            query.order_by(o.column)
        };
    }
    if let Some(n) = input.top {
        query = query.top(n);
    }
    if let Some(n) = input.page_size {
        query = query.page_size(n);
    }
    if input.count {
        query = query.count();
    }
    for e in expansions(input.expand) {
        query = query.expand(e);
    }
    answer((|| {
        let mut page = query.run()?;
        let mut output = QueryOutput {
            rows: Vec::new(),
            pages: Vec::new(),
            count: page.count(),
        };
        loop {
            let rows = page.rows()?;
            output.pages.push(rows.len());
            output.rows.extend(rows);
            match page.next()? {
                Some(next) => page = next,
                None => return Ok(output),
            }
        }
    })())
}

/// Input of `create-many` and `update-many`.
#[derive(Deserialize, JsonSchema)]
struct ManyInput {
    table: String,
    rows: Vec<Value>,
}

fn create_many(input: ManyInput) -> Result<Value, ActionError> {
    answer(Table::new(input.table).create_many(&input.rows))
}

fn update_many(input: ManyInput) -> Result<Value, ActionError> {
    answer(Table::new(input.table).update_many(&input.rows))
}

fn list_tables(_: dvhost_sdk::Empty) -> Result<Value, ActionError> {
    answer(metadata::list_tables())
}

/// Input of `describe-table`.
#[derive(Deserialize, JsonSchema)]
struct DescribeInput {
    table: String,
}

fn describe_table(input: DescribeInput) -> Result<Value, ActionError> {
    answer(metadata::describe_table(&input.table))
}

/// Input of `log`.
#[derive(Deserialize, JsonSchema)]
struct LogInput {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    level: String,
    message: String,
}

fn log(input: LogInput) -> Result<Value, ActionError> {
    use dvhost_sdk::log::Level;
    let level = match input.level.as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        other => return Err(ActionError::invalid_input(format!("unknown level {other}"))),
    };
    dvhost_sdk::log::write(level, &input.message);
    answer(Ok(()))
}

dvhost_sdk::export_actions! {
    /// records.create: `table`, `row`, optional `id`.
    "create" => create,
    /// records.retrieve: `table`, `id` or `alternate_key`, `select`, `expand`.
    "retrieve" => retrieve,
    /// records.update: `table`, `id`, `changes`, optional `if_match`.
    "update" => update,
    /// records.upsert: `table`, `id` or `alternate_key`, `row`.
    "upsert" => upsert,
    /// records.delete: `table`, `id`.
    "delete" => delete,
    /// records.query with every option, following `next` to the last page.
    "query" => query,
    /// records.create-many: `table`, `rows`.
    "create-many" => create_many,
    /// records.update-many: `table`, `rows` (each with its id).
    "update-many" => update_many,
    /// metadata.list-tables.
    "list-tables" => list_tables,
    /// metadata.describe-table: `table`.
    "describe-table" => describe_table,
    /// log.write: `level`, `message`.
    "log" => log,
}
