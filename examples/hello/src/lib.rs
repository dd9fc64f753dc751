//! The smallest dvhost plugin: a greeting, an action that does nothing (the
//! benchmark's no-op invoke) and two that read an account (the benchmark's
//! retrieve through a plugin): one returns the row as read, one parses it
//! first, as an action that looks at the columns does.

use dvhost_sdk::{ActionError, Empty, RawRecord, Record, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Input of `hello`.
#[derive(Deserialize, JsonSchema)]
struct HelloInput {
    /// Who to greet.
    name: String,
}

/// Output of `hello`.
#[derive(Serialize, JsonSchema)]
struct HelloOutput {
    /// The greeting.
    greeting: String,
}

fn hello(input: HelloInput) -> Result<HelloOutput, ActionError> {
    Ok(HelloOutput {
        greeting: format!("Hello, {}!", input.name),
    })
}

/// Takes any JSON, so the benchmark measures the call and not the parsing.
fn noop(_: serde_json::Value) -> Result<Empty, ActionError> {
    Ok(Empty {})
}

/// Input of `retrieve-account`.
#[derive(Deserialize, JsonSchema)]
struct RetrieveInput {
    /// The account's id.
    id: String,
}

fn retrieve_account(input: RetrieveInput) -> Result<RawRecord, dvhost_sdk::Error> {
    Table::new("account").retrieve(input.id).run_raw()
}

fn retrieve_account_record(input: RetrieveInput) -> Result<Record, dvhost_sdk::Error> {
    Table::new("account").retrieve(input.id).run()
}

dvhost_sdk::export_actions! {
    /// Greets someone by name.
    "hello" => hello,
    /// Does nothing and returns `{}`.
    "noop" => noop,
    /// Reads the account with this id, all columns, and returns the row as
    /// read (unparsed).
    "retrieve-account" => retrieve_account,
    /// The same read, parsed into a `Record` and written back out.
    "retrieve-account-record" => retrieve_account_record,
}
