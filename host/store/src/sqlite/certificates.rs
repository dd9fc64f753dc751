//! SQL of connection certificates. Every state change writes the
//! connection's history row in the same transaction.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::connections::{insert_history, locked_connection};
use super::{Cols, SqliteBackend, commit, millis, row_by_id};
use crate::backend::CertificateRows;
use crate::certificates::certificate_detail;
use crate::{
    CertificateId, CertificateState, ConnectionId, ConnectionState, HistoryEvent, Sealed,
    StoreError, StoredCertificate,
};

macro_rules! columns {
    () => {
        "id, connection_id, certificate_pem, sha1_thumbprint, sha256_thumbprint, \
                       not_before, not_after, state, sealed_private_key, created_at, last_used_at"
    };
}

fn certificate(row: &SqliteRow) -> Result<StoredCertificate, StoreError> {
    let c = Cols(row);
    Ok(StoredCertificate {
        id: c.uuid("id")?.into(),
        connection: c.uuid("connection_id")?.into(),
        certificate_pem: c.text("certificate_pem")?,
        sha1_thumbprint: c.text("sha1_thumbprint")?,
        sha256_thumbprint: c.text("sha256_thumbprint")?,
        not_before: c.time("not_before")?,
        not_after: c.time("not_after")?,
        state: c.parsed("state", CertificateState::parse)?,
        sealed_private_key: Sealed::new(c.blob("sealed_private_key")?),
        created_at: c.time("created_at")?,
        last_used_at: c.opt_time("last_used_at")?,
    })
}

async fn locked_certificate(
    tx: &mut Transaction<'static, Sqlite>,
    id: CertificateId,
    action: &'static str,
) -> Result<StoredCertificate, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM certificates WHERE id = $1");
    row_by_id(tx, sql, "certificate", id.to_string(), action, certificate).await
}

/// Sets the state of the certificate `id` (`by_connection`: of the
/// connection `id`'s active certificate).
async fn set_state(
    tx: &mut Transaction<'static, Sqlite>,
    by_connection: bool,
    id: String,
    state: CertificateState,
    action: &'static str,
) -> Result<(), StoreError> {
    let sql = if by_connection {
        "UPDATE certificates SET state = $2 WHERE connection_id = $1 AND state = 'active'"
    } else {
        "UPDATE certificates SET state = $2 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(state.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::database(action, e))?;
    Ok(())
}

#[async_trait]
impl CertificateRows for SqliteBackend {
    async fn insert_certificate(
        &self,
        mut new: StoredCertificate,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError> {
        const ACTION: &str = "storing a certificate";
        let mut tx = self.write(ACTION).await?;
        let connection = locked_connection(&mut tx, new.connection, ACTION).await?;
        if connection.state == ConnectionState::Deleted {
            return Err(StoreError::NotAllowed(format!(
                "connection {} is deleted",
                connection.name
            )));
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM certificates WHERE connection_id = $1 AND state = 'active'",
        )
        .bind(new.connection.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::database(ACTION, e))?;
        new.state = if active == 0 {
            CertificateState::Active
        } else {
            CertificateState::Pending
        };
        let sql = concat!(
            "INSERT INTO certificates (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(sql)
            .bind(new.id.to_string())
            .bind(new.connection.to_string())
            .bind(&new.certificate_pem)
            .bind(&new.sha1_thumbprint)
            .bind(&new.sha256_thumbprint)
            .bind(millis(new.not_before))
            .bind(millis(new.not_after))
            .bind(new.state.as_str())
            .bind(new.sealed_private_key.as_bytes())
            .bind(millis(new.created_at))
            .bind(new.last_used_at.map(millis))
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::AlreadyExists {
                        what: "certificate",
                        key: new.sha1_thumbprint.clone(),
                    }
                }
                _ => StoreError::database(ACTION, e),
            })?;
        let mut detail = certificate_detail(&new);
        detail["state"] = Value::from(new.state.as_str());
        let event = HistoryEvent::CertificateAdded;
        insert_history(&mut tx, &connection, actor, event, &detail, ACTION).await?;
        commit(tx, ACTION).await?;
        Ok(new)
    }

    async fn certificate(
        &self,
        id: CertificateId,
    ) -> Result<Option<StoredCertificate>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM certificates WHERE id = $1");
        let query = sqlx::query(sql).bind(id.to_string());
        let row = self.fetch_optional("reading a certificate", query).await?;
        row.as_ref().map(certificate).transpose()
    }

    async fn certificates(
        &self,
        connection: ConnectionId,
    ) -> Result<Vec<StoredCertificate>, StoreError> {
        // Times are kept to the millisecond: rows made within one keep
        // the order they were made in (rowid), not their random ids'.
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM certificates WHERE connection_id = $1 ORDER BY created_at, rowid"
        );
        let query = sqlx::query(sql).bind(connection.to_string());
        let rows = self.fetch_all("listing certificates", query).await?;
        rows.iter().map(certificate).collect()
    }

    async fn activate_certificate(
        &self,
        id: CertificateId,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError> {
        const ACTION: &str = "activating a certificate";
        let mut tx = self.write(ACTION).await?;
        let mut chosen = locked_certificate(&mut tx, id, ACTION).await?;
        if chosen.state == CertificateState::Active {
            return Ok(chosen);
        }
        let connection = locked_connection(&mut tx, chosen.connection, ACTION).await?;
        // The retiring one first: at most one active certificate per connection.
        let connection_key = chosen.connection.to_string();
        set_state(
            &mut tx,
            true,
            connection_key,
            CertificateState::Retiring,
            ACTION,
        )
        .await?;
        set_state(
            &mut tx,
            false,
            id.to_string(),
            CertificateState::Active,
            ACTION,
        )
        .await?;
        chosen.state = CertificateState::Active;
        let detail = certificate_detail(&chosen);
        let event = HistoryEvent::CertificateActivated;
        insert_history(&mut tx, &connection, actor, event, &detail, ACTION).await?;
        commit(tx, ACTION).await?;
        Ok(chosen)
    }

    async fn mark_certificate_used(
        &self,
        id: CertificateId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE certificates SET last_used_at = MAX(COALESCE(last_used_at, 0), $2) WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(millis(at))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::database("recording a certificate's use", e))?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "certificate",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    async fn remove_certificate(&self, id: CertificateId, actor: &str) -> Result<(), StoreError> {
        const ACTION: &str = "removing a certificate";
        let mut tx = self.write(ACTION).await?;
        let removed = locked_certificate(&mut tx, id, ACTION).await?;
        if removed.state == CertificateState::Active {
            return Err(StoreError::NotAllowed(format!(
                "certificate {} is the active one: activate another before removing it",
                removed.sha1_thumbprint
            )));
        }
        let connection = locked_connection(&mut tx, removed.connection, ACTION).await?;
        sqlx::query("DELETE FROM certificates WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?;
        let detail = certificate_detail(&removed);
        let event = HistoryEvent::CertificateRemoved;
        insert_history(&mut tx, &connection, actor, event, &detail, ACTION).await?;
        commit(tx, ACTION).await
    }
}
