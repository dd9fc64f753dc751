//! The plugins `dvhost dev` serves: which packages of the workspace they
//! are, what they are granted, where the workspace is, and the cargo build
//! that makes their components (the testkit's command: `--profile guest
//! --target wasm32-wasip2` into `target/guests`, so a workspace whose tests
//! ran has nothing left to build).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::cli::context::Globals;

/// The target guests are built for.
const TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests are built with (the workspace's `Cargo.toml`).
const PROFILE: &str = "guest";

/// How a plugin is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deployment {
    /// A plugin of the tenant, with grants.
    Plugin,
    /// The generated table integration (dvhost's table-actions component)
    /// for these tables.
    Integration(&'static [&'static str]),
}

/// One plugin of the dev loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DevPlugin {
    /// Its name in the tenant (`/v1/tenants/dev/plugins/<name>`).
    pub name: &'static str,
    /// Its cargo package.
    pub package: &'static str,
    /// Its sources, relative to the workspace.
    pub source: &'static str,
    /// Tables × operations, as the deploy API takes them.
    pub grants: &'static [(&'static str, &'static [&'static str])],
    /// A plugin or the table integration.
    pub deployment: Deployment,
}

const ALL: &[&str] = &["read", "create", "update", "delete"];

/// The tables of the generated table integration.
pub const INTEGRATION_TABLES: &[&str] = &["account", "contact"];

/// Every plugin `dvhost dev` builds and deploys, with the grants their
/// READMEs ask for.
pub const PLUGINS: [DevPlugin; 4] = [
    DevPlugin {
        name: "hello",
        package: "dvhost-example-hello",
        source: "examples/hello",
        // `retrieve-account` reads an account; `hello` and `noop` need nothing.
        grants: &[("account", &["read"])],
        deployment: Deployment::Plugin,
    },
    DevPlugin {
        name: "contacts",
        package: "dvhost-example-contacts",
        source: "examples/contacts",
        grants: &[("contact", ALL), ("account", &["read"])],
        deployment: Deployment::Plugin,
    },
    DevPlugin {
        name: "lead-scoring",
        package: "dvhost-example-lead-scoring",
        source: "examples/lead-scoring",
        // score-leads (with write_back) and find-duplicate-contacts.
        grants: &[("lead", &["read", "update"]), ("contact", &["read"])],
        deployment: Deployment::Plugin,
    },
    DevPlugin {
        name: "tables",
        package: "dvhost-tables",
        source: "plugins/tables",
        grants: &[("account", ALL), ("contact", ALL)],
        deployment: Deployment::Integration(INTEGRATION_TABLES),
    },
];

impl DevPlugin {
    /// Its grants as the deploy API's JSON.
    pub fn grants_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .grants
            .iter()
            .map(|(table, operations)| ((*table).to_string(), json!(operations)))
            .collect();
        Value::Object(map)
    }

    /// The table integration's plugin.
    pub fn integration() -> &'static DevPlugin {
        PLUGINS
            .iter()
            .find(|p| matches!(p.deployment, Deployment::Integration(_)))
            .unwrap_or(&PLUGINS[0])
    }
}

/// The dvhost workspace: its root and the target directory guests are
/// built in.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the workspace's `Cargo.toml`.
    pub root: PathBuf,
    /// Where cargo builds the guests (`<root>/target/guests` by default).
    pub target_dir: PathBuf,
}

/// Whether `dir` is dvhost's workspace: it has the plugins' sources.
fn is_workspace(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file()
        && PLUGINS
            .iter()
            .all(|p| dir.join(p.source).join("Cargo.toml").is_file())
}

impl Workspace {
    /// `explicit` (which must be the workspace), else the first ancestor
    /// of the current directory, else of this binary, that is. `None` when
    /// neither is in a dvhost checkout.
    pub fn find(
        explicit: Option<&Path>,
        target_dir: Option<PathBuf>,
    ) -> anyhow::Result<Option<Workspace>> {
        let root = match explicit {
            Some(dir) => {
                anyhow::ensure!(
                    is_workspace(dir),
                    "{} is not the dvhost workspace (no {} there)",
                    dir.display(),
                    PLUGINS.map(|p| p.source).join(", ")
                );
                Some(dir.to_path_buf())
            }
            None => {
                let cwd = std::env::current_dir().ok();
                let exe = std::env::current_exe().ok();
                [cwd, exe].into_iter().flatten().find_map(|start| {
                    start
                        .ancestors()
                        .find(|d| is_workspace(d))
                        .map(Path::to_path_buf)
                })
            }
        };
        Ok(root.map(|root| {
            let root = std::path::absolute(&root).unwrap_or(root);
            Workspace {
                target_dir: target_dir.unwrap_or_else(|| root.join("target").join("guests")),
                root,
            }
        }))
    }

    /// The component cargo makes of `plugin`.
    pub fn component(&self, plugin: &DevPlugin) -> PathBuf {
        self.target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", plugin.package.replace('-', "_")))
    }

    /// Builds `plugins` with cargo, showing its progress on a spinner; on
    /// failure the error holds cargo's output.
    pub async fn build(
        &self,
        plugins: &BTreeSet<&'static DevPlugin>,
        globals: &Globals,
    ) -> anyhow::Result<()> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = tokio::process::Command::new(&cargo);
        command
            .current_dir(&self.root)
            .args(["build", "--profile", PROFILE, "--target", TARGET])
            .arg("--target-dir")
            .arg(&self.target_dir);
        for plugin in plugins {
            command.args(["-p", plugin.package]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
        let shown = format!(
            "{} build --profile {PROFILE} --target {TARGET} --target-dir {} -p {}",
            cargo.to_string_lossy(),
            self.target_dir.display(),
            plugins
                .iter()
                .map(|p| p.package)
                .collect::<Vec<_>>()
                .join(" -p ")
        );
        let message = format!("building {}", names.join(", "));
        let (status, output) = globals
            .spinning(&message, |bar| {
                let (message, shown, command) = (&message, &shown, &mut command);
                async move {
                    let mut child = command
                        .spawn()
                        .with_context(|| format!("running {shown}"))?;
                    let mut output = Vec::new();
                    if let Some(stderr) = child.stderr.take() {
                        let mut lines = tokio::io::BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            let trimmed = line.trim_start();
                            if trimmed.starts_with("Compiling") || trimmed.starts_with("Building") {
                                bar.set_message(format!("{message}: {trimmed}"));
                            }
                            output.push(line);
                        }
                    }
                    let status = child
                        .wait()
                        .await
                        .with_context(|| format!("running {shown}"))?;
                    anyhow::Ok((status, output))
                }
            })
            .await?;
        anyhow::ensure!(
            status.success(),
            "building the plugins failed ({status}): {shown}\n\
             (is the target installed? `rustup target add {TARGET}`)\n{}",
            output.join("\n")
        );
        Ok(())
    }
}

/// The plugins whose sources hold `path`: one for a plugin's own
/// directory, every plugin for a shared source (the SDK, the WIT contract,
/// the workspace's manifest); none for anything else.
pub fn affected(workspace: &Path, path: &Path) -> BTreeSet<&'static DevPlugin> {
    let Ok(relative) = path.strip_prefix(workspace) else {
        return BTreeSet::new();
    };
    let source = matches!(
        relative.extension().and_then(|e| e.to_str()),
        Some("rs" | "toml" | "wit")
    );
    let in_target = relative.components().any(|c| c.as_os_str() == "target");
    if !source || in_target {
        return BTreeSet::new();
    }
    if let Some(plugin) = PLUGINS.iter().find(|p| relative.starts_with(p.source)) {
        return BTreeSet::from([plugin]);
    }
    if relative.starts_with("plugins") || relative.starts_with("wit") {
        return PLUGINS.iter().collect();
    }
    BTreeSet::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_rebuilds_its_plugin_or_every_plugin_for_shared_sources() {
        let ws = Path::new("/w");
        let names =
            |p: &str| -> Vec<&str> { affected(ws, &ws.join(p)).iter().map(|p| p.name).collect() };
        assert_eq!(names("examples/hello/src/lib.rs"), ["hello"]);
        assert_eq!(names("examples/lead-scoring/Cargo.toml"), ["lead-scoring"]);
        assert_eq!(names("plugins/tables/src/schema.rs"), ["tables"]);
        assert_eq!(names("plugins/sdk/src/lib.rs").len(), PLUGINS.len());
        assert_eq!(names("wit/plugin.wit").len(), PLUGINS.len());
        assert!(names("examples/python-hello/app.py").is_empty());
        assert!(names("examples/hello/README.md").is_empty());
        assert!(names("plugins/tables/target/x.rs").is_empty());
        assert!(affected(ws, Path::new("/elsewhere/a.rs")).is_empty());
    }

    #[test]
    fn grants_are_the_deploy_apis_json() {
        let contacts = PLUGINS.iter().find(|p| p.name == "contacts").unwrap();
        assert_eq!(
            contacts.grants_json(),
            json!({"contact": ["read", "create", "update", "delete"], "account": ["read"]})
        );
        assert_eq!(DevPlugin::integration().name, "tables");
    }
}
