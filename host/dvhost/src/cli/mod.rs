//! Command-line interface: clap definitions and the code wiring each
//! subcommand to the library. One file per command group; `context`
//! holds the global options and the opened store.

pub(crate) mod client;
pub(crate) mod connection;
mod connection_flows;
pub mod context;
mod dev;
mod emulator;
mod serve;
mod sign_in;
mod tenant;

use clap::{Parser, Subcommand};

/// dvhost runs Dataverse integrations as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "dvhost", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub globals: context::Globals,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything locally: the emulator, a dev tenant and connection,
    /// the example plugins and a table integration, served on loopback and
    /// rebuilt when their sources change.
    Dev(Box<dev::DevArgs>),
    /// Run the local emulator of Entra ID, Global Discovery and Microsoft
    /// Graph, or act on a running one (approve/decline device codes).
    Emulator(Box<emulator::EmulatorArgs>),
    /// Sign in with a device code; the sign-in is kept (sealed) for you only.
    Login(sign_in::LoginArgs),
    /// List the Dataverse environments you can reach (Global Discovery).
    Environments(sign_in::EnvironmentsArgs),
    /// List the tables of an environment, with your own permissions.
    Tables(sign_in::TablesArgs),
    /// List the columns of a table, with your own permissions.
    Columns(sign_in::ColumnsArgs),
    /// Tenants and their API keys.
    Tenant(tenant::TenantArgs),
    /// Connections to Dataverse environments.
    Connection(connection::ConnectionArgs),
    /// Serve plugin actions, deploys and the admin API over HTTP.
    Serve(serve::ServeArgs),
    /// Mint an admin key for `dvhost serve` (shown once).
    AdminKey(serve::AdminKeyArgs),
    /// Call a plugin action on a running server.
    Call(client::CallArgs),
    /// Deploy, list, show and roll back plugins on a running server.
    Plugin(client::PluginArgs),
    /// Generated table integrations on a running server.
    Integration(client::IntegrationArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.globals;
    match cli.command {
        Command::Dev(args) => dev::run(*args, g).await,
        Command::Emulator(args) => emulator::run(*args).await,
        Command::Login(args) => sign_in::login(args, g).await,
        Command::Environments(args) => sign_in::environments(args, g).await,
        Command::Tables(args) => sign_in::tables(args, g).await,
        Command::Columns(args) => sign_in::columns(args, g).await,
        Command::Tenant(args) => tenant::run(args, g).await,
        Command::Connection(args) => connection::run(args, g).await,
        Command::Serve(args) => serve::run(args, g).await,
        Command::AdminKey(args) => serve::admin_key(args, g),
        Command::Call(args) => client::call(args, g).await,
        Command::Plugin(args) => client::plugin(args, g).await,
        Command::Integration(args) => client::integration(args, g).await,
    }
}
