//! dvhost's sandbox: runs plugin components and serves their imports.
//!
//! A plugin is a WebAssembly component of the `plugin` world in `wit/`. The
//! runtime checks it against that world, compiles it once ([`Engine::load`])
//! and runs each action call in a fresh `Store` ([`Plugin::invoke`]) with a
//! deadline, a memory cap, grants and quotas from [`Capabilities`]. Every
//! Dataverse call a guest makes goes through one gate (grants, quotas, the
//! remaining deadline, an audit [`CallRecord`]) to the [`Records`] and
//! [`Metadata`] backend traits.
//!
//! After a call answers, the plugin's next instance is made in the
//! background (up to [`EngineConfig::prepared_instances`] across plugins),
//! so the next call skips instantiation: still a fresh instance that no
//! call ran in before, which takes that call's capabilities
//! ([`Plugin::prepared`] says whether one is ready, [`Report::prepared`]
//! which calls found one).
//!
//! # What the runtime never holds
//!
//! The runtime does not depend on the transport crate: it holds no token,
//! key, certificate or URL, and cannot hand one to a guest. The binary
//! implements [`Records`] and [`Metadata`] with the transport's client for
//! a connection; tests implement them with fakes. A guest names tables,
//! columns and ids; a page's continuation is an opaque value in a host-side
//! handle table the guest cannot read or forge.
//!
//! # Sandbox
//!
//! WASI gives a guest nothing but clocks, random and captured stdout and
//! stderr: no environment, arguments, sockets, name lookup or files (a
//! per-plugin scratch directory can be granted). A trap, a deadline or a
//! memory cap ends one call with an [`InvokeError`]; the engine and every
//! other call carry on.
//!
//! ```no_run
//! # async fn run(bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use dvhost_runtime::{Capabilities, Engine, EngineConfig};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let plugin = engine.load(bytes).await?;
//! let report = plugin.invoke(&Capabilities::unconnected(), "hello", r#"{"name":"Ada"}"#).await;
//! println!("{:?}", report.output);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod audit;
pub mod backend;
mod bindings;
mod cache;
mod calls;
mod engine;
mod error;
mod grants;
mod guest_rows;
mod invocation;
mod limits;
mod log;
mod metadata;
mod plugin;
mod records;
mod session;
mod warm;
mod wasi;

pub use audit::{CallOutcome, CallRecord, Interface};
pub use backend::{Metadata, Records};
pub use engine::{Engine, EngineConfig};
pub use error::{InvokeError, LoadError};
pub use grants::{ANY_TABLE, Grants, Operation};
pub use limits::{CEILING, LimitsConfig, LimitsError, PluginLimits};
pub use log::{Level, LogLine, Source};
pub use plugin::{ActionInfo, Capabilities, Described, Plugin, Report};
pub use records::PageCursor;
pub use session::Session;
pub use wasi::SCRATCH_GUEST_PATH;
