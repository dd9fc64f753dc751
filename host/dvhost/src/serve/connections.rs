//! The server's door to credentials: [`StoreConnections`] implements
//! `dvhost_server::Connections` with the store's connections and the
//! secret-owning transport. One client (one token source, one token cache)
//! per connection, kept until the connection changes; the server only ever
//! receives the [`DataverseBackend`] as runtime trait objects. The
//! connection flows of the admin API run here through [`crate::flows`],
//! the functions the command line calls; their answers carry ids, public
//! certificates and thumbprints only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dvhost_dataverse::{Client, DeviceSignIn, Environment, MasterKey, TokenSource};
use dvhost_server::{
    AdministratorAnswer, AutomaticCreated, AutomaticRequest, ConnectionBackend, ConnectionFailure,
    Connections, FlowError, FlowErrorKind, MailReport, ManualRequest, ManualRequested, Rotated,
    SignInChoice,
};
use dvhost_store::{Connection, ConnectionId, ConnectionState, Name, Store, StoreError};
use moka::future::Cache;
use serde_json::{Value, json};

use crate::DataverseBackend;
use crate::flows::auto::{self, ProvisionError, Services, open_certificate, token_source};
use crate::flows::manual::{self, ManualError, SmtpSettings};
use crate::flows::rotate;
use crate::flows::sign_in::{self, SignInError, Wanted};

/// How long a connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an automatic creation or a rotation may take (the server's
/// request timeout may end the request first; both flows resume).
const FLOW_TIMEOUT: Duration = Duration::from_secs(600);

/// Connections from the store, opened with the master key.
pub struct StoreConnections {
    store: Store,
    master: Arc<MasterKey>,
    services: Services,
    clients: Cache<ConnectionId, Opened>,
    /// The public client of `dvhost login`, through which stored sign-ins
    /// are resumed; without it, the flows needing an administrator are
    /// refused.
    device: Option<DeviceSignIn>,
    /// The relay for administrator requests; without it, they are not
    /// e-mailed.
    smtp: Option<SmtpSettings>,
}

/// A connection's client and the token source it signs with (switched in
/// place by a rotation).
#[derive(Clone)]
struct Opened {
    client: Client,
    tokens: Arc<TokenSource>,
}

impl StoreConnections {
    /// Connections of `store`, whose sealed keys `master` opens, reaching
    /// Entra and Dataverse through `services`.
    pub fn new(store: Store, master: MasterKey, services: Services) -> StoreConnections {
        StoreConnections {
            store,
            master: Arc::new(master),
            services,
            clients: Cache::builder().max_capacity(100_000).build(),
            device: None,
            smtp: None,
        }
    }

    /// Resumes administrators' stored sign-ins through `device`, the public
    /// client `dvhost login` signed them in with (automatic creation and
    /// rotation need one).
    pub fn with_sign_in(mut self, device: DeviceSignIn) -> StoreConnections {
        self.device = Some(device);
        self
    }

    /// E-mails administrator requests through `smtp`.
    pub fn with_smtp(mut self, smtp: SmtpSettings) -> StoreConnections {
        self.smtp = Some(smtp);
        self
    }

    async fn client(&self, id: ConnectionId) -> Result<Client, ConnectionFailure> {
        self.clients
            .try_get_with(id, self.open(id))
            .await
            .map(|opened| opened.client)
            .map_err(|e| (*e).clone())
    }

    /// A client for a connection row: its active certificate opened, a
    /// token source for its app, nothing else.
    async fn open(&self, id: ConnectionId) -> Result<Opened, ConnectionFailure> {
        let fail = |why: String| ConnectionFailure(why);
        let row = self
            .store
            .connection(id)
            .await
            .map_err(|e| fail(format!("the store: {e}")))?
            .ok_or_else(|| fail("the connection no longer exists".into()))?;
        let tokens = connection_tokens(&self.store, &self.master, &self.services, &row).await?;
        Ok(Opened {
            client: Client::new(tokens.clone()),
            tokens,
        })
    }

    async fn client_for(&self, row: &Connection) -> Result<Client, ConnectionFailure> {
        connection_client(&self.store, &self.master, &self.services, row).await
    }

    /// The public client for resuming sign-ins, or why there is none.
    fn device(&self) -> Result<&DeviceSignIn, FlowError> {
        self.device.as_ref().ok_or_else(|| {
            FlowError::new(
                FlowErrorKind::Unavailable,
                "this server has no sign-in client configured: create the connection with dvhost connection create --auto",
            )
        })
    }

    /// An administrator's fresh tokens from the stored sign-in `wanted`.
    async fn administrator(
        &self,
        wanted: Wanted<'_>,
    ) -> Result<(&DeviceSignIn, dvhost_dataverse::UserTokens), FlowError> {
        let device = self.device()?;
        let tokens = sign_in::administrator(&self.store, &self.master, device, wanted)
            .await
            .map_err(sign_in_error)?;
        Ok((device, tokens))
    }

    /// The provisioning steps recorded for `id`, as JSON (ids only).
    async fn steps(&self, id: ConnectionId) -> Vec<Value> {
        let steps = self.store.provisioning_steps(id).await.unwrap_or_default();
        steps
            .iter()
            .map(|s| json!({ "step": s.step.as_str(), "status": s.status.as_str(), "detail": s.detail }))
            .collect()
    }
}

/// A Web API client acting as an active connection: its active certificate
/// opened, a token source for its app, nothing else.
pub(crate) async fn connection_client(
    store: &Store,
    master: &MasterKey,
    services: &Services,
    row: &Connection,
) -> Result<Client, ConnectionFailure> {
    connection_tokens(store, master, services, row)
        .await
        .map(Client::new)
}

/// The token source of an active connection.
async fn connection_tokens(
    store: &Store,
    master: &MasterKey,
    services: &Services,
    row: &Connection,
) -> Result<Arc<TokenSource>, ConnectionFailure> {
    let fail = |why: String| ConnectionFailure(format!("connection {}: {why}", row.name));
    if row.state != ConnectionState::Active {
        return Err(fail(format!(
            "it is {}, not active; complete or test it first",
            row.state.as_str()
        )));
    }
    let (Some(entra), Some(client_id)) = (row.entra_tenant_id, row.client_id) else {
        return Err(fail("it has no Entra tenant or client id yet".into()));
    };
    let stored = store
        .active_certificate(row.id)
        .await
        .map_err(|e| fail(format!("the store: {e}")))?
        .ok_or_else(|| fail("it has no active certificate".into()))?;
    let certificate = open_certificate(&stored, master)
        .map_err(|e| fail(format!("its key cannot be opened: {e}")))?;
    let environment = Environment::parse(&row.environment_url).map_err(|e| fail(e.to_string()))?;
    token_source(services, entra, client_id, &environment, certificate)
        .map_err(|e| fail(e.to_string()))
}

#[async_trait]
impl Connections for StoreConnections {
    async fn backend(&self, id: ConnectionId) -> Result<ConnectionBackend, ConnectionFailure> {
        let backend = Arc::new(DataverseBackend::new(self.client(id).await?));
        Ok(ConnectionBackend {
            records: backend.clone(),
            metadata: backend,
        })
    }

    async fn test(&self, row: &Connection) -> Result<Value, ConnectionFailure> {
        let client = self.client_for(row).await?;
        let who = client
            .who_am_i(Instant::now() + TEST_TIMEOUT)
            .await
            .map_err(|e| ConnectionFailure(format!("connection {}: {e}", row.name)))?;
        Ok(json!({
            "connection": row.name.as_str(),
            "ok": true,
            "user_id": who.user_id,
            "business_unit_id": who.business_unit_id,
            "organization_id": who.organization_id,
        }))
    }

    async fn forget(&self, id: ConnectionId) {
        self.clients.invalidate(&id).await;
    }

    async fn create_manual(
        &self,
        request: ManualRequest,
        actor: &str,
    ) -> Result<ManualRequested, FlowError> {
        let manual = manual::ManualConnection {
            tenant: request.tenant.id,
            name: request.name,
            environment_url: request.environment_url,
            security_role: request.security_role,
            admin_email: request.admin_email,
        };
        let made = manual::request_manual(
            &self.store,
            &self.master,
            &manual,
            self.smtp.as_ref(),
            actor,
        )
        .await
        .map_err(manual_error)?;
        Ok(ManualRequested {
            instructions: made.request.instructions(),
            certificate_pem: made.request.pem,
            sha1_thumbprint: made.certificate.sha1_thumbprint,
            sha256_thumbprint: made.certificate.sha256_thumbprint,
            not_after: made.request.not_after,
            app_name: made.request.app_name,
            mail: MailReport {
                sent: made.mail.sent(),
                to: made.mail.to().map(str::to_string),
                reason: made.mail.reason().map(str::to_string),
            },
            connection: made.connection,
        })
    }

    async fn complete(
        &self,
        connection: &Connection,
        answer: AdministratorAnswer,
        actor: &str,
    ) -> Result<Connection, FlowError> {
        let done = manual::complete(
            &self.store,
            &self.master,
            &self.services,
            connection.id,
            answer.entra_tenant_id,
            answer.client_id,
            actor,
        )
        .await;
        self.forget(connection.id).await;
        done.map_err(manual_error)
    }

    async fn create_automatic(
        &self,
        request: AutomaticRequest,
    ) -> Result<AutomaticCreated, FlowError> {
        let environment = Environment::parse(&request.environment_url).map_err(|e| {
            FlowError::new(
                FlowErrorKind::Invalid,
                format!("the environment URL cannot be used: {e}"),
            )
        })?;
        let (device, tokens) = self.administrator(wanted(&request.sign_in)).await?;
        let mut progress = Vec::new();
        let mut record = |p: auto::Progress| progress.push(p.to_string());
        let name: Name = request.name;
        let made = auto::create_connection(
            &self.store,
            &self.master,
            auto::AdminSignIn {
                sign_in: device,
                tokens: &tokens,
            },
            &self.services,
            auto::AutoRequest {
                tenant: request.tenant.clone(),
                name: name.clone(),
                environment,
                security_role: request.security_role,
                deadline: Instant::now() + FLOW_TIMEOUT,
            },
            &mut record,
        )
        .await;
        match made {
            Ok(connection) => {
                self.forget(connection.id).await;
                Ok(AutomaticCreated {
                    steps: self.steps(connection.id).await,
                    connection,
                    progress,
                })
            }
            Err(e) => {
                let existing = self
                    .store
                    .connection_by_name(request.tenant.id, &name)
                    .await;
                let steps = match existing {
                    Ok(Some(c)) => self.steps(c.id).await,
                    _ => Vec::new(),
                };
                Err(provision_error(
                    e,
                    json!({ "progress": progress, "steps": steps }),
                ))
            }
        }
    }

    async fn rotate(
        &self,
        connection: &Connection,
        choice: Option<SignInChoice>,
    ) -> Result<Rotated, FlowError> {
        let wanted = match &choice {
            Some(choice) => wanted(choice),
            None => Wanted {
                user: None,
                entra_tenant: connection.entra_tenant_id,
            },
        };
        rotate::check_rotatable(connection).map_err(|e| provision_error(e, json!({})))?;
        let (device, tokens) = self.administrator(wanted).await?;
        // Calls in flight keep the cached client: its token source switches
        // to the new certificate before the old key leaves the app.
        let cached = self.clients.get(&connection.id).await;
        let runtime: Vec<&TokenSource> = cached.iter().map(|o| o.tokens.as_ref()).collect();
        let mut progress = Vec::new();
        let mut record = |step: rotate::RotationStep| progress.push(step.to_string());
        let rotated = rotate::rotate_certificate(
            &self.store,
            &self.master,
            auto::AdminSignIn {
                sign_in: device,
                tokens: &tokens,
            },
            &self.services,
            rotate::RotateRequest {
                connection: connection.id,
                deadline: Instant::now() + FLOW_TIMEOUT,
            },
            &runtime,
            &mut record,
        )
        .await;
        self.forget(connection.id).await;
        match rotated {
            Ok(r) => Ok(Rotated {
                old_sha1_thumbprint: r.old_sha1_thumbprint,
                new_sha1_thumbprint: r.new_sha1_thumbprint,
                progress,
            }),
            Err(e) => Err(provision_error(e, json!({ "progress": progress }))),
        }
    }
}

fn wanted(choice: &SignInChoice) -> Wanted<'_> {
    Wanted {
        user: Some(&choice.user),
        entra_tenant: Some(choice.entra_tenant),
    }
}

fn store_error(e: StoreError) -> FlowError {
    let kind = match &e {
        StoreError::Invalid { .. } | StoreError::InvalidName { .. } => FlowErrorKind::Invalid,
        StoreError::NotAllowed(_) | StoreError::AlreadyExists { .. } => FlowErrorKind::Conflict,
        StoreError::NotFound { .. } => FlowErrorKind::NotFound,
        _ => FlowErrorKind::Internal,
    };
    FlowError::new(kind, e.to_string())
}

fn sign_in_error(e: SignInError) -> FlowError {
    let kind = match &e {
        SignInError::Store(_) | SignInError::Seal(_) => FlowErrorKind::Internal,
        _ => FlowErrorKind::SignInRequired,
    };
    match e {
        SignInError::Store(e) => store_error(e),
        SignInError::Ambiguous(names) => FlowError::new(
            kind,
            format!(
                "several users are signed in ({}): name one in sign_in",
                names.join(", ")
            ),
        ),
        other => FlowError::new(kind, other.to_string()),
    }
}

fn manual_error(e: ManualError) -> FlowError {
    if let ManualError::Store(e) = e {
        return store_error(e);
    }
    let kind = match &e {
        ManualError::NoTenant(_) | ManualError::NoConnection(_) => FlowErrorKind::NotFound,
        ManualError::Environment(_) => FlowErrorKind::Invalid,
        ManualError::NameTaken { .. } | ManualError::WrongConnection { .. } => {
            FlowErrorKind::Conflict
        }
        ManualError::Refused { .. } => FlowErrorKind::AnswerRefused,
        ManualError::Untested { .. } => FlowErrorKind::Upstream,
        _ => FlowErrorKind::Internal,
    };
    let error = FlowError::new(kind, e.to_string());
    match e {
        ManualError::Refused {
            aadsts: Some(code), ..
        } => error.details(json!({ "aadsts": code })),
        _ => error,
    }
}

/// An automatic flow's or a rotation's failure; `details` gets the failed
/// step and the steps done when the flow names them.
fn provision_error(e: ProvisionError, mut details: Value) -> FlowError {
    if let ProvisionError::Store(e) = e {
        return store_error(e);
    }
    let kind = match &e {
        ProvisionError::NotAdministrator { .. } => FlowErrorKind::NotAdministrator,
        ProvisionError::Step { step, done, .. } => {
            details["failed_step"] = json!(step.as_str());
            details["done"] = json!(done.iter().map(|s| s.as_str()).collect::<Vec<_>>());
            details["resumable"] = json!(true);
            FlowErrorKind::Upstream
        }
        ProvisionError::Rotation { step, .. } => {
            details["failed_step"] = json!(step.to_string());
            details["resumable"] = json!(true);
            FlowErrorKind::Upstream
        }
        ProvisionError::Conflict(_) => FlowErrorKind::Conflict,
        _ => FlowErrorKind::SignInRequired,
    };
    FlowError::new(kind, e.to_string()).details(details)
}
