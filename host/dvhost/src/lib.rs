//! dvhost: a host for Microsoft Dataverse integrations.
//!
//! The host owns everything secret (connections, certificates, tokens, the
//! authenticated transport) and runs user logic as sandboxed WebAssembly
//! components. This crate is the `dvhost` command line; each concern lives in
//! its own crate beside it under `host/`: the secret-owning transport in
//! `dvhost-dataverse`, the sandbox in `dvhost-runtime`, the local emulator
//! of Entra ID, Global Discovery, Graph and the Dataverse Web API in
//! `dvhost-emulator` (re-exported here). [`DataverseBackend`] is the glue
//! that serves a plugin's Dataverse imports through a connection's client.

mod backend;
pub mod cli;
mod dev;
pub mod flows;
pub mod serve;

pub use backend::DataverseBackend;

/// The local emulator of the Microsoft services dvhost talks to.
pub use dvhost_emulator as emulator;
