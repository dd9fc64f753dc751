//! Black-box tests of the `dvhost` binary: each test starts the real
//! program (`dvhost serve` with a temporary configuration, `dvhost dev`),
//! talks to it over HTTP and through its command line, and stops it with
//! SIGTERM. The binary is the one `cargo test --workspace` builds beside
//! this test (`target/<profile>/dvhost`).

mod dev;
mod fuzz;
mod serve;
mod support;
