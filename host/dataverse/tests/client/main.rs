//! The transport's tests against the in-process emulator, one test binary
//! with a module per theme: each binary links the emulator, reqwest and
//! tokio, so one binary instead of six is much less to build and link. The
//! secret wall's test (`tests/secret_wall.rs`) stays a binary of its own,
//! since it captures every log line of its process.

#[path = "../common/mod.rs"]
mod common;

mod at_rest;
mod dataverse_client;
mod device_code;
mod filter_props;
mod identity;
mod retry_policy;
