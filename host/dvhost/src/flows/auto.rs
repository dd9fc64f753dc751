//! Automatic connection creation (`dvhost connection create TENANT/NAME
//! --environment ENV --auto`): with a signed-in administrator's sign-in,
//! generate the connection's certificate, register an Entra application
//! with its public key, create the service principal, the Dataverse
//! application user and its security role, prove the connection with WhoAmI
//! over client credentials, and mark it active.
//!
//! Every step is recorded in the store ([`Store::record_step`]) and looks
//! for what an earlier attempt made before creating anything, so a failure
//! half-way reports what was done and a re-run finishes the job with
//! exactly one app registration. The administrator checks come before
//! anything is created, in the directory or in the store.
//!
//! The tokens and the private key never leave `dvhost-dataverse`: this
//! module handles ids, thumbprints and sealed bytes only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost_dataverse::{
    AdminError, AppRegistration, Authority, Certificate, Client, DataverseError, DeviceSignIn,
    EnvironmentAdmin, GraphAdmin, GraphService, HttpClient, IdentityError, MasterKey,
    SigningAlgorithm, TokenSource, UserTokens,
};
use dvhost_store::{
    Connection, ConnectionMode, ConnectionState, NewCertificate, NewConnection, ProvisioningStep,
    Sealed, StepStatus, Store, StoreError, StoredCertificate, Tenant,
};
use serde_json::{Value, json};
use uuid::Uuid;

pub use dvhost_dataverse::Environment;
pub use dvhost_store::Name;

/// The security role given to the application user unless another is
/// named: the least-privileged standard role that still lets an app use
/// the Web API.
pub const DEFAULT_SECURITY_ROLE: &str = "Basic User";

/// Where the Microsoft services are: the public cloud, or the emulator.
#[derive(Debug, Clone)]
pub struct Services {
    /// Entra ID (`https://login.microsoftonline.com`).
    pub authority: Authority,
    /// Microsoft Graph (`https://graph.microsoft.com`).
    pub graph: GraphService,
    /// The HTTP client every request goes through.
    pub http: HttpClient,
}

/// A signed-in administrator: the device-code client that signed them in
/// and their tokens (from `dvhost login`, or resumed from the store).
#[derive(Debug, Clone, Copy)]
pub struct AdminSignIn<'a> {
    /// The public client the user signed in with.
    pub sign_in: &'a DeviceSignIn,
    /// The user's tokens (with a refresh token: `offline_access`).
    pub tokens: &'a UserTokens,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct AutoRequest {
    /// The dvhost tenant owning the connection.
    pub tenant: Tenant,
    /// The connection's name.
    pub name: Name,
    /// The Dataverse environment.
    pub environment: Environment,
    /// The security role of the application user; [`DEFAULT_SECURITY_ROLE`]
    /// when `None`.
    pub security_role: Option<String>,
    /// When the whole flow must be over.
    pub deadline: Instant,
}

/// How far the flow got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The administrator's rights are being checked.
    CheckingAdministrator,
    /// A step begins.
    Started(ProvisioningStep),
    /// A step is done (now, or found done by an earlier run).
    Done(ProvisioningStep),
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::CheckingAdministrator => f.write_str("checking the administrator's rights"),
            Progress::Started(step) => write!(f, "{step}: working"),
            Progress::Done(step) => write!(f, "{step}: done"),
        }
    }
}

/// Why a flow stopped. Never carries a token or a key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The signed-in user may not create connections automatically.
    #[error(
        "{who} is not an administrator ({why}): ask an administrator to create the connection, or use --manual"
    )]
    NotAdministrator {
        /// The user.
        who: String,
        /// What is missing.
        why: String,
    },
    /// A step failed; what was done before it is kept.
    #[error(
        "step {step} failed: {cause}. Done so far: {}. Run the same command again to resume",
        list(done)
    )]
    Step {
        /// The step that failed.
        step: ProvisioningStep,
        /// The steps done before it.
        done: Vec<ProvisioningStep>,
        /// Why.
        cause: Cause,
    },
    /// A certificate rotation stopped; both certificates stay registered
    /// until it is run again.
    #[error(
        "certificate rotation stopped at step '{step}': {cause}. Run the rotation again to finish it"
    )]
    Rotation {
        /// The step that failed.
        step: super::rotate::RotationStep,
        /// Why.
        cause: Cause,
    },
    /// The request does not fit the connection that exists.
    #[error("{0}")]
    Conflict(String),
    /// The signed-in user's tokens cannot be used.
    #[error("the administrator's sign-in cannot be used: {0}")]
    SignIn(Cause),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cause of a failed step.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// Graph or Dataverse administration.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Entra (tokens, certificates).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The Dataverse Web API (WhoAmI).
    #[error(transparent)]
    Dataverse(#[from] DataverseError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(done: &[ProvisioningStep]) -> String {
    if done.is_empty() {
        "nothing".into()
    } else {
        done.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An administrator's Graph and environment sessions, checked.
pub(crate) struct AdminSessions {
    pub(crate) graph: GraphAdmin,
    pub(crate) environment: EnvironmentAdmin,
    pub(crate) who: String,
}

impl From<AdminError> for ProvisionError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotAdministrator { who, why } => {
                ProvisionError::NotAdministrator { who, why }
            }
            other => ProvisionError::SignIn(other.into()),
        }
    }
}

/// Signs the administrator in to Graph and checks they may register apps.
pub(crate) async fn graph_session(
    admin: AdminSignIn<'_>,
    services: &Services,
    deadline: Instant,
) -> Result<GraphAdmin, ProvisionError> {
    let graph = GraphAdmin::sign_in(
        admin.sign_in,
        admin.tokens,
        services.graph.clone(),
        services.http.clone(),
        deadline,
    )
    .await?;
    graph.check_administrator()?;
    Ok(graph)
}

/// Signs the administrator in to Graph and the environment and checks
/// their rights in both: nothing is created before this returns.
pub(crate) async fn admin_sessions(
    admin: AdminSignIn<'_>,
    services: &Services,
    environment: &Environment,
    deadline: Instant,
) -> Result<AdminSessions, ProvisionError> {
    let graph = graph_session(admin, services, deadline).await?;
    let env = EnvironmentAdmin::sign_in(
        admin.sign_in,
        admin.tokens,
        environment.clone(),
        services.http.clone(),
        deadline,
    )
    .await?;
    env.check_system_administrator(deadline).await?;
    Ok(AdminSessions {
        who: graph.who(),
        graph,
        environment: env,
    })
}

/// Creates (or finishes creating) the connection `request.name` of
/// `request.tenant` to `request.environment`, as the administrator of
/// `admin`, and returns it active.
///
/// Idempotent: run again after a failure, it resumes from the steps the
/// store records and looks up what an interrupted step may have created
/// (the app registration is found by its display name and a tag naming
/// the connection), so the tenant ends with exactly one app registration.
/// A connection that is already active is returned as it is.
///
/// Errors: [`ProvisionError::NotAdministrator`] (before anything is
/// created) when the user holds no directory role that may register apps
/// or is not a System Administrator of the environment;
/// [`ProvisionError::Step`] naming the failed step and the steps done.
pub async fn create_connection(
    store: &Store,
    master: &MasterKey,
    admin: AdminSignIn<'_>,
    services: &Services,
    request: AutoRequest,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Connection, ProvisionError> {
    let deadline = request.deadline;
    if let Some(existing) = store
        .connection_by_name(request.tenant.id, &request.name)
        .await?
    {
        check_resumable(&existing, &request)?;
        if existing.state == ConnectionState::Active {
            return Ok(existing);
        }
    }
    progress(Progress::CheckingAdministrator);
    let entra_tenant = entra_tenant(admin.tokens)?;
    let admins = admin_sessions(admin, services, &request.environment, deadline).await?;
    let role_name = request
        .security_role
        .clone()
        .unwrap_or_else(|| DEFAULT_SECURITY_ROLE.into());
    // An unknown role is refused before anything is created too.
    let role = admins.environment.role(&role_name, deadline).await?;
    let connection = match store
        .connection_by_name(request.tenant.id, &request.name)
        .await?
    {
        Some(c) => c,
        None => {
            let new = NewConnection {
                tenant: request.tenant.id,
                name: request.name.clone(),
                environment_url: request.environment.as_str().to_string(),
                entra_tenant_id: Some(entra_tenant),
                client_id: None,
                security_role: Some(role_name.clone()),
                mode: ConnectionMode::Automatic,
            };
            store.create_connection(new, &admins.who).await?
        }
    };
    let mut run = Run {
        store,
        master,
        services,
        admins: &admins,
        request: &request,
        connection,
        done: Vec::new(),
        progress,
    };
    match run.steps(role, &role_name).await {
        Ok(c) => Ok(c),
        Err((step, cause)) => Err(run.failed(step, cause).await),
    }
}

/// The user's Entra tenant, which the app is registered in.
fn entra_tenant(tokens: &UserTokens) -> Result<Uuid, ProvisionError> {
    tokens
        .entra_tenant_id
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or_else(|| {
            ProvisionError::Conflict(
                "the sign-in names no Entra tenant: sign in again with the openid scope".into(),
            )
        })
}

/// A connection of that name may only be resumed by the same request.
fn check_resumable(existing: &Connection, request: &AutoRequest) -> Result<(), ProvisionError> {
    if existing.mode != ConnectionMode::Automatic {
        return Err(ProvisionError::Conflict(format!(
            "connection {} exists and was created manually; complete it or delete it first",
            existing.name
        )));
    }
    let same_environment = Environment::parse(&existing.environment_url)
        .is_ok_and(|e| e.as_str() == request.environment.as_str());
    if !same_environment {
        return Err(ProvisionError::Conflict(format!(
            "connection {} exists for another environment ({}); delete it or choose another name",
            existing.name, existing.environment_url
        )));
    }
    Ok(())
}

/// A step's failure: which step, and why.
type StepResult<T> = Result<T, (ProvisioningStep, Cause)>;

fn at<T, E: Into<Cause>>(step: ProvisioningStep, r: Result<T, E>) -> StepResult<T> {
    r.map_err(|e| (step, e.into()))
}

/// One run of the flow over one connection.
struct Run<'a> {
    store: &'a Store,
    master: &'a MasterKey,
    services: &'a Services,
    admins: &'a AdminSessions,
    request: &'a AutoRequest,
    connection: Connection,
    done: Vec<ProvisioningStep>,
    progress: &'a mut (dyn FnMut(Progress) + Send),
}

impl Run<'_> {
    async fn steps(&mut self, role: Uuid, role_name: &str) -> StepResult<Connection> {
        let deadline = self.request.deadline;
        let (stored, cert) = self.certificate().await?;
        let app = self.app_registration(&cert).await?;
        use ProvisioningStep as S;
        self.begin(S::ServicePrincipal);
        let graph = &self.admins.graph;
        let (sp, _) = at(
            S::ServicePrincipal,
            graph.ensure_service_principal(app.app_id, deadline).await,
        )?;
        self.finish(S::ServicePrincipal, json!({ "service_principal_id": sp }))
            .await?;
        self.begin(S::ApplicationUser);
        let env = &self.admins.environment;
        let user = match at(
            S::ApplicationUser,
            env.application_user(app.app_id, deadline).await,
        )? {
            Some(user) => user,
            None => at(
                S::ApplicationUser,
                env.create_application_user(app.app_id, deadline).await,
            )?,
        };
        self.finish(S::ApplicationUser, json!({ "systemuser_id": user }))
            .await?;
        self.begin(S::RoleAssignment);
        if !at(S::RoleAssignment, env.has_role(user, role, deadline).await)? {
            at(
                S::RoleAssignment,
                env.assign_role(user, role, deadline).await,
            )?;
        }
        self.finish(
            S::RoleAssignment,
            json!({ "role": role_name, "role_id": role }),
        )
        .await?;
        self.prove(&stored, cert, app.app_id).await
    }

    fn begin(&mut self, step: ProvisioningStep) {
        (self.progress)(Progress::Started(step));
    }

    async fn finish(&mut self, step: ProvisioningStep, detail: Value) -> StepResult<()> {
        at(
            step,
            self.store
                .record_step(self.connection.id, step, StepStatus::Done, detail)
                .await,
        )?;
        self.done.push(step);
        (self.progress)(Progress::Done(step));
        Ok(())
    }

    /// The connection's certificate: the one an earlier run stored, or a
    /// new one, sealed into the store before the app is registered with it.
    async fn certificate(&mut self) -> StepResult<(StoredCertificate, Arc<Certificate>)> {
        use ProvisioningStep::Certificate as S;
        self.begin(S);
        let id = self.connection.id;
        let existing = at(S, self.store.active_certificate(id).await)?;
        let (stored, cert) = match existing {
            Some(stored) => {
                let cert = at(S, open_certificate(&stored, self.master))?;
                (stored, cert)
            }
            None => {
                let subject = format!("dvhost {}/{}", self.request.tenant.name, self.request.name);
                let cert = at(
                    S,
                    Certificate::generate(&subject, Certificate::default_validity()),
                )?;
                let new = new_certificate(&cert, self.master);
                let stored = at(
                    S,
                    self.store.add_certificate(id, new, &self.admins.who).await,
                )?;
                (stored, Arc::new(cert))
            }
        };
        let detail = json!({ "sha1_thumbprint": stored.sha1_thumbprint });
        self.finish(S, detail).await?;
        Ok((stored, cert))
    }

    /// The app registration: the one an earlier run made (by the client id
    /// recorded, or by name and tag), or a new one.
    async fn app_registration(&mut self, cert: &Certificate) -> StepResult<AppRegistration> {
        use ProvisioningStep::AppRegistration as S;
        self.begin(S);
        let deadline = self.request.deadline;
        let graph = &self.admins.graph;
        let marker = format!("dvhost-connection-{}", self.connection.id);
        let display_name = format!("dvhost {}/{}", self.request.tenant.name, self.request.name);
        let mut app = match self.connection.client_id {
            Some(app_id) => at(S, graph.application_by_app_id(app_id, deadline).await)?,
            None => None,
        };
        if app.is_none() {
            app = at(
                S,
                graph
                    .find_application(&display_name, &marker, deadline)
                    .await,
            )?;
        }
        let app = match app {
            Some(app) => app,
            None => {
                let started = json!({ "display_name": display_name, "tag": marker });
                let record =
                    self.store
                        .record_step(self.connection.id, S, StepStatus::Started, started);
                at(S, record.await)?;
                at(
                    S,
                    graph
                        .create_application(&display_name, &marker, cert, deadline)
                        .await,
                )?
            }
        };
        if app.key_for(&cert.sha1_thumbprint_hex()).is_none() {
            let why = format!(
                "the app registration {} does not hold this connection's certificate {}",
                app.app_id,
                cert.sha1_thumbprint_hex()
            );
            return Err((S, AdminError::Unexpected(why).into()));
        }
        if self.connection.client_id != Some(app.app_id) {
            let changes = dvhost_store::ConnectionChanges {
                client_id: Some(app.app_id),
                ..Default::default()
            };
            let edit = self
                .store
                .edit_connection(self.connection.id, changes, &self.admins.who);
            self.connection = at(S, edit.await)?;
        }
        let detail = json!({ "object_id": app.object_id, "app_id": app.app_id, "tag": marker });
        self.finish(S, detail).await?;
        Ok(app)
    }

    /// WhoAmI over client credentials with the connection's certificate,
    /// then the connection becomes active.
    async fn prove(
        &mut self,
        stored: &StoredCertificate,
        cert: Arc<Certificate>,
        app_id: Uuid,
    ) -> StepResult<Connection> {
        use ProvisioningStep::ConnectionTest as S;
        self.begin(S);
        let tenant = self.connection.entra_tenant_id.unwrap_or_default();
        let tokens = at(
            S,
            token_source(
                self.services,
                tenant,
                app_id,
                &self.request.environment,
                cert,
            ),
        )?;
        let who = at(S, who_am_i(&tokens, self.request.deadline).await)?;
        let now = time::OffsetDateTime::now_utc();
        at(S, self.store.mark_certificate_used(stored.id, now).await)?;
        self.finish(S, json!({ "systemuser_id": who })).await?;
        let state = self.store.set_connection_state(
            self.connection.id,
            ConnectionState::Active,
            &self.admins.who,
            "created automatically and proven with WhoAmI",
        );
        at(S, state.await)
    }

    /// Marks the connection failed (keeping what was done) and builds the
    /// error naming the step.
    async fn failed(&mut self, step: ProvisioningStep, cause: Cause) -> ProvisionError {
        let reason = format!("step {step} failed: {cause}");
        if let Err(e) = self
            .store
            .set_connection_state(
                self.connection.id,
                ConnectionState::Failed,
                &self.admins.who,
                &reason,
            )
            .await
        {
            tracing::warn!(error = %e, "could not record the failed step");
        }
        ProvisionError::Step {
            step,
            done: std::mem::take(&mut self.done),
            cause,
        }
    }
}

/// A certificate as the store keeps it: public parts and the sealed key.
pub fn new_certificate(cert: &Certificate, master: &MasterKey) -> NewCertificate {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    NewCertificate {
        certificate_pem: cert.pem(),
        sha1_thumbprint: cert.sha1_thumbprint_hex(),
        sha256_thumbprint: hex(&cert.sha256_thumbprint()),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        sealed_private_key: Sealed::new(cert.seal_private_key(master).as_bytes().to_vec()),
    }
}

/// A stored certificate with its key unsealed (inside `dvhost-dataverse`).
pub(crate) fn open_certificate(
    stored: &StoredCertificate,
    master: &MasterKey,
) -> Result<Arc<Certificate>, IdentityError> {
    let sealed =
        dvhost_dataverse::SealedKey::from_bytes(stored.sealed_private_key.as_bytes().to_vec());
    Certificate::unseal(&stored.certificate_pem, &sealed, master).map(Arc::new)
}

/// A token source for app `client_id` of `tenant` in `environment`.
pub fn token_source(
    services: &Services,
    tenant: Uuid,
    client_id: Uuid,
    environment: &Environment,
    certificate: Arc<Certificate>,
) -> Result<Arc<TokenSource>, IdentityError> {
    let connection = dvhost_dataverse::Connection::new(
        services.authority.clone(),
        &tenant.to_string(),
        &client_id.to_string(),
        environment.clone(),
        certificate,
        SigningAlgorithm::Rs256,
    )?;
    Ok(Arc::new(TokenSource::new(
        connection,
        services.http.clone(),
    )))
}

/// How long a new credential may take to reach every Entra and Dataverse
/// replica (Microsoft documents "a few minutes" at worst); WhoAmI is tried
/// again until then, within the caller's deadline.
const PROPAGATION: Duration = Duration::from_secs(120);

/// WhoAmI with `tokens`, retried while a new app, key or application user
/// propagates; the systemuser id.
pub(crate) async fn who_am_i(
    tokens: &Arc<TokenSource>,
    deadline: Instant,
) -> Result<Uuid, DataverseError> {
    let client = Client::new(tokens.clone());
    let give_up = deadline.min(Instant::now() + PROPAGATION);
    let mut wait = Duration::from_millis(250);
    loop {
        match client.who_am_i(deadline).await {
            Ok(who) => return Ok(who.user_id),
            Err(e) if propagating(&e) && Instant::now() + wait < give_up => {
                tracing::debug!(error = %e, "the new credential is not usable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a refusal is the kind a credential still propagating gives.
fn propagating(e: &DataverseError) -> bool {
    match e {
        DataverseError::Identity(IdentityError::Entra { code, .. }) => {
            matches!(code, 700016 | 7000229 | 700027)
        }
        DataverseError::Api { status, .. } => *status == 401 || *status == 403,
        _ => false,
    }
}
