//! One server per test: a SQLite store in a temporary directory, the
//! process's one engine (compiled components cached on disk under
//! `target/`, shared with the runtime's tests), no connections and a fresh
//! admin key. Requests go through `router(state).oneshot(..)`; the load
//! test also serves on a real listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use dvhost_dataverse::{NewApiKey, PresentedApiKey};
use dvhost_runtime::{Engine, EngineConfig};
use dvhost_server::{AppState, NoConnections, ServerConfig, Services, router};
use dvhost_store::Store;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The hello example's actions' plugin name in these tests.
pub const HELLO: &str = "hello";

/// The engine every test server runs on, made once per process.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(EngineConfig {
                cache_dir: Some(
                    dvhost_testkit::workspace_root()
                        .join("target")
                        .join("runtime-test-cache"),
                ),
                max_instances: 64,
                ..EngineConfig::default()
            })
            .expect("engine")
        })
        .clone()
}

/// The bytes of Rust guest `name` (built once per process).
pub fn guest(name: &str) -> Arc<[u8]> {
    static GUESTS: OnceLock<Mutex<HashMap<String, Arc<[u8]>>>> = OnceLock::new();
    let mut guests = GUESTS.get_or_init(Default::default).lock();
    guests
        .entry(name.to_owned())
        .or_insert_with(|| {
            std::fs::read(dvhost_testkit::rust_guest(name))
                .expect("guest component")
                .into()
        })
        .clone()
}

/// The hello example's component.
pub fn hello() -> Arc<[u8]> {
    guest(dvhost_testkit::HELLO)
}

/// The hostile fixture's component.
pub fn hostile() -> Arc<[u8]> {
    guest(dvhost_testkit::HOSTILE)
}

/// A server under test.
pub struct Server {
    /// Its state (for `flush_audit`).
    pub state: AppState,
    app: Router,
    /// The admin key.
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}); status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, then returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// [`Answer::expect_error`], and the message contains `words`.
    #[track_caller]
    pub fn expect_error_saying(&self, status: StatusCode, code: &str, words: &str) -> Value {
        let error = self.expect_error(status, code);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{words:?} is not in {error}");
        error
    }

    /// Asserts an error answer: status, `{"error": {"code", "message"}}`;
    /// returns the `error` object.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> Value {
        let body = self.expect(status);
        let error = body["error"].clone();
        assert_eq!(error["code"], code, "body: {body}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error needs a message: {body}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "errors are JSON: {:?}",
            self.headers
        );
        error
    }
}

/// A request with an optional `Authorization: Bearer` key.
pub fn request(method: Method, uri: &str, key: Option<&str>) -> axum::http::request::Builder {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
}

/// A `multipart/form-data` deploy body: its content type and bytes.
pub fn multipart(component: &[u8], settings: Option<&Value>) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "dvhost-test-boundary-5b0c9e1a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"component\"; \
             filename=\"plugin.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(component);
    body.extend_from_slice(b"\r\n");
    if let Some(settings) = settings {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"settings\"\r\n\
                 Content-Type: application/json\r\n\r\n{settings}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

impl Server {
    /// A server with the default settings.
    pub async fn start() -> Server {
        Server::with_config(ServerConfig::default()).await
    }

    /// A server with `config`.
    pub async fn with_config(config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open_sqlite(dir.path()).await.expect("store");
        let mut text = Vec::new();
        NewApiKey::mint().show_once(&mut text).expect("admin key");
        let admin = String::from_utf8(text).expect("keys are text");
        let admin_key_hash = PresentedApiKey::parse(&admin)
            .expect("a minted key parses")
            .fingerprint();
        let state = AppState::new(Services {
            store,
            engine: engine(),
            connections: Arc::new(NoConnections),
            admin_key_hash: Some(admin_key_hash),
            tables_component: None,
            config,
        });
        Server {
            app: router(state.clone()),
            state,
            admin,
            _dir: dir,
        }
    }

    /// Sends `request` through the router.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body")
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A request without a body.
    pub async fn call(&self, method: Method, uri: &str, key: Option<&str>) -> Answer {
        self.send(request(method, uri, key).body(Body::empty()).unwrap())
            .await
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str, key: &str) -> Answer {
        self.call(Method::GET, uri, Some(key)).await
    }

    /// A request with a JSON body.
    pub async fn json(&self, method: Method, uri: &str, key: Option<&str>, body: &Value) -> Answer {
        self.send(
            request(method, uri, key)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// `POST uri` with a JSON body.
    pub async fn post(&self, uri: &str, key: &str, body: &Value) -> Answer {
        self.json(Method::POST, uri, Some(key), body).await
    }

    /// `PATCH uri` with a JSON body.
    pub async fn patch(&self, uri: &str, key: &str, body: &Value) -> Answer {
        self.json(Method::PATCH, uri, Some(key), body).await
    }

    /// `PUT uri` with a component as `application/wasm`.
    pub async fn put_wasm(&self, uri: &str, key: &str, component: &[u8]) -> Answer {
        self.send(
            request(Method::PUT, uri, Some(key))
                .header(header::CONTENT_TYPE, "application/wasm")
                .body(Body::from(component.to_vec()))
                .unwrap(),
        )
        .await
    }

    /// Calls `action` of `plugin` of `tenant` with `input`.
    pub async fn invoke(
        &self,
        key: &str,
        tenant: &str,
        plugin: &str,
        action: &str,
        input: &Value,
    ) -> Answer {
        self.json(
            Method::POST,
            &format!("/v1/tenants/{tenant}/plugins/{plugin}/actions/{action}"),
            Some(key),
            input,
        )
        .await
    }

    /// Creates tenant `name` with the admin key.
    pub async fn create_tenant(&self, name: &str) {
        let admin = self.admin.clone();
        self.json(
            Method::POST,
            "/v1/admin/tenants",
            Some(&admin),
            &json!({ "name": name }),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// Mints a key of `tenant` with `rights`; returns `(id, key)`.
    pub async fn mint_key(&self, tenant: &str, rights: &[&str]) -> (String, String) {
        let admin = self.admin.clone();
        let minted = self
            .json(
                Method::POST,
                &format!("/v1/admin/tenants/{tenant}/keys"),
                Some(&admin),
                &json!({ "rights": rights, "label": "test" }),
            )
            .await
            .expect(StatusCode::CREATED);
        (
            minted["id"].as_str().expect("an id").to_owned(),
            minted["key"].as_str().expect("a key").to_owned(),
        )
    }

    /// Deploys `component` as `plugin` of `tenant` (raw `application/wasm`,
    /// admin key).
    pub async fn deploy(&self, tenant: &str, plugin: &str, component: &[u8]) -> Answer {
        let uri = format!("/v1/tenants/{tenant}/plugins/{plugin}");
        self.put_wasm(&uri, &self.admin, component).await
    }

    /// Deploys `component` with `settings` as a multipart form.
    pub async fn deploy_form(
        &self,
        tenant: &str,
        plugin: &str,
        component: &[u8],
        settings: Option<&Value>,
    ) -> Answer {
        let (content_type, body) = multipart(component, settings);
        self.send(
            request(
                Method::PUT,
                &format!("/v1/tenants/{tenant}/plugins/{plugin}"),
                Some(&self.admin),
            )
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap(),
        )
        .await
    }

    /// A tenant with hello deployed as `hello` and a key with every right.
    pub async fn tenant_with_hello(&self, tenant: &str) -> String {
        self.create_tenant(tenant).await;
        self.deploy(tenant, HELLO, &hello())
            .await
            .expect(StatusCode::CREATED);
        self.mint_key(tenant, &["invoke", "deploy", "audit"])
            .await
            .1
    }

    /// Serves the same state on a real listener on 127.0.0.1; returns its
    /// address and the handle that stops it.
    pub async fn listen(&self) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let address = listener.local_addr().expect("its address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(dvhost_server::serve(listener, self.state.clone(), async {
            let _ = stopped.await;
        }));
        Listening {
            address,
            stop,
            served,
        }
    }
}

/// A server on a real listener.
pub struct Listening {
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listening {
    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Shuts the server down and waits for it.
    pub async fn shut_down(self) {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the server task")
            .expect("the server ends cleanly");
    }
}
