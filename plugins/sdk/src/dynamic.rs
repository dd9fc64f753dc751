//! Plugins whose action list is computed when the host describes them,
//! not fixed at compile time: [`DynamicActions`] returns its actions with
//! JSON Schemas built at run time (say, from the environment's table
//! metadata) and runs them on JSON values; [`export_dynamic_actions!`]
//! turns it into the `actions` export.
//!
//! The host describes a plugin once when it loads it, with no connection
//! and no grants, and again (`Plugin::describe_with` in the runtime) once
//! the plugin is bound to a connection; each time `describe` may call the
//! `metadata` imports within the plugin's grants, quotas and deadline.
//! A `describe` that fails (an [`Error`] from the host) ends the describe
//! call with a trap whose message names the error, so the host refuses the
//! action list instead of taking a silently empty one; a plugin that can
//! do without a connection answers with what it can instead (the tables it
//! is granted with no grants is an empty list, and the host answers that
//! without asking anyone).
//!
//! [`export_dynamic_actions!`]: crate::export_dynamic_actions

use serde_json::Value;

use crate::action::ActionError;
use crate::bindings::exports::dvhost::plugin::actions as wit;
use crate::error::Error;

/// One action computed at describe time.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicAction {
    /// The name callers use in `/actions/{name}`: 1 to 100 ASCII letters,
    /// digits, `-`, `_` or `.`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input (an object).
    pub input_schema: Value,
    /// JSON Schema of its output (an object).
    pub output_schema: Value,
}

/// A plugin whose actions are computed at describe time. Both functions are
/// associated functions: every call of the host runs in a fresh instance,
/// so there is no state to keep between them.
pub trait DynamicActions {
    /// The actions, computed now.
    fn describe() -> Result<Vec<DynamicAction>, Error>;

    /// Runs action `name` on `input` (already parsed JSON); returns its
    /// output. An unknown name is [`ActionError::UnknownAction`].
    fn invoke(name: &str, input: Value) -> Result<Value, ActionError>;
}

fn to_wit(error: ActionError) -> wit::ActionError {
    match error {
        ActionError::InvalidInput(message) => wit::ActionError::InvalidInput(message),
        ActionError::UnknownAction(name) => wit::ActionError::UnknownAction(name),
        ActionError::Failed(message) => wit::ActionError::Failed(message),
    }
}

/// `describe` of [`export_dynamic_actions!`](crate::export_dynamic_actions).
///
/// # Panics
///
/// When `A::describe` fails: the trap carries the error's message to the
/// host (see the module documentation).
pub fn describe_dynamic<A: DynamicActions>() -> Vec<wit::ActionInfo> {
    match A::describe() {
        Ok(actions) => actions
            .into_iter()
            .map(|action| wit::ActionInfo {
                name: action.name,
                description: action.description,
                input_schema: action.input_schema.to_string(),
                output_schema: action.output_schema.to_string(),
            })
            .collect(),
        Err(error) => panic!("describe failed: {error}"),
    }
}

/// `invoke` of [`export_dynamic_actions!`](crate::export_dynamic_actions):
/// input that is not JSON is `invalid-input`.
pub fn invoke_dynamic<A: DynamicActions>(
    name: &str,
    input: &str,
) -> Result<String, wit::ActionError> {
    let input: Value = serde_json::from_str(input).map_err(|error| {
        wit::ActionError::InvalidInput(format!("the input is not JSON: {error}"))
    })?;
    let output = A::invoke(name, input).map_err(to_wit)?;
    Ok(output.to_string())
}

/// Exports a [`DynamicActions`] type as the plugin's `actions`. Use it once
/// per plugin, at the crate's top level, instead of
/// [`export_actions!`](crate::export_actions).
///
/// ```no_run
/// use dvhost_sdk::dynamic::{DynamicAction, DynamicActions};
/// use dvhost_sdk::serde_json::{Value, json};
/// use dvhost_sdk::{ActionError, Error};
///
/// struct Counts;
///
/// impl DynamicActions for Counts {
///     fn describe() -> Result<Vec<DynamicAction>, Error> {
///         // One action per granted table.
///         Ok(dvhost_sdk::metadata::list_tables()?
///             .into_iter()
///             .map(|table| DynamicAction {
///                 name: format!("{}.first", table.logical_name),
///                 description: format!("The first row of {}", table.logical_name),
///                 input_schema: json!({"type": "object", "additionalProperties": false}),
///                 output_schema: json!({"type": "object"}),
///             })
///             .collect())
///     }
///
///     fn invoke(name: &str, _input: Value) -> Result<Value, ActionError> {
///         let table = name
///             .strip_suffix(".first")
///             .ok_or_else(|| ActionError::UnknownAction(name.to_owned()))?;
///         let rows = dvhost_sdk::Table::new(table).query().top(1).all()?;
///         Ok(rows.into_iter().next().map(Value::Object).unwrap_or(json!({})))
///     }
/// }
///
/// dvhost_sdk::export_dynamic_actions!(Counts);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_dynamic_actions {
    ($actions:ty) => {
        /// The plugin's `actions` export, written by
        /// `dvhost_sdk::export_dynamic_actions!`.
        struct DvhostDynamicActions;

        impl $crate::bindings::exports::dvhost::plugin::actions::Guest for DvhostDynamicActions {
            fn describe() -> ::std::vec::Vec<
                $crate::bindings::exports::dvhost::plugin::actions::ActionInfo,
            > {
                $crate::__private::describe_dynamic::<$actions>()
            }

            fn invoke(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::exports::dvhost::plugin::actions::ActionError,
            > {
                $crate::__private::invoke_dynamic::<$actions>(&name, &input)
            }
        }

        $crate::bindings::__export_plugin!(DvhostDynamicActions with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Echo;

    impl DynamicActions for Echo {
        fn describe() -> Result<Vec<DynamicAction>, Error> {
            Ok(vec![DynamicAction {
                name: "echo".to_owned(),
                description: "Echoes".to_owned(),
                input_schema: json!({"type": "object"}),
                output_schema: json!({"type": "object"}),
            }])
        }

        fn invoke(name: &str, input: Value) -> Result<Value, ActionError> {
            match name {
                "echo" => Ok(input),
                "bad" => Err(ActionError::invalid_input("bad")),
                _ => Err(ActionError::UnknownAction(name.to_owned())),
            }
        }
    }

    #[test]
    fn describes_with_schemas_as_text() {
        let actions = describe_dynamic::<Echo>();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].name, "echo");
        assert_eq!(actions[0].input_schema, r#"{"type":"object"}"#);
    }

    #[test]
    fn invokes_on_json_and_keeps_error_kinds() {
        assert_eq!(
            invoke_dynamic::<Echo>("echo", r#"{"a":1}"#).unwrap(),
            r#"{"a":1}"#
        );
        assert!(matches!(
            invoke_dynamic::<Echo>("echo", "not json"),
            Err(wit::ActionError::InvalidInput(_))
        ));
        assert!(matches!(
            invoke_dynamic::<Echo>("bad", "{}"),
            Err(wit::ActionError::InvalidInput(m)) if m == "bad"
        ));
        assert!(matches!(
            invoke_dynamic::<Echo>("nope", "{}"),
            Err(wit::ActionError::UnknownAction(n)) if n == "nope"
        ));
    }
}
