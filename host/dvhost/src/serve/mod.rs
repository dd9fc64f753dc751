//! `dvhost serve`: the store, the engine, the connections and the HTTP
//! server wired together. `dvhost dev` uses the same wiring.

pub mod config;
mod connections;
pub(crate) use connections::connection_client;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dvhost_runtime::{Engine, EngineConfig};
use dvhost_server::{AppState, Services};

pub use config::ServeConfig;
pub use connections::StoreConnections;

use crate::cli::context::{Context, Globals};
use crate::flows::manual::SmtpSettings;

/// The admin key's environment variable.
pub const ADMIN_KEY_ENV: &str = "DVHOST_ADMIN_KEY";

/// A server ready to listen.
pub struct Prepared {
    /// The handlers' state.
    pub state: AppState,
    /// The listener, bound.
    pub listener: tokio::net::TcpListener,
}

/// Opens the store, builds the engine and the connections, binds the
/// listener.
pub async fn prepare(config: &ServeConfig, globals: &Globals) -> anyhow::Result<Prepared> {
    let smtp_password = std::env::var(SmtpSettings::PASSWORD_ENV).ok();
    let smtp = config.smtp_settings(smtp_password.as_deref())?;
    if smtp.is_none() && smtp_password.is_some() {
        tracing::warn!(
            "{} is set but the configuration has no [smtp] section: administrator requests are not e-mailed",
            SmtpSettings::PASSWORD_ENV
        );
    }
    let mut globals = globals.clone();
    if let Some(dir) = &config.data_dir {
        globals.data_dir = Some(dir.clone());
    }
    let cx = Context::open(&globals).await?;
    let data_dir = globals.data_dir();
    let admin_key_hash = config.admin_key_hash(std::env::var(ADMIN_KEY_ENV).ok().as_deref())?;
    if admin_key_hash.is_none() {
        tracing::warn!(
            "no admin key configured ({ADMIN_KEY_ENV} or admin_key_sha256): the admin API is closed"
        );
    }
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(
            config
                .runtime
                .cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("cache")),
        ),
        max_instances: config.runtime.max_instances,
        prepared_instances: config.runtime.prepared_instances,
        prepared_idle: Duration::from_secs(config.runtime.prepared_idle_seconds),
        inspectable: false,
    })
    .context("starting the WebAssembly engine")?;
    let tables_component = match &config.integrations.component {
        Some(path) => Some(Arc::from(std::fs::read(path).with_context(|| {
            format!("reading the table-actions component {}", path.display())
        })?)),
        None => None,
    };
    let mut connections = StoreConnections::new(cx.store.clone(), cx.master, globals.services()?)
        .with_sign_in(globals.device_sign_in()?);
    if let Some(smtp) = smtp {
        connections = connections.with_smtp(smtp);
    }
    let state = AppState::new(Services {
        store: cx.store,
        engine,
        connections: Arc::new(connections),
        admin_key_hash,
        tables_component,
        config: config.server.clone(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    Ok(Prepared { state, listener })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves until Ctrl-C or SIGTERM, then drains.
pub async fn run(prepared: Prepared) -> anyhow::Result<()> {
    let address = prepared.listener.local_addr()?;
    tracing::info!(%address, "dvhost is serving");
    eprintln!("dvhost is serving on http://{address}");
    dvhost_server::serve(prepared.listener, prepared.state, shutdown_signal())
        .await
        .context("serving")
}
