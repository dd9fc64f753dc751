//! Plugins and their versions. A version is immutable: its component (by
//! content hash, the bytes stored once however many versions or tenants use
//! them), its grants and its limits. Changing grants publishes a new version
//! of the same bytes. The active version is a switch on the plugin, so
//! deploying and rolling back are one row update.

use serde_json::Value;
use time::OffsetDateTime;

use crate::{ConnectionId, ContentHash, Name, PluginId, Store, StoreError, TenantId};

/// Largest component accepted (a component is compiled at load; bigger ones
/// are not plugins but accidents).
pub const MAX_COMPONENT_BYTES: usize = 256 * 1024 * 1024;

/// A tenant's plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// Its id.
    pub id: PluginId,
    /// The owning tenant.
    pub tenant: TenantId,
    /// Its name, unique in the tenant.
    pub name: Name,
    /// The connection its `records` and `metadata` calls use.
    pub connection: Option<ConnectionId>,
    /// The version served, if any.
    pub active_version: Option<u32>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed (bound, published, switched).
    pub updated_at: OffsetDateTime,
}

/// One published version (without its bytes; see [`Store::component`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginVersion {
    /// The plugin.
    pub plugin: PluginId,
    /// Its number, from 1.
    pub version: u32,
    /// The component's content hash.
    pub component: ContentHash,
    /// The component's size in bytes.
    pub component_size: u64,
    /// Tables and operations granted (JSON, shaped by the runtime).
    pub grants: Value,
    /// Limits (JSON, shaped by the runtime).
    pub limits: Value,
    /// When it was published.
    pub created_at: OffsetDateTime,
}

/// A version to publish.
#[derive(Debug, Clone)]
pub struct NewPluginVersion {
    /// The component bytes.
    pub component: Vec<u8>,
    /// Grants (stored as JSON text).
    pub grants: Value,
    /// Limits (stored as JSON text).
    pub limits: Value,
}

impl Store {
    /// Creates a plugin without versions.
    pub async fn create_plugin(&self, tenant: TenantId, name: &Name) -> Result<Plugin, StoreError> {
        let now = crate::now();
        let plugin = Plugin {
            id: PluginId::new(),
            tenant,
            name: name.clone(),
            connection: None,
            active_version: None,
            created_at: now,
            updated_at: now,
        };
        self.backend.insert_plugin(&plugin).await?;
        Ok(plugin)
    }

    /// The plugin with this id.
    pub async fn plugin(&self, id: PluginId) -> Result<Option<Plugin>, StoreError> {
        self.backend.plugin(id).await
    }

    /// The tenant's plugin of this name.
    pub async fn plugin_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Plugin>, StoreError> {
        self.backend.plugin_by_name(tenant, name).await
    }

    /// The tenant's plugins, by name.
    pub async fn plugins(&self, tenant: TenantId) -> Result<Vec<Plugin>, StoreError> {
        self.backend.plugins(tenant).await
    }

    /// Binds a plugin to a live connection of its own tenant, or unbinds it.
    pub async fn bind_plugin(
        &self,
        plugin: PluginId,
        connection: Option<ConnectionId>,
    ) -> Result<Plugin, StoreError> {
        self.backend.bind_plugin(plugin, connection).await
    }

    /// Publishes the next version: the component (unless its bytes are
    /// stored already) and the version row in one transaction, and, when
    /// `activate`, the switch to it as well.
    pub async fn publish_version(
        &self,
        plugin: PluginId,
        new: NewPluginVersion,
        activate: bool,
    ) -> Result<PluginVersion, StoreError> {
        if new.component.is_empty() || new.component.len() > MAX_COMPONENT_BYTES {
            return Err(StoreError::Invalid {
                what: "component",
                why: format!(
                    "it has {} bytes; a component has 1 to {MAX_COMPONENT_BYTES}",
                    new.component.len()
                ),
            });
        }
        self.backend.publish_version(plugin, new, activate).await
    }

    /// Serves `version` from now on (a deploy's switch, or a rollback).
    pub async fn activate_version(
        &self,
        plugin: PluginId,
        version: u32,
    ) -> Result<Plugin, StoreError> {
        self.backend.activate_version(plugin, version).await
    }

    /// A plugin's versions, oldest first.
    pub async fn plugin_versions(
        &self,
        plugin: PluginId,
    ) -> Result<Vec<PluginVersion>, StoreError> {
        self.backend.plugin_versions(plugin).await
    }

    /// The component bytes with this hash.
    pub async fn component(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.component(hash).await
    }

    /// Deletes a plugin with its versions, and the components no other
    /// version uses. `false` when there was no such plugin.
    pub async fn delete_plugin(&self, plugin: PluginId) -> Result<bool, StoreError> {
        self.backend.delete_plugin(plugin).await
    }
}
