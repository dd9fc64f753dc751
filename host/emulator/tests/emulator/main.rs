//! The emulator's integration tests, one test binary with a module per
//! theme: each binary links the whole emulator, reqwest and tokio, so one
//! binary instead of fourteen is much less to build and link.

mod common;

mod control_api;
mod dataverse_api;
mod dataverse_batch;
mod dataverse_filter_props;
mod dataverse_limits_faults;
mod device_flow;
mod dynamics_web_api;
mod entra_token;
mod environment_origins;
mod graph_and_discovery;
mod python_clients;
mod python_dataverse_sdk;
mod state_rows;
mod unmatched_routes;
