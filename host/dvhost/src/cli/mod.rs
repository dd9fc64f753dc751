//! Command-line interface: clap definitions and the code wiring each
//! subcommand to the library.

mod emulator;

use clap::{Parser, Subcommand};

/// dvhost runs Dataverse integrations as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "dvhost", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local emulator of Entra ID, Global Discovery and Microsoft
    /// Graph, or act on a running one (approve/decline device codes).
    Emulator(emulator::EmulatorArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Emulator(args) => emulator::run(args).await,
    }
}
