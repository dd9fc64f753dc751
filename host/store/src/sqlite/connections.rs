//! SQL of connections, their history and provisioning steps.

use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};

use super::{Cols, SqliteBackend, commit, millis, row_by_id};
use crate::backend::ConnectionRows;
use crate::connections::{ConnectionFacts, ConnectionUpdate};
use crate::{
    Connection, ConnectionId, ConnectionMode, ConnectionState, HistoryEntry, HistoryEvent, Name,
    ProvisioningStep, StepRecord, StepStatus, StoreError, TenantId,
};

macro_rules! columns {
    () => {
        "id, tenant_id, name, environment_url, entra_tenant_id, client_id, \
                       security_role, mode, state, created_at, updated_at"
    };
}

fn connection(row: &SqliteRow) -> Result<Connection, StoreError> {
    let c = Cols(row);
    Ok(Connection {
        id: c.uuid("id")?.into(),
        tenant: c.uuid("tenant_id")?.into(),
        name: c.name("name")?,
        environment_url: c.text("environment_url")?,
        entra_tenant_id: c.opt_uuid("entra_tenant_id")?,
        client_id: c.opt_uuid("client_id")?,
        security_role: c.opt_text("security_role")?,
        mode: c.parsed("mode", ConnectionMode::parse)?,
        state: c.parsed("state", ConnectionState::parse)?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

/// A failed write as the error a caller can act on: a taken name, a
/// missing parent row, or a database failure.
pub(super) fn write_error(error: sqlx::Error, action: &'static str, key: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            what: "connection",
            key: key.to_string(),
        },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
            what: "tenant or connection",
            key: key.to_string(),
        },
        _ => StoreError::database(action, error),
    }
}

/// Reads a connection inside a transaction; [`StoreError::NotFound`] when absent.
pub(super) async fn locked_connection(
    tx: &mut Transaction<'static, Sqlite>,
    id: ConnectionId,
    action: &'static str,
) -> Result<Connection, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM connections WHERE id = $1");
    row_by_id(tx, sql, "connection", id.to_string(), action, connection).await
}

/// Appends a history row (the next `seq` of this connection).
pub(super) async fn insert_history(
    tx: &mut Transaction<'static, Sqlite>,
    connection: &Connection,
    actor: &str,
    event: HistoryEvent,
    detail: &Value,
    action: &'static str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO connection_history (connection_id, seq, at, actor, event, state, detail)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6
         FROM connection_history WHERE connection_id = $1",
    )
    .bind(connection.id.to_string())
    .bind(millis(crate::now()))
    .bind(actor)
    .bind(event.as_str())
    .bind(connection.state.as_str())
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::database(action, e))?;
    Ok(())
}

/// Writes every mutable field of `connection`.
async fn write_connection(
    tx: &mut Transaction<'static, Sqlite>,
    connection: &Connection,
    action: &'static str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE connections SET name = $2, environment_url = $3, entra_tenant_id = $4,
             client_id = $5, security_role = $6, state = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(connection.id.to_string())
    .bind(connection.name.as_str())
    .bind(&connection.environment_url)
    .bind(connection.entra_tenant_id.map(|id| id.to_string()))
    .bind(connection.client_id.map(|id| id.to_string()))
    .bind(&connection.security_role)
    .bind(connection.state.as_str())
    .bind(millis(connection.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| write_error(e, action, connection.name.as_str()))?;
    Ok(())
}

async fn has_active_certificate(
    tx: &mut Transaction<'static, Sqlite>,
    id: ConnectionId,
    action: &'static str,
) -> Result<bool, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM certificates WHERE connection_id = $1 AND state = 'active'",
    )
    .bind(id.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| StoreError::database(action, e))?;
    Ok(count > 0)
}

#[async_trait]
impl ConnectionRows for SqliteBackend {
    async fn insert_connection(
        &self,
        connection: &Connection,
        actor: &str,
        detail: Value,
    ) -> Result<(), StoreError> {
        const ACTION: &str = "creating a connection";
        let mut tx = self.write(ACTION).await?;
        let sql = concat!(
            "INSERT INTO connections (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(sql)
            .bind(connection.id.to_string())
            .bind(connection.tenant.to_string())
            .bind(connection.name.as_str())
            .bind(&connection.environment_url)
            .bind(connection.entra_tenant_id.map(|id| id.to_string()))
            .bind(connection.client_id.map(|id| id.to_string()))
            .bind(&connection.security_role)
            .bind(connection.mode.as_str())
            .bind(connection.state.as_str())
            .bind(millis(connection.created_at))
            .bind(millis(connection.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, ACTION, connection.name.as_str()))?;
        insert_history(
            &mut tx,
            connection,
            actor,
            HistoryEvent::Created,
            &detail,
            ACTION,
        )
        .await?;
        commit(tx, ACTION).await
    }

    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM connections WHERE id = $1");
        let row = self
            .fetch_optional(
                "reading a connection",
                sqlx::query(sql).bind(id.to_string()),
            )
            .await?;
        row.as_ref().map(connection).transpose()
    }

    async fn connection_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Connection>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM connections WHERE tenant_id = $1 AND name = $2 AND state <> 'deleted'"
        );
        let query = sqlx::query(sql)
            .bind(tenant.to_string())
            .bind(name.as_str());
        let row = self.fetch_optional("reading a connection", query).await?;
        row.as_ref().map(connection).transpose()
    }

    async fn connections(
        &self,
        tenant: TenantId,
        include_deleted: bool,
    ) -> Result<Vec<Connection>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM connections WHERE tenant_id = $1 AND ($2 OR state <> 'deleted')
             ORDER BY name, created_at, rowid"
        );
        let query = sqlx::query(sql)
            .bind(tenant.to_string())
            .bind(include_deleted);
        let rows = self.fetch_all("listing connections", query).await?;
        rows.iter().map(connection).collect()
    }

    async fn update_connection(
        &self,
        id: ConnectionId,
        actor: &str,
        update: ConnectionUpdate,
    ) -> Result<Connection, StoreError> {
        const ACTION: &str = "changing a connection";
        let mut tx = self.write(ACTION).await?;
        let mut connection = locked_connection(&mut tx, id, ACTION).await?;
        let facts = ConnectionFacts {
            has_active_certificate: has_active_certificate(&mut tx, id, ACTION).await?,
        };
        // A refusal drops `tx`, which rolls it back.
        let (event, detail) = update(&mut connection, &facts)?;
        connection.updated_at = crate::now();
        write_connection(&mut tx, &connection, ACTION).await?;
        insert_history(&mut tx, &connection, actor, event, &detail, ACTION).await?;
        commit(tx, ACTION).await?;
        Ok(connection)
    }

    async fn delete_connection(
        &self,
        id: ConnectionId,
        actor: &str,
    ) -> Result<Connection, StoreError> {
        const ACTION: &str = "deleting a connection";
        let mut tx = self.write(ACTION).await?;
        let mut connection = locked_connection(&mut tx, id, ACTION).await?;
        if connection.state == ConnectionState::Deleted {
            // Deleting twice is not an error: a resumed flow may repeat it.
            return Ok(connection);
        }
        let bound: Vec<String> =
            sqlx::query_scalar("SELECT name FROM plugins WHERE connection_id = $1 ORDER BY name")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| StoreError::database(ACTION, e))?;
        if !bound.is_empty() {
            return Err(StoreError::NotAllowed(format!(
                "connection {} is used by plugin(s) {}: bind them to another connection first",
                connection.name,
                bound.join(", ")
            )));
        }
        let removed = sqlx::query("DELETE FROM certificates WHERE connection_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?
            .rows_affected();
        connection.state = ConnectionState::Deleted;
        connection.updated_at = crate::now();
        write_connection(&mut tx, &connection, ACTION).await?;
        let detail = json!({ "certificates_removed": removed });
        insert_history(
            &mut tx,
            &connection,
            actor,
            HistoryEvent::Deleted,
            &detail,
            ACTION,
        )
        .await?;
        commit(tx, ACTION).await?;
        Ok(connection)
    }

    async fn connection_history(&self, id: ConnectionId) -> Result<Vec<HistoryEntry>, StoreError> {
        let query = sqlx::query(
            "SELECT seq, at, actor, event, state, detail FROM connection_history
             WHERE connection_id = $1 ORDER BY seq",
        )
        .bind(id.to_string());
        let rows = self
            .fetch_all("reading a connection's history", query)
            .await?;
        rows.iter()
            .map(|row| {
                let c = Cols(row);
                Ok(HistoryEntry {
                    seq: c.int("seq")?,
                    at: c.time("at")?,
                    actor: c.text("actor")?,
                    event: c.parsed("event", HistoryEvent::parse)?,
                    state: c.parsed("state", ConnectionState::parse)?,
                    detail: c.json("detail")?,
                })
            })
            .collect()
    }

    async fn upsert_step(&self, id: ConnectionId, record: &StepRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provisioning_steps (connection_id, step, status, detail, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (connection_id, step) DO UPDATE SET
                 status = excluded.status, detail = excluded.detail, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(record.step.as_str())
        .bind(record.status.as_str())
        .bind(record.detail.to_string())
        .bind(millis(record.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| write_error(e, "recording a provisioning step", &id.to_string()))?;
        Ok(())
    }

    async fn steps(&self, id: ConnectionId) -> Result<Vec<StepRecord>, StoreError> {
        let query = sqlx::query(
            "SELECT step, status, detail, updated_at FROM provisioning_steps WHERE connection_id = $1",
        )
        .bind(id.to_string());
        let rows = self.fetch_all("reading provisioning steps", query).await?;
        rows.iter()
            .map(|row| {
                let c = Cols(row);
                Ok(StepRecord {
                    step: c.parsed("step", ProvisioningStep::parse)?,
                    status: c.parsed("status", StepStatus::parse)?,
                    detail: c.json("detail")?,
                    updated_at: c.time("updated_at")?,
                })
            })
            .collect()
    }
}
