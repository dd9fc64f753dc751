//! Watching the plugins' sources: `notify` events on `examples/`,
//! `plugins/` and `wit/`, debounced (an editor's save is several events,
//! a branch switch hundreds) into the set of plugins to rebuild.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::guests::{DevPlugin, affected};

/// How long the sources must stay quiet before a rebuild starts.
const QUIET: Duration = Duration::from_millis(400);

/// The directories watched, relative to the workspace.
const WATCHED: &[&str] = &["examples", "plugins", "wit"];

/// A running watch of a workspace's plugin sources.
pub struct SourceWatch {
    workspace: PathBuf,
    changes: mpsc::UnboundedReceiver<PathBuf>,
    // Dropping it stops the watch.
    _watcher: notify::RecommendedWatcher,
}

impl SourceWatch {
    /// Starts watching `workspace`'s plugin sources.
    pub fn start(workspace: &Path) -> anyhow::Result<SourceWatch> {
        let (tx, changes) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if !matches!(event.kind, EventKind::Access(_)) => {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watching the plugin sources"),
            })
            .context("watching the plugin sources")?;
        for dir in WATCHED {
            let path = workspace.join(dir);
            if path.is_dir() {
                watcher
                    .watch(&path, RecursiveMode::Recursive)
                    .with_context(|| format!("watching {}", path.display()))?;
            }
        }
        Ok(SourceWatch {
            workspace: workspace.to_path_buf(),
            changes,
            _watcher: watcher,
        })
    }

    /// The plugins changed sources belong to, once the sources have been
    /// quiet for a moment; `None` when the watch ended.
    pub async fn next(&mut self) -> Option<BTreeSet<&'static DevPlugin>> {
        loop {
            let mut plugins = affected(&self.workspace, &self.changes.recv().await?);
            loop {
                match tokio::time::timeout(QUIET, self.changes.recv()).await {
                    Ok(Some(path)) => plugins.extend(affected(&self.workspace, &path)),
                    Ok(None) => return None,
                    Err(_quiet) => break,
                }
            }
            if !plugins.is_empty() {
                return Some(plugins);
            }
        }
    }
}
