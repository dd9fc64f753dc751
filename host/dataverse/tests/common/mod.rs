//! Set-up shared by the transport's tests: an in-process emulator seeded
//! with one tenant, apps and an environment, and connections to it.
#![allow(dead_code)]

pub mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost_dataverse::{
    Authority, Certificate, Client, Connection, DeviceSignIn, Environment, HttpClient,
    SigningAlgorithm, TokenSource,
};
use dvhost_emulator::{EmulatorBuilder, RunningEmulator, Seed};
use serde_json::{Map, Value};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// An app with an application user in the environment.
pub const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// An app without one.
pub const NO_USER_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000002";
/// A public client for device-code sign-in.
pub const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
pub const ADMIN: &str = "admin@contoso.onmicrosoft.com";
pub const ENVIRONMENT: &str = "contoso-dev";

/// A certificate whose private key the test knows (to look for it in logs).
pub struct KnownKey {
    pub cert: Arc<Certificate>,
    pub key_pem: String,
}

pub fn known_key(subject: &str) -> KnownKey {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    let cert = params.self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    KnownKey {
        cert: Arc::new(Certificate::from_pem(&cert.pem(), &key_pem).unwrap()),
        key_pem,
    }
}

pub fn generated(subject: &str) -> Arc<Certificate> {
    Arc::new(Certificate::generate(subject, Certificate::default_validity()).unwrap())
}

/// An HTTPS emulator with tenant `contoso`, the apps above (both
/// confidential ones registered with `cert`), an admin user, and the
/// environment `contoso-dev`; `settings` is TOML inside `[settings]`.
pub async fn emulator(cert: &Certificate, settings: &str) -> RunningEmulator {
    let toml = format!(
        r#"
        [settings]
        {settings}
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[users]]
        tenant = "contoso"
        upn = "{ADMIN}"
        admin = true
        [[users]]
        tenant = "contoso"
        upn = "maker@contoso.onmicrosoft.com"
        admin = false
        [[apps]]
        tenant = "contoso"
        display_name = "sync"
        app_id = "{CLIENT}"
        certificates = [{pem:?}]
        [[apps]]
        tenant = "contoso"
        display_name = "no app user"
        app_id = "{NO_USER_CLIENT}"
        certificates = [{pem:?}]
        [[apps]]
        tenant = "contoso"
        display_name = "dvhost cli"
        app_id = "{PUBLIC_CLIENT}"
        public_client = true
        [[environments]]
        tenant = "contoso"
        unique_name = "{ENVIRONMENT}"
        app_users = ["{CLIENT}"]
        alternate_keys = {{ account = [["accountnumber"]] }}
        "#,
        pem = cert.pem()
    );
    let seed = Seed::from_toml(&toml, None).unwrap();
    EmulatorBuilder::new()
        .tls(true)
        .seed(seed)
        .start()
        .await
        .unwrap()
}

pub fn http(emu: &RunningEmulator) -> HttpClient {
    HttpClient::new(emu.ca_certificate_pem()).unwrap()
}

/// The environment's URL exactly as the emulator reports it (its own origin).
pub fn environment(emu: &RunningEmulator) -> Environment {
    Environment::parse(&emu.environment_url(ENVIRONMENT).unwrap()).unwrap()
}

pub fn authority(emu: &RunningEmulator) -> Authority {
    Authority::parse(emu.base_url()).unwrap()
}

pub fn token_source(
    emu: &RunningEmulator,
    cert: Arc<Certificate>,
    client_id: &str,
    algorithm: SigningAlgorithm,
) -> Arc<TokenSource> {
    let connection = Connection::new(
        authority(emu),
        TENANT,
        client_id,
        environment(emu),
        cert,
        algorithm,
    )
    .unwrap();
    Arc::new(TokenSource::new(connection, http(emu)))
}

pub fn client(emu: &RunningEmulator, cert: &Arc<Certificate>, client_id: &str) -> Client {
    Client::new(token_source(
        emu,
        cert.clone(),
        client_id,
        SigningAlgorithm::Rs256,
    ))
}

/// A plain client for the emulator's control API (no token involved).
pub fn control(emu: &RunningEmulator) -> reqwest::Client {
    let mut b = reqwest::Client::builder();
    if let Some(pem) = emu.ca_certificate_pem() {
        b = b.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A device-code sign-in client of the tenant's public client.
pub fn device_sign_in(emu: &RunningEmulator) -> DeviceSignIn {
    DeviceSignIn::new(authority(emu), TENANT, PUBLIC_CLIENT, http(emu)).unwrap()
}

/// Approves `user_code` as the admin after a short delay, as a user would.
pub fn approve_later(emu: &RunningEmulator, user_code: &str) -> tokio::task::JoinHandle<()> {
    let control = control(emu);
    let url = format!(
        "{}/_emulator/device-codes/{user_code}/approve",
        emu.base_url()
    );
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = control
            .post(url)
            .json(&serde_json::json!({ "user": ADMIN }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "approve: {}", resp.status());
    })
}

/// Adds a fault rule through the control API.
pub async fn add_fault(emu: &RunningEmulator, rule: Value) {
    let resp = control(emu)
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{rule}");
}

/// Removes every fault rule.
pub async fn clear_faults(emu: &RunningEmulator) {
    control(emu)
        .delete(format!("{}/_emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap();
}

pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

pub fn rec(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}
