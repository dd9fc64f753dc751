//! The runtime's tests, one binary: guests built from source by the test
//! kit, run against an in-memory backend that counts requests.

mod common;
mod fake;
mod loading;
mod polyglot;
mod prepared;
mod records;
mod sandbox;
mod tables;
