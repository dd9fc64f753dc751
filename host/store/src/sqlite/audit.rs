//! SQL of the audit log: INSERT and SELECT only (the schema's triggers
//! refuse UPDATE and DELETE).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite};

use super::{Cols, SqliteBackend, millis};
use crate::backend::AuditRows;
use crate::{AuditEntry, AuditOutcome, AuditQuery, NewAuditEntry, PluginId, StoreError, TenantId};

fn entry(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let c = Cols(row);
    Ok(AuditEntry {
        seq: c.int("seq")?,
        entry: NewAuditEntry {
            at: c.time("at")?,
            tenant: c.opt_uuid("tenant_id")?.map(TenantId::from),
            plugin: c.opt_uuid("plugin_id")?.map(PluginId::from),
            actor: c.text("actor")?,
            action: c.text("action")?,
            outcome: c.parsed("outcome", AuditOutcome::parse)?,
            request_id: c.opt_text("request_id")?,
            detail: c.json("detail")?,
        },
    })
}

/// Rows in one multi-row INSERT: 8 parameters each, far below SQLite's
/// limit of 32,766 parameters per statement.
const ROWS_PER_INSERT: usize = 128;

/// One INSERT of several entries, in order (so their sequence numbers
/// follow the slice's order).
fn insert_all(entries: &[NewAuditEntry]) -> QueryBuilder<Sqlite> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO audit_log (at, tenant_id, plugin_id, actor, action, outcome, request_id, detail) ",
    );
    insert.push_values(entries, |mut row, entry| {
        row.push_bind(millis(entry.at))
            .push_bind(entry.tenant.map(|t| t.to_string()))
            .push_bind(entry.plugin.map(|p| p.to_string()))
            .push_bind(&entry.actor)
            .push_bind(&entry.action)
            .push_bind(entry.outcome.as_str())
            .push_bind(&entry.request_id)
            .push_bind(entry.detail.to_string());
    });
    insert
}

#[async_trait]
impl AuditRows for SqliteBackend {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        let mut insert = insert_all(std::slice::from_ref(entry));
        insert.push(" RETURNING seq");
        insert
            .build_query_scalar()
            .fetch_one(&self.writer)
            .await
            .map_err(|e| StoreError::database("appending to the audit log", e))
    }

    async fn append_audit_all(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        const ACTION: &str = "appending to the audit log";
        let mut tx = self.write(ACTION).await?;
        // One statement per chunk: each statement is a round trip to the
        // connection's thread, which costs more than the rows themselves.
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            insert_all(chunk)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::database(ACTION, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::database(ACTION, e))
    }

    async fn audit(&self, query: &AuditQuery, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        // Each filter is on only when its parameter is not NULL, so one
        // statement (and one prepared plan) serves every combination.
        let select = sqlx::query(
            "SELECT seq, at, tenant_id, plugin_id, actor, action, outcome, request_id, detail
             FROM audit_log
             WHERE ($1 IS NULL OR tenant_id = $1)
               AND ($2 IS NULL OR plugin_id = $2)
               AND ($3 IS NULL OR at >= $3)
               AND ($4 IS NULL OR at < $4)
               AND ($5 IS NULL OR seq < $5)
             ORDER BY seq DESC
             LIMIT $6",
        )
        .bind(query.tenant.map(|t| t.to_string()))
        .bind(query.plugin.map(|p| p.to_string()))
        .bind(query.since.map(millis))
        .bind(query.until.map(millis))
        .bind(query.before_seq)
        .bind(i64::from(limit));
        let rows = self.fetch_all("reading the audit log", select).await?;
        rows.iter().map(entry).collect()
    }
}
