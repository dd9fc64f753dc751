//! `dvhost dev`: the whole system on one machine with one command. It
//! starts the emulator in-process (or uses an existing connection to a
//! real environment), makes the `dev` tenant and connection, builds the
//! example plugins and the table-actions component, serves them with
//! `dvhost serve`'s wiring on loopback, deploys them over the server's
//! own HTTP API, prints how to call them, and rebuilds and redeploys a
//! plugin when its sources change.
//!
//! Keys: the admin key is minted for this run only (in memory, printed);
//! the dev API key is minted by the server, shown once, and the one an
//! earlier run minted is revoked. No key is written to disk: the data
//! directory holds only what `dvhost serve` keeps (the store, the master
//! key file, the compilation cache) and the emulator's state.

mod api;
mod banner;
mod emulator;
mod guests;
mod sample;
mod watch;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use dvhost_dataverse::{Environment, NewApiKey};
use dvhost_store::{Connection, ConnectionState, Tenant};
use tokio::sync::watch as signal;

use self::api::{Deployed, DevApi};
use self::emulator::DevEmulator;
use self::guests::{DevPlugin, PLUGINS, Workspace};
use crate::cli::context::{Context, Globals};
use crate::serve::{self, ServeConfig};

/// The data directory of `dvhost dev` against the emulator, under the
/// current directory, unless `--data-dir` / `DVHOST_DATA_DIR` names one.
pub const DEV_DATA_DIR: &str = ".dvhost-dev";

/// What the dev loop runs against.
#[derive(Debug, Clone)]
pub enum Target {
    /// The in-process emulator (the default).
    Emulator {
        /// Where the emulator listens.
        listen: SocketAddr,
    },
    /// An existing connection of the store, `TENANT/NAME`.
    Connection(String),
    /// The store's one active connection to this environment URL.
    Environment(String),
}

/// The options of `dvhost dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Where the server listens (loopback only).
    pub listen: SocketAddr,
    /// The emulator or a real environment.
    pub target: Target,
    /// The workspace with the plugins' sources, when not found from the
    /// current directory or the binary's location.
    pub workspace: Option<PathBuf>,
    /// Where guests are built (`<workspace>/target/guests` by default).
    pub guest_target_dir: Option<PathBuf>,
    /// Rebuild and redeploy on source changes.
    pub watch: bool,
}

/// The tenant and connection the loop serves.
struct Place {
    tenant: Tenant,
    connection: Connection,
    emulator: Option<DevEmulator>,
}

/// A dev server that is up, with its plugins deployed.
struct Ready {
    api: DevApi,
    workspace: Option<Workspace>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    emulator: Option<DevEmulator>,
}

/// Runs `dvhost dev` until `stop` resolves.
pub async fn run(
    options: DevOptions,
    globals: &Globals,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.listen.ip().is_loopback(),
        "dvhost dev serves on loopback only (it prints its admin key); use dvhost serve to listen on {}",
        options.listen.ip()
    );
    let (stop_tx, stop_rx) = signal::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let ready = tokio::select! {
        ready = start(&options, globals, stop_rx.clone()) => ready?,
        () = stopped(stop_rx.clone()) => {
            eprintln!("stopped before dvhost dev was ready");
            return Ok(());
        }
    };
    let Ready {
        api,
        workspace,
        server,
        emulator,
    } = ready;
    if let (Some(workspace), true) = (&workspace, options.watch) {
        watch_loop(&api, workspace, globals, stop_rx.clone()).await?;
    } else {
        stopped(stop_rx.clone()).await;
    }
    let served = server.await;
    if let Some(dev) = emulator {
        dev.emulator.shutdown().await;
    }
    served.context("the server task failed")?.context("serving")
}

async fn stopped(mut stop: signal::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Everything up to the printed banner.
async fn start(
    options: &DevOptions,
    globals: &Globals,
    stop: signal::Receiver<bool>,
) -> anyhow::Result<Ready> {
    let mut globals = globals.clone();
    let place = place(options, &mut globals).await?;
    let workspace = Workspace::find(
        options.workspace.as_deref(),
        options.guest_target_dir.clone(),
    )?;
    let mut built = BTreeSet::new();
    match &workspace {
        Some(ws) => match ws.build(&PLUGINS.iter().collect(), &globals).await {
            Ok(()) => built.extend(PLUGINS.iter()),
            Err(e) => eprintln!(
                "{e:#}\nserving without the example plugins; fix the build and save to retry"
            ),
        },
        None => eprintln!(
            "the plugins' sources are not here (no dvhost workspace above {} or this binary; name one with --workspace): serving without plugins",
            std::env::current_dir().unwrap_or_default().display()
        ),
    }
    let tables_component = workspace
        .as_ref()
        .filter(|_| built.contains(DevPlugin::integration()))
        .map(|ws| ws.component(DevPlugin::integration()));

    let admin_key = match std::env::var(serve::ADMIN_KEY_ENV) {
        Ok(key) => key.trim().to_string(),
        Err(_) => mint_admin_key()?,
    };
    let mut config = ServeConfig {
        listen: options.listen,
        data_dir: Some(globals.data_dir()),
        ..ServeConfig::default()
    };
    config.admin_key_sha256 = Some(hex(&dvhost_dataverse::PresentedApiKey::parse(&admin_key)
        .context("DVHOST_ADMIN_KEY is not a dvhost API key")?
        .fingerprint()));
    config.integrations.component = tables_component;
    let prepared = serve::prepare(&config, &globals).await?;
    let url = format!("http://{}", prepared.listener.local_addr()?);
    let server = tokio::spawn(dvhost_server::serve(
        prepared.listener,
        prepared.state,
        stopped(stop),
    ));
    let api = DevApi::new(
        url,
        admin_key.clone(),
        place.tenant.name.to_string(),
        place.connection.name.to_string(),
    );
    let api_key = api.rotate_dev_key().await?;
    let mut deployed = Vec::new();
    if let Some(ws) = &workspace {
        for plugin in &built {
            match deploy(&api, ws, plugin, true, &globals).await {
                Ok(()) => deployed.push(plugin.name),
                Err(e) => eprintln!("{e:#}"),
            }
        }
    }
    banner::print(
        &globals,
        &banner::Banner {
            url: &api.url,
            api_key: &api_key,
            admin_key: &admin_key,
            tenant: &place.tenant,
            connection: &place.connection,
            emulator: place.emulator.as_ref(),
            deployed: &deployed,
            data_dir: &globals.data_dir(),
            workspace: workspace.as_ref().map(|w| w.root.as_path()),
            watching: options.watch && workspace.is_some(),
        },
    )?;
    Ok(Ready {
        api,
        workspace,
        server,
        emulator: place.emulator,
    })
}

/// The tenant and connection: the emulator's `dev` ones, made or reused,
/// with sample rows; or an existing connection of the store.
async fn place(options: &DevOptions, globals: &mut Globals) -> anyhow::Result<Place> {
    match &options.target {
        Target::Emulator { listen } => {
            if globals.data_dir.is_none() {
                let cwd = std::env::current_dir().context("the current directory")?;
                globals.data_dir = Some(cwd.join(DEV_DATA_DIR));
            }
            let data_dir = globals.data_dir();
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let dev = globals
                .spinning("starting the emulator", |_| {
                    DevEmulator::start(&data_dir, *listen)
                })
                .await?;
            dev.configure(globals);
            let cx = Context::open(globals).await?;
            let (tenant, connection) = dev.provision(&cx).await?;
            let written = globals
                .spinning("writing the sample rows", |_| {
                    sample::ensure_rows(&cx, &connection)
                })
                .await?;
            if written > 0 {
                eprintln!(
                    "wrote {written} sample rows (accounts, contacts, leads) to the emulator"
                );
            }
            Ok(Place {
                tenant,
                connection,
                emulator: Some(dev),
            })
        }
        Target::Connection(spec) => {
            let cx = Context::open(globals).await?;
            let connection = crate::cli::connection::find(&cx, spec)
                .await
                .with_context(|| {
                    format!(
                        "looking for connection {spec} in the store in {} (create it with `dvhost connection create {spec} --environment URL --auto`, or pass --data-dir)",
                        globals.data_dir().display()
                    )
                })?;
            usable(&connection, spec)?;
            let tenant = cx
                .store
                .tenant(connection.tenant)
                .await?
                .context("the connection's tenant is gone")?;
            Ok(Place {
                tenant,
                connection,
                emulator: None,
            })
        }
        Target::Environment(url) => {
            let cx = Context::open(globals).await?;
            let wanted = Environment::parse(url)?;
            let mut found = Vec::new();
            for tenant in cx.store.tenants().await? {
                for c in cx.store.connections(tenant.id, false).await? {
                    let same = Environment::parse(&c.environment_url)
                        .is_ok_and(|e| e.as_str() == wanted.as_str());
                    if same && c.state == ConnectionState::Active {
                        found.push((tenant.clone(), c));
                    }
                }
            }
            match found.len() {
                0 => anyhow::bail!(
                    "the store in {} has no active connection to {wanted}: create one with `dvhost connection create TENANT/NAME --environment {wanted} --auto` (or pass --data-dir)",
                    globals.data_dir().display()
                ),
                1 => {
                    let (tenant, connection) = found.remove(0);
                    Ok(Place {
                        tenant,
                        connection,
                        emulator: None,
                    })
                }
                _ => anyhow::bail!(
                    "several connections reach {wanted} ({}): pick one with --connection TENANT/NAME",
                    found
                        .iter()
                        .map(|(t, c)| format!("{}/{}", t.name, c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }
}

/// A connection the loop can use: an active one.
fn usable(connection: &Connection, spec: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        connection.state == ConnectionState::Active,
        "connection {spec} is {}, not active: complete or test it first (dvhost connection test {spec})",
        connection.state.as_str()
    );
    Ok(())
}

/// Mints the admin key of this run; it lives in this process only.
fn mint_admin_key() -> anyhow::Result<String> {
    let mut shown = Vec::new();
    NewApiKey::mint().show_once(&mut shown)?;
    String::from_utf8(shown).context("the minted key is not text")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deploys one built plugin, with a spinner (the server compiles it).
async fn deploy(
    api: &DevApi,
    workspace: &Workspace,
    plugin: &DevPlugin,
    first: bool,
    globals: &Globals,
) -> anyhow::Result<()> {
    let path = workspace.component(plugin);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let deploying = format!("deploying {} (compiling)", plugin.name);
    let view = globals
        .spinning(&deploying, |_| api.deploy(plugin, bytes, first))
        .await;
    let (view, what) = match view? {
        Deployed::New(view) => (view, "deployed"),
        Deployed::Unchanged(view) => (view, "unchanged:"),
    };
    let actions = view["actions"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{what} {} version {} ({actions} actions)",
        plugin.name, view["active_version"]
    );
    Ok(())
}

/// Rebuilds and redeploys what changes, until `stop`.
async fn watch_loop(
    api: &DevApi,
    workspace: &Workspace,
    globals: &Globals,
    stop: signal::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut sources = match watch::SourceWatch::start(&workspace.root) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e:#}; not watching the sources");
            stopped(stop).await;
            return Ok(());
        }
    };
    loop {
        let changed = tokio::select! {
            changed = sources.next() => changed,
            () = stopped(stop.clone()) => return Ok(()),
        };
        let Some(changed) = changed else {
            return Ok(());
        };
        let names: Vec<&str> = changed.iter().map(|p| p.name).collect();
        eprintln!("sources changed: rebuilding {}", names.join(", "));
        if let Err(e) = workspace.build(&changed, globals).await {
            eprintln!("{e:#}\nthe served versions stay; save again to retry");
            continue;
        }
        for plugin in changed {
            if let Err(e) = deploy(api, workspace, plugin, false, globals).await {
                eprintln!("{e:#}");
            }
        }
    }
}
