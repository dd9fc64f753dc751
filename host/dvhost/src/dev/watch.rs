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
        // Events name canonical paths on some platforms (macOS's /private).
        let workspace = workspace
            .canonicalize()
            .unwrap_or_else(|_| workspace.to_path_buf());
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
            workspace,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saving_a_plugins_source_names_that_plugin_once_the_burst_is_over() {
        let workspace = tempfile::tempdir().unwrap();
        let hello = workspace.path().join("examples/hello/src");
        std::fs::create_dir_all(&hello).unwrap();
        std::fs::create_dir_all(workspace.path().join("plugins/tables/src")).unwrap();
        let mut watch = SourceWatch::start(workspace.path()).unwrap();
        // An editor's save: a temporary file, then the file, written twice.
        std::fs::write(hello.join("lib.rs.swp"), "x").unwrap();
        std::fs::write(hello.join("lib.rs"), "fn a() {}").unwrap();
        std::fs::write(hello.join("lib.rs"), "fn b() {}").unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("a change within 20 s")
            .expect("the watch runs");
        let names: Vec<&str> = changed.iter().map(|p| p.name).collect();
        assert_eq!(names, ["hello"]);
    }
}
