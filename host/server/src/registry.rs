//! Deployed plugins in memory. A compiled component is kept once per
//! content hash however many tenants deploy it; each plugin's active
//! version is described under its own capabilities (so a plugin whose
//! actions come from live metadata, like the generated table actions,
//! lists what its grants and connection give it) with its input schemas
//! compiled for validation.
//!
//! A deploy or a rollback builds the new [`Deployed`] first and then swaps
//! it in; calls already running keep the `Arc` of the version they started
//! with and finish on it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use dvhost_runtime::{
    Capabilities, Described, Engine, Grants, LimitsConfig, LoadError, Plugin as Compiled,
    PluginLimits,
};
use dvhost_store::{
    AuditOutcome, ConnectionId, ContentHash, Name, NewAuditEntry, Plugin, PluginVersion, Store,
    TenantId,
};
use jsonschema::Validator;
use moka::future::Cache;
use serde_json::{Value, json};

use crate::audit::AuditWriter;
use crate::connections::Connections;
use crate::error::ApiError;

/// Who a description made on the server's own initiative (loading a
/// plugin back after a restart or eviction) is audited as.
const SYSTEM_ACTOR: &str = "dvhost";

/// Plugins kept deployed in memory before the least used are dropped (and
/// loaded again from the store and the compilation cache when called).
const DEPLOYED_CAPACITY: u64 = 100_000;
/// Compiled components kept in memory.
const COMPILED_CAPACITY: u64 = 10_000;

/// One plugin's active version, ready to run.
pub(crate) struct Deployed {
    /// The plugin's row, as it was when loaded.
    pub plugin: Plugin,
    /// The version served.
    pub version: PluginVersion,
    /// The component, described under the plugin's capabilities.
    pub compiled: Compiled,
    /// Its grants.
    pub grants: Arc<Grants>,
    /// Its limits.
    pub limits: PluginLimits,
    /// Each action's input validator.
    pub validators: HashMap<String, Validator>,
}

pub(crate) struct Registry {
    engine: Engine,
    store: Store,
    connections: Arc<dyn Connections>,
    compiled: Cache<ContentHash, Compiled>,
    deployed: Cache<(TenantId, Name), Arc<Deployed>>,
    /// Where the Dataverse calls of a plugin's `describe` are recorded.
    audit: AuditWriter,
}

/// What a version is deployed with, checked.
pub(crate) struct Settings {
    pub grants: Grants,
    pub limits: PluginLimits,
}

impl Settings {
    /// Reads a version's stored grants and limits.
    pub(crate) fn parse(grants: &Value, limits: &Value) -> Result<Settings, ApiError> {
        let grants: Grants = serde_json::from_value(grants.clone())
            .map_err(|e| ApiError::bad_request(format!("grants: {e}")))?;
        let config: LimitsConfig = serde_json::from_value(limits.clone())
            .map_err(|e| ApiError::bad_request(format!("limits: {e}")))?;
        let limits = PluginLimits::from_config(&config)
            .map_err(|e| ApiError::bad_request(format!("limits: {e}")))?;
        Ok(Settings { grants, limits })
    }
}

/// A component the engine refused: the deployer's mistake.
pub(crate) fn invalid_component(e: LoadError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_component", e.to_string())
}

impl Registry {
    pub(crate) fn new(
        engine: Engine,
        store: Store,
        connections: Arc<dyn Connections>,
        audit: AuditWriter,
    ) -> Registry {
        Registry {
            engine,
            store,
            connections,
            audit,
            compiled: Cache::builder().max_capacity(COMPILED_CAPACITY).build(),
            deployed: Cache::builder()
                .max_capacity(DEPLOYED_CAPACITY)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Checks and compiles a component (or finds it compiled already).
    pub(crate) async fn compile(&self, bytes: &[u8]) -> Result<Compiled, ApiError> {
        let hash = ContentHash::of(bytes);
        if let Some(compiled) = self.compiled.get(&hash).await {
            return Ok(compiled);
        }
        let compiled = self.engine.load(bytes).await.map_err(invalid_component)?;
        self.compiled.insert(hash, compiled.clone()).await;
        Ok(compiled)
    }

    async fn compiled_by_hash(&self, hash: &ContentHash) -> Result<Compiled, ApiError> {
        let (engine, store) = (&self.engine, &self.store);
        self.compiled
            .try_get_with(*hash, async move {
                let bytes = store
                    .component(hash)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or_else(|| {
                        ApiError::internal("loading a component", "its bytes are not in the store")
                    })?;
                engine
                    .load(&bytes)
                    .await
                    .map_err(|e| ApiError::internal("loading a stored component", e))
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// The capabilities of one call of `deployed`: its grants and limits,
    /// and its connection's backend when it is bound to one.
    pub(crate) async fn capabilities(
        &self,
        connection: Option<ConnectionId>,
        grants: Arc<Grants>,
        limits: PluginLimits,
    ) -> Result<Capabilities, ApiError> {
        let mut caps = Capabilities::unconnected();
        caps.grants = grants;
        caps.limits = limits;
        if let Some(id) = connection {
            let backend = self.connections.backend(id).await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "connection_unavailable",
                    e.0,
                )
                .retry_after(30)
            })?;
            caps.records = backend.records;
            caps.metadata = backend.metadata;
        }
        Ok(caps)
    }

    /// Builds the deployment of `version` of `plugin` from a compiled
    /// component: describes it under its capabilities (auditing, as
    /// `actor`'s, the Dataverse calls its `describe` made) and compiles its
    /// input schemas.
    pub(crate) async fn prepare(
        &self,
        plugin: Plugin,
        version: PluginVersion,
        compiled: &Compiled,
        actor: &str,
    ) -> Result<Arc<Deployed>, ApiError> {
        let settings = Settings::parse(&version.grants, &version.limits)?;
        let grants = Arc::new(settings.grants);
        let caps = self
            .capabilities(plugin.connection, grants.clone(), settings.limits)
            .await?;
        let described = compiled.describe_recorded(&caps).await;
        if !described.calls.is_empty() {
            self.audit_describe(&plugin, &version, actor, &described)
                .await;
        }
        let compiled = described.plugin.map_err(invalid_component)?;
        let mut validators = HashMap::new();
        for action in compiled.actions() {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&action.input_schema)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_component",
                        format!(
                            "the input schema of action '{}' is not a usable JSON Schema: {e}",
                            action.name
                        ),
                    )
                })?;
            validators.insert(action.name.clone(), validator);
        }
        Ok(Arc::new(Deployed {
            plugin,
            version,
            compiled,
            grants,
            limits: settings.limits,
            validators,
        }))
    }

    /// Records what a plugin's `describe` did in Dataverse: the calls a
    /// plugin makes are audited whether an action or its description made
    /// them.
    async fn audit_describe(
        &self,
        plugin: &Plugin,
        version: &PluginVersion,
        actor: &str,
        described: &Described,
    ) {
        let (outcome, error) = match &described.plugin {
            Ok(_) => (AuditOutcome::Success, None),
            Err(e) => (AuditOutcome::Failure, Some(e.to_string())),
        };
        let detail = json!({
            "plugin": plugin.name.as_str(),
            "version": version.version,
            "calls": described.calls,
            "error": error,
        });
        self.audit
            .record(NewAuditEntry {
                at: time::OffsetDateTime::now_utc(),
                tenant: Some(plugin.tenant),
                plugin: Some(plugin.id),
                actor: actor.to_owned(),
                action: "plugin.describe".into(),
                outcome,
                request_id: None,
                detail,
            })
            .await;
    }

    /// The tenant's plugin `name`, deployed: from memory, else loaded from
    /// the store (404 when it does not exist or has no active version).
    pub(crate) async fn deployed(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Arc<Deployed>, ApiError> {
        let key = (tenant, name.clone());
        self.deployed
            .try_get_with(key, self.load(tenant, name))
            .await
            .map_err(|e| (*e).clone())
    }

    async fn load(&self, tenant: TenantId, name: &Name) -> Result<Arc<Deployed>, ApiError> {
        let plugin = self
            .store
            .plugin_by_name(tenant, name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("there is no plugin named {name:?}")))?;
        let active = plugin.active_version.ok_or_else(|| {
            ApiError::not_found(format!("plugin {name:?} has no active version; deploy one"))
        })?;
        let version = self
            .store
            .plugin_versions(plugin.id)
            .await?
            .into_iter()
            .find(|v| v.version == active)
            .ok_or_else(|| {
                ApiError::internal("loading a plugin", "its active version is missing")
            })?;
        let compiled = self.compiled_by_hash(&version.component).await?;
        self.prepare(plugin, version, &compiled, SYSTEM_ACTOR).await
    }

    /// Serves `deployed` from now on.
    pub(crate) async fn install(&self, deployed: Arc<Deployed>) {
        let key = (deployed.plugin.tenant, deployed.plugin.name.clone());
        self.deployed.insert(key, deployed).await;
    }

    /// Forgets a plugin (deleted, or its tenant deleted); the next call
    /// loads it from the store again.
    pub(crate) async fn forget(&self, tenant: TenantId, name: &Name) {
        self.deployed.invalidate(&(tenant, name.clone())).await;
    }

    /// Forgets every plugin of a tenant.
    pub(crate) fn forget_tenant(&self, tenant: TenantId) {
        let _ = self
            .deployed
            .invalidate_entries_if(move |(t, _), _| *t == tenant);
    }
}
