//! A local, faithful emulator of the Microsoft services dvhost talks to:
//! the Entra ID v2.0 token service (client credentials with certificate
//! assertions, device code, refresh tokens, OpenID discovery, JWKS), Global
//! Discovery, and the Microsoft Graph calls used to register applications.
//!
//! It runs standalone (`dvhost emulator`) or in-process from tests:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let emu = dvhost_emulator::EmulatorBuilder::new().tls(true).start().await?;
//! println!("authority: {}/contoso", emu.base_url());
//! let _ca_pem = emu.ca_certificate_pem().unwrap();
//! # Ok(()) }
//! ```
//!
//! Wire formats follow Microsoft's documentation, cited where each part is
//! implemented (the Microsoft identity platform pages under
//! <https://learn.microsoft.com/entra/identity-platform/>, the Dataverse Web API pages under
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/>); the control API under `/_emulator/`
//! builds the world tests need.

mod bearer;
mod clock;
mod control;
mod control_access;
pub(crate) mod dataverse;
mod discovery;
mod entra;
mod fallback;
mod faults;
mod graph;
mod odata;
mod origins;
mod rows_file;
pub mod seed;
mod state;
mod tls;

/// What the crate's unit tests share.
#[cfg(test)]
mod test_support {
    /// Takes what a test computes only to show that computing it does not
    /// panic (success and error are both fine).
    pub(crate) fn must_not_panic<T>(_outcome: T) {}
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::HeaderMap;
use parking_lot::RwLock;

pub use control_access::CONTROL_TOKEN_HEADER;
pub use entra::error::EntraError;
/// The OData `$filter` parser and evaluator the emulated services use, for
/// checking filters other code writes.
pub use odata::filter;
pub use origins::OriginError;
pub use rows_file::RowsFileError;
pub use seed::{
    AppSeed, EnvironmentSeed, FaultAction, FaultRule, Seed, ServiceProtection, Settings,
    TenantSeed, UserSeed,
};
pub use state::{DISCOVERY_RESOURCE, GRAPH_RESOURCE, TokenStats, WELL_KNOWN_PUBLIC_CLIENTS};

use entra::keys::{SigningKey, SigningKeyMaterial};
use state::Directory;

/// Largest request body the emulator reads (token requests are tiny; Graph
/// bodies carry a few certificates).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Largest Web API request body (a `$batch` of 1000 operations, bulk messages).
pub const DATAVERSE_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Shared state of one running emulator.
pub(crate) struct Emulator {
    pub(crate) dir: RwLock<Directory>,
    pub(crate) signing: SigningKey,
    /// Base URL the emulator announces, e.g. `https://127.0.0.1:8443`.
    pub(crate) base_url: String,
    /// Every base URL that names this emulator: [`Emulator::base_url`],
    /// `localhost` for a loopback listener, the TLS names and configured
    /// aliases, all at the listening port. Assertion audiences and
    /// documents only ever use these.
    pub(crate) base_urls: Vec<String>,
    pub(crate) tls: bool,
    /// When set, the control API wants it from every caller; when not, it
    /// answers loopback callers only.
    pub(crate) control_token: Option<String>,
    state_file: Option<PathBuf>,
    /// Dataverse rows of every environment (in memory only).
    pub(crate) dataverse: dataverse::Environments,
    /// The environments' own listeners.
    pub(crate) origins: origins::Origins,
    /// This emulator, for starting environment listeners from `&self`.
    me: std::sync::Weak<Emulator>,
    /// One writer of the rows file at a time.
    rows_lock: parking_lot::Mutex<()>,
}

/// What the `--state` file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Persisted {
    directory: Directory,
    signing_key: SigningKeyMaterial,
}

impl Emulator {
    /// The clock, with the configured offset.
    pub(crate) fn now(&self) -> time::OffsetDateTime {
        clock::now(self.dir.read().settings.clock_offset_secs)
    }

    /// The base URL as the client addressed it (its `Host` header) when
    /// that is one of the emulator's own names, so documents agree with what
    /// the client used whether it said `localhost` or `127.0.0.1`; any other
    /// `Host` gets the announced base URL.
    pub(crate) fn request_base(&self, headers: &HeaderMap) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("{scheme}://{h}"))
            .and_then(|b| {
                self.base_urls
                    .iter()
                    .find(|own| own.eq_ignore_ascii_case(&b))
                    .cloned()
            })
            .unwrap_or_else(|| self.base_url.clone())
    }

    /// The Dataverse rows file, when a state file is configured.
    pub(crate) fn rows_file(&self) -> Option<PathBuf> {
        self.state_file.as_deref().map(rows_file::rows_path)
    }

    /// Writes the state file, when one is configured. Failures are logged,
    /// never fatal: the in-memory state stays authoritative.
    pub(crate) fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let snapshot = Persisted {
            directory: self.dir.read().clone(),
            signing_key: self.signing.material().clone(),
        };
        let result = serde_json::to_vec_pretty(&snapshot)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)?;
                Ok(())
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write emulator state file");
        }
    }

    /// Applies a seed to the directory.
    /// Applies a seed to the directory; its settings replace the current
    /// ones only when `with_settings` (the initial seed).
    pub(crate) fn apply_seed(
        &self,
        seed: Seed,
        with_settings: bool,
    ) -> Result<(), state::SeedError> {
        let now = self.now();
        let mut guard = self.dir.write();
        // Work on a copy so a seed that fails half-way changes nothing.
        let mut dir = guard.clone();
        if with_settings {
            dir.settings = seed.settings;
        }
        for t in seed.tenants {
            dir.add_tenant(t)?;
        }
        for u in seed.users {
            dir.add_user(u)?;
        }
        for a in seed.apps {
            dir.add_app(a, now)?;
        }
        let mut listeners = Vec::new();
        for e in seed.environments {
            let bound = self.bind_environment(&e)?;
            let env = dir.add_environment(e, &self.base_url, Some(bound.origin.clone()))?;
            listeners.push((env.unique_name, bound));
        }
        for f in seed.faults {
            dir.faults.push(faults::FaultState::new(f).map_err(|why| {
                state::SeedError::Invalid {
                    what: "fault".into(),
                    why: why.to_string(),
                }
            })?);
        }
        *guard = dir;
        drop(guard);
        for (name, bound) in listeners {
            self.serve_environment(&name, bound);
        }
        Ok(())
    }

    /// Binds the listener of an environment about to be added.
    fn bind_environment(&self, seed: &EnvironmentSeed) -> Result<origins::Bound, state::SeedError> {
        self.origins
            .bind(&seed.unique_name, seed.port.unwrap_or(0))
            .map_err(|e| state::SeedError::Invalid {
                what: "environment port".into(),
                why: e.to_string(),
            })
    }

    /// Serves an environment's Web API on its bound listener.
    fn serve_environment(&self, name: &str, bound: origins::Bound) {
        match self.me.upgrade() {
            Some(me) => self.origins.serve(&me, name, bound),
            None => tracing::warn!(env = name, "the emulator is shutting down; not serving"),
        }
    }

    /// Adds one environment with its own listener (the control API's
    /// `POST environments`).
    pub(crate) fn add_environment(
        &self,
        seed: EnvironmentSeed,
    ) -> Result<state::Environment, state::SeedError> {
        let bound = self.bind_environment(&seed)?;
        let env =
            self.dir
                .write()
                .add_environment(seed, &self.base_url, Some(bound.origin.clone()))?;
        self.serve_environment(&env.unique_name, bound);
        Ok(env)
    }

    /// After a restart with `--state`: every environment listens again at
    /// the origin it had, so its URL stays the same.
    fn serve_persisted_environments(&self) -> Result<(), OriginError> {
        let envs: Vec<(String, Option<String>)> = self
            .dir
            .read()
            .environments
            .iter()
            .map(|e| (e.unique_name.clone(), e.origin.clone()))
            .collect();
        for (name, origin) in envs {
            let Some(port) = origin.as_deref().and_then(origins::Origins::port_of) else {
                continue;
            };
            let bound = self.origins.bind(&name, port)?;
            self.serve_environment(&name, bound);
        }
        Ok(())
    }
}

/// Configures and starts an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    listen: SocketAddr,
    tls: bool,
    seed: Seed,
    state_file: Option<PathBuf>,
    tls_names: Vec<String>,
    aliases: Vec<String>,
    control_token: Option<String>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EmulatorBuilder {
    /// Listens on an ephemeral loopback port, plain HTTP, empty directory.
    pub fn new() -> Self {
        EmulatorBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            seed: Seed::default(),
            state_file: None,
            tls_names: Vec::new(),
            aliases: Vec::new(),
            control_token: None,
        }
    }

    /// Address to listen on (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Serve HTTPS with a freshly generated local CA.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Extra DNS names or IPs for the server certificate.
    pub fn tls_names(mut self, names: Vec<String>) -> Self {
        self.tls_names = names;
        self
    }

    /// More base URLs that name this emulator (e.g. `https://sts.test:8443`
    /// behind a proxy): client assertions may use them as `aud`.
    pub fn aliases(mut self, urls: Vec<String>) -> Self {
        self.aliases = urls;
        self
    }

    /// A secret the control API (`/_emulator/`) then wants from every
    /// caller, as `Authorization: Bearer <token>` or in
    /// [`CONTROL_TOKEN_HEADER`]; without one it answers loopback callers only.
    pub fn control_token(mut self, token: Option<String>) -> Self {
        self.control_token = token.filter(|t| !t.is_empty());
        self
    }

    /// The directory to start with (ignored when a state file already exists).
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seed = seed;
        self
    }

    /// Persist the directory (and signing key) to this JSON file, and load it
    /// at start when it exists.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Binds, builds the directory and starts serving in the background.
    pub async fn start(self) -> anyhow::Result<RunningEmulator> {
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if self.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{host}:{}", addr.port());
        let local_tls = self
            .tls
            .then(|| tls::LocalTls::generate(&self.tls_names))
            .transpose()?;
        let tls_config = local_tls
            .as_ref()
            .map(|t| axum_server::tls_rustls::RustlsConfig::from_config(t.server_config.clone()));
        let handle = axum_server::Handle::new();
        let origins =
            origins::Origins::new(addr.ip(), scheme, host, tls_config.clone(), handle.clone());

        let (mut directory, signing, seeded) = match load_state(self.state_file.as_deref())? {
            Some(p) => (p.directory, SigningKey::load(p.signing_key)?, true),
            None => (Directory::default(), SigningKey::generate()?, false),
        };
        let base_urls = own_base_urls(&base_url, scheme, addr, &self.tls_names, &self.aliases);
        directory.base_urls = base_urls.clone();
        let emu = Arc::new_cyclic(|me| Emulator {
            dir: RwLock::new(directory),
            signing,
            base_url: base_url.clone(),
            base_urls,
            tls: self.tls,
            control_token: self.control_token.clone(),
            state_file: self.state_file.clone(),
            dataverse: Default::default(),
            origins,
            me: me.clone(),
            rows_lock: Default::default(),
        });
        if let Some(rows) = emu.rows_file() {
            emu.dataverse.restore(rows_file::load(&rows)?);
        }
        if seeded {
            tracing::info!("loaded emulator state; the seed is not applied again");
            emu.serve_persisted_environments()?;
        } else {
            emu.apply_seed(self.seed, true)?;
            emu.persist();
        }

        warn_if_exposed(addr, emu.control_token.is_some());
        let app = connection_service(router(emu.clone()), None);
        let task = match tls_config {
            Some(config) => {
                let server = axum_server::from_tcp_rustls(listener, config).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(listener).handle(handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        Ok(RunningEmulator {
            base_url,
            addr,
            ca_pem: local_tls.map(|t| t.ca_pem),
            handle,
            task,
            saver: rows_file::spawn_saver(&emu),
            emu,
        })
    }
}

/// Reads the `--state` file, when there is one.
fn load_state(path: Option<&std::path::Path>) -> anyhow::Result<Option<Persisted>> {
    match path {
        Some(p) if p.exists() => {
            let bytes = std::fs::read(p)?;
            let persisted = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("state file {}: {e}", p.display()))?;
            Ok(Some(persisted))
        }
        _ => Ok(None),
    }
}

/// A make-service that gives each connection its peer address (the control
/// API's guard reads it) and, on an environment's listener, the rewrite to
/// that environment's Web API.
fn connection_service(
    router: axum::Router,
    rewrite: Option<(String, origins::EnvOrigin)>,
) -> impl tower::Service<
    SocketAddr,
    Response = DropConnections,
    Error = std::convert::Infallible,
    Future = std::future::Ready<Result<DropConnections, std::convert::Infallible>>,
> + Clone {
    tower::service_fn(move |peer: SocketAddr| {
        std::future::ready(Ok(DropConnections {
            router: router.clone(),
            peer: control_access::Peer(peer),
            rewrite: rewrite.clone(),
        }))
    })
}

/// Listening beyond loopback lets other machines reach the token service
/// and the Web API; say so, and how the control API is protected.
fn warn_if_exposed(addr: SocketAddr, has_control_token: bool) {
    if addr.ip().is_loopback() {
        return;
    }
    if has_control_token {
        tracing::warn!(%addr, "the emulator listens beyond loopback; the control API wants the control token");
    } else {
        tracing::warn!(%addr, "the emulator listens beyond loopback; the control API answers loopback callers only (set a control token to use it from elsewhere)");
    }
}

/// The base URLs that name an emulator announced at `base_url` and
/// listening on `addr`.
fn own_base_urls(
    base_url: &str,
    scheme: &str,
    addr: SocketAddr,
    tls_names: &[String],
    aliases: &[String],
) -> Vec<String> {
    let port = addr.port();
    let mut out = vec![base_url.to_string()];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        out.push(format!("{scheme}://localhost:{port}"));
    }
    out.extend(tls_names.iter().map(|n| format!("{scheme}://{n}:{port}")));
    out.extend(aliases.iter().map(|a| a.trim_end_matches('/').to_string()));
    out.dedup();
    out
}

/// Serves the router, but closes the connection instead of answering when
/// a response carries [`faults::DropConnection`] (fault injection): a
/// service error makes hyper drop the connection without a response.
#[derive(Clone)]
pub(crate) struct DropConnections {
    router: axum::Router,
    peer: control_access::Peer,
    /// On an environment's listener: its path prefix and origin.
    rewrite: Option<(String, origins::EnvOrigin)>,
}

impl<B> tower::Service<axum::http::Request<B>> for DropConnections
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        use tower::ServiceExt as _;
        let router = self.router.clone();
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(self.peer);
        if let Some((prefix, origin)) = &self.rewrite
            && !origins::rewrite(&mut req, prefix, origin)
        {
            // An environment's origin serves its Web API only.
            return Box::pin(async move { Ok(fallback::not_found(req).await) });
        }
        Box::pin(async move {
            let resp = router
                .oneshot(req)
                .await
                .unwrap_or_else(|never| match never {});
            if resp.extensions().get::<faults::DropConnection>().is_some() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection dropped by an injected fault",
                ));
            }
            Ok(resp)
        })
    }
}

/// Builds the full HTTP surface.
pub(crate) fn router(emu: Arc<Emulator>) -> axum::Router {
    axum::Router::new()
        .merge(entra::routes())
        .merge(discovery::routes())
        .merge(graph::routes())
        .merge(control::guarded_routes(emu.clone()))
        // $batch and bulk bodies are far larger than token requests.
        .merge(
            dataverse::routes().layer(axum::extract::DefaultBodyLimit::max(
                DATAVERSE_MAX_BODY_BYTES,
            )),
        )
        .fallback(fallback::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(emu)
}

/// A running emulator. Dropping it does not stop the server; call
/// [`RunningEmulator::shutdown`] or let the runtime end.
pub struct RunningEmulator {
    base_url: String,
    addr: SocketAddr,
    ca_pem: Option<String>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Writes the Dataverse rows after changes (with a state file).
    saver: Option<tokio::task::JoinHandle<()>>,
    emu: Arc<Emulator>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// `http(s)://127.0.0.1:PORT`; authorities are `<base>/<tenant>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the local CA when serving HTTPS.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Every environment's unique name and URL (its own origin unless the
    /// seed gave a URL), as `GET /_emulator/state` shows them.
    pub fn environments(&self) -> Vec<(String, String)> {
        self.emu
            .dir
            .read()
            .environments
            .iter()
            .map(|e| (e.unique_name.clone(), e.url.clone()))
            .collect()
    }

    /// The URL of environment `unique_name`, when there is one.
    pub fn environment_url(&self, unique_name: &str) -> Option<String> {
        self.environments()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(unique_name))
            .map(|(_, url)| url)
    }

    /// Token-endpoint counters (also at `GET /_emulator/stats`).
    pub fn token_stats(&self) -> TokenStats {
        self.emu.dir.read().stats.clone()
    }

    /// Signs arbitrary claims with the emulator's token-signing key, so
    /// tests can present tokens Entra would issue for other tenants or
    /// resources and check that the resource servers refuse them.
    pub fn sign_token(&self, claims: &serde_json::Value) -> String {
        self.emu.signing.sign(claims)
    }

    /// Applies more seed data (tenants, users, apps, environments) to the
    /// running emulator; its settings are ignored.
    pub fn seed(&self, seed: Seed) -> anyhow::Result<()> {
        self.emu.apply_seed(seed, false)?;
        self.emu.persist();
        Ok(())
    }

    /// Stops accepting connections (the main listener and every
    /// environment's) and waits for the server tasks.
    /// With a state file, the Dataverse rows are written last.
    pub async fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        let env_tasks = std::mem::take(&mut *self.emu.origins.tasks.lock());
        for task in std::iter::once(self.task).chain(env_tasks) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("an emulator server ended with an error: {e}"),
                Err(e) => tracing::warn!("an emulator server task failed: {e}"),
            }
        }
        if let Some(saver) = self.saver {
            saver.abort();
        }
        let emu = self.emu;
        let saving = tokio::task::spawn_blocking(move || emu.save_rows());
        if let Err(e) = saving.await {
            tracing::warn!("writing the Dataverse rows failed: {e}");
        }
    }

    /// Serves until `signal` completes (then shuts down, writing the rows
    /// with a state file) or the server ends.
    pub async fn serve_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            ended = &mut self.task => {
                self.emu.save_rows();
                ended??;
                Ok(())
            }
            () = signal => {
                self.shutdown().await;
                Ok(())
            }
        }
    }

    /// Serves until the server task ends (standalone use).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        self.emu.save_rows();
        Ok(())
    }
}
