//! Opening the SQLite store without harming what is there: the directory
//! is created when missing and must be writable; an existing database file
//! is first inspected through a connection that changes nothing (no journal
//! mode, no migration), and only a healthy dvhost store whose schema this
//! build knows is then opened for real and migrated forward.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _, SqliteConnection};

use super::DATABASE_FILE;
use crate::StoreError;
use crate::error::database_detail;

/// The schema migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// `PRAGMA application_id` of a dvhost store ('dvhs'), set by the first migration.
const APPLICATION_ID: i64 = 0x6476_6873;

/// How long a statement waits for another process's write lock (the CLI
/// while a server writes) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that read: in WAL mode readers do not wait for the writer,
/// and a few are all a control plane needs.
const READERS: u32 = 4;

/// The store's connections: SQLite has one writer at a time, so every write
/// goes through one connection of its own.
pub(super) struct Pools {
    /// Reads.
    pub(super) readers: SqlitePool,
    /// Writes, one at a time: writers of this process queue for it instead
    /// of retrying the file's lock, and since no other connection of this
    /// process writes, its page cache stays valid from one write to the
    /// next (another connection's write would make it read its pages
    /// again).
    pub(super) writer: SqlitePool,
}

pub(super) async fn open(data_dir: &Path) -> Result<(Pools, PathBuf), StoreError> {
    prepare_directory(data_dir)?;
    let path = data_dir.join(DATABASE_FILE);
    if inspect_files(&path)? {
        inspect_database(&path).await?;
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL keeps the database consistent through any
        // crash; a power loss may only undo the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    // The writer first: it sets WAL mode and migrates before anyone reads.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        // Kept open, so its page cache is kept too.
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone())
        .await
        .map_err(|e| classify(e, &path))?;
    MIGRATOR
        .run(&writer)
        .await
        .map_err(|e| StoreError::Migration {
            detail: match e {
                sqlx::migrate::MigrateError::Execute(inner) => database_detail(&inner),
                other => other.to_string(),
            },
        })?;
    let readers = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options)
        .await
        .map_err(|e| classify(e, &path))?;
    Ok((Pools { readers, writer }, path))
}

/// The newest schema version this build knows.
fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Creates a missing data directory (owner-only), and checks an existing
/// one is a writable directory.
fn prepare_directory(dir: &Path) -> Result<(), StoreError> {
    let unusable = |why: String| StoreError::DataDirectory {
        path: dir.to_path_buf(),
        why,
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(unusable("it exists and is not a directory".into())),
        Ok(meta) if meta.permissions().readonly() => Err(StoreError::ReadOnly {
            path: dir.to_path_buf(),
        }),
        Ok(_) => probe_write(dir),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| unusable(format!("it could not be created: {e}")))
        }
        Err(e) => Err(unusable(e.to_string())),
    }
}

/// Writes and removes a file of our own in `dir`: permission bits do not
/// tell everything (a read-only mount, another owner).
fn probe_write(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(format!(".dvhost-write-check-{}", std::process::id()));
    match fs::write(&probe, b"") {
        Ok(()) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(StoreError::ReadOnly {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => Err(StoreError::DataDirectory {
            path: dir.to_path_buf(),
            why: format!("a file could not be written there: {e}"),
        }),
    }
}

/// Checks the database file and its journal files, when they exist, are
/// writable regular files. `true` when the database file exists.
fn inspect_files(path: &Path) -> Result<bool, StoreError> {
    let mut exists = false;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let meta = match fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StoreError::DataDirectory {
                    path: file,
                    why: e.to_string(),
                });
            }
        };
        if !meta.is_file() {
            return Err(StoreError::DataDirectory {
                path: file,
                why: "it is not a regular file".into(),
            });
        }
        if meta.permissions().readonly() {
            return Err(StoreError::ReadOnly { path: file });
        }
        exists |= suffix.is_empty();
    }
    Ok(exists)
}

/// Looks at an existing database through a connection that writes nothing
/// of its own: is it readable, healthy, a dvhost store, of a known schema?
async fn inspect_database(path: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT);
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| classify(e, path))?;
    let verdict = inspect(&mut connection, path).await;
    let _ = connection.close().await;
    verdict
}

async fn inspect(connection: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let report: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *connection)
        .await
        .map_err(|e| classify(e, path))?;
    if report != ["ok"] {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: report.into_iter().take(3).collect::<Vec<_>>().join("; "),
        });
    }
    let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *connection)
        .await
        .map_err(|e| classify(e, path))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| classify(e, path))?;
    let not_ours = |detail: String| StoreError::NotAStore {
        path: path.to_path_buf(),
        detail,
    };
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(not_ours(format!(
            "its application id is {application_id:#x}"
        )));
    }
    if !tables.iter().any(|t| t == "_sqlx_migrations") {
        return match tables.first() {
            None => Ok(()),
            Some(table) => Err(not_ours(format!(
                "it has tables (such as {table:?}) but no dvhost schema"
            ))),
        };
    }
    if application_id != APPLICATION_ID {
        return Err(not_ours("its application id is not dvhost's".into()));
    }
    let found: Option<i64> =
        sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *connection)
            .await
            .and_then(|row| row.try_get("version"))
            .map_err(|e| classify(e, path))?;
    let known = known_version();
    match found {
        Some(found) if found > known => Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known,
        }),
        _ => Ok(()),
    }
}

/// Turns SQLite's open-time failures into what an operator can act on.
fn classify(error: sqlx::Error, path: &Path) -> StoreError {
    let code = match &error {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    // Primary result codes (the low byte of extended ones), sqlite3.h.
    const SQLITE_CORRUPT: i32 = 11;
    const SQLITE_NOTADB: i32 = 26;
    const SQLITE_READONLY: i32 = 8;
    const SQLITE_CANTOPEN: i32 = 14;
    match code.map(|c| c & 0xff) {
        Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: database_detail(&error),
        },
        Some(SQLITE_READONLY) => StoreError::ReadOnly {
            path: path.to_path_buf(),
        },
        Some(SQLITE_CANTOPEN) => StoreError::DataDirectory {
            path: path.to_path_buf(),
            why: format!("the database cannot be opened: {}", database_detail(&error)),
        },
        _ => StoreError::database("opening the database", error),
    }
}
