//! SQL of tenants.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;

use super::{Cols, SqliteBackend, delete_with_components, insert_error, millis};
use crate::backend::TenantRows;
use crate::{Name, StoreError, Tenant, TenantId};

macro_rules! columns {
    () => {
        "id, name, display_name, created_at"
    };
}

fn tenant(row: &SqliteRow) -> Result<Tenant, StoreError> {
    let c = Cols(row);
    Ok(Tenant {
        id: c.uuid("id")?.into(),
        name: c.name("name")?,
        display_name: c.text("display_name")?,
        created_at: c.time("created_at")?,
    })
}

#[async_trait]
impl TenantRows for SqliteBackend {
    async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant.id.to_string())
        .bind(tenant.name.as_str())
        .bind(&tenant.display_name)
        .bind(millis(tenant.created_at))
        .execute(&self.writer)
        .await
        .map_err(|e| insert_error(e, "creating a tenant", "tenant", tenant.name.as_str()))?;
        Ok(())
    }

    async fn tenant_by_id(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM tenants WHERE id = $1");
        let row = self
            .fetch_optional("reading a tenant", sqlx::query(sql).bind(id.to_string()))
            .await?;
        row.as_ref().map(tenant).transpose()
    }

    async fn tenant_by_name(&self, name: &Name) -> Result<Option<Tenant>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM tenants WHERE name = $1");
        let row = self
            .fetch_optional("reading a tenant", sqlx::query(sql).bind(name.as_str()))
            .await?;
        row.as_ref().map(tenant).transpose()
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM tenants ORDER BY name");
        let rows = self.fetch_all("listing tenants", sqlx::query(sql)).await?;
        rows.iter().map(tenant).collect()
    }

    async fn delete_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        // Connections, history, certificates, plugins, versions and keys
        // follow by ON DELETE CASCADE.
        let sql = "DELETE FROM tenants WHERE id = $1";
        delete_with_components(self, sql, id.to_string(), "deleting a tenant").await
    }
}
