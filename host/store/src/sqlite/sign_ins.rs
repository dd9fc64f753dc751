//! SQL of delegated sign-ins (the refresh token as sealed bytes only).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{Cols, SqliteBackend, millis};
use crate::backend::SignInRows;
use crate::{Sealed, SignIn, StoreError};

macro_rules! columns {
    () => {
        "entra_tenant_id, user_oid, upn, scope, sealed_refresh_token, signed_in_at"
    };
}

fn sign_in(row: &SqliteRow) -> Result<SignIn, StoreError> {
    let c = Cols(row);
    Ok(SignIn {
        entra_tenant_id: c.uuid("entra_tenant_id")?,
        user_oid: c.uuid("user_oid")?,
        upn: c.opt_text("upn")?,
        scope: c.text("scope")?,
        sealed_refresh_token: Sealed::new(c.blob("sealed_refresh_token")?),
        signed_in_at: c.time("signed_in_at")?,
    })
}

#[async_trait]
impl SignInRows for SqliteBackend {
    async fn upsert_sign_in(&self, sign_in: &SignIn) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO sign_ins (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (entra_tenant_id, user_oid) DO UPDATE SET
                 upn = excluded.upn, scope = excluded.scope,
                 sealed_refresh_token = excluded.sealed_refresh_token,
                 signed_in_at = excluded.signed_in_at"
        );
        sqlx::query(sql)
            .bind(sign_in.entra_tenant_id.to_string())
            .bind(sign_in.user_oid.to_string())
            .bind(&sign_in.upn)
            .bind(&sign_in.scope)
            .bind(sign_in.sealed_refresh_token.as_bytes())
            .bind(millis(sign_in.signed_in_at))
            .execute(&self.writer)
            .await
            .map_err(|e| StoreError::database("storing a sign-in", e))?;
        Ok(())
    }

    async fn sign_in(&self, tenant: Uuid, user: Uuid) -> Result<Option<SignIn>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM sign_ins WHERE entra_tenant_id = $1 AND user_oid = $2"
        );
        let query = sqlx::query(sql)
            .bind(tenant.to_string())
            .bind(user.to_string());
        let row = self.fetch_optional("reading a sign-in", query).await?;
        row.as_ref().map(sign_in).transpose()
    }

    async fn sign_ins(&self) -> Result<Vec<SignIn>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM sign_ins ORDER BY upn, user_oid"
        );
        let rows = self.fetch_all("listing sign-ins", sqlx::query(sql)).await?;
        rows.iter().map(sign_in).collect()
    }

    async fn delete_sign_in(&self, tenant: Uuid, user: Uuid) -> Result<bool, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM sign_ins WHERE entra_tenant_id = $1 AND user_oid = $2")
                .bind(tenant.to_string())
                .bind(user.to_string())
                .execute(&self.writer)
                .await
                .map_err(|e| StoreError::database("deleting a sign-in", e))?
                .rows_affected();
        Ok(deleted > 0)
    }
}
