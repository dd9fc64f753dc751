//! The store's tests, one binary (each file under `tests/store/` is a
//! module): opening and its refusals, connections and certificates,
//! plugins, keys and sign-ins, the audit log, a crash test that kills a
//! writing child process, and a search of the database files for secrets.

mod audit;
mod connections;
mod crash;
mod keys_and_sign_ins;
mod open;
mod plugins;
mod secrets;
mod util;
