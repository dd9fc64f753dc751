//! `dvhost.toml`, the configuration of `dvhost serve`. Every key is
//! optional; the defaults are below and in the README. Secrets never go in
//! the file: the master key comes from `DVHOST_MASTER_KEY` or the key file
//! in the data directory, the admin key from `DVHOST_ADMIN_KEY` (or only
//! its SHA-256 in `admin_key_sha256`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dvhost_server::ServerConfig;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The data directory (store, master key file, compilation cache).
    /// Default: `--data-dir` / `DVHOST_DATA_DIR`, else the platform's.
    pub data_dir: Option<PathBuf>,
    /// SHA-256 (hex) of the admin key, when the key itself is not given in
    /// `DVHOST_ADMIN_KEY`. Without either, the admin routes are closed.
    pub admin_key_sha256: Option<String>,
    /// HTTP limits and tenants' limits.
    pub server: ServerConfig,
    /// The sandbox.
    pub runtime: RuntimeSection,
    /// Generated table integrations.
    pub integrations: IntegrationsSection,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: None,
            admin_key_sha256: None,
            server: ServerConfig::default(),
            runtime: RuntimeSection::default(),
            integrations: IntegrationsSection::default(),
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSection {
    /// Compiled components, so a restart does not compile again. Default
    /// `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Plugin instances alive at once across all tenants. Default 1000.
    pub max_instances: u32,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            cache_dir: None,
            max_instances: 1000,
        }
    }
}

/// `[integrations]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationsSection {
    /// The table-actions component (`dvhost_tables.wasm`, built from
    /// `plugins/tables`). Without it, creating an integration is refused.
    pub component: Option<PathBuf>,
}

impl ServeConfig {
    /// Reads a file; a missing path gives the defaults only when `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let Some(path) = path else {
            return Ok(ServeConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in the configuration {}", path.display()))
    }

    /// The admin key's fingerprint: from `DVHOST_ADMIN_KEY` (the key), else
    /// `admin_key_sha256`.
    pub fn admin_key_hash(&self, env_key: Option<&str>) -> anyhow::Result<Option<[u8; 32]>> {
        if let Some(key) = env_key {
            let presented = dvhost_dataverse::PresentedApiKey::parse(key.trim())
                .context("DVHOST_ADMIN_KEY is not a dvhost API key (dvk_<id>_<secret>)")?;
            return Ok(Some(presented.fingerprint()));
        }
        let Some(hex) = &self.admin_key_sha256 else {
            return Ok(None);
        };
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<_>>()
            .context("admin_key_sha256 is not hex")?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("admin_key_sha256 is not 64 hex digits"))?;
        Ok(Some(hash))
    }
}
