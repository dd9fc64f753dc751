//! The one seam between the store's typed API and SQL. [`crate::Store`]
//! validates input, makes ids and timestamps and decides what a change
//! means; a backend runs the statements, each multi-row write in one
//! transaction. SQLite implements it now (`crate::sqlite`); PostgreSQL
//! implements the same traits later, so nothing above this file changes.
//!
//! The traits are split by area only to keep each implementation file
//! short; [`Backend`] is all of them.

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use crate::connections::{Connection, ConnectionUpdate, HistoryEntry, StepRecord};
use crate::{
    ApiKeyId, ApiKeyRecord, CertificateId, ConnectionId, ContentHash, Name, NewPluginVersion,
    Plugin, PluginId, PluginVersion, SignIn, StoreError, StoredCertificate, Tenant, TenantId,
};

/// Every area of the store.
pub(crate) trait Backend:
    MetaRows
    + TenantRows
    + ConnectionRows
    + CertificateRows
    + PluginRows
    + ApiKeyRows
    + SignInRows
    + AuditRows
{
}

impl<T> Backend for T where
    T: MetaRows
        + TenantRows
        + ConnectionRows
        + CertificateRows
        + PluginRows
        + ApiKeyRows
        + SignInRows
        + AuditRows
{
}

/// Facts about the store itself.
#[async_trait]
pub(crate) trait MetaRows: Send + Sync {
    /// Records `fingerprint` when the store has none; returns the one
    /// recorded and whether it was recorded just now.
    async fn master_key_fingerprint(&self, fingerprint: &str)
    -> Result<(String, bool), StoreError>;
    /// Runs the database's own consistency check; `Ok(())` when it passes.
    async fn integrity_check(&self) -> Result<(), StoreError>;
    /// Waits for open work and closes the database.
    async fn close(&self);
}

#[async_trait]
pub(crate) trait TenantRows: Send + Sync {
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    async fn tenant_by_id(&self, id: TenantId) -> Result<Option<Tenant>, StoreError>;
    async fn tenant_by_name(&self, name: &Name) -> Result<Option<Tenant>, StoreError>;
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    async fn delete_tenant(&self, id: TenantId) -> Result<bool, StoreError>;
}

#[async_trait]
pub(crate) trait ConnectionRows: Send + Sync {
    /// Inserts the connection and its `created` history row.
    async fn insert_connection(
        &self,
        connection: &Connection,
        actor: &str,
        detail: Value,
    ) -> Result<(), StoreError>;
    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError>;
    async fn connection_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Connection>, StoreError>;
    async fn connections(
        &self,
        tenant: TenantId,
        include_deleted: bool,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Reads the row, applies `update`, writes the row and the history row
    /// it returns, in one transaction that holds the write lock throughout.
    async fn update_connection(
        &self,
        id: ConnectionId,
        actor: &str,
        update: ConnectionUpdate,
    ) -> Result<Connection, StoreError>;
    async fn delete_connection(
        &self,
        id: ConnectionId,
        actor: &str,
    ) -> Result<Connection, StoreError>;
    async fn connection_history(&self, id: ConnectionId) -> Result<Vec<HistoryEntry>, StoreError>;
    async fn upsert_step(&self, id: ConnectionId, record: &StepRecord) -> Result<(), StoreError>;
    async fn steps(&self, id: ConnectionId) -> Result<Vec<StepRecord>, StoreError>;
}

#[async_trait]
pub(crate) trait CertificateRows: Send + Sync {
    /// Inserts the certificate (active when the connection has none, else
    /// pending) and its history row; returns it as stored.
    async fn insert_certificate(
        &self,
        certificate: StoredCertificate,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError>;
    async fn certificate(&self, id: CertificateId)
    -> Result<Option<StoredCertificate>, StoreError>;
    async fn certificates(
        &self,
        connection: ConnectionId,
    ) -> Result<Vec<StoredCertificate>, StoreError>;
    async fn activate_certificate(
        &self,
        id: CertificateId,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError>;
    async fn mark_certificate_used(
        &self,
        id: CertificateId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    async fn remove_certificate(&self, id: CertificateId, actor: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub(crate) trait PluginRows: Send + Sync {
    async fn insert_plugin(&self, plugin: &Plugin) -> Result<(), StoreError>;
    async fn plugin(&self, id: PluginId) -> Result<Option<Plugin>, StoreError>;
    async fn plugin_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Plugin>, StoreError>;
    async fn plugins(&self, tenant: TenantId) -> Result<Vec<Plugin>, StoreError>;
    async fn bind_plugin(
        &self,
        plugin: PluginId,
        connection: Option<ConnectionId>,
    ) -> Result<Plugin, StoreError>;
    async fn publish_version(
        &self,
        plugin: PluginId,
        new: NewPluginVersion,
        activate: bool,
    ) -> Result<PluginVersion, StoreError>;
    async fn activate_version(&self, plugin: PluginId, version: u32) -> Result<Plugin, StoreError>;
    async fn plugin_versions(&self, plugin: PluginId) -> Result<Vec<PluginVersion>, StoreError>;
    async fn component(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete_plugin(&self, plugin: PluginId) -> Result<bool, StoreError>;
}

#[async_trait]
pub(crate) trait ApiKeyRows: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError>;
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub(crate) trait SignInRows: Send + Sync {
    async fn upsert_sign_in(&self, sign_in: &SignIn) -> Result<(), StoreError>;
    async fn sign_in(&self, tenant: Uuid, user: Uuid) -> Result<Option<SignIn>, StoreError>;
    async fn sign_ins(&self) -> Result<Vec<SignIn>, StoreError>;
    async fn delete_sign_in(&self, tenant: Uuid, user: Uuid) -> Result<bool, StoreError>;
}

#[async_trait]
pub(crate) trait AuditRows: Send + Sync {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;
    /// Appends entries in order, all or none, in one transaction.
    async fn append_audit_all(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError>;
    /// At most `limit` entries matching `query`, newest first.
    async fn audit(&self, query: &AuditQuery, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}
