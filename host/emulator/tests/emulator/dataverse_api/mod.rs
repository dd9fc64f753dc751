//! The Dataverse Web API emulator: authentication, CRUD, upsert matrix,
//! ETags, associations, queries and paging, a module per theme.

mod auth;
mod joins;
mod metadata;
mod metadata_properties;
mod queries;
mod records;
