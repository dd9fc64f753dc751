//! The routes, one module per resource.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod connections;
pub(crate) mod health;
pub(crate) mod invoke;
pub(crate) mod plugins;
