//! SQL of plugins, their versions and the content-addressed components.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};

use super::connections::locked_connection;
use super::{Cols, SqliteBackend, commit, delete_with_components, millis, row_by_id};
use crate::backend::PluginRows;
use crate::{
    ConnectionId, ConnectionState, ContentHash, Name, NewPluginVersion, Plugin, PluginId,
    PluginVersion, StoreError, TenantId,
};

macro_rules! columns {
    () => {
        "id, tenant_id, name, connection_id, active_version, created_at, updated_at"
    };
}

fn version_number(column: &str, value: Option<i64>) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| StoreError::Database {
                action: "reading a row",
                detail: format!("column {column} holds {v}, not a version number"),
            })
        })
        .transpose()
}

fn plugin(row: &SqliteRow) -> Result<Plugin, StoreError> {
    let c = Cols(row);
    Ok(Plugin {
        id: c.uuid("id")?.into(),
        tenant: c.uuid("tenant_id")?.into(),
        name: c.name("name")?,
        connection: c.opt_uuid("connection_id")?.map(ConnectionId::from),
        active_version: version_number("active_version", c.opt_int("active_version")?)?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

fn plugin_version(row: &SqliteRow) -> Result<PluginVersion, StoreError> {
    let c = Cols(row);
    Ok(PluginVersion {
        plugin: c.uuid("plugin_id")?.into(),
        version: version_number("version", Some(c.int("version")?))?.unwrap_or_default(),
        component: ContentHash::from_bytes(c.hash("component_hash")?),
        component_size: c.int("size")?.max(0) as u64,
        grants: c.json("grants")?,
        limits: c.json("limits")?,
        created_at: c.time("created_at")?,
    })
}

async fn locked_plugin(
    tx: &mut Transaction<'static, Sqlite>,
    id: PluginId,
    action: &'static str,
) -> Result<Plugin, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM plugins WHERE id = $1");
    row_by_id(tx, sql, "plugin", id.to_string(), action, plugin).await
}

/// Deletes the components no plugin version uses any more.
pub(super) async fn prune_components(
    tx: &mut Transaction<'static, Sqlite>,
    action: &'static str,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM components WHERE NOT EXISTS
             (SELECT 1 FROM plugin_versions WHERE component_hash = components.hash)",
    )
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::database(action, e))?;
    Ok(())
}

#[async_trait]
impl PluginRows for SqliteBackend {
    async fn insert_plugin(&self, plugin: &Plugin) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO plugins (",
            columns!(),
            ") VALUES ($1, $2, $3, NULL, NULL, $4, $5)"
        );
        sqlx::query(sql)
            .bind(plugin.id.to_string())
            .bind(plugin.tenant.to_string())
            .bind(plugin.name.as_str())
            .bind(millis(plugin.created_at))
            .bind(millis(plugin.updated_at))
            .execute(&self.writer)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::AlreadyExists {
                        what: "plugin",
                        key: plugin.name.to_string(),
                    }
                }
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::NotFound {
                        what: "tenant",
                        key: plugin.tenant.to_string(),
                    }
                }
                _ => StoreError::database("creating a plugin", e),
            })?;
        Ok(())
    }

    async fn plugin(&self, id: PluginId) -> Result<Option<Plugin>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM plugins WHERE id = $1");
        let query = sqlx::query(sql).bind(id.to_string());
        let row = self.fetch_optional("reading a plugin", query).await?;
        row.as_ref().map(plugin).transpose()
    }

    async fn plugin_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Plugin>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM plugins WHERE tenant_id = $1 AND name = $2"
        );
        let query = sqlx::query(sql)
            .bind(tenant.to_string())
            .bind(name.as_str());
        let row = self.fetch_optional("reading a plugin", query).await?;
        row.as_ref().map(plugin).transpose()
    }

    async fn plugins(&self, tenant: TenantId) -> Result<Vec<Plugin>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM plugins WHERE tenant_id = $1 ORDER BY name"
        );
        let query = sqlx::query(sql).bind(tenant.to_string());
        let rows = self.fetch_all("listing plugins", query).await?;
        rows.iter().map(plugin).collect()
    }

    async fn bind_plugin(
        &self,
        id: PluginId,
        connection: Option<ConnectionId>,
    ) -> Result<Plugin, StoreError> {
        const ACTION: &str = "binding a plugin";
        let mut tx = self.write(ACTION).await?;
        let mut bound = locked_plugin(&mut tx, id, ACTION).await?;
        if let Some(connection_id) = connection {
            let target = locked_connection(&mut tx, connection_id, ACTION).await?;
            if target.tenant != bound.tenant || target.state == ConnectionState::Deleted {
                // Another tenant's connection is reported as absent, not as foreign.
                return Err(StoreError::NotFound {
                    what: "connection",
                    key: connection_id.to_string(),
                });
            }
        }
        bound.connection = connection;
        bound.updated_at = crate::now();
        sqlx::query("UPDATE plugins SET connection_id = $2, updated_at = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(connection.map(|c| c.to_string()))
            .bind(millis(bound.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?;
        commit(tx, ACTION).await?;
        Ok(bound)
    }

    async fn publish_version(
        &self,
        id: PluginId,
        new: NewPluginVersion,
        activate: bool,
    ) -> Result<PluginVersion, StoreError> {
        const ACTION: &str = "publishing a plugin version";
        let hash = ContentHash::of(&new.component);
        let now = crate::now();
        let mut tx = self.write(ACTION).await?;
        locked_plugin(&mut tx, id, ACTION).await?;
        sqlx::query(
            "INSERT INTO components (hash, bytes, size, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(new.component.as_slice())
        .bind(new.component.len() as i64)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::database(ACTION, e))?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO plugin_versions (plugin_id, version, component_hash, grants, limits, created_at)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5
             FROM plugin_versions WHERE plugin_id = $1
             RETURNING version",
        )
        .bind(id.to_string())
        .bind(hash.as_bytes().as_slice())
        .bind(new.grants.to_string())
        .bind(new.limits.to_string())
        .bind(millis(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::database(ACTION, e))?;
        let switch = if activate {
            sqlx::query("UPDATE plugins SET active_version = $2, updated_at = $3 WHERE id = $1")
                .bind(id.to_string())
                .bind(version)
                .bind(millis(now))
        } else {
            sqlx::query("UPDATE plugins SET updated_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(millis(now))
        };
        switch
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?;
        commit(tx, ACTION).await?;
        Ok(PluginVersion {
            plugin: id,
            version: version_number("version", Some(version))?.unwrap_or_default(),
            component: hash,
            component_size: new.component.len() as u64,
            grants: new.grants,
            limits: new.limits,
            created_at: now,
        })
    }

    async fn activate_version(&self, id: PluginId, version: u32) -> Result<Plugin, StoreError> {
        const ACTION: &str = "switching a plugin's version";
        let mut tx = self.write(ACTION).await?;
        let mut switched = locked_plugin(&mut tx, id, ACTION).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM plugin_versions WHERE plugin_id = $1 AND version = $2",
        )
        .bind(id.to_string())
        .bind(i64::from(version))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::database(ACTION, e))?;
        if exists == 0 {
            return Err(StoreError::NotFound {
                what: "plugin version",
                key: format!("{} version {version}", switched.name),
            });
        }
        switched.active_version = Some(version);
        switched.updated_at = crate::now();
        sqlx::query("UPDATE plugins SET active_version = $2, updated_at = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(i64::from(version))
            .bind(millis(switched.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?;
        commit(tx, ACTION).await?;
        Ok(switched)
    }

    async fn plugin_versions(&self, id: PluginId) -> Result<Vec<PluginVersion>, StoreError> {
        let query = sqlx::query(
            "SELECT v.plugin_id, v.version, v.component_hash, c.size, v.grants, v.limits, v.created_at
             FROM plugin_versions v JOIN components c ON c.hash = v.component_hash
             WHERE v.plugin_id = $1 ORDER BY v.version",
        )
        .bind(id.to_string());
        let rows = self.fetch_all("listing plugin versions", query).await?;
        rows.iter().map(plugin_version).collect()
    }

    async fn component(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, StoreError> {
        let query = sqlx::query("SELECT bytes FROM components WHERE hash = $1")
            .bind(hash.as_bytes().as_slice());
        let row = self.fetch_optional("reading a component", query).await?;
        row.as_ref().map(|r| Cols(r).blob("bytes")).transpose()
    }

    async fn delete_plugin(&self, id: PluginId) -> Result<bool, StoreError> {
        let sql = "DELETE FROM plugins WHERE id = $1";
        delete_with_components(self, sql, id.to_string(), "deleting a plugin").await
    }
}
