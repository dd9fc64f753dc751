//! dvhost's persistence: tenants, connections with their history and
//! certificates, plugins and their versions, API key hashes, delegated
//! sign-ins and the append-only audit log, in SQLite under a data directory
//! (PostgreSQL, for several host replicas sharing one store, comes later).
//!
//! # The wall
//!
//! The store owns rows, never secrets. It never sees a private key, a
//! refresh token, an access token or an API key in clear, and has no way to
//! open what it keeps:
//!
//! - a certificate's private key arrives as ciphertext ([`Sealed`]) that the
//!   secret-owning crate (`dvhost-dataverse`) sealed with the operator's
//!   master key, and leaves as the same bytes;
//! - a delegated sign-in's refresh token likewise;
//! - an API key is minted, shown once and verified by that crate; the store
//!   keeps its public id and the SHA-256 of the whole key;
//! - the master key never reaches the store: [`Store::check_master_key`]
//!   takes its fingerprint, so a wrong key is refused with a clear message
//!   before anything is sealed or opened with it.
//!
//! The store knows nothing of WebAssembly, HTTP or Dataverse; the JSON it
//! keeps (plugin grants and limits, history and audit details) is shaped by
//! its users.
//!
//! # Safety of the data
//!
//! Every multi-row write is one transaction (SQLite in WAL mode, foreign
//! keys on), so a process killed mid-write leaves the previous consistent
//! state. Opening never overwrites anything it does not understand: a
//! missing data directory is created, but a read-only one, a damaged or
//! foreign database file, or a schema newer than this build are refused
//! with an error saying so ([`StoreError`]).
//!
//! # Dialects
//!
//! All SQL sits behind one private trait (`backend.rs`), implemented for
//! SQLite in `sqlite/`. What is SQLite-only there: the file, WAL and
//! `PRAGMA`s (foreign keys, busy timeout, `quick_check`, `application_id`),
//! `BEGIN IMMEDIATE` to take the write lock at the start of a
//! read-modify-write transaction, `STRICT` tables, the triggers that make
//! the audit log append-only (`RAISE(ABORT, ...)`; PostgreSQL will use a
//! trigger function or revoked privileges), and the column types (ids as
//! `TEXT`, times as `INTEGER` milliseconds, bytes as `BLOB`). The queries
//! themselves use `$n` parameters, `ON CONFLICT` and `RETURNING`, which
//! both databases understand. Migrations live per dialect under
//! `migrations/<dialect>/`.
//!
//! ```no_run
//! # async fn example() -> Result<(), dvhost_store::StoreError> {
//! use dvhost_store::{Name, Store};
//! let store = Store::open_sqlite("/var/lib/dvhost".as_ref()).await?;
//! store.check_master_key("0123456789abcdef0123456789abcdef").await?;
//! let tenant = store.create_tenant(&Name::parse("contoso")?, "Contoso").await?;
//! # let _ = tenant; Ok(()) }
//! ```

#![deny(missing_docs)]

mod api_keys;
mod audit;
mod backend;
mod certificates;
mod connections;
mod error;
mod ids;
mod plugins;
mod sign_ins;
mod sqlite;
mod tenants;

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

pub use api_keys::{ApiKeyRecord, ApiKeyRight, ApiKeyRights, NewApiKeyRecord};
pub use audit::{AuditEntry, AuditOutcome, AuditPage, AuditQuery, MAX_AUDIT_PAGE, NewAuditEntry};
pub use certificates::{CertificateState, NewCertificate, StoredCertificate};
pub use connections::{
    Connection, ConnectionChanges, ConnectionMode, ConnectionState, HistoryEntry, HistoryEvent,
    NewConnection, ProvisioningStep, StepRecord, StepStatus,
};
pub use error::StoreError;
pub use ids::{
    ApiKeyId, CertificateId, ConnectionId, ContentHash, Name, PluginId, Sealed, TenantId,
};
pub use plugins::{MAX_COMPONENT_BYTES, NewPluginVersion, Plugin, PluginVersion};
pub use sign_ins::SignIn;
pub use sqlite::DATABASE_FILE;
pub use tenants::Tenant;

/// The store: a typed API over one database. Cheap to clone; clones share
/// the database's connection pool.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn backend::Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Whether [`Store::check_master_key`] met the key for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeyCheck {
    /// The store had no master key yet; this one is now recorded.
    Recorded,
    /// The key is the one the store was created with.
    Matches,
}

impl Store {
    /// Opens (or creates) the SQLite store in `data_dir`, creating the
    /// directory when it is missing, and brings its schema up to date.
    /// Refuses, without writing anything, a read-only directory, a damaged
    /// or foreign database file, and a schema newer than this build knows.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        let backend = sqlite::SqliteBackend::open(data_dir).await?;
        Ok(Store {
            backend: Arc::new(backend),
        })
    }

    /// Checks the master key's fingerprint (from the secret-owning crate)
    /// against the one recorded at the store's first start, recording it
    /// when there is none. Call it before sealing or opening anything: a
    /// different key is [`StoreError::MasterKeyMismatch`], and nothing is
    /// changed.
    pub async fn check_master_key(&self, fingerprint: &str) -> Result<MasterKeyCheck, StoreError> {
        let ok = (16..=128).contains(&fingerprint.len())
            && fingerprint.chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(StoreError::Invalid {
                what: "master key fingerprint",
                why: "it must be 16 to 128 hex digits".into(),
            });
        }
        let fingerprint = fingerprint.to_ascii_lowercase();
        let (recorded, first) = self.backend.master_key_fingerprint(&fingerprint).await?;
        if first {
            Ok(MasterKeyCheck::Recorded)
        } else if recorded == fingerprint {
            Ok(MasterKeyCheck::Matches)
        } else {
            Err(StoreError::MasterKeyMismatch {
                given: fingerprint,
                expected: recorded,
            })
        }
    }

    /// Runs the database's full consistency check (SQLite's
    /// `integrity_check`, slower than the quick check made at open).
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        self.backend.integrity_check().await
    }

    /// Closes the database after open work finishes (SQLite folds its
    /// write-ahead log back into the file).
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

/// The current time, to the millisecond the store keeps.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}
