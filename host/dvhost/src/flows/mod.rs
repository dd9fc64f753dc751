//! The connection flows as a library: the CLI calls them now, the HTTP
//! admin API and the web console reuse them later. One file per flow.

pub mod auto;
pub mod edit;
pub mod manual;
pub mod rotate;
pub mod sign_in;
