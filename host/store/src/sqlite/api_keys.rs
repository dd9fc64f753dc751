//! SQL of API key records (public id, hash, rights, dates).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::{Cols, SqliteBackend, millis};
use crate::backend::ApiKeyRows;
use crate::{ApiKeyId, ApiKeyRecord, ApiKeyRights, StoreError, TenantId};

macro_rules! columns {
    () => {
        "id, tenant_id, hash, rights, label, created_at, revoked_at"
    };
}

fn api_key(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    let c = Cols(row);
    Ok(ApiKeyRecord {
        id: c.parsed("id", ApiKeyId::parse)?,
        tenant: c.uuid("tenant_id")?.into(),
        hash: c.hash("hash")?,
        rights: c.parsed("rights", ApiKeyRights::parse)?,
        label: c.text("label")?,
        created_at: c.time("created_at")?,
        revoked_at: c.opt_time("revoked_at")?,
    })
}

#[async_trait]
impl ApiKeyRows for SqliteBackend {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO api_keys (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, NULL)"
        );
        sqlx::query(sql)
            .bind(key.id.as_str())
            .bind(key.tenant.to_string())
            .bind(key.hash.as_slice())
            .bind(key.rights.to_text())
            .bind(&key.label)
            .bind(millis(key.created_at))
            .execute(&self.writer)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::AlreadyExists {
                        what: "API key",
                        key: key.id.to_string(),
                    }
                }
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::NotFound {
                        what: "tenant",
                        key: key.tenant.to_string(),
                    }
                }
                _ => StoreError::database("recording an API key", e),
            })?;
        Ok(())
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1");
        let query = sqlx::query(sql).bind(id.as_str());
        let row = self.fetch_optional("reading an API key", query).await?;
        row.as_ref().map(api_key).transpose()
    }

    async fn api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        // Times are kept to the millisecond: rows made within one keep
        // the order they were made in (rowid), not their random ids'.
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, rowid"
        );
        let query = sqlx::query(sql).bind(tenant.to_string());
        let rows = self.fetch_all("listing API keys", query).await?;
        rows.iter().map(api_key).collect()
    }

    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3
             WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(tenant.to_string())
        .bind(millis(at))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::database("revoking an API key", e))?
        .rows_affected();
        Ok(revoked > 0)
    }
}
