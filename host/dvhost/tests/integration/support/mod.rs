//! Shared by the plugin tests and the plugin benchmark: an in-process
//! emulator with one tenant, app and environment, a transport client for
//! it, the [`DataverseBackend`] over that client, and a runtime engine whose
//! compiled components are cached under `target/`.
#![allow(dead_code)]

pub mod smtp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost::DataverseBackend;
use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use dvhost_dataverse::{
    Authority, Certificate, Client, Connection, Environment, HttpClient, SigningAlgorithm,
    TokenSource,
};
use dvhost_runtime::{Capabilities, Engine, EngineConfig, Grants, Plugin};
use serde_json::{Value, json};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub const ENVIRONMENT: &str = "contoso-dev";

/// The emulator, a client of its environment and the backend over it.
pub struct World {
    pub emu: RunningEmulator,
    pub client: Client,
    pub backend: Arc<DataverseBackend>,
    control: reqwest::Client,
}

fn seed(cert: &Certificate, settings: &str) -> Seed {
    let toml = format!(
        r#"
        [settings]
        {settings}
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[apps]]
        tenant = "contoso"
        display_name = "plugins"
        app_id = "{CLIENT}"
        certificates = [{pem:?}]
        [[environments]]
        tenant = "contoso"
        unique_name = "{ENVIRONMENT}"
        app_users = ["{CLIENT}"]
        alternate_keys = {{ account = [["accountnumber"]] }}
        "#,
        pem = cert.pem()
    );
    Seed::from_toml(&toml, None).expect("the seed parses")
}

impl World {
    /// An HTTPS emulator and a client signed in to its environment.
    pub async fn start() -> World {
        let cert = Certificate::generate("dvhost plugins", Certificate::default_validity());
        World::start_with(cert.unwrap()).await
    }

    /// [`World::start`] with the connection's certificate given.
    pub async fn start_with(cert: Certificate) -> World {
        World::launch(cert, "").await
    }

    /// [`World::start`] with emulator `settings` (TOML inside the seed's
    /// `[settings]`).
    pub async fn start_with_settings(settings: &str) -> World {
        let cert = Certificate::generate("dvhost plugins", Certificate::default_validity());
        World::launch(cert.unwrap(), settings).await
    }

    async fn launch(cert: Certificate, settings: &str) -> World {
        let cert = Arc::new(cert);
        let emu = EmulatorBuilder::new()
            .tls(true)
            .seed(seed(&cert, settings))
            .start()
            .await
            .expect("the emulator starts");
        let environment = Environment::parse(&emu.environment_url(ENVIRONMENT).unwrap()).unwrap();
        let connection = Connection::new(
            Authority::parse(emu.base_url()).unwrap(),
            TENANT,
            CLIENT,
            environment,
            cert,
            SigningAlgorithm::Rs256,
        )
        .unwrap();
        let http = HttpClient::new(emu.ca_certificate_pem()).unwrap();
        let client = Client::new(Arc::new(TokenSource::new(connection, http)));
        client.who_am_i(soon()).await.expect("the client signs in");
        World {
            backend: Arc::new(DataverseBackend::new(client.clone())),
            client,
            control: control_client(&emu),
            emu,
        }
    }

    /// What a plugin bound to this environment may use.
    pub fn capabilities(&self, grants: Grants) -> Capabilities {
        Capabilities {
            records: self.backend.clone(),
            metadata: self.backend.clone(),
            grants: Arc::new(grants),
            ..Capabilities::unconnected()
        }
    }

    /// Adds a fault rule through the control API.
    pub async fn add_fault(&self, rule: Value) {
        let resp = self
            .control
            .post(format!("{}/_emulator/faults", self.emu.base_url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{rule}");
    }

    /// Starts counting the Web API requests the emulator receives: a fault
    /// rule matching every path whose action (no added latency) changes
    /// nothing, so its `matched` counter is the number of requests.
    pub async fn count_requests(&self) {
        self.add_fault(json!({"path": "*", "action": {"kind": "latency", "ms": 0}}))
            .await;
    }

    /// Web API requests received since [`World::count_requests`].
    pub async fn requests(&self) -> u64 {
        let faults = control_json(&self.control, &self.emu, "faults").await;
        let counting = faults["faults"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["rule"]["path"] == "*" && f["rule"]["action"]["kind"] == "latency")
            .unwrap_or_else(|| panic!("no counting rule in {faults}"));
        counting["matched"].as_u64().unwrap()
    }
}

/// The JSON document at `path` of the emulator's control API (such as
/// `state` or `faults`).
pub async fn control_json(control: &reqwest::Client, emu: &RunningEmulator, path: &str) -> Value {
    let resp = control
        .get(format!("{}/_emulator/{path}", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// What a tenant's administrator does in Entra for the manual connection
/// flow: registers app `client` (`display_name`) in the tenant `contoso`
/// with the request's certificate; its service principal comes with it.
pub fn register_app(
    emu: &RunningEmulator,
    display_name: &str,
    client: &str,
    certificate_pem: &str,
) {
    let toml = format!(
        r#"
        [[apps]]
        tenant = "contoso"
        display_name = "{display_name}"
        app_id = "{client}"
        certificates = [{certificate_pem:?}]
        "#
    );
    emu.seed(Seed::from_toml(&toml, None).unwrap()).unwrap();
}

/// `upn` approves device code `user_code` through the control API of the
/// emulator at `base_url`.
pub async fn approve_device_code(
    control: &reqwest::Client,
    base_url: &str,
    user_code: &str,
    upn: &str,
) {
    let resp = control
        .post(format!(
            "{base_url}/_emulator/device-codes/{user_code}/approve"
        ))
        .json(&json!({ "user": upn }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "approve: {}", resp.status());
}

/// A client of the emulator's control API (`/_emulator/...`), trusting its
/// CA.
pub fn control_client(emu: &RunningEmulator) -> reqwest::Client {
    let mut control = reqwest::Client::builder();
    if let Some(pem) = emu.ca_certificate_pem() {
        control =
            control.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap());
    }
    control.build().unwrap()
}

/// A deadline far enough for any test call.
pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// An engine whose compiled components are kept in `target/tmp`, so
/// repeated runs load them without compiling.
pub fn engine() -> Engine {
    engine_preparing(EngineConfig::default().prepared_instances)
}

/// [`engine`] with `prepared` instances made ahead of calls (0: none).
pub fn engine_preparing(prepared: u32) -> Engine {
    let cache_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvhost-plugin-cache");
    Engine::new(EngineConfig {
        cache_dir: Some(cache_dir),
        max_instances: 16,
        prepared_instances: prepared,
        ..EngineConfig::default()
    })
    .expect("the engine starts")
}

/// Loads Rust guest `name` (a `dvhost_testkit` constant), built from source.
pub async fn load(engine: &Engine, name: &str) -> Plugin {
    let path = dvhost_testkit::rust_guest(name);
    let bytes = std::fs::read(&path).unwrap();
    engine
        .load(&bytes)
        .await
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
}
