//! Abuse of the Dataverse imports: tables and operations not granted, forged
//! and stale page handles, a call quota, and every error path the host has.
//! Host errors come back as data (`{"error": {kind, status, code, message,
//! retry_after}}`) so a test can assert them and scan them for secrets.

use std::collections::BTreeMap;

use dvhost_sdk::bindings::dvhost::plugin::records as wit;
use dvhost_sdk::{ActionError, Condition, Error, Record, Table, metadata};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Outcome;

/// A well-formed id no row has.
const MISSING_ID: &str = "00000000-0000-0000-0000-0000000000ff";

/// An operation of `use-table`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Retrieve `id`, or query one row when no id is given.
    Read,
    /// Create `row`.
    Create,
    /// Update row `id` with `row`.
    Update,
    /// Delete row `id`.
    Delete,
}

/// Input of `use-table`.
#[derive(Deserialize, JsonSchema)]
pub struct UseTable {
    /// The table's logical name.
    table: String,
    /// What to do.
    operation: Operation,
    /// The row's id (default: an id no row has).
    #[serde(default)]
    id: Option<String>,
    /// The row to create or the changes (default: `{}`).
    #[serde(default)]
    row: Record,
}

/// Performs one operation through the SDK.
pub fn use_table(input: UseTable) -> Result<Outcome<Value, Error>, ActionError> {
    let table = Table::new(input.table);
    let id = input.id.as_deref().unwrap_or(MISSING_ID);
    let result = match input.operation {
        Operation::Read if input.id.is_some() => table.retrieve(id).run().map(Value::Object),
        Operation::Read => table.query().top(1).all().map(|rows| json!(rows)),
        Operation::Create => table.create(&input.row).map(Value::String),
        Operation::Update => table.update(id, &input.row).map(|()| Value::Bool(true)),
        Operation::Delete => table.delete(id).map(|()| Value::Bool(true)),
    };
    Ok(result.into())
}

/// Input of `forge-page`.
#[derive(Deserialize, JsonSchema)]
pub struct Forge {
    /// A raw resource handle the host never gave as a page.
    handle: u32,
}

/// Calls `rows` on a page forged from a raw handle. The host must trap; if
/// it answers, the rows it gave are returned so the test fails visibly.
pub fn forge_page(input: Forge) -> Result<Value, ActionError> {
    // SAFETY: none; making the host meet an invalid handle is the point.
    let page = unsafe { wit::Page::from_handle(input.handle) };
    let rows = page.rows();
    Ok(json!({ "unexpected_rows": rows }))
}

/// A query of `account`, one row per page.
fn one_row_pages() -> wit::QueryOptions {
    wit::QueryOptions {
        select: Vec::new(),
        filter: Vec::new(),
        order_by: Vec::new(),
        top: None,
        page_size: Some(1),
        count: false,
        expand: Vec::new(),
    }
}

/// Drops a page, revives it from its raw handle and calls `next`. The host
/// must trap; a query refused by the host is returned as an error.
pub fn stale_page(_: Value) -> Result<Outcome<Value, Error>, ActionError> {
    let page = match wit::query("account", &one_row_pages()) {
        Ok(page) => page,
        Err(error) => return Ok(Outcome::Error(error.into())),
    };
    let handle = page.handle();
    drop(page);
    // SAFETY: none; the handle was dropped, and using it is the point.
    let revived = unsafe { wit::Page::from_handle(handle) };
    let next = revived.next().map(|page| page.is_some());
    Ok(Outcome::Ok(
        json!({ "unexpected_next": format!("{next:?}") }),
    ))
}

/// Input of `many-calls`.
#[derive(Deserialize, JsonSchema)]
pub struct ManyCalls {
    /// The table's logical name.
    table: String,
    /// The row to retrieve.
    id: String,
    /// How many times.
    count: u32,
}

/// Output of `many-calls`.
#[derive(Serialize, JsonSchema)]
pub struct Calls {
    /// Retrieves that succeeded.
    succeeded: u32,
    /// Retrieves that failed.
    failed: u32,
    /// The first failure.
    error: Option<Error>,
}

/// Retrieves one row `count` times, going on after failures.
pub fn many_calls(input: ManyCalls) -> Result<Calls, ActionError> {
    let table = Table::new(input.table);
    let mut calls = Calls {
        succeeded: 0,
        failed: 0,
        error: None,
    };
    for _ in 0..input.count {
        match table.retrieve(&input.id).run_json() {
            Ok(_) => calls.succeeded += 1,
            Err(error) => {
                calls.failed += 1;
                calls.error.get_or_insert(error);
            }
        }
    }
    Ok(calls)
}

/// Input of `errors`.
#[derive(Deserialize, JsonSchema)]
pub struct Errors {
    /// A granted table (default `account`).
    #[serde(default = "account")]
    table: String,
    /// A table not granted (default `systemuser`).
    #[serde(default = "systemuser")]
    not_granted_table: String,
}

fn account() -> String {
    "account".to_owned()
}

fn systemuser() -> String {
    "systemuser".to_owned()
}

/// Every outcome as a value, so successes show up too.
fn outcome<T: Serialize>(result: Result<T, Error>) -> Outcome<Value, Error> {
    match result {
        Ok(value) => Outcome::Ok(serde_json::to_value(value).unwrap_or(Value::Null)),
        Err(error) => Outcome::Error(error),
    }
}

/// Meets the host's error paths; returns each outcome by name.
pub fn errors(input: Errors) -> Result<BTreeMap<&'static str, Outcome<Value, Error>>, ActionError> {
    let table = Table::new(input.table.as_str());
    let not_granted = Table::new(input.not_granted_table.as_str());
    let mut got = BTreeMap::new();
    got.insert("missing_id", outcome(table.retrieve(MISSING_ID).run()));
    got.insert(
        "not_granted",
        outcome(not_granted.retrieve(MISSING_ID).run()),
    );
    got.insert(
        "not_granted_metadata",
        outcome(metadata::describe_table(&input.not_granted_table)),
    );
    got.insert(
        "invalid_table",
        outcome(Table::new("account'); --").retrieve(MISSING_ID).run()),
    );
    got.insert("invalid_id", outcome(table.retrieve("not-a-guid").run()));
    got.insert(
        "invalid_column",
        outcome(table.retrieve(MISSING_ID).select(["name,secret"]).run()),
    );
    got.insert(
        "invalid_filter_column",
        outcome(
            table
                .query()
                .filter(Condition::eq("name eq 'x' or 1", 1))
                .top(1)
                .all(),
        ),
    );
    let not_json = wit::create(&input.table, "this is not JSON", None);
    got.insert("invalid_record", outcome(not_json.map_err(Error::from)));
    let wrong_page_size = table.query().page_size(0).all();
    got.insert("invalid_page_size", outcome(wrong_page_size));
    Ok(got)
}
