//! The SQLite backend: one database file in the data directory, in WAL mode
//! with foreign keys on and a busy timeout, so the CLI and a running server
//! can share it. Every write goes through the one connection this process
//! writes with, reads through a small pool beside it. Write transactions
//! that read before they write start with `BEGIN IMMEDIATE`, taking the
//! write lock first, so a writer of another process (the CLI beside a
//! server) and this one wait for each other instead of failing half-way.

mod api_keys;
mod audit;
mod certificates;
mod connections;
mod open;
mod plugins;
mod rows;
mod sign_ins;
mod tenants;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row as _, Sqlite, Transaction};

use crate::StoreError;
use crate::backend::MetaRows;

pub(crate) use rows::{Cols, millis};

/// The database file's name inside the data directory (SQLite adds
/// `-wal` and `-shm` files beside it).
pub const DATABASE_FILE: &str = "dvhost.sqlite3";

/// The SQLite store.
pub(crate) struct SqliteBackend {
    /// Connections for reads.
    pool: SqlitePool,
    /// The one connection that writes (see [`open::Pools`]): every write,
    /// a transaction or a single statement, goes through it.
    writer: SqlitePool,
    path: PathBuf,
}

impl SqliteBackend {
    /// Opens the store in `data_dir` (see [`crate::Store::open_sqlite`]).
    pub(crate) async fn open(data_dir: &Path) -> Result<SqliteBackend, StoreError> {
        let (pools, path) = open::open(data_dir).await?;
        Ok(SqliteBackend {
            pool: pools.readers,
            writer: pools.writer,
            path,
        })
    }

    /// Begins a transaction holding the write lock from its first statement.
    async fn write(
        &self,
        action: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| StoreError::database(action, e))
    }

    /// The rows of a read-only query.
    async fn fetch_all<'q>(
        &self,
        action: &'static str,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::database(action, e))
    }

    /// The row of a read-only query, if any.
    async fn fetch_optional<'q>(
        &self,
        action: &'static str,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Option<SqliteRow>, StoreError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::database(action, e))
    }
}

/// The row `sql` selects by the id `$1` inside `tx`, read by `read`;
/// [`StoreError::NotFound`] naming `what` when there is none.
async fn row_by_id<T>(
    tx: &mut Transaction<'static, Sqlite>,
    sql: &'static str,
    what: &'static str,
    id: String,
    action: &'static str,
    read: fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let row = sqlx::query(sql)
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| StoreError::database(action, e))?
        .ok_or(StoreError::NotFound { what, key: id })?;
    read(&row)
}

/// Deletes the row `sql` names by the id `$1`, with the components no
/// plugin version uses any more, in one transaction. `true` when a row went.
async fn delete_with_components(
    backend: &SqliteBackend,
    sql: &'static str,
    id: String,
    action: &'static str,
) -> Result<bool, StoreError> {
    let mut tx = backend.write(action).await?;
    let deleted = sqlx::query(sql)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::database(action, e))?
        .rows_affected()
        > 0;
    plugins::prune_components(&mut tx, action).await?;
    commit(tx, action).await?;
    Ok(deleted)
}

/// Commits `tx`.
async fn commit(tx: Transaction<'static, Sqlite>, action: &'static str) -> Result<(), StoreError> {
    tx.commit()
        .await
        .map_err(|e| StoreError::database(action, e))
}

/// A unique-constraint failure as [`StoreError::AlreadyExists`], other
/// failures as database errors.
fn insert_error(
    error: sqlx::Error,
    action: &'static str,
    what: &'static str,
    key: &str,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            what,
            key: key.to_string(),
        },
        _ => StoreError::database(action, error),
    }
}

#[async_trait]
impl MetaRows for SqliteBackend {
    async fn master_key_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<(String, bool), StoreError> {
        const ACTION: &str = "checking the master key";
        let mut tx = self.write(ACTION).await?;
        let inserted = sqlx::query(
            "INSERT INTO store_meta (name, value) VALUES ('master_key_fingerprint', $1)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::database(ACTION, e))?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT value FROM store_meta WHERE name = 'master_key_fingerprint'")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::database(ACTION, e))?;
        commit(tx, ACTION).await?;
        Ok((Cols(&row).text("value")?, inserted))
    }

    async fn integrity_check(&self) -> Result<(), StoreError> {
        let rows = self
            .fetch_all("checking integrity", sqlx::query("PRAGMA integrity_check"))
            .await?;
        let report: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if report == ["ok"] {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: report.join("; "),
            })
        }
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
