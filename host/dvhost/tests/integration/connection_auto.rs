//! Automatic connection creation and certificate rotation against the
//! in-process emulator: an administrator gets an active connection that
//! answers WhoAmI; a non-administrator is refused before anything exists;
//! a failure half-way is resumed with exactly one app registration; a
//! rotation during 1,000 runtime calls fails none of them and leaves only
//! the new key on the app.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use dvhost::flows::auto::{
    self, AdminSignIn, AutoRequest, Progress, ProvisionError, Services, create_connection,
};
use dvhost::flows::rotate::{RotateRequest, Rotation, RotationStep, rotate_certificate};
use dvhost_dataverse::{
    Authority, Certificate, Client, DeviceSignIn, Environment, GraphService, HttpClient, MasterKey,
    SealedKey, TokenSource, UserTokens,
};
use dvhost_store::{
    CertificateState, ConnectionState, Name, ProvisioningStep, StepStatus, Store, Tenant,
};
use serde_json::{Value, json};

use crate::support;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
const ADMIN: &str = "admin@contoso.onmicrosoft.com";
const MAKER: &str = "maker@contoso.onmicrosoft.com";
const ENVIRONMENT: &str = "contoso-dev";
/// An environment where the directory administrator is not a System
/// Administrator (the maker is).
const OTHER_ENVIRONMENT: &str = "contoso-test";
const SCOPES: &[&str] = &[
    "https://graph.microsoft.com/.default",
    "offline_access",
    "openid",
];

struct World {
    emu: RunningEmulator,
    control: reqwest::Client,
    services: Services,
    sign_in: DeviceSignIn,
    store: Store,
    master: MasterKey,
    tenant: Tenant,
    _dir: tempfile::TempDir,
}

impl World {
    /// An emulator (tenant, an admin, a maker, a public client, one
    /// environment; `settings` is TOML inside `[settings]`) and an empty store.
    async fn start(settings: &str) -> World {
        let toml = format!(
            r#"
            [settings]
            device_code_interval_secs = 1
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
            upn = "{MAKER}"
            [[apps]]
            tenant = "contoso"
            display_name = "dvhost cli"
            app_id = "{PUBLIC_CLIENT}"
            public_client = true
            [[environments]]
            tenant = "contoso"
            unique_name = "{ENVIRONMENT}"
            [[environments]]
            tenant = "contoso"
            unique_name = "{OTHER_ENVIRONMENT}"
            admins = ["{MAKER}"]
            "#
        );
        let emu = EmulatorBuilder::new()
            .tls(true)
            .seed(Seed::from_toml(&toml, None).unwrap())
            .start()
            .await
            .unwrap();
        let http = HttpClient::new(emu.ca_certificate_pem()).unwrap();
        let authority = Authority::parse(emu.base_url()).unwrap();
        let sign_in =
            DeviceSignIn::new(authority.clone(), TENANT, PUBLIC_CLIENT, http.clone()).unwrap();
        let mut control = reqwest::Client::builder();
        if let Some(pem) = emu.ca_certificate_pem() {
            control = control
                .tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let tenant = store
            .create_tenant(&Name::parse("contoso").unwrap(), "Contoso")
            .await
            .unwrap();
        World {
            services: Services {
                authority,
                graph: GraphService::parse(emu.base_url()).unwrap(),
                http,
            },
            control: control.build().unwrap(),
            emu,
            sign_in,
            store,
            master: MasterKey::from_bytes([7; 32]),
            tenant,
            _dir: dir,
        }
    }

    /// `upn` signs in with a device code that the test approves.
    async fn signed_in(&self, upn: &str) -> UserTokens {
        let pending = self.sign_in.start(SCOPES).await.unwrap();
        let code = &pending.prompt().user_code;
        support::approve_device_code(&self.control, self.emu.base_url(), code, upn).await;
        self.sign_in.complete(pending, soon()).await.unwrap()
    }

    fn request(&self, name: &str, environment: &str) -> AutoRequest {
        AutoRequest {
            tenant: self.tenant.clone(),
            name: Name::parse(name).unwrap(),
            environment: Environment::parse(&self.emu.environment_url(environment).unwrap())
                .unwrap(),
            security_role: None,
            deadline: soon(),
        }
    }

    async fn create(
        &self,
        tokens: &UserTokens,
        name: &str,
        progress: &mut Vec<Progress>,
    ) -> Result<dvhost_store::Connection, ProvisionError> {
        self.create_in(tokens, name, ENVIRONMENT, progress).await
    }

    /// Rotates `connection`'s certificate as `tokens`' administrator,
    /// renewing the `live` token sources on the way.
    async fn rotate(
        &self,
        tokens: &UserTokens,
        connection: dvhost_store::ConnectionId,
        live: &[&TokenSource],
        progress: &mut (dyn FnMut(RotationStep) + Send),
    ) -> Rotation {
        let admin = AdminSignIn {
            sign_in: &self.sign_in,
            tokens,
        };
        let request = RotateRequest {
            connection,
            deadline: soon(),
        };
        rotate_certificate(
            &self.store,
            &self.master,
            admin,
            &self.services,
            request,
            live,
            progress,
        )
        .await
        .unwrap()
    }

    async fn create_in(
        &self,
        tokens: &UserTokens,
        name: &str,
        environment: &str,
        progress: &mut Vec<Progress>,
    ) -> Result<dvhost_store::Connection, ProvisionError> {
        let admin = AdminSignIn {
            sign_in: &self.sign_in,
            tokens,
        };
        let mut record = |p| progress.push(p);
        create_connection(
            &self.store,
            &self.master,
            admin,
            &self.services,
            self.request(name, environment),
            &mut record,
        )
        .await
    }

    /// The app registrations of the emulator's directory.
    async fn apps(&self) -> Vec<Value> {
        let state = support::control_json(&self.control, &self.emu, "state").await;
        state["apps"].as_array().cloned().unwrap()
    }

    /// The apps whose display name is the connection's.
    async fn apps_of(&self, name: &str) -> Vec<Value> {
        let display = format!("dvhost contoso/{name}");
        let apps = self.apps().await;
        apps.into_iter()
            .filter(|a| a["display_name"] == display.as_str())
            .collect()
    }

    async fn add_fault(&self, rule: Value) {
        let resp = self
            .control
            .post(format!("{}/_emulator/faults", self.emu.base_url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{rule}");
    }

    /// A runtime client of `connection`, signing with its active certificate.
    async fn runtime_client(&self, connection: &dvhost_store::Connection) -> Client {
        Client::new(self.runtime_tokens(connection).await)
    }

    /// The runtime's token source for `connection`.
    async fn runtime_tokens(&self, connection: &dvhost_store::Connection) -> Arc<TokenSource> {
        let stored = self
            .store
            .active_certificate(connection.id)
            .await
            .unwrap()
            .unwrap();
        let sealed = SealedKey::from_bytes(stored.sealed_private_key.as_bytes().to_vec());
        let cert = Certificate::unseal(&stored.certificate_pem, &sealed, &self.master).unwrap();
        auto::token_source(
            &self.services,
            connection.entra_tenant_id.unwrap(),
            connection.client_id.unwrap(),
            &Environment::parse(&connection.environment_url).unwrap(),
            Arc::new(cert),
        )
        .unwrap()
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn thumbprints(app: &Value) -> Vec<String> {
    app["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha1_thumbprint"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_administrator_creates_an_active_connection_that_answers_who_am_i() {
    let w = World::start("").await;
    let admin = w.signed_in(ADMIN).await;
    let mut progress = Vec::new();
    let connection = w.create(&admin, "sales", &mut progress).await.unwrap();
    assert_eq!(connection.state, ConnectionState::Active);
    assert_eq!(connection.security_role.as_deref(), Some("Basic User"));
    assert_eq!(connection.entra_tenant_id.unwrap().to_string(), TENANT);
    assert!(progress.contains(&Progress::Done(ProvisioningStep::ConnectionTest)));

    // Every step is recorded done, and the app holds the stored certificate.
    let steps = w.store.provisioning_steps(connection.id).await.unwrap();
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert!(
        steps.iter().all(|s| s.status == StepStatus::Done),
        "{steps:?}"
    );
    let cert = w
        .store
        .active_certificate(connection.id)
        .await
        .unwrap()
        .unwrap();
    let apps = w.apps_of("sales").await;
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["app_id"], connection.client_id.unwrap().to_string());
    assert_eq!(thumbprints(&apps[0]), vec![cert.sha1_thumbprint.clone()]);
    assert!(apps[0]["service_principal"].is_string(), "{}", apps[0]);

    // The runtime signs in with the stored certificate.
    let client = w.runtime_client(&connection).await;
    let who = client.who_am_i(soon()).await.unwrap();
    assert_eq!(
        steps[5].detail["systemuser_id"],
        who.user_id.to_string(),
        "{steps:?}"
    );

    // Running it again changes nothing.
    let again = w.create(&admin, "sales", &mut Vec::new()).await.unwrap();
    assert_eq!(again.id, connection.id);
    assert_eq!(w.apps_of("sales").await.len(), 1);
}

#[tokio::test]
async fn a_non_administrator_is_refused_before_anything_is_created() {
    let w = World::start("").await;
    let maker = w.signed_in(MAKER).await;
    let apps_before = w.apps().await.len();
    let err = w
        .create(&maker, "sales", &mut Vec::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, ProvisionError::NotAdministrator { who, .. } if who == MAKER),
        "{err:?}"
    );
    assert!(
        text.contains("ask an administrator") && text.contains("--manual"),
        "{text}"
    );
    assert_eq!(w.apps().await.len(), apps_before);
    let name = Name::parse("sales").unwrap();
    assert!(
        w.store
            .connection_by_name(w.tenant.id, &name)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_directory_administrator_who_is_not_system_administrator_is_refused_first() {
    let w = World::start("").await;
    let admin = w.signed_in(ADMIN).await;
    let apps_before = w.apps().await.len();
    let err = w
        .create_in(&admin, "sales", OTHER_ENVIRONMENT, &mut Vec::new())
        .await
        .unwrap_err();
    let ProvisionError::NotAdministrator { who, why } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(who, ADMIN);
    assert!(why.contains("System Administrator"), "{why}");
    assert!(err.to_string().contains("--manual"), "{err}");
    assert_eq!(w.apps().await.len(), apps_before);
    assert!(
        w.store
            .connections(w.tenant.id, true)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failure_half_way_is_resumed_with_exactly_one_app_registration() {
    let w = World::start("").await;
    let admin = w.signed_in(ADMIN).await;
    w.add_fault(json!({
        "environment": ENVIRONMENT, "method": "POST", "path": "systemusers",
        "action": {"kind": "status", "status": 500}, "times": 1,
    }))
    .await;
    let err = w
        .create(&admin, "sales", &mut Vec::new())
        .await
        .unwrap_err();
    let ProvisionError::Step { step, done, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*step, ProvisioningStep::ApplicationUser);
    assert_eq!(
        done,
        &[
            ProvisioningStep::Certificate,
            ProvisioningStep::AppRegistration,
            ProvisioningStep::ServicePrincipal
        ]
    );
    assert!(
        err.to_string().contains("Run the same command again"),
        "{err}"
    );
    let name = Name::parse("sales").unwrap();
    let failed = w
        .store
        .connection_by_name(w.tenant.id, &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.state, ConnectionState::Failed);
    assert_eq!(w.apps_of("sales").await.len(), 1);

    // The re-run finishes the job with the same app and certificate.
    let mut progress = Vec::new();
    let connection = w.create(&admin, "sales", &mut progress).await.unwrap();
    assert_eq!(connection.id, failed.id);
    assert_eq!(connection.state, ConnectionState::Active);
    assert_eq!(connection.client_id, failed.client_id);
    let apps = w.apps_of("sales").await;
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(w.store.certificates(connection.id).await.unwrap().len(), 1);
    w.runtime_client(&connection)
        .await
        .who_am_i(soon())
        .await
        .unwrap();
}

#[tokio::test]
async fn rotation_during_1000_runtime_calls_fails_none_and_leaves_only_the_new_key() {
    // Tokens renewed every second, so renewals happen before, during and
    // after the rotation.
    let w = World::start("refresh_in_secs = 1").await;
    let admin = w.signed_in(ADMIN).await;
    let connection = w.create(&admin, "sales", &mut Vec::new()).await.unwrap();
    let old = w
        .store
        .active_certificate(connection.id)
        .await
        .unwrap()
        .unwrap();
    let tokens = w.runtime_tokens(&connection).await;
    let client = Client::new(tokens.clone());

    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let calls = {
        let (client, done, failures) = (client.clone(), done.clone(), failures.clone());
        tokio::spawn(async move {
            for _ in 0..1000 {
                if let Err(e) = client.who_am_i(soon()).await {
                    eprintln!("runtime call failed: {e}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        })
    };
    while done.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut steps = Vec::new();
    let rotation = w
        .rotate(&admin, connection.id, &[&tokens], &mut |s| steps.push(s))
        .await;
    let at_rotation_end = done.load(Ordering::Relaxed);
    let generation_at_end = tokens.warm(soon()).await.unwrap().generation;
    calls.await.unwrap();
    assert!(
        at_rotation_end < 900,
        "the rotation must overlap the calls ({at_rotation_end} done)"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert_eq!(done.load(Ordering::Relaxed), 1000);
    assert_eq!(steps.last(), Some(&RotationStep::OldCertificateRemoved));

    // Tokens were renewed after the old key was gone: the new one signs.
    assert_eq!(rotation.old_sha1_thumbprint, old.sha1_thumbprint);
    assert_eq!(
        tokens.certificate_thumbprint(),
        rotation.new_sha1_thumbprint
    );
    assert!(tokens.warm(soon()).await.unwrap().generation > generation_at_end);

    let apps = w.apps_of("sales").await;
    assert_eq!(
        thumbprints(&apps[0]),
        vec![rotation.new_sha1_thumbprint.clone()]
    );
    let certs = w.store.certificates(connection.id).await.unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0].state, CertificateState::Active);
    assert_eq!(certs[0].sha1_thumbprint, rotation.new_sha1_thumbprint);
}

#[tokio::test]
async fn an_interrupted_rotation_resumes_with_the_certificate_it_began() {
    let w = World::start("").await;
    let admin = w.signed_in(ADMIN).await;
    let connection = w.create(&admin, "sales", &mut Vec::new()).await.unwrap();
    // A rotation that stopped after storing its new certificate.
    let begun = Certificate::generate("dvhost begun", Certificate::default_validity()).unwrap();
    let pending = w
        .store
        .add_certificate(
            connection.id,
            auto::new_certificate(&begun, &w.master),
            "test",
        )
        .await
        .unwrap();
    assert_eq!(pending.state, CertificateState::Pending);
    let rotation = w.rotate(&admin, connection.id, &[], &mut |_| {}).await;
    assert_eq!(rotation.new_sha1_thumbprint, begun.sha1_thumbprint_hex());
    let apps = w.apps_of("sales").await;
    assert_eq!(thumbprints(&apps[0]), vec![begun.sha1_thumbprint_hex()]);
    let certs = w.store.certificates(connection.id).await.unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0].id, pending.id);
    assert_eq!(certs[0].state, CertificateState::Active);
    // A client signing with the new certificate alone works.
    w.runtime_client(&connection)
        .await
        .who_am_i(soon())
        .await
        .unwrap();
}
