//! Actions as plain Rust functions: [`export_actions!`](crate::export_actions)
//! turns a list of `fn(Input) -> Result<Output, E>` into the `actions` export,
//! with JSON Schemas derived by `schemars` and JSON (de)serialization by
//! serde. An unknown name is `unknown-action`, an input that does not
//! deserialize is `invalid-input` with serde's message.

use std::fmt::Display;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::exports::dvhost::plugin::actions as wit;
use crate::error::Error;

/// Why an action failed, as its caller sees it.
///
/// An action returns `Result<Output, E>` for any `E: Into<ActionError>`; the
/// SDK's [`Error`] converts to [`ActionError::Failed`], so `?` on a host call
/// works in an action returning `Result<_, ActionError>` or
/// `Result<_, dvhost_sdk::Error>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// The input does not fit the action (the caller gets a 400).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No action has this name.
    #[error("unknown action: {0}")]
    UnknownAction(String),
    /// The action failed while running (the caller gets a 500-class answer).
    #[error("failed: {0}")]
    Failed(String),
}

impl ActionError {
    /// The input does not fit the action, because of `reason`.
    pub fn invalid_input(reason: impl Display) -> ActionError {
        ActionError::InvalidInput(reason.to_string())
    }

    /// The action failed, because of `reason`.
    pub fn failed(reason: impl Display) -> ActionError {
        ActionError::Failed(reason.to_string())
    }

    fn into_wit(self) -> wit::ActionError {
        match self {
            ActionError::InvalidInput(message) => wit::ActionError::InvalidInput(message),
            ActionError::UnknownAction(name) => wit::ActionError::UnknownAction(name),
            ActionError::Failed(message) => wit::ActionError::Failed(message),
        }
    }
}

impl From<Error> for ActionError {
    fn from(error: Error) -> ActionError {
        ActionError::Failed(error.to_string())
    }
}

impl From<serde_json::Error> for ActionError {
    fn from(error: serde_json::Error) -> ActionError {
        ActionError::Failed(error.to_string())
    }
}

/// An empty JSON object, `{}`: the input of an action that takes none, or the
/// output of one that returns nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// The description of an action from its doc comment lines.
pub fn description(lines: &[&str]) -> String {
    let lines: Vec<&str> = lines.iter().map(|line| line.trim()).collect();
    lines.join("\n").trim().to_owned()
}

/// Describes `action`: its name, description and input and output schemas.
pub fn describe_action<I, O, E, F>(name: &str, docs: &[&str], _action: F) -> wit::ActionInfo
where
    I: JsonSchema,
    O: JsonSchema,
    F: FnOnce(I) -> Result<O, E>,
{
    wit::ActionInfo {
        name: name.to_owned(),
        description: description(docs),
        input_schema: schema_of::<I>(SchemaSettings::default().for_deserialize()),
        output_schema: schema_of::<O>(SchemaSettings::default().for_serialize()),
    }
}

/// The JSON Schema of `T`, as text. Inputs are described as serde reads them
/// and outputs as serde writes them, which differ when a type renames a field
/// for one direction only.
fn schema_of<T: JsonSchema>(settings: SchemaSettings) -> String {
    settings
        .into_generator()
        .into_root_schema_for::<T>()
        .as_value()
        .to_string()
}

/// Runs `action` on the JSON text `input`; returns its output as JSON text.
pub fn run_action<I, O, E, F>(action: F, input: &str) -> Result<String, wit::ActionError>
where
    I: DeserializeOwned,
    O: Serialize,
    E: Into<ActionError>,
    F: FnOnce(I) -> Result<O, E>,
{
    let input: I = serde_json::from_str(input)
        .map_err(|error| wit::ActionError::InvalidInput(error.to_string()))?;
    let output = action(input).map_err(|error| error.into().into_wit())?;
    serde_json::to_string(&output).map_err(|error| {
        wit::ActionError::Failed(format!("the action's output is not JSON: {error}"))
    })
}

/// The error for a call of an action that does not exist.
pub fn unknown_action(name: String) -> wit::ActionError {
    wit::ActionError::UnknownAction(name)
}

/// Exports the plugin's actions: each is a plain Rust function taking one
/// serde-deserializable input and returning `Result<Output, E>`, where
/// `Output` is serde-serializable, both types derive
/// [`schemars::JsonSchema`], and `E: Into<ActionError>`.
///
/// Each entry is the action's name (what callers put in `/actions/{name}`)
/// and the function; the doc comment above an entry becomes the action's
/// description. Use the macro once per plugin, at the crate's top level.
///
/// ```no_run
/// use dvhost_sdk::{ActionError, Empty};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Add {
///     a: i64,
///     b: i64,
/// }
///
/// #[derive(Serialize, JsonSchema)]
/// struct Sum {
///     sum: i64,
/// }
///
/// fn add(input: Add) -> Result<Sum, ActionError> {
///     let sum = input.a.checked_add(input.b).ok_or(ActionError::invalid_input("overflow"))?;
///     Ok(Sum { sum })
/// }
///
/// fn ping(_: Empty) -> Result<Empty, ActionError> {
///     Ok(Empty {})
/// }
///
/// dvhost_sdk::export_actions! {
///     /// Adds two integers.
///     "add" => add,
///     /// Does nothing.
///     "ping" => ping,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_actions {
    ($( $(#[doc = $doc:literal])* $name:literal => $action:path ),+ $(,)?) => {
        /// The plugin's `actions` export, written by `dvhost_sdk::export_actions!`.
        struct DvhostActions;

        impl $crate::bindings::exports::dvhost::plugin::actions::Guest for DvhostActions {
            fn describe() -> ::std::vec::Vec<
                $crate::bindings::exports::dvhost::plugin::actions::ActionInfo,
            > {
                ::std::vec![$(
                    $crate::__private::describe_action($name, &[$($doc),*], $action)
                ),+]
            }

            fn invoke(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::exports::dvhost::plugin::actions::ActionError,
            > {
                match name.as_str() {
                    $( $name => $crate::__private::run_action($action, &input), )+
                    _ => ::std::result::Result::Err($crate::__private::unknown_action(name)),
                }
            }
        }

        $crate::bindings::__export_plugin!(DvhostActions with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[derive(Deserialize, JsonSchema)]
    struct Greet {
        name: String,
    }

    #[derive(Serialize, JsonSchema)]
    struct Greeting {
        greeting: String,
    }

    fn hello(input: Greet) -> Result<Greeting, ActionError> {
        if input.name.is_empty() {
            return Err(ActionError::invalid_input("name is empty"));
        }
        Ok(Greeting {
            greeting: format!("Hello, {}!", input.name),
        })
    }

    fn fails(_: Empty) -> Result<Empty, Error> {
        Err(Error::local(ErrorKind::NotGranted, "table account"))
    }

    #[test]
    fn runs_with_json_in_and_out() {
        assert_eq!(
            run_action(hello, r#"{"name":"Ada"}"#).unwrap(),
            r#"{"greeting":"Hello, Ada!"}"#
        );
    }

    #[test]
    fn bad_input_is_invalid_input_with_serdes_message() {
        let Err(wit::ActionError::InvalidInput(message)) = run_action(hello, r#"{"nom":"x"}"#)
        else {
            panic!("expected invalid-input");
        };
        assert!(message.contains("missing field `name`"), "{message}");
        assert!(matches!(
            run_action(hello, "not json"),
            Err(wit::ActionError::InvalidInput(_))
        ));
    }

    #[test]
    fn action_errors_keep_their_variant() {
        assert!(matches!(
            run_action(hello, r#"{"name":""}"#),
            Err(wit::ActionError::InvalidInput(message)) if message == "name is empty"
        ));
        assert!(matches!(
            run_action(fails, "{}"),
            Err(wit::ActionError::Failed(message)) if message == "not-granted: table account"
        ));
        assert!(matches!(
            unknown_action("nope".to_owned()),
            wit::ActionError::UnknownAction(name) if name == "nope"
        ));
    }

    #[test]
    fn describes_schemas_and_description() {
        let info = describe_action("hello", &[" Greets someone.", "", " Politely. "], hello);
        assert_eq!(info.name, "hello");
        assert_eq!(info.description, "Greets someone.\n\nPolitely.");
        let input: serde_json::Value = serde_json::from_str(&info.input_schema).unwrap();
        assert_eq!(input["type"], "object");
        assert_eq!(input["required"], serde_json::json!(["name"]));
        assert_eq!(input["properties"]["name"]["type"], "string");
        let output: serde_json::Value = serde_json::from_str(&info.output_schema).unwrap();
        assert_eq!(output["properties"]["greeting"]["type"], "string");
    }

    #[test]
    fn empty_is_an_empty_object() {
        assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
        assert_eq!(
            run_action(|_: Empty| Ok::<_, ActionError>(Empty {}), "{}").unwrap(),
            "{}"
        );
    }
}
