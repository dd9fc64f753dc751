//! The store's one error type. Every variant names what failed and what to
//! check; none carries a secret (the store holds none in clear) or a bound
//! value of a query (database errors are reduced to SQLite's message, which
//! names constraints and columns, never values).

use std::path::PathBuf;

/// What went wrong opening or using the store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created or is not a directory.
    #[error("the data directory {path} cannot be used: {why}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The data directory (or the database file) exists but is read-only.
    #[error(
        "the data directory {path} is read-only: the store needs to write its database and journal there; make it writable or choose another --data-dir"
    )]
    ReadOnly {
        /// The directory or file that cannot be written.
        path: PathBuf,
    },
    /// The database file is damaged or is not an SQLite database.
    #[error(
        "the database {path} is damaged or is not a database ({detail}); it was left untouched: restore it from a backup or move it aside"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The database is a valid SQLite file written by something else.
    #[error(
        "the database {path} was not created by dvhost ({detail}); it was left untouched: choose another --data-dir"
    )]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// Why it is not taken for a dvhost store.
        detail: String,
    },
    /// The database was written by a newer dvhost.
    #[error(
        "the store at {path} has schema version {found}, newer than the {known} this dvhost knows: it was written by a newer dvhost; upgrade dvhost (the store was not changed, and it is never migrated down)"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The newest schema version recorded in the database.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },
    /// Bringing the schema up to date failed (the failed step was rolled back).
    #[error("the store's schema could not be updated: {detail}")]
    Migration {
        /// What failed.
        detail: String,
    },
    /// The master key given is not the one this store's secrets were sealed with.
    #[error(
        "the master key does not match the one this store was created with (fingerprint {given}, the store expects {expected}): use the original master key (DVHOST_MASTER_KEY or the key file); nothing was changed"
    )]
    MasterKeyMismatch {
        /// Fingerprint of the key given.
        given: String,
        /// Fingerprint recorded in the store.
        expected: String,
    },
    /// A tenant, connection or plugin name that breaks the naming rule.
    #[error("{name:?} is not a valid name: {why}")]
    InvalidName {
        /// The name given (at most 80 characters of it).
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An input the store cannot accept.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// What was given.
        what: &'static str,
        /// Why it is refused.
        why: String,
    },
    /// Nothing with this id or name.
    #[error("no {what} {key}")]
    NotFound {
        /// What was looked for (`tenant`, `connection`...).
        what: &'static str,
        /// The id or name looked for.
        key: String,
    },
    /// The name is taken, or the row exists already.
    #[error("{what} {key} already exists")]
    AlreadyExists {
        /// What (`tenant`, `connection`...).
        what: &'static str,
        /// Its name or id.
        key: String,
    },
    /// The change is not allowed in the current state.
    #[error("{0}")]
    NotAllowed(String),
    /// The database failed (I/O, lock timeout, constraint).
    #[error("the store failed while {action}: {detail}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// What the database reported.
        detail: String,
    },
}

impl StoreError {
    /// A database error raised while doing `action`.
    pub(crate) fn database(action: &'static str, error: sqlx::Error) -> StoreError {
        StoreError::Database {
            action,
            detail: database_detail(&error),
        }
    }
}

/// SQLite's (or PostgreSQL's) own message for a database error, without
/// the query text; other sqlx errors as they display.
pub(crate) fn database_detail(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}
