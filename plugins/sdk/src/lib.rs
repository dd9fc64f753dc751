//! The guest SDK for dvhost plugins.
//!
//! A dvhost plugin is a WebAssembly component (built for `wasm32-wasip2`) that
//! exports actions and may read and write the Dataverse tables its tenant
//! granted it. This crate is everything such a plugin needs, with no WIT glue
//! to write by hand:
//!
//! - [`Table`]: create (optionally with a chosen id), retrieve (with select and
//!   expand), update (optionally only if the ETag still matches), upsert by id
//!   or alternate key, delete, create-many and update-many. Rows are
//!   [`Record`]s (`serde_json` maps) or any serde type of yours, or
//!   [`RawRecord`]s, passed through unparsed.
//! - [`Query`]: a typed query builder (select, filter conditions, order-by,
//!   top, page size, count, expand) whose [`Page`]s are followed with
//!   [`Page::next`] to the end.
//! - [`metadata`]: the granted tables and their columns.
//! - [`log`]: log lines at a level, attributed by the host to the invocation.
//! - [`Error`]: why a call failed, as the host said it (kind, HTTP status,
//!   Dataverse error code, message, retry-after).
//! - [`export_actions!`]: declares the plugin's actions as plain Rust functions
//!   with serde input and output; their JSON Schemas are derived with
//!   [`schemars`].
//! - [`dynamic`] and [`export_dynamic_actions!`]: a plugin whose actions are
//!   computed when the host describes it (from table metadata, say).
//!
//! What this crate never sees: a URL, a token, a key or a next link. The host
//! owns every credential and checks every name and grant; a page's next link
//! stays in the host behind a handle that dies with the invocation.
//!
//! # Example
//!
//! A complete plugin with two actions. Build it with
//! `cargo build --target wasm32-wasip2` as a `cdylib`; the output is a
//! component the host loads.
//!
//! ```no_run
//! use dvhost_sdk::{ActionError, Condition, Record, Table};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet {
//!     name: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting {
//!     greeting: String,
//! }
//!
//! fn hello(input: Greet) -> Result<Greeting, ActionError> {
//!     dvhost_sdk::log::info(&format!("greeting {}", input.name));
//!     Ok(Greeting { greeting: format!("Hello, {}!", input.name) })
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct City {
//!     city: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Accounts {
//!     accounts: Vec<Record>,
//! }
//!
//! fn accounts_in(input: City) -> Result<Accounts, dvhost_sdk::Error> {
//!     let mut accounts = Vec::new();
//!     let mut page = Table::new("account")
//!         .query()
//!         .select(["accountid", "name"])
//!         .filter(Condition::eq("address1_city", input.city))
//!         .order_by("name")
//!         .page_size(100)
//!         .run()?;
//!     loop {
//!         accounts.extend(page.rows()?);
//!         match page.next()? {
//!             Some(next) => page = next,
//!             None => break,
//!         }
//!     }
//!     Ok(Accounts { accounts })
//! }
//!
//! dvhost_sdk::export_actions! {
//!     /// Greets someone by name.
//!     "hello" => hello,
//!     /// Lists the accounts of a city, by name.
//!     "accounts-in" => accounts_in,
//! }
//! # fn main() {}
//! ```
#![deny(missing_docs)]

// The generated bindings name the runtime as `::dvhost_sdk::...` so that the
// export macro also works when expanded in a plugin crate; this makes that
// path resolve inside this crate too.
extern crate self as dvhost_sdk;

mod action;
pub mod dynamic;
mod error;
pub mod log;
pub mod metadata;
mod query;
mod raw;
mod records;

pub use action::{ActionError, Empty};
pub use dynamic::{DynamicAction, DynamicActions};
pub use error::{Error, ErrorKind};
pub use query::{Condition, FilterValue, Operator, Page, Pages, Query, TextMatch};
pub use raw::RawRecord;
pub use records::{Expand, Key, KeyValue, Record, Retrieve, Table};
pub use schemars;
pub use serde_json;

/// The raw wit-bindgen bindings of the `dvhost:plugin/plugin` world.
///
/// Plugin authors don't need them: the typed API above covers every import,
/// and [`export_actions!`] writes the export. They are public for the export
/// macro and for tests that must do what the typed API forbids (such as
/// forging a page handle).
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        runtime_path: "::dvhost_sdk::__private::wit_bindgen::rt",
        export_macro_name: "__export_plugin",
        pub_export_macro: true,
        default_bindings_module: "::dvhost_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

/// What [`export_actions!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::action::{describe_action, description, run_action, unknown_action};
    pub use crate::dynamic::{describe_dynamic, invoke_dynamic};
    pub use wit_bindgen;
}
