//! Each Dataverse environment at its own origin, as in Microsoft's cloud
//! (`https://<org>.crm.dynamics.com`, "Compose HTTP requests and handle
//! errors",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors>):
//! one listener per environment, on its own port of the emulator's host,
//! serving the Web API at `/api/data/v9.x/`. Clients that resolve
//! `api/data/v9.2` against the environment URL (DynamicsWebApi does
//! `new URL('api/data/v9.2', serverUrl)`) then reach it with or without a
//! trailing slash.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;

use axum::http::Request;
use axum::http::uri::{PathAndQuery, Uri};
use parking_lot::Mutex;

use crate::Emulator;

/// The origin an environment's own listener serves, set on the requests
/// it forwards to the Web API.
#[derive(Debug, Clone)]
pub(crate) struct EnvOrigin(pub String);

/// Why an environment's listener could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The port (remembered in the state file, or from the seed) is taken.
    #[error("cannot listen on {addr} for environment '{env}': {source}")]
    Bind {
        /// The environment's unique name.
        env: String,
        /// The address tried.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Binds and serves environment listeners next to the main one.
pub(crate) struct Origins {
    /// IP the main listener is bound to.
    ip: IpAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// Host as written in URLs (`127.0.0.1`, `[::1]`).
    host: String,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    pub(crate) handle: axum_server::Handle,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

/// A bound, not yet served, environment listener.
pub(crate) struct Bound {
    listener: TcpListener,
    /// `http(s)://<host>:<port>`.
    pub origin: String,
}

impl Origins {
    pub(crate) fn new(
        ip: IpAddr,
        scheme: &'static str,
        host: String,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
        handle: axum_server::Handle,
    ) -> Self {
        Origins {
            ip,
            scheme,
            host,
            tls,
            handle,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Binds a listener for environment `env` at `port` (0 = a free one).
    pub(crate) fn bind(&self, env: &str, port: u16) -> Result<Bound, OriginError> {
        let addr = SocketAddr::new(self.ip, port);
        let bind = || -> std::io::Result<(TcpListener, u16)> {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            let port = l.local_addr()?.port();
            Ok((l, port))
        };
        let (listener, port) = bind().map_err(|source| OriginError::Bind {
            env: env.to_string(),
            addr,
            source,
        })?;
        Ok(Bound {
            listener,
            origin: format!("{}://{}:{port}", self.scheme, self.host),
        })
    }

    /// The port of an origin URL this emulator made.
    pub(crate) fn port_of(origin: &str) -> Option<u16> {
        url::Url::parse(origin).ok()?.port()
    }

    /// Serves the Web API of environment `name` on `bound`.
    pub(crate) fn serve(&self, emu: &Arc<Emulator>, name: &str, bound: Bound) {
        let router = crate::router(emu.clone());
        let prefix = format!("/{name}");
        let origin = EnvOrigin(bound.origin.clone());
        let app = tower::service_fn(move |peer: SocketAddr| {
            let svc = crate::DropConnections {
                router: router.clone(),
                peer: crate::control_access::Peer(peer),
                rewrite: Some((prefix.clone(), origin.clone())),
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(svc))
        });
        let task = match &self.tls {
            Some(config) => {
                let server = axum_server::from_tcp_rustls(bound.listener, config.clone())
                    .handle(self.handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
            None => {
                let server = axum_server::from_tcp(bound.listener).handle(self.handle.clone());
                tokio::spawn(async move { server.serve(app).await })
            }
        };
        self.tasks.lock().push(task);
    }
}

/// On an environment's listener, `/api/...` is that environment's Web API:
/// the path gains the `/<unique_name>` prefix the router expects, and the
/// request remembers the origin (for `@odata.context` and `OData-EntityId`).
/// Any other path is not this listener's: `false`, and the request is left
/// as it is.
pub(crate) fn rewrite<B>(req: &mut Request<B>, prefix: &str, origin: &EnvOrigin) -> bool {
    let path = req.uri().path();
    if path != "/api" && !path.starts_with("/api/") {
        return false;
    }
    let pq = match req.uri().query() {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = PathAndQuery::try_from(pq) else {
        return false;
    };
    parts.path_and_query = Some(pq);
    let Ok(uri) = Uri::from_parts(parts) else {
        return false;
    };
    *req.uri_mut() = uri;
    req.extensions_mut().insert(origin.clone());
    true
}
