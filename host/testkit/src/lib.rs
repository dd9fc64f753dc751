//! Test support for dvhost: the guest components the runtime's tests load.
//!
//! Guests are built from source, never committed as binaries:
//! [`rust_guest`] builds every Rust guest of the workspace once per process
//! (`cargo build --profile guest --target wasm32-wasip2`) into
//! `target/guests`, and returns the path of the component asked for.
//!
//! ```no_run
//! let hostile = dvhost_testkit::rust_guest(dvhost_testkit::HOSTILE);
//! let bytes = std::fs::read(hostile).unwrap();
//! assert!(bytes.starts_with(b"\0asm"));
//! ```
//!
//! This crate is for tests: it panics, with the failing command and its
//! output, when a guest cannot be built.
#![deny(missing_docs)]

pub mod machine;
pub mod polyglot;
mod rust_guests;
mod surface;

pub use rust_guests::{
    CONTACTS, HELLO, HOSTILE, IMPORTS, LEAD_SCORING, RUST_GUESTS, TABLES, UNKNOWN_IMPORT,
    guest_target_dir, rust_guest, workspace_root,
};
pub use surface::{Surface, component_surface};
