//! The emulated world of `dvhost dev`: the in-process emulator (HTTPS
//! with its own CA) seeded with one Entra tenant, its administrator and a
//! Dataverse environment, kept in the data directory so a restart finds
//! the same app registration, environment and rows; the `dev` connection
//! made through the automatic flow, signing the administrator in with a
//! device code that this process approves through the emulator's control
//! API; and sample rows in the standard tables.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dvhost_dataverse::Environment;
use dvhost_emulator::{
    EmulatorBuilder, EnvironmentSeed, RunningEmulator, Seed, TenantSeed, UserSeed,
};
use dvhost_store::{Connection, ConnectionState, Name, Tenant};
use serde_json::json;
use uuid::Uuid;

use crate::cli::context::{Context, Globals};
use crate::flows::auto;

/// The emulated Entra tenant.
pub const ENTRA_TENANT_ID: &str = "d0d0d0d0-0000-4000-8000-00000000de00";
/// Its administrator, who creates the connection.
pub const ADMIN_UPN: &str = "admin@contoso.onmicrosoft.com";
/// The emulated Dataverse environment.
pub const ENVIRONMENT: &str = "contoso-dev";
/// The public client the administrator signs in with (Microsoft's
/// Power Platform sample client, known to every emulated tenant).
const SIGN_IN_CLIENT: &str = "51f81489-12ee-4a9e-aaae-a2591f45987d";
/// What the administrator's sign-in asks for (Graph to register the app,
/// a refresh token for the environment).
const ADMIN_SCOPES: &[&str] = &[
    "https://graph.microsoft.com/.default",
    "offline_access",
    "openid",
];
/// How long provisioning may take against the emulator.
const PROVISION_TIMEOUT: Duration = Duration::from_secs(180);

/// The emulator of a `dvhost dev` run.
pub struct DevEmulator {
    /// The running emulator.
    pub emulator: RunningEmulator,
    /// Its CA certificate, written for other clients (curl, Python).
    pub ca_file: PathBuf,
    /// The environment's URL.
    pub environment_url: String,
}

/// One tenant, its administrator, one environment; device codes polled
/// every second.
fn dev_seed() -> Seed {
    let mut seed = Seed::default();
    seed.settings.device_code_interval_secs = 1;
    seed.tenants.push(TenantSeed {
        name: "contoso".into(),
        id: Uuid::parse_str(ENTRA_TENANT_ID).ok(),
        domains: Vec::new(),
        display_name: Some("Contoso (dvhost dev)".into()),
    });
    seed.users.push(UserSeed {
        tenant: "contoso".into(),
        upn: ADMIN_UPN.into(),
        id: None,
        display_name: Some("Contoso Admin".into()),
        admin: true,
    });
    seed.environments.push(EnvironmentSeed {
        tenant: "contoso".into(),
        unique_name: ENVIRONMENT.into(),
        friendly_name: Some("Contoso (dev)".into()),
        url: None,
        port: None,
        id: None,
        region: "NA".into(),
        users: Vec::new(),
        admins: vec![ADMIN_UPN.into()],
        app_users: Vec::new(),
        tables: Vec::new(),
        alternate_keys: Default::default(),
    });
    seed
}

impl DevEmulator {
    /// Starts the emulator on `listen` with its state in
    /// `<data_dir>/emulator/` (seeded at the first start, reloaded after),
    /// and writes its CA to `<data_dir>/emulator-ca.pem`.
    pub async fn start(
        data_dir: &Path,
        listen: std::net::SocketAddr,
    ) -> anyhow::Result<DevEmulator> {
        let state_dir = data_dir.join("emulator");
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        // The state holds the emulator's token-signing key: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", state_dir.display()))?;
        }
        let emulator = EmulatorBuilder::new()
            .listen(listen)
            .tls(true)
            .seed(dev_seed())
            .state_file(state_dir.join("state.json"))
            .start()
            .await
            .with_context(|| {
                format!(
                    "starting the emulator with its state in {} (delete that directory to start it afresh)",
                    state_dir.display()
                )
            })?;
        let ca_file = data_dir.join("emulator-ca.pem");
        let pem = emulator
            .ca_certificate_pem()
            .context("the emulator serves HTTPS but has no CA")?;
        std::fs::write(&ca_file, pem).with_context(|| format!("writing {}", ca_file.display()))?;
        let environment_url = emulator
            .environment_url(ENVIRONMENT)
            .with_context(|| format!("the emulator's state has no environment {ENVIRONMENT}"))?;
        Ok(DevEmulator {
            emulator,
            ca_file,
            environment_url,
        })
    }

    /// Points the global options at the emulator: its authority, Graph,
    /// Global Discovery, tenant, sign-in client and CA.
    pub fn configure(&self, globals: &mut Globals) {
        let base = self.emulator.base_url().to_string();
        globals.authority = base.clone();
        globals.graph_url = base.clone();
        globals.discovery_url = base;
        globals.entra_tenant = ENTRA_TENANT_ID.into();
        globals.sign_in_client_id = SIGN_IN_CLIENT.into();
        globals.ca_file = Some(self.ca_file.clone());
    }

    /// The `dev` tenant and its `dev` connection, created on the first run
    /// (the connection through the automatic flow) and reused after.
    pub async fn provision(&self, cx: &Context) -> anyhow::Result<(Tenant, Connection)> {
        let name = Name::parse("dev")?;
        let tenant = match cx.store.tenant_by_name(&name).await? {
            Some(t) => t,
            None => {
                let t = cx.store.create_tenant(&name, "dvhost dev").await?;
                cx.audit(Some(t.id), "tenant.create", json!({"name": "dev"}))
                    .await?;
                t
            }
        };
        let environment = Environment::parse(&self.environment_url)?;
        if let Some(existing) = cx.store.connection_by_name(tenant.id, &name).await? {
            let same = Environment::parse(&existing.environment_url)
                .is_ok_and(|e| e.as_str() == environment.as_str());
            anyhow::ensure!(
                same,
                "the dev connection is for {}, but the emulator's environment is now {}: its state in {} was lost; delete {} to start over",
                existing.environment_url,
                environment,
                cx.globals.data_dir().join("emulator").display(),
                cx.globals.data_dir().display()
            );
            if existing.state == ConnectionState::Active {
                return Ok((tenant, existing));
            }
        }
        let connection = self
            .create_connection(cx, &tenant, name, environment)
            .await?;
        Ok((tenant, connection))
    }

    /// The automatic flow, as the emulated administrator.
    async fn create_connection(
        &self,
        cx: &Context,
        tenant: &Tenant,
        name: Name,
        environment: Environment,
    ) -> anyhow::Result<Connection> {
        let deadline = Instant::now() + PROVISION_TIMEOUT;
        let globals = &cx.globals;
        let message = "signing in the emulator's administrator";
        let made = globals.spinning(message, |bar| async move {
            let sign_in = globals.device_sign_in()?;
            let pending = sign_in.start(ADMIN_SCOPES).await?;
            self.approve(&pending.prompt().user_code).await?;
            let tokens = sign_in.complete(pending, deadline).await?;
            let services = globals.services()?;
            let mut progress = move |p: auto::Progress| {
                bar.set_message(format!("creating the dev connection: {p}"))
            };
            let made = auto::create_connection(
                &cx.store,
                &cx.master,
                auto::AdminSignIn {
                    sign_in: &sign_in,
                    tokens: &tokens,
                },
                &services,
                auto::AutoRequest {
                    tenant: tenant.clone(),
                    name,
                    environment,
                    security_role: None,
                    deadline,
                },
                &mut progress,
            );
            anyhow::Ok(made.await?)
        });
        made.await
            .context("creating the dev connection in the emulator")
    }

    /// Approves a device code as the administrator, through the control
    /// API (this process is on loopback, which the control API trusts).
    async fn approve(&self, user_code: &str) -> anyhow::Result<()> {
        let pem = std::fs::read(&self.ca_file)?;
        let control = reqwest::Client::builder()
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem)?)
            .build()?;
        let url = format!(
            "{}/_emulator/device-codes/{user_code}/approve",
            self.emulator.base_url()
        );
        let response = control
            .post(&url)
            .json(&json!({ "user": ADMIN_UPN }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "the emulator refused to approve the sign-in: {status}: {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }
}
