//! dvhost: a host for Microsoft Dataverse integrations.
//!
//! The host owns everything secret (connections, certificates, tokens, the
//! authenticated transport) and runs user logic as sandboxed WebAssembly
//! components. This crate is the `dvhost` command line; each concern lives in
//! its own crate beside it under `host/`: the secret-owning transport in
//! `dvhost-dataverse`, the local emulator of Entra ID, Global Discovery,
//! Graph and the Dataverse Web API in `dvhost-emulator` (re-exported here).

pub mod cli;

/// The local emulator of the Microsoft services dvhost talks to.
pub use dvhost_emulator as emulator;
