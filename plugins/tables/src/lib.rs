//! The generated table actions: a first-party dvhost plugin that offers, for
//! every table it is granted, `<table>.create`, `<table>.retrieve`,
//! `<table>.update`, `<table>.delete` and `<table>.list`, each only when its
//! operation is granted (see [`allows`]), with input and output JSON Schemas
//! built from the environment's live metadata (column types, required
//! level, maximum length, ranges, choice values, lookups as ids). An
//! operator picks a connection, tables and operations; nothing is written
//! by hand.
//!
//! It runs in the same sandbox and under the same grants as any plugin: its
//! action list comes from `metadata.list-tables` (which the host limits to
//! the granted tables, each with its granted operations) and
//! `metadata.describe-table`, when the host describes it under the
//! connection's capabilities; each invocation reads the table's description
//! again (the host caches metadata), checks the input against it, and makes
//! the `records` calls. Without a connection or without grants it offers no
//! actions, and an action whose operation is not granted is unknown.
//!
//! Modules: [`columns`] (what each column type becomes, as a schema and as a
//! value), [`schema`] (the five actions' schemas), [`write`] (create and
//! update rows, lookups as `@odata.bind`), [`read`] (retrieve and list,
//! rows as the schemas say).
#![deny(missing_docs)]

pub mod columns;
pub mod read;
pub mod schema;
pub mod write;

use dvhost_sdk::dynamic::{DynamicAction, DynamicActions};
use dvhost_sdk::metadata::{self, Operations, TableDescription};
use dvhost_sdk::serde_json::Value;
use dvhost_sdk::{ActionError, Error, ErrorKind};

/// The five operations of a table, as action name suffixes.
pub const OPERATIONS: [&str; 5] = ["create", "retrieve", "update", "delete", "list"];

/// Whether `granted` allows the table action `operation` (an action name
/// suffix): `retrieve` and `list` need read; `create`, `update` and `delete`
/// need their own.
pub fn allows(granted: &Operations, operation: &str) -> bool {
    match operation {
        "retrieve" | "list" => granted.read,
        "create" => granted.create,
        "update" => granted.update,
        "delete" => granted.delete,
        _ => false,
    }
}

/// The plugin's actions.
pub struct TableActions;

impl DynamicActions for TableActions {
    fn describe() -> Result<Vec<DynamicAction>, Error> {
        let mut actions = Vec::new();
        for table in metadata::list_tables()? {
            // A table granted nothing we offer is not described (one
            // Dataverse call fewer).
            if !OPERATIONS.iter().any(|op| allows(&table.granted, op)) {
                continue;
            }
            let description = metadata::describe_table(&table.logical_name)?;
            actions.extend(schema::actions(&description).into_iter().filter(|action| {
                action
                    .name
                    .rsplit_once('.')
                    .is_some_and(|(_, op)| allows(&table.granted, op))
            }));
        }
        Ok(actions)
    }

    fn invoke(name: &str, input: Value) -> Result<Value, ActionError> {
        let unknown = || ActionError::UnknownAction(name.to_owned());
        let (table, operation) = name.rsplit_once('.').ok_or_else(unknown)?;
        if !OPERATIONS.contains(&operation) {
            return Err(unknown());
        }
        let description = match metadata::describe_table(table) {
            Ok(d) => d,
            // Not granted (or not a table name): not one of our actions.
            Err(e) if matches!(e.kind, ErrorKind::NotGranted | ErrorKind::InvalidInput) => {
                return Err(unknown());
            }
            Err(e) => return Err(ActionError::failed(e)),
        };
        // An operation not granted on the table: not offered, so unknown.
        if !allows(&description.table.granted, operation) {
            return Err(unknown());
        }
        run(&description, operation, input)
    }
}

/// Runs `operation` of the described table on `input`.
pub fn run(
    description: &TableDescription,
    operation: &str,
    input: Value,
) -> Result<Value, ActionError> {
    match operation {
        "create" => write::create(description, input),
        "retrieve" => read::retrieve(description, input),
        "update" => write::update(description, input),
        "delete" => write::delete(description, input),
        "list" => read::list(description, input),
        other => Err(ActionError::UnknownAction(format!(
            "{}.{other}",
            description.table.logical_name
        ))),
    }
}

/// A host error of a records call as the action's error: what the caller
/// can fix (a value Dataverse refused, a row that does not exist, a name
/// the host refused) is invalid input; the rest is a failure.
pub fn action_error(error: Error) -> ActionError {
    if error.kind == ErrorKind::InvalidInput
        || (error.kind == ErrorKind::Dataverse && matches!(error.status, Some(400 | 404)))
    {
        ActionError::invalid_input(error)
    } else {
        ActionError::failed(error)
    }
}

#[cfg(target_arch = "wasm32")]
dvhost_sdk::export_dynamic_actions!(TableActions);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_offers_retrieve_and_list_and_the_others_need_their_own() {
        let read = Operations {
            read: true,
            ..Operations::default()
        };
        let offered: Vec<&str> = OPERATIONS
            .into_iter()
            .filter(|op| allows(&read, op))
            .collect();
        assert_eq!(offered, ["retrieve", "list"]);
        let delete = Operations {
            delete: true,
            ..Operations::default()
        };
        assert!(allows(&delete, "delete") && !allows(&delete, "retrieve"));
        assert!(!allows(&read, "merge"));
    }
}
