//! The runtime's errors: loading a plugin ([`LoadError`]) and running an
//! action ([`InvokeError`]). Messages name what failed and what to check;
//! none carries a credential (the runtime never holds one).

use std::time::Duration;

/// Why a component could not become a plugin.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component: the file does not start with the wasm magic bytes")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The bytes do not compile.
    #[error("the component is invalid: {0}")]
    Invalid(String),
    /// The component needs an import dvhost does not provide, or lacks the
    /// `actions` export.
    #[error("the component does not fit dvhost's `plugin` world: {0}")]
    Incompatible(String),
    /// `describe` failed or returned something unusable.
    #[error("the plugin's `describe` failed: {0}")]
    Describe(String),
    /// The compiled-artifact cache could not be used.
    #[error("the compilation cache failed: {0}")]
    Cache(String),
    /// The engine could not be set up.
    #[error("the WebAssembly engine could not be set up: {0}")]
    Engine(String),
}

/// Why an action produced no output.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The plugin has no such action.
    #[error("unknown action: {0}")]
    UnknownAction(String),
    /// The plugin refused the input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The action reported a failure.
    #[error("the action failed: {0}")]
    Failed(String),
    /// The deadline passed.
    #[error("the invocation ran past its deadline of {0:?}")]
    Deadline(Duration),
    /// The guest tried to grow its memory past the cap.
    #[error("the plugin tried to use {wanted} bytes of memory; its limit is {limit}")]
    MemoryLimit {
        /// Bytes asked for.
        wanted: usize,
        /// The cap.
        limit: usize,
    },
    /// The guest's call stack overflowed.
    #[error("the plugin overflowed its call stack (runaway recursion?)")]
    StackOverflow,
    /// The output is larger than allowed.
    #[error("the action's output is {size} bytes; the limit is {limit}")]
    OutputTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The guest trapped (a panic, an unreachable, a forged handle...).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The instance could not be created (pool exhausted, scratch dir).
    #[error("the plugin could not be started: {0}")]
    Instantiate(String),
}
