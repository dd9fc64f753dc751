//! Dataverse rows kept across restarts with `--state`: next to the state
//! file (`state.json` → `state.rows.json`), written atomically (a temporary
//! file renamed over the old one) a moment after a change and at shutdown,
//! and read at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use uuid::Uuid;

use crate::Emulator;
use crate::dataverse::store::Snapshot;

/// How long after a change the rows are written: a burst of writes costs
/// one file write.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Why the rows file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RowsFileError {
    /// Reading or writing the file failed.
    #[error("rows file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this emulator writes.
    #[error("rows file {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
}

/// The rows file that goes with a state file.
pub(crate) fn rows_path(state_file: &Path) -> PathBuf {
    state_file.with_extension("rows.json")
}

/// The saved rows, by organization id (none when there is no file yet).
pub(crate) fn load(path: &Path) -> Result<HashMap<Uuid, Snapshot>, RowsFileError> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let io = |source| RowsFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    serde_json::from_slice(&bytes).map_err(|source| RowsFileError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the rows atomically: a reader sees the old file or the new one.
fn write(path: &Path, rows: &HashMap<Uuid, Snapshot>) -> Result<(), RowsFileError> {
    let bytes = serde_json::to_vec(rows).map_err(|source| RowsFileError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    let io = |source| RowsFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Emulator {
    /// Writes every environment's rows, when a state file is configured.
    /// Failures are logged: the rows in memory stay authoritative.
    pub(crate) fn save_rows(&self) {
        let Some(path) = self.rows_file() else { return };
        let _serialized = self.rows_lock.lock();
        if let Err(e) = write(&path, &self.dataverse.snapshots()) {
            tracing::warn!(error = %e, "could not write the Dataverse rows");
        }
    }
}

/// Writes the rows a moment after they change, until the emulator is gone.
pub(crate) fn spawn_saver(emu: &Arc<Emulator>) -> Option<tokio::task::JoinHandle<()>> {
    emu.rows_file()?;
    let weak: Weak<Emulator> = Arc::downgrade(emu);
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(DEBOUNCE).await;
            let Some(emu) = weak.upgrade() else { return };
            if emu.dataverse.take_dirty() {
                let saving = tokio::task::spawn_blocking(move || emu.save_rows());
                if let Err(e) = saving.await {
                    tracing::warn!(error = %e, "the Dataverse rows writer failed");
                }
            }
        }
    }))
}
