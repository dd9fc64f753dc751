//! dvhost-server's in-process tests: the router driven with
//! `oneshot` (and, for the load test, served on a real listener), over a
//! SQLite store in a temporary directory, the real engine and guest
//! components built from source by `dvhost-testkit`.

mod admin;
mod audit;
mod common;
mod connections;
mod gate;
mod hostile;
mod invoke;
mod load;
mod operations;
mod plugins;
