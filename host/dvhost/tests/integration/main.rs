//! The `dvhost` crate's integration tests, one binary (each test binary
//! links the whole host, wasmtime and all: one link instead of eight):
//! the command line against temporary data directories, the connection
//! flows against the in-process emulator, and plugins end to end through
//! the runtime, the transport and the emulator. `support` is shared with
//! the benches (`benches/plugin.rs`, `benches/http.rs`).

mod support;

mod admin_connections;
mod cli;
mod cli_tenants;
mod connection_auto;
mod flows_manual_edit;
mod plugins;
mod secret_memory;
mod tables;
