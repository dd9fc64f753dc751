//! A fake Dataverse environment for the tests that need a server
//! misbehaving on purpose (a compromised or broken environment): HTTPS with
//! its own certificate, a token endpoint, and Web API answers a test shapes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dvhost_dataverse::{
    Authority, Client, Connection, EntitySet, Environment, HttpClient, Query, SigningAlgorithm,
    TokenSource,
};
use serde_json::{Value, json};

/// What the fake environment's token endpoint issues: JWT-shaped, so the
/// log check for `eyJ` covers it, and unique, so it can be searched for.
pub const FAKE_TOKEN: &str = "eyJhbGciOiJub25lIn0.c2VjcmV0LXdhbGwtdG9rZW4.fake-signature";

/// The strings that must never show up anywhere but in the one header.
pub fn secrets() -> [&'static str; 2] {
    [FAKE_TOKEN, "c2VjcmV0LXdhbGwtdG9rZW4"]
}

// ---- the fake environment ----

#[derive(Default)]
pub struct Fake {
    /// What `accounts` answers as `@odata.nextLink`.
    pub next_link: Mutex<Option<String>>,
    /// What `EntityDefinitions` answers as the account's `EntitySetName`.
    pub entity_set_name: Mutex<String>,
    /// Where `accounts` redirects, when set.
    pub redirect_to: Mutex<Option<String>>,
    /// Web API requests received (token requests not counted).
    pub api_requests: AtomicU64,
    /// Bodies of `$batch` requests.
    pub batches: Mutex<Vec<String>>,
    /// Web API requests that did not carry exactly the issued token.
    pub bad_auth: AtomicU64,
    /// Token requests received.
    pub token_requests: AtomicU64,
    /// The `expires_in` the token endpoint answers.
    pub expires_in: Mutex<Value>,
    /// How many `accounts` requests to answer 401 first.
    pub unauthorized: AtomicU64,
    /// When set, the next `accounts` request is answered 429 with this
    /// `Retry-After`.
    pub throttle: Mutex<Option<String>>,
    /// When set, `accounts` pages link to each other in a circle of two.
    pub cycle: std::sync::atomic::AtomicBool,
    /// When set, `accounts` answers a body of this many bytes.
    pub huge: AtomicU64,
    /// Milliseconds `EntityDefinitions` takes to answer.
    pub definitions_delay_ms: AtomicU64,
}

async fn token(State(fake): State<Arc<Fake>>) -> Response {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    let expires_in = fake.expires_in.lock().unwrap().clone();
    axum::Json(
        json!({"token_type": "Bearer", "access_token": FAKE_TOKEN, "expires_in": expires_in}),
    )
    .into_response()
}

fn count(fake: &Fake, headers: &HeaderMap) {
    fake.api_requests.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {FAKE_TOKEN}")) {
        fake.bad_auth.fetch_add(1, Ordering::SeqCst);
    }
}

async fn accounts(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    count(&fake, &headers);
    if fake
        .unauthorized
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "0x80072560", "message": "expired"}})),
        )
            .into_response();
    }
    if let Some(after) = fake.throttle.lock().unwrap().take() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", after)],
            axum::Json(json!({"error": {"code": "0x80072322", "message": "throttled"}})),
        )
            .into_response();
    }
    if let Some(to) = fake.redirect_to.lock().unwrap().clone() {
        return (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response();
    }
    let huge = fake.huge.load(Ordering::SeqCst);
    if huge > 0 {
        let filler = "x".repeat(huge as usize);
        return axum::Json(json!({"value": [{"name": filler}]})).into_response();
    }
    let mut body = json!({"value": [{"name": "A"}]});
    if let Some(link) = fake.next_link.lock().unwrap().clone() {
        body["@odata.nextLink"] = json!(link);
    }
    if fake.cycle.load(Ordering::SeqCst) {
        let n = fake.api_requests.load(Ordering::SeqCst) % 2;
        body["@odata.nextLink"] = json!(format!("accounts?$skiptoken={n}"));
    }
    axum::Json(body).into_response()
}

async fn definitions(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    count(&fake, &headers);
    let delay = fake.definitions_delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    let set = fake.entity_set_name.lock().unwrap().clone();
    axum::Json(json!({"value": [{
        "LogicalName": "account", "EntitySetName": set,
        "PrimaryIdAttribute": "accountid", "PrimaryNameAttribute": "name"
    }]}))
    .into_response()
}

async fn batch(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    count(&fake, &headers);
    fake.batches.lock().unwrap().push(body);
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": "0x0", "message": "not served here"}})),
    )
        .into_response()
}

async fn other(State(fake): State<Arc<Fake>>, headers: HeaderMap, uri: Uri) -> Response {
    count(&fake, &headers);
    (StatusCode::NOT_FOUND, format!("no route {}", uri.path())).into_response()
}

pub struct World {
    pub fake: Arc<Fake>,
    pub addr: SocketAddr,
    client: Option<Client>,
    ca_pem: String,
    /// Foreign listeners and their accepted-connection counters.
    pub foreign: Vec<(SocketAddr, Arc<AtomicU64>)>,
}

/// A TCP listener that only counts connections (and closes them).
pub async fn counting_listener(addr: &str) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (local, hits)
}

/// Starts the fake environment, foreign listeners, and a client of the fake.
pub async fn world() -> World {
    let tls = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_pem = tls.cert.pem();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = vec![tls.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(tls.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let fake = Arc::new(Fake {
        entity_set_name: Mutex::new("accounts".into()),
        expires_in: Mutex::new(json!(3600)),
        ..Fake::default()
    });
    let app = axum::Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/api/data/v9.2/accounts", get(accounts))
        .route("/api/data/v9.2/EntityDefinitions", get(definitions))
        .route("/api/data/v9.2/$batch", post(batch))
        .fallback(other)
        .with_state(fake.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    );
    tokio::spawn(async move { server.serve(app.into_make_service()).await });

    // Another host on the same port, another port on the same host.
    let foreign = vec![
        counting_listener(&format!("127.0.0.2:{}", addr.port())).await,
        counting_listener("127.0.0.1:0").await,
    ];
    let mut world = World {
        fake,
        addr,
        client: None,
        foreign,
        ca_pem: cert_pem,
    };
    world.client = Some(Client::new(token_source(&world)));
    world
}

/// A new token source (empty cache) for the fake environment.
pub fn token_source(w: &World) -> Arc<TokenSource> {
    let base = format!("https://127.0.0.1:{}", w.addr.port());
    let connection = Connection::new(
        Authority::parse(&base).unwrap(),
        super::TENANT,
        super::CLIENT,
        Environment::parse(&base).unwrap(),
        super::generated("wall"),
        SigningAlgorithm::Rs256,
    )
    .unwrap();
    let http = HttpClient::new(Some(&w.ca_pem)).unwrap();
    Arc::new(TokenSource::new(connection, http))
}

impl World {
    /// The client of the fake environment.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("set by world()")
    }

    pub fn requests(&self) -> u64 {
        self.fake.api_requests.load(Ordering::SeqCst)
    }

    pub fn assert_nothing_foreign(&self) {
        for (addr, hits) in &self.foreign {
            assert_eq!(
                hits.load(Ordering::SeqCst),
                0,
                "a connection reached {addr}"
            );
        }
        assert_eq!(
            self.fake.bad_auth.load(Ordering::SeqCst),
            0,
            "every request carried the token"
        );
    }

    pub fn accounts(&self) -> Query {
        Query::new(&EntitySet::new("accounts").unwrap())
    }
}
