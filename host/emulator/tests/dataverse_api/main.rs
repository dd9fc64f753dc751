//! The Dataverse Web API emulator: authentication, CRUD, upsert matrix,
//! ETags, associations, queries and paging. One test binary, a module per
//! theme.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod joins;
mod metadata;
mod metadata_properties;
mod queries;
mod records;
