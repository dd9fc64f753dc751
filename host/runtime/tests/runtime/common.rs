//! One engine per test process, with an on-disk artifact cache under
//! `target/`, so each guest is compiled once across runs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use dvhost_runtime::{Capabilities, Engine, EngineConfig, Grants, Operation, Plugin, PluginLimits};
use parking_lot::Mutex;

use crate::fake::Fake;

pub fn cache_dir() -> std::path::PathBuf {
    dvhost_testkit::workspace_root()
        .join("target")
        .join("runtime-test-cache")
}

pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(EngineConfig {
                cache_dir: Some(cache_dir()),
                max_instances: 64,
                ..EngineConfig::default()
            })
            .expect("engine")
        })
        .clone()
}

pub fn guest_bytes(name: &str) -> Vec<u8> {
    std::fs::read(dvhost_testkit::rust_guest(name)).expect("guest component")
}

/// The plugin `name`, loaded once per process.
pub async fn plugin(name: &str) -> Plugin {
    static PLUGINS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Plugin>>>>> =
        OnceLock::new();
    let cell = PLUGINS
        .get_or_init(Default::default)
        .lock()
        .entry(name.to_owned())
        .or_default()
        .clone();
    cell.get_or_init(|| async {
        engine()
            .load(&guest_bytes(name))
            .await
            .expect("plugin loads")
    })
    .await
    .clone()
}

/// Capabilities over `fake` with `grants` and default limits.
pub fn capabilities(fake: &Arc<Fake>, grants: Grants) -> Capabilities {
    Capabilities {
        records: fake.clone(),
        metadata: fake.clone(),
        grants: Arc::new(grants),
        limits: PluginLimits::default(),
        scratch_dir: None,
    }
}

pub fn read_accounts() -> Grants {
    Grants::none().allow("account", &[Operation::Read])
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
