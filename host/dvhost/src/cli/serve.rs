//! `dvhost serve` and `dvhost admin-key`.

use std::path::PathBuf;

use clap::Args;
use std::io::Write as _;

use dvhost_dataverse::NewApiKey;

use super::context::Globals;
use crate::serve::{self, ServeConfig};

/// `dvhost serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (see the README for every key and default).
    #[arg(long, env = "DVHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Listen here instead of the configuration's `listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// Serves plugin actions and the admin API until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs, globals: &Globals) -> anyhow::Result<()> {
    let mut config = ServeConfig::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let prepared = serve::prepare(&config, globals).await?;
    serve::run(prepared).await
}

/// `dvhost admin-key`
#[derive(Debug, Args)]
pub struct AdminKeyArgs {}

/// Mints an admin key: prints it once, with the SHA-256 to put in
/// `admin_key_sha256` (or pass the key itself in `DVHOST_ADMIN_KEY`).
pub fn admin_key(_: AdminKeyArgs, globals: &Globals) -> anyhow::Result<()> {
    let key = NewApiKey::mint();
    let hex: String = key.hash().iter().map(|b| format!("{b:02x}")).collect();
    let mut out = std::io::stdout().lock();
    // The key goes from the secret-owning crate straight to the terminal.
    if globals.json {
        write!(out, "{{\"sha256\":\"{hex}\",\"key\":\"")?;
        key.show_once(&mut out)?;
        writeln!(out, "\"}}")?;
    } else {
        write!(out, "admin key (shown once): ")?;
        key.show_once(&mut out)?;
        writeln!(
            out,
            "\nadmin_key_sha256 = \"{hex}\"   # for dvhost.toml, or export {}=<the key>",
            serve::ADMIN_KEY_ENV
        )?;
    }
    Ok(())
}
