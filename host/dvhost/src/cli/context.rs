//! What every store-backed command shares: the global options, the opened
//! store with its checked master key, the HTTP client, and the output
//! helpers (`--json`, progress spinners).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use dvhost_dataverse::{
    Authority, DiscoveryService, HttpClient, MASTER_KEY_ENV, MasterKey, MasterKeyOrigin,
};
use dvhost_store::{Name, Store, Tenant};

/// The master key file's name inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A well-known public client that Microsoft documents for Dataverse
/// samples and tools (device-code sign-in needs a public client).
const DEFAULT_CLIENT_ID: &str = "51f81489-12ee-4a9e-aaae-a2591f45987d";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Globals {
    /// Where dvhost keeps its database and master key file (default: the
    /// platform's data directory, else ./dvhost-data).
    #[arg(long, global = true, env = "DVHOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Entra ID authority (the emulator's base URL in tests).
    #[arg(
        long,
        global = true,
        env = "DVHOST_AUTHORITY",
        default_value = "https://login.microsoftonline.com"
    )]
    pub authority: String,
    /// Global Discovery service (the emulator's base URL in tests).
    #[arg(
        long,
        global = true,
        env = "DVHOST_DISCOVERY_URL",
        default_value = "https://globaldisco.crm.dynamics.com"
    )]
    pub discovery_url: String,
    /// Entra tenant to sign in to: an id, a verified domain, or
    /// `organizations` for any work account.
    #[arg(
        long,
        global = true,
        env = "DVHOST_ENTRA_TENANT",
        default_value = "organizations"
    )]
    pub entra_tenant: String,
    /// Microsoft Graph (the emulator's base URL in tests).
    #[arg(
        long,
        global = true,
        env = "DVHOST_GRAPH_URL",
        default_value = "https://graph.microsoft.com"
    )]
    pub graph_url: String,
    /// Public client (application) id used for device-code sign-in.
    #[arg(
        long,
        global = true,
        env = "DVHOST_CLIENT_ID",
        default_value = DEFAULT_CLIENT_ID
    )]
    pub sign_in_client_id: String,
    /// Extra CA certificate (PEM) to trust, e.g. the emulator's.
    #[arg(long, global = true, env = "DVHOST_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log lines on stderr as text, or as one JSON object per line (for
    /// log collectors; each request's lines carry its request id).
    #[arg(
        long,
        global = true,
        env = "DVHOST_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl Globals {
    /// The data directory: the option, else the platform's data directory,
    /// else `./dvhost-data`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .map(|d| d.join("dvhost"))
                .unwrap_or_else(|| PathBuf::from("dvhost-data"))
        })
    }

    /// The HTTP client, trusting `--ca-file` when given.
    pub fn http(&self) -> anyhow::Result<HttpClient> {
        let pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the CA file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(HttpClient::new(pem.as_deref())?)
    }

    /// The Entra authority.
    pub fn authority(&self) -> anyhow::Result<Authority> {
        Authority::parse(&self.authority).context("--authority / DVHOST_AUTHORITY")
    }

    /// The Global Discovery service.
    pub fn discovery(&self) -> anyhow::Result<DiscoveryService> {
        DiscoveryService::parse(&self.discovery_url)
            .context("--discovery-url / DVHOST_DISCOVERY_URL")
    }

    /// The public client users sign in with (`dvhost login`); a stored
    /// sign-in is resumed only through the same one.
    pub fn device_sign_in(&self) -> anyhow::Result<dvhost_dataverse::DeviceSignIn> {
        Ok(dvhost_dataverse::DeviceSignIn::new(
            self.authority()?,
            &self.entra_tenant,
            &self.sign_in_client_id,
            self.http()?,
        )?)
    }

    /// Where the Microsoft services are, for the connection flows.
    pub fn services(&self) -> anyhow::Result<crate::flows::auto::Services> {
        Ok(crate::flows::auto::Services {
            authority: self.authority()?,
            graph: dvhost_dataverse::GraphService::parse(&self.graph_url)
                .context("--graph-url / DVHOST_GRAPH_URL")?,
            http: self.http()?,
        })
    }

    /// A spinner on stderr for a long step; hidden with `--json` or when
    /// stderr is not a terminal.
    pub fn progress(&self, message: &str) -> indicatif::ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// Waits for the future `work` makes under a spinner showing `message`
    /// (see [`Globals::progress`]), and clears the spinner when it ends,
    /// however it ends. `work` gets the spinner, to show its steps.
    pub async fn spinning<T, F: Future<Output = T>>(
        &self,
        message: &str,
        work: impl FnOnce(indicatif::ProgressBar) -> F,
    ) -> T {
        let bar = self.progress(message);
        let done = work(bar.clone()).await;
        bar.finish_and_clear();
        done
    }

    /// Prints `value` as JSON with `--json`, else `text`.
    pub fn emit(&self, value: &serde_json::Value, text: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else if !text.is_empty() {
            println!("{text}");
        }
        Ok(())
    }
}

/// An opened store with the master key it was created with.
pub struct Context {
    /// The global options.
    pub globals: Globals,
    /// The store.
    pub store: Store,
    /// The master key, checked against the store's fingerprint.
    pub master: MasterKey,
}

impl Context {
    /// Opens the store in the data directory and loads the master key
    /// (`DVHOST_MASTER_KEY`, else the key file, created 0600 at first
    /// start); a key other than the store's is refused before anything is
    /// written.
    pub async fn open(globals: &Globals) -> anyhow::Result<Context> {
        let dir = globals.data_dir();
        let store = Store::open_sqlite(&dir)
            .await
            .with_context(|| format!("opening the store in {}", dir.display()))?;
        let env = std::env::var(MASTER_KEY_ENV).ok();
        let key_file = dir.join(MASTER_KEY_FILE);
        let (master, origin) = MasterKey::load(env.as_deref(), &key_file)?;
        if origin == MasterKeyOrigin::CreatedKeyFile {
            eprintln!(
                "created the master key file {}: back it up, the stored secrets cannot be opened without it",
                key_file.display()
            );
        }
        store.check_master_key(&master.fingerprint()).await?;
        Ok(Context {
            globals: globals.clone(),
            store,
            master,
        })
    }

    /// The tenant of this name, or an error saying there is none.
    pub async fn tenant(&self, name: &str) -> anyhow::Result<Tenant> {
        let name = Name::parse(name)?;
        self.store
            .tenant_by_name(&name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("there is no tenant named {name}"))
    }
}

/// Who the audit log and histories name for commands typed at this machine.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// RFC 3339 text of a time, for output.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether a person can answer a prompt here.
pub fn interactive(globals: &Globals) -> bool {
    !globals.json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

impl Context {
    /// Appends a successful operator action to the audit log.
    pub async fn audit(
        &self,
        tenant: Option<dvhost_store::TenantId>,
        action: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<()> {
        let entry = dvhost_store::NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant,
            plugin: None,
            actor: actor(),
            action: action.to_string(),
            outcome: dvhost_store::AuditOutcome::Success,
            request_id: None,
            detail,
        };
        self.store.append_audit(&entry).await?;
        Ok(())
    }
}
