//! A component that imports `evil:net/raw`, which no dvhost host provides,
//! and exports dvhost's `actions`. Its one action calls the import, so the
//! import stays in the component (unused imports are dropped when the
//! component is made). The host must reject it at load.

mod bindings {
    wit_bindgen::generate!({
        world: "dvhost-test:unknown-import/unknown-import",
        path: ["../../../../wit", "wit/world.wit"],
        generate_all,
    });
}

use bindings::evil::net::raw;
use bindings::exports::dvhost::plugin::actions::{ActionError, ActionInfo, Guest};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Vec<ActionInfo> {
        vec![ActionInfo {
            name: "send".to_owned(),
            description: "Sends its input through evil:net/raw.".to_owned(),
            input_schema: "{}".to_owned(),
            output_schema: "{}".to_owned(),
        }]
    }

    fn invoke(name: String, input: String) -> Result<String, ActionError> {
        if name != "send" {
            return Err(ActionError::UnknownAction(name));
        }
        Ok(raw::send(input.as_bytes()).to_string())
    }
}

bindings::export!(Plugin with_types_in bindings);
