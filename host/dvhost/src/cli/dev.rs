//! `dvhost dev`: reads the command line; the loop itself is in
//! [`crate::dev`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::context::Globals;
use crate::dev::{DevOptions, Target};

/// `dvhost dev`
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Serve here (loopback only); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Use this existing, active connection of the store (TENANT/NAME)
    /// instead of the emulator; the data directory is then --data-dir or
    /// the platform's, where `dvhost connection create` keeps it.
    #[arg(long, value_name = "TENANT/NAME", conflicts_with = "environment")]
    connection: Option<String>,
    /// Use the store's one active connection to this environment URL
    /// instead of the emulator.
    #[arg(long, value_name = "URL")]
    environment: Option<String>,
    /// Where the emulator listens (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "DVHOST_EMULATOR_LISTEN")]
    emulator_listen: SocketAddr,
    /// The dvhost workspace whose plugins are built and watched (default:
    /// found above the current directory, else above this binary).
    #[arg(long, env = "DVHOST_WORKSPACE")]
    workspace: Option<PathBuf>,
    /// Cargo's target directory for the plugins (default
    /// <workspace>/target/guests, where the tests build them too).
    #[arg(long, env = "DVHOST_GUEST_TARGET_DIR")]
    guest_target_dir: Option<PathBuf>,
    /// Do not watch the sources.
    #[arg(long)]
    no_watch: bool,
}

/// Runs `dvhost dev` until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs, globals: &Globals) -> anyhow::Result<()> {
    // The handlers are registered before anything is printed, so a signal
    // sent as soon as the banner appears reaches the clean shutdown.
    let stop = super::emulator::stop_signal()?;
    let target = match (args.connection, args.environment) {
        (Some(connection), _) => Target::Connection(connection),
        (None, Some(url)) => Target::Environment(url),
        (None, None) => Target::Emulator {
            listen: args.emulator_listen,
        },
    };
    let options = DevOptions {
        listen: args.listen,
        target,
        workspace: args.workspace,
        guest_target_dir: args.guest_target_dir,
        watch: !args.no_watch,
    };
    crate::dev::run(options, globals, stop).await
}
