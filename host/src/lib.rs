//! dvhost: a host for Microsoft Dataverse integrations.
//!
//! The host owns everything secret (connections, certificates, tokens, the
//! authenticated transport) and runs user logic as sandboxed WebAssembly
//! components. This crate holds the command-line interface; the local
//! emulator of Entra ID, Global Discovery, Graph and (soon) the Dataverse Web
//! API lives in the `dvhost-emulator` crate beside it, re-exported here.

pub mod cli;
pub mod dataverse;
pub mod identity;

/// The local emulator of the Microsoft services dvhost talks to.
pub use dvhost_emulator as emulator;
