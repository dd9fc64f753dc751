//! What every handler shares: the store, the engine, the deployed plugins,
//! the tenants' gates, the audit writer and a few short-lived caches that
//! keep the store off the hot path of an action call.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dvhost_runtime::Engine;
use dvhost_store::{ApiKeyId, ApiKeyRecord, Name, Store, StoreError, Tenant};
use moka::future::Cache;

use crate::audit::AuditWriter;
use crate::config::ServerConfig;
use crate::connections::Connections;
use crate::gate::Gates;
use crate::registry::Registry;

/// How long a tenant or API key record is trusted without asking the store
/// again. Changes made through this server are seen at once (it drops its
/// own entries); changes made by another process (the CLI on the same
/// store) are seen within this time.
const RECORD_TTL: Duration = Duration::from_secs(5);

/// Everything a server is built from.
pub struct Services {
    /// The store.
    pub store: Store,
    /// The engine plugins run on.
    pub engine: Engine,
    /// The credential-holding side (the `dvhost` binary's transport glue).
    pub connections: Arc<dyn Connections>,
    /// SHA-256 of the admin key (see `PresentedApiKey::fingerprint`); with
    /// `None`, the admin routes are closed.
    pub admin_key_hash: Option<[u8; 32]>,
    /// The generated-table-actions component, for integrations; with
    /// `None`, creating an integration is refused with a message saying so.
    pub tables_component: Option<Arc<[u8]>>,
    /// Settings.
    pub config: ServerConfig,
}

/// The state handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub store: Store,
    pub connections: Arc<dyn Connections>,
    pub admin_key_hash: Option<[u8; 32]>,
    pub tables_component: Option<Arc<[u8]>>,
    pub config: ServerConfig,
    pub registry: Registry,
    pub gates: Gates,
    pub audit: AuditWriter,
    /// Set once shutdown began: `/readyz` answers 503.
    pub draining: AtomicBool,
    /// Deploys, setting changes and rollbacks, one at a time.
    pub deploys: tokio::sync::Mutex<()>,
    tenants: Cache<Name, Option<Tenant>>,
    keys: Cache<ApiKeyId, Option<ApiKeyRecord>>,
}

impl AppState {
    /// Builds the state and starts the audit writer (on the current Tokio
    /// runtime).
    pub fn new(services: Services) -> AppState {
        let Services {
            store,
            engine,
            connections,
            admin_key_hash,
            tables_component,
            config,
        } = services;
        // Install the metrics recorder before anything is counted: the
        // `metrics` facade drops what is recorded while none is installed.
        crate::metrics::handle();
        let audit = AuditWriter::start(store.clone());
        AppState(Arc::new(Inner {
            registry: Registry::new(engine, store.clone(), connections.clone(), audit.clone()),
            gates: Gates::new(config.tenants),
            audit,
            draining: AtomicBool::new(false),
            deploys: tokio::sync::Mutex::new(()),
            tenants: record_cache(),
            keys: record_cache(),
            store,
            connections,
            admin_key_hash,
            tables_component,
            config,
        }))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// Waits until every audit entry handed to the writer is in the store.
    pub async fn flush_audit(&self) {
        self.0.audit.flush().await;
    }

    pub(crate) fn admin_key_hash(&self) -> Option<&[u8; 32]> {
        self.0.admin_key_hash.as_ref()
    }

    pub(crate) async fn tenant_by_name(&self, name: &Name) -> Result<Option<Tenant>, StoreError> {
        let store = &self.0.store;
        self.0
            .tenants
            .try_get_with(name.clone(), async { store.tenant_by_name(name).await })
            .await
            .map_err(unshare)
    }

    pub(crate) async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let store = &self.0.store;
        self.0
            .keys
            .try_get_with(id.clone(), async { store.api_key(id).await })
            .await
            .map_err(unshare)
    }

    /// Drops what is cached of a tenant (after it was deleted).
    pub(crate) async fn forget_tenant(&self, name: &Name) {
        self.0.tenants.invalidate(name).await;
    }

    /// Drops what is cached of a key (after it was revoked).
    pub(crate) async fn forget_key(&self, id: &ApiKeyId) {
        self.0.keys.invalidate(id).await;
    }
}

/// moka shares one loader's error between every waiter.
fn unshare(e: Arc<StoreError>) -> StoreError {
    Arc::try_unwrap(e).unwrap_or_else(|shared| StoreError::NotAllowed(shared.to_string()))
}

fn record_cache<K, V>() -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(RECORD_TTL)
        .build()
}
