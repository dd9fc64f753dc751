//! A hostile dvhost plugin: each action tries one thing the sandbox must
//! contain (run forever, eat memory, overflow the stack, flood the output or
//! the log, read files and the environment, open sockets, abuse grants,
//! quotas and page handles, panic). The runtime's tests call the actions by
//! name and assert the host's specific, clear answer.
//!
//! Probes that the host should deny (files, env, sockets, tables) report
//! what they got as `{"ok": ...}` or `{"error": ...}` and never panic, so a
//! test sees exactly what the guest saw.

mod dataverse;
mod limits;
mod sandbox;

use schemars::JsonSchema;
use serde::Serialize;

/// What a probe got: `{"ok": value}` or `{"error": reason}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome<T, E = String> {
    /// The operation succeeded (the sandbox let it through).
    Ok(T),
    /// The operation failed, with the reason the guest was given.
    Error(E),
}

impl<T, E> From<Result<T, E>> for Outcome<T, E> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Outcome::Ok(value),
            Err(error) => Outcome::Error(error),
        }
    }
}

dvhost_sdk::export_actions! {
    /// Loops forever (the deadline must stop it).
    "spin" => limits::spin,
    /// Keeps the CPU busy for `ms` milliseconds, then answers (a slow but
    /// well-behaved call, for shutdown and queueing tests).
    "busy" => limits::busy,
    /// Allocates and touches 1 MiB chunks forever (the memory cap must stop it).
    "grow-memory" => limits::grow_memory,
    /// Recurses without end (the stack limit must stop it).
    "recurse" => limits::recurse,
    /// Returns a JSON string of about `bytes` bytes.
    "huge-output" => limits::huge_output,
    /// Panics with "hostile guest panicked on purpose".
    "panic" => limits::panic,
    /// Writes `bytes` bytes through the log import, in lines of up to 1 KiB.
    "log-flood" => limits::log_flood,
    /// Writes `bytes` bytes to stdout with `println!`, in lines of up to 1 KiB.
    "print-flood" => limits::print_flood,
    /// Reads the file at `path`.
    "read-file" => sandbox::read_file,
    /// Writes `content` to the file at `path`.
    "write-file" => sandbox::write_file,
    /// Lists the environment variables and the arguments it was given.
    "env" => sandbox::env,
    /// Counts the calls that ran in its instance before, through a global and the heap (a fresh instance per call finds none).
    "leftovers" => sandbox::leftovers,
    /// Opens a TCP connection to `host` (an IP address) and `port` with wasi:sockets.
    "connect" => sandbox::connect,
    /// Resolves `name` with wasi:sockets ip-name-lookup.
    "resolve" => sandbox::resolve,
    /// Performs `operation` (read, create, update, delete) on `table`.
    "use-table" => dataverse::use_table,
    /// Calls `rows` on a page made from the raw `handle` (the host must trap).
    "forge-page" => dataverse::forge_page,
    /// Queries `account` a page at a time, drops the first page, revives it from its raw handle and calls `next` (the host must trap).
    "stale-page" => dataverse::stale_page,
    /// Retrieves row `id` of `table` `count` times.
    "many-calls" => dataverse::many_calls,
    /// Meets the host's error paths: a missing id, a table not granted, invalid names, ids, columns and rows.
    "errors" => dataverse::errors,
}
