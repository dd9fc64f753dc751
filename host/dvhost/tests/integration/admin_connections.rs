//! The admin API's connection routes end to end: the real router over
//! `StoreConnections` (the store, the master key, the flows) against the
//! in-process emulator, spoken to over HTTP. A manual connection is created
//! (the request carries the public certificate), refused with a wrong
//! client id (the AADSTS cause in words), registered as an administrator
//! would, completed, tested, used by a plugin and deleted; an automatic
//! connection is refused without a stored sign-in, created with one,
//! used by a plugin through a rotation (the old thumbprint gone after the
//! overlap) and deleted. A server made by `serve::prepare` (as `dvhost
//! serve` makes it) from a configuration with an `[smtp]` section e-mails
//! the manual request to a local SMTP sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dvhost::cli::context::{Globals, LogFormat};
use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use dvhost::flows::auto::Services;
use dvhost::flows::sign_in::{self, DISCOVERY_SCOPE};
use dvhost::serve::{ServeConfig, StoreConnections};
use dvhost_dataverse::{Authority, DeviceSignIn, GraphService, HttpClient, MasterKey, NewApiKey};
use dvhost_server::{AppState, ServerConfig};
use dvhost_store::Store;
use mail_parser::MimeHeaders as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::smtp::smtp_server;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
/// The app an administrator registers by hand for the manual connection
/// (an application user of the environment from the start).
const MANUAL_CLIENT: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const WRONG_CLIENT: &str = "bbbbbbbb-0000-0000-0000-00000000dead";
const ADMIN: &str = "admin@contoso.onmicrosoft.com";
const ENVIRONMENT: &str = "contoso-dev";
const ACCOUNT: &str = "00000000-0000-0000-0000-0000000000aa";

struct World {
    emu: RunningEmulator,
    control: reqwest::Client,
    device: DeviceSignIn,
    store: Store,
    master: MasterKey,
    api: Api,
    _dir: tempfile::TempDir,
}

/// A running server, spoken to over HTTP with its admin key.
struct Api {
    http: reqwest::Client,
    url: String,
    admin_key: String,
}

impl Api {
    /// Serves `state` on `listener` and creates the tenant `contoso`.
    async fn start(listener: tokio::net::TcpListener, state: AppState, admin_key: String) -> Api {
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(dvhost_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        let api = Api {
            http: reqwest::Client::new(),
            url,
            admin_key,
        };
        let (status, body) = api
            .admin(
                Method::POST,
                "/v1/admin/tenants",
                Some(json!({"name": "contoso"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        api
    }

    /// A request with the admin key; the status and the JSON body (null
    /// when empty).
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"))
        };
        (status, value)
    }
}

/// A new admin key, shown, and its SHA-256.
fn mint_admin_key() -> (String, [u8; 32]) {
    let key = NewApiKey::mint();
    let hash = key.hash();
    let mut shown = Vec::new();
    key.show_once(&mut shown).unwrap();
    (String::from_utf8(shown).unwrap(), hash)
}

/// The emulator: the tenant, its administrator, the public client of
/// `dvhost login` and the environment.
async fn emulator() -> RunningEmulator {
    let toml = format!(
        r#"
        [settings]
        device_code_interval_secs = 1
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[users]]
        tenant = "contoso"
        upn = "{ADMIN}"
        admin = true
        [[apps]]
        tenant = "contoso"
        display_name = "dvhost cli"
        app_id = "{PUBLIC_CLIENT}"
        public_client = true
        [[environments]]
        tenant = "contoso"
        unique_name = "{ENVIRONMENT}"
        app_users = ["{MANUAL_CLIENT}"]
        "#
    );
    EmulatorBuilder::new()
        .tls(true)
        .seed(Seed::from_toml(&toml, None).unwrap())
        .start()
        .await
        .unwrap()
}

async fn world() -> World {
    world_with_timeout(120_000).await
}

/// A world whose server answers within `request_timeout_ms`.
async fn world_with_timeout(request_timeout_ms: u64) -> World {
    let emu = emulator().await;
    let pem = emu.ca_certificate_pem().unwrap().to_string();
    let http = HttpClient::new(Some(&pem)).unwrap();
    let authority = Authority::parse(emu.base_url()).unwrap();
    let device = DeviceSignIn::new(authority.clone(), TENANT, PUBLIC_CLIENT, http.clone()).unwrap();
    let services = Services {
        authority,
        graph: GraphService::parse(emu.base_url()).unwrap(),
        http,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("data")).await.unwrap();
    let master = MasterKey::from_bytes([7; 32]);
    store.check_master_key(&master.fingerprint()).await.unwrap();
    let connections =
        StoreConnections::new(store.clone(), MasterKey::from_bytes([7; 32]), services)
            .with_sign_in(
                DeviceSignIn::new(
                    services_authority(&emu),
                    TENANT,
                    PUBLIC_CLIENT,
                    HttpClient::new(Some(&pem)).unwrap(),
                )
                .unwrap(),
            );
    let (admin_key, admin_hash) = mint_admin_key();
    let state = AppState::new(dvhost_server::Services {
        store: store.clone(),
        engine: support::engine(),
        connections: Arc::new(connections),
        admin_key_hash: Some(admin_hash),
        tables_component: None,
        config: ServerConfig {
            request_timeout_ms,
            ..ServerConfig::default()
        },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api::start(listener, state, admin_key).await;
    let control = support::control_client(&emu);
    World {
        emu,
        control,
        device,
        store,
        master,
        api,
        _dir: dir,
    }
}

fn services_authority(emu: &RunningEmulator) -> Authority {
    Authority::parse(emu.base_url()).unwrap()
}

impl World {
    /// A request with the admin key; the status and the JSON body (null
    /// when empty).
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.api.admin(method, path, body).await
    }

    fn connections(&self) -> String {
        "/v1/admin/tenants/contoso/connections".into()
    }

    fn environment_url(&self) -> String {
        self.emu.environment_url(ENVIRONMENT).unwrap()
    }

    /// What the administrator does in Entra: registers the app with the
    /// request's certificate (its service principal comes with it).
    fn register_app(&self, client: &str, certificate_pem: &str) {
        support::register_app(&self.emu, "dvhost-contoso-manual", client, certificate_pem);
    }

    /// `dvhost login` as `upn`: a device-code sign-in approved through the
    /// control API, stored sealed.
    async fn log_in(&self, upn: &str) {
        let pending = self
            .device
            .start(&[DISCOVERY_SCOPE, "offline_access", "openid"])
            .await
            .unwrap();
        let code = &pending.prompt().user_code;
        support::approve_device_code(&self.control, self.emu.base_url(), code, upn).await;
        let tokens = self
            .device
            .complete(pending, Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
        sign_in::save(&self.store, &self.master, &tokens, None)
            .await
            .unwrap();
    }

    /// The emulator's app registrations.
    async fn apps(&self) -> Vec<Value> {
        let state = support::control_json(&self.control, &self.emu, "state").await;
        state["apps"].as_array().cloned().unwrap()
    }

    /// The SHA-1 thumbprints the app `client_id` holds.
    async fn app_thumbprints(&self, client_id: &str) -> Vec<String> {
        let apps = self.apps().await;
        let app = apps
            .iter()
            .find(|a| a["app_id"] == client_id)
            .unwrap_or_else(|| panic!("no app {client_id}"));
        app["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha1_thumbprint"].as_str().unwrap().to_lowercase())
            .collect()
    }

    /// Deploys the contacts example bound to `connection` with read on
    /// contact; an invoke key for it.
    async fn deploy_contacts(&self, connection: &str) -> String {
        let component =
            std::fs::read(dvhost_testkit::rust_guest(dvhost_testkit::CONTACTS)).unwrap();
        let settings = json!({"grants": {"contact": ["read"]}, "connection": connection});
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(component)
                    .mime_str("application/wasm")
                    .unwrap(),
            )
            .text("settings", settings.to_string());
        let response = self
            .api
            .http
            .put(format!(
                "{}/v1/tenants/contoso/plugins/contacts",
                self.api.url
            ))
            .bearer_auth(&self.api.admin_key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "deploy: {status}: {}",
            response.text().await.unwrap()
        );
        let (status, key) = self
            .admin(
                Method::POST,
                "/v1/admin/tenants/contoso/keys",
                Some(json!({"rights": ["invoke"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        key["key"].as_str().unwrap().to_string()
    }

    /// `list-contacts` through the plugin: a query of Dataverse with the
    /// connection's certificate.
    async fn list_contacts(&self, api_key: &str) -> (StatusCode, Value) {
        let response = self
            .api
            .http
            .post(format!(
                "{}/v1/tenants/contoso/plugins/contacts/actions/list-contacts",
                self.api.url
            ))
            .bearer_auth(api_key)
            .json(&json!({"account_id": ACCOUNT}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn undeploy_contacts(&self) {
        let (status, body) = self
            .admin(Method::DELETE, "/v1/tenants/contoso/plugins/contacts", None)
            .await;
        assert!(status.is_success(), "{status}: {body}");
    }
}

#[tokio::test]
async fn a_manual_connection_is_requested_refused_completed_used_and_deleted() {
    let w = world().await;
    let base = w.connections();
    let (status, created) = w
        .admin(
            Method::POST,
            &base,
            Some(json!({
                "name": "manual",
                "environment_url": w.environment_url(),
                "mode": "manual",
                "admin_email": "admin@contoso.test",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["connection"]["state"], "pending", "{created}");
    assert_eq!(created["connection"]["mode"], "manual");
    let request = &created["request"];
    let pem = request["certificate_pem"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!created.to_string().contains("PRIVATE KEY"));
    let sha1 = request["sha1_thumbprint"].as_str().unwrap();
    let instructions = request["instructions"].as_str().unwrap();
    assert!(instructions.contains(sha1), "{instructions}");
    assert_eq!(
        created["mail"],
        json!({"sent": false, "to": null, "reason": "SMTP is not configured"})
    );
    assert!(
        created["next"].as_str().unwrap().contains("/complete"),
        "{created}"
    );

    // A wrong client id: refused with Entra's cause, still pending.
    let complete = format!("{base}/manual/complete");
    let (status, refused) = w
        .admin(
            Method::POST,
            &complete,
            Some(json!({"entra_tenant_id": TENANT, "client_id": WRONG_CLIENT})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "answer_refused");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("AADSTS700016") && message.contains(WRONG_CLIENT),
        "{message}"
    );
    assert_eq!(refused["error"]["details"]["aadsts"], 700016);
    let (_, shown) = w.admin(Method::GET, &format!("{base}/manual"), None).await;
    assert_eq!(shown["connection"]["state"], "pending", "{shown}");

    // The administrator registers the app with the request's certificate.
    w.register_app(MANUAL_CLIENT, pem);
    let (status, done) = w
        .admin(
            Method::POST,
            &complete,
            Some(json!({"entra_tenant_id": TENANT, "client_id": MANUAL_CLIENT})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "active");
    assert_eq!(done["client_id"], MANUAL_CLIENT);
    let (status, tested) = w
        .admin(Method::POST, &format!("{base}/manual/test"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["ok"], true);

    // A plugin bound to it reaches Dataverse.
    let key = w.deploy_contacts("manual").await;
    let (status, listed) = w.list_contacts(&key).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["contacts"], json!([]), "{listed}");

    // Its public parts, certificate and history.
    let (status, shown) = w.admin(Method::GET, &format!("{base}/manual"), None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let certificates = shown["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1, "{shown}");
    assert_eq!(certificates[0]["sha1_thumbprint"], sha1);
    assert_eq!(certificates[0]["state"], "active");
    assert!(certificates[0]["last_used_at"].is_string(), "{shown}");
    assert!(shown["history"].as_array().unwrap().len() >= 3, "{shown}");
    assert!(!shown.to_string().contains("sealed"), "{shown}");

    // A manual connection is not rotated with Graph.
    let (status, body) = w
        .admin(Method::POST, &format!("{base}/manual/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("administrator request"),
        "{body}"
    );

    // Deleting is refused while the plugin is bound, then done.
    let (status, body) = w
        .admin(Method::DELETE, &format!("{base}/manual"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    w.undeploy_contacts().await;
    let (status, body) = w
        .admin(Method::DELETE, &format!("{base}/manual"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = w.admin(Method::GET, &format!("{base}/manual"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = w.admin(Method::GET, &base, None).await;
    assert_eq!(list, json!([]));
}

/// `dvhost serve` with `[smtp]` in its configuration: the wiring of
/// `serve::prepare` (no relay password: `DVHOST_SMTP_PASSWORD` is unset
/// here, as is `DVHOST_ADMIN_KEY`), the admin API's manual creation, the
/// request e-mailed to the administrator with the certificate attached.
#[tokio::test]
async fn serve_with_smtp_mails_the_manual_request_to_the_administrator() {
    let emu = emulator().await;
    let (port, inbox) = smtp_server();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, emu.ca_certificate_pem().unwrap()).unwrap();
    let (admin_key, admin_hash) = mint_admin_key();
    let admin_hash: String = admin_hash.iter().map(|b| format!("{b:02x}")).collect();
    let config_file = dir.path().join("dvhost.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"
            listen = "127.0.0.1:0"
            data_dir = "{data}"
            admin_key_sha256 = "{admin_hash}"
            [runtime]
            max_instances = 4
            [smtp]
            host = "127.0.0.1"
            port = {port}
            security = "none"
            from = "dvhost <dvhost@ops.test>"
            timeout_ms = 10000
            "#,
            data = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let config = ServeConfig::load(Some(&config_file)).unwrap();
    let globals = Globals {
        data_dir: None,
        authority: emu.base_url().to_string(),
        discovery_url: emu.base_url().to_string(),
        entra_tenant: TENANT.into(),
        graph_url: emu.base_url().to_string(),
        sign_in_client_id: PUBLIC_CLIENT.into(),
        ca_file: Some(ca_file),
        json: true,
        log_format: LogFormat::Text,
    };
    let prepared = dvhost::serve::prepare(&config, &globals).await.unwrap();
    let api = Api::start(prepared.listener, prepared.state, admin_key).await;

    let (status, created) = api
        .admin(
            Method::POST,
            "/v1/admin/tenants/contoso/connections",
            Some(json!({
                "name": "manual",
                "environment_url": emu.environment_url(ENVIRONMENT).unwrap(),
                "mode": "manual",
                "admin_email": "admin@contoso.test",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["mail"]["sent"], true, "{created}");
    assert_eq!(created["mail"]["to"], "admin@contoso.test", "{created}");

    // The administrator's e-mail: from the configured sender, the
    // instructions with the thumbprint, the certificate attached.
    let parsed = inbox.only_message_to("admin@contoso.test");
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some("dvhost@ops.test")
    );
    assert!(parsed.subject().unwrap().contains("contoso/manual"));
    let request = &created["request"];
    let sha1 = request["sha1_thumbprint"].as_str().unwrap();
    assert!(parsed.body_text(0).unwrap().contains(sha1));
    let pem = request["certificate_pem"].as_str().unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let attachment = parsed.attachments().next().expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("contoso-manual.cer"));
    assert_eq!(attachment.contents(), der.as_slice());
}

#[tokio::test]
async fn an_automatic_connection_needs_a_sign_in_and_rotates_under_a_plugin() {
    let w = world().await;
    let base = w.connections();
    let new = json!({
        "name": "auto",
        "environment_url": w.environment_url(),
        "mode": "automatic",
        "sign_in": {"user": ADMIN, "entra_tenant": TENANT},
    });

    // Nobody signed in on this host: refused, naming dvhost login.
    let (status, refused) = w.admin(Method::POST, &base, Some(new.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "sign_in_required");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dvhost login") && message.contains(ADMIN),
        "{message}"
    );
    let (_, list) = w.admin(Method::GET, &base, None).await;
    assert_eq!(list, json!([]));
    // Automatic without sign_in is malformed.
    let mut bare = new.clone();
    bare.as_object_mut().unwrap().remove("sign_in");
    let (status, body) = w.admin(Method::POST, &base, Some(bare)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    w.log_in(ADMIN).await;
    let (status, created) = w.admin(Method::POST, &base, Some(new)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let connection = &created["connection"];
    assert_eq!(connection["state"], "active", "{created}");
    assert_eq!(connection["mode"], "automatic");
    assert_eq!(connection["entra_tenant_id"], TENANT);
    let progress: Vec<&str> = created["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        progress
            .first()
            .is_some_and(|p| p.contains("administrator")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|p| p.starts_with("connection_test")),
        "{progress:?}"
    );
    let steps = created["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6, "{created}");
    assert!(steps.iter().all(|s| s["status"] == "done"), "{created}");
    let client_id = connection["client_id"].as_str().unwrap().to_string();

    let (_, shown) = w.admin(Method::GET, &format!("{base}/auto"), None).await;
    let old = shown["certificates"][0]["sha1_thumbprint"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert_eq!(shown["steps"].as_array().unwrap().len(), 6, "{shown}");
    assert_eq!(w.app_thumbprints(&client_id).await, vec![old.clone()]);

    // A plugin bound to it works before and after the rotation.
    let key = w.deploy_contacts("auto").await;
    let (status, listed) = w.list_contacts(&key).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, rotated) = w
        .admin(Method::POST, &format!("{base}/auto/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(
        rotated["old_sha1_thumbprint"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        old
    );
    let new_thumbprint = rotated["new_sha1_thumbprint"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert_ne!(new_thumbprint, old);
    assert!(
        rotated["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "remove the old certificate"),
        "{rotated}"
    );
    // After the overlap, only the new certificate is on the app and in the
    // store, and the plugin signs with it.
    assert_eq!(
        w.app_thumbprints(&client_id).await,
        vec![new_thumbprint.clone()]
    );
    let (_, shown) = w.admin(Method::GET, &format!("{base}/auto"), None).await;
    let certificates = shown["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1, "{shown}");
    assert_eq!(
        certificates[0]["sha1_thumbprint"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        new_thumbprint
    );
    let (status, listed) = w.list_contacts(&key).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, tested) = w
        .admin(Method::POST, &format!("{base}/auto/test"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{tested}");

    w.undeploy_contacts().await;
    let (status, _) = w.admin(Method::DELETE, &format!("{base}/auto"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The audit log has the creation, the rotation and the deletion.
    let (status, audit) = w
        .admin(Method::GET, "/v1/tenants/contoso/audit", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let text = audit.to_string();
    for action in [
        "connection.create_automatic",
        "connection.rotate",
        "connection.delete",
    ] {
        assert!(text.contains(action), "{action} missing: {text}");
    }
}

#[tokio::test]
async fn unknown_connections_and_malformed_requests_are_refused() {
    let w = world().await;
    let base = w.connections();
    for (method, path) in [
        (Method::GET, format!("{base}/nope")),
        (Method::DELETE, format!("{base}/nope")),
        (Method::POST, format!("{base}/nope/rotate")),
        (Method::POST, format!("{base}/Not%20A%20Name/rotate")),
    ] {
        let (status, body) = w.admin(method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, body) = w
        .admin(
            Method::POST,
            &format!("{base}/nope/complete"),
            Some(json!({"entra_tenant_id": TENANT, "client_id": MANUAL_CLIENT})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = w
        .admin(
            Method::POST,
            "/v1/admin/tenants/nobody/connections",
            Some(json!({"name": "x", "environment_url": w.environment_url(), "mode": "manual"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = w
        .admin(
            Method::POST,
            &base,
            Some(json!({"name": "x", "environment_url": "not a url", "mode": "manual"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = w
        .admin(
            Method::POST,
            &base,
            Some(json!({"name": "x", "environment_url": w.environment_url(), "mode": "sideways"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A tenant key cannot reach these routes.
    let (_, key) = w
        .admin(
            Method::POST,
            "/v1/admin/tenants/contoso/keys",
            Some(json!({"rights": ["invoke", "deploy"]})),
        )
        .await;
    let response = w
        .api
        .http
        .get(format!("{}{base}/nope", w.api.url))
        .bearer_auth(key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_automatic_creation_answers_202_and_finishes_in_the_background() {
    // The server waits three quarters of its 2 s request timeout for a flow.
    let w = world_with_timeout(2_000).await;
    w.log_in(ADMIN).await;
    // Every Web API answer 600 ms late: the flow's Dataverse calls (the
    // application user, its role, WhoAmI) outlast that wait.
    let fault = json!({"path": "*", "action": {"kind": "latency", "ms": 600}});
    let resp = w
        .control
        .post(format!("{}/_emulator/faults", w.emu.base_url()))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let base = w.connections();
    let new = json!({
        "name": "slow",
        "environment_url": w.environment_url(),
        "mode": "automatic",
        "sign_in": {"user": ADMIN, "entra_tenant": TENANT},
    });
    let (status, running) = w.admin(Method::POST, &base, Some(new)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{running}");
    assert_eq!(running["connection"], "slow");
    let message = running["message"].as_str().unwrap();
    assert!(message.contains(&format!("{base}/slow")), "{message}");

    // The flow goes on without its request, to the end (the connection is
    // recorded once the administrator and the role are checked).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, shown) = w.admin(Method::GET, &format!("{base}/slow"), None).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{shown}"
        );
        if shown["connection"]["state"] == "active" {
            assert!(
                shown["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["status"] == "done"),
                "{shown}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not active after 60 s: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its outcome is audited when it ends, just after the connection
    // becomes active.
    let created = loop {
        let (_, audit) = w
            .admin(Method::GET, "/v1/tenants/contoso/audit", None)
            .await;
        let found = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "connection.create_automatic")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no connection.create_automatic entry: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(created["outcome"], "success", "{created}");
}
