//! Creating a connection manually, through an administrator.
//!
//! For an operator who is not an Entra administrator:
//!
//! 1. [`create_manual`] (or [`request_manual`], which writes no files,
//!    for the admin API) generates the connection's certificate, seals its
//!    private key under the master key (inside `dvhost-dataverse`) and stores
//!    it with a pending connection, then produces the administrator request
//!    ([`AdminRequest`]): the public certificate (`.cer` and `.pem`), its
//!    SHA-1 and SHA-256 thumbprints and step-by-step instructions, written as
//!    files and, when SMTP is configured, e-mailed with the `.cer` attached.
//! 2. The administrator registers the app, uploads the certificate, creates
//!    the service principal and the Dataverse application user with its
//!    role, and sends back the Entra tenant id and the client id.
//! 3. [`complete`] tests that answer with WhoAmI over client credentials and,
//!    when Dataverse answers, stores it and marks the connection active. A
//!    wrong answer is reported with its cause in plain words (the AADSTS code
//!    translated, naming the ids tried) and leaves the connection pending:
//!    the wrong ids are not stored, the attempt is in its history and in the
//!    audit log.

mod request;

use std::time::{Duration, Instant};

use dvhost_dataverse::{
    Certificate, Client, DataverseError, EndpointError, Environment, IdentityError, MasterKey,
};
use dvhost_store::{
    AuditOutcome, Connection, ConnectionChanges, ConnectionId, ConnectionMode, ConnectionState,
    Name, NewAuditEntry, NewConnection, Store, StoreError, StoredCertificate, TenantId,
};
use serde_json::json;
use uuid::Uuid;

use super::auto::{new_certificate, open_certificate, token_source};

pub use request::{AdminRequest, AdminRequestFiles, MailError, SmtpSecurity, SmtpSettings};

/// The role asked for when none is named (the automatic flow's default).
pub use super::auto::DEFAULT_SECURITY_ROLE;
/// Where Entra is and how to reach it (shared with the automatic flow).
pub use super::auto::Services;

/// How long [`complete`] waits for the WhoAmI test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the operator asks for.
#[derive(Debug, Clone)]
pub struct ManualConnection {
    /// The dvhost tenant that will own the connection.
    pub tenant: TenantId,
    /// The connection's name.
    pub name: Name,
    /// The Dataverse environment URL.
    pub environment_url: String,
    /// The security role the administrator should give the application
    /// user ([`DEFAULT_SECURITY_ROLE`] when `None`).
    pub security_role: Option<String>,
    /// Where to e-mail the request, when SMTP is configured.
    pub admin_email: Option<String>,
}

/// Whether the request went out by e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// No administrator address was given: the files are the request.
    NoRecipient,
    /// An address was given but SMTP is not configured: send the files.
    NotConfigured,
    /// The relay took the e-mail.
    Sent {
        /// The administrator's address.
        to: String,
    },
    /// Sending failed; the connection and the files exist, send the files.
    Failed {
        /// The administrator's address.
        to: String,
        /// Why, in words (no secret: the request holds none).
        reason: String,
    },
}

impl MailOutcome {
    /// Whether the relay took it.
    pub fn sent(&self) -> bool {
        matches!(self, MailOutcome::Sent { .. })
    }

    /// The administrator's address, when one was given.
    pub fn to(&self) -> Option<&str> {
        match self {
            MailOutcome::Sent { to } | MailOutcome::Failed { to, .. } => Some(to),
            MailOutcome::NoRecipient | MailOutcome::NotConfigured => None,
        }
    }

    /// Why it was not sent, when an address was given.
    pub fn reason(&self) -> Option<&str> {
        match self {
            MailOutcome::NotConfigured => Some("SMTP is not configured"),
            MailOutcome::Failed { reason, .. } => Some(reason),
            MailOutcome::NoRecipient | MailOutcome::Sent { .. } => None,
        }
    }
}

/// What [`create_manual`] produced.
#[derive(Debug, Clone)]
pub struct ManualCreated {
    /// The pending connection.
    pub connection: Connection,
    /// Its certificate (public parts, sealed key).
    pub certificate: StoredCertificate,
    /// The request for the administrator.
    pub request: AdminRequest,
    /// Where the request's files are.
    pub files: AdminRequestFiles,
    /// Whether it was e-mailed.
    pub mail: MailOutcome,
}

/// Why a manual flow step failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// No such dvhost tenant.
    #[error("tenant {0} does not exist")]
    NoTenant(TenantId),
    /// No such connection.
    #[error("connection {0} does not exist")]
    NoConnection(ConnectionId),
    /// The environment URL cannot be used.
    #[error("the environment URL cannot be used: {0}")]
    Environment(#[from] EndpointError),
    /// The name is taken by a connection that is not an unfinished manual one.
    #[error(
        "tenant {tenant} already has a connection named {name}: pick another name or delete it"
    )]
    NameTaken {
        /// The tenant's name.
        tenant: String,
        /// The connection's name.
        name: String,
    },
    /// The connection is not one this step applies to.
    #[error("connection {name} cannot be completed: {why}")]
    WrongConnection {
        /// The connection's name.
        name: String,
        /// Why, with what to do instead.
        why: String,
    },
    /// The administrator's answer was refused by Entra or Dataverse. The
    /// connection stays pending.
    #[error(
        "the answer for connection {name} does not work: {cause}. The connection stays pending"
    )]
    Refused {
        /// The connection's name.
        name: String,
        /// The AADSTS number, when Entra sent one.
        aadsts: Option<u32>,
        /// The cause in plain words, naming the ids tried.
        cause: String,
    },
    /// The test could not be run (network, deadline). The connection stays
    /// pending; try again.
    #[error("connection {name} could not be tested: {why}. It stays pending; try again")]
    Untested {
        /// The connection's name.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// The certificate could not be generated or unsealed.
    #[error(transparent)]
    Certificate(#[from] IdentityError),
    /// The request's files could not be written.
    #[error("the administrator request could not be written to {dir}: {source}")]
    Files {
        /// The output directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a pending manual connection and its administrator request.
///
/// Generates the certificate, seals its private key with `master` and stores
/// it; writes the request's files into `out_dir`; e-mails it to
/// `request.admin_email` when `smtp` is given (a failed e-mail is reported
/// in [`ManualCreated::mail`], not as an error: the files are there).
/// Re-running for a connection that a crash left without a certificate
/// finishes it instead of refusing the name. `actor` is recorded in the
/// history and the audit log.
pub async fn create_manual(
    store: &Store,
    master: &MasterKey,
    request: &ManualConnection,
    out_dir: &std::path::Path,
    smtp: Option<&SmtpSettings>,
    actor: &str,
) -> Result<ManualCreated, ManualError> {
    let prepared = prepare(store, master, request, actor).await?;
    let files = prepared
        .request
        .write_files(out_dir)
        .await
        .map_err(|source| ManualError::Files {
            dir: out_dir.to_path_buf(),
            source,
        })?;
    let made = deliver(store, prepared, request.admin_email.as_deref(), smtp, actor).await?;
    Ok(ManualCreated {
        connection: made.connection,
        certificate: made.certificate,
        request: made.request,
        files,
        mail: made.mail,
    })
}

/// [`create_manual`] without files, for the admin API, which answers with
/// the request itself.
pub async fn request_manual(
    store: &Store,
    master: &MasterKey,
    request: &ManualConnection,
    smtp: Option<&SmtpSettings>,
    actor: &str,
) -> Result<ManualRequested, ManualError> {
    let prepared = prepare(store, master, request, actor).await?;
    deliver(store, prepared, request.admin_email.as_deref(), smtp, actor).await
}

/// What [`request_manual`] produced.
#[derive(Debug, Clone)]
pub struct ManualRequested {
    /// The pending connection.
    pub connection: Connection,
    /// Its certificate (public parts, sealed key).
    pub certificate: StoredCertificate,
    /// The request for the administrator.
    pub request: AdminRequest,
    /// Whether it was e-mailed.
    pub mail: MailOutcome,
}

/// The pending connection, its stored certificate and the request.
struct Prepared {
    connection: Connection,
    certificate: StoredCertificate,
    request: AdminRequest,
}

async fn prepare(
    store: &Store,
    master: &MasterKey,
    request: &ManualConnection,
    actor: &str,
) -> Result<Prepared, ManualError> {
    let tenant = store
        .tenant(request.tenant)
        .await?
        .ok_or(ManualError::NoTenant(request.tenant))?;
    let environment = Environment::parse(&request.environment_url)?;
    let role = request
        .security_role
        .clone()
        .unwrap_or_else(|| DEFAULT_SECURITY_ROLE.to_string());
    let connection = pending_connection(store, request, &environment, &role, actor).await?;
    let subject = format!("dvhost {}/{}", tenant.name, request.name);
    let certificate = Certificate::generate(&subject, Certificate::default_validity())?;
    let stored = store
        .add_certificate(connection.id, new_certificate(&certificate, master), actor)
        .await?;
    let admin_request = AdminRequest {
        tenant: tenant.name.to_string(),
        connection: request.name.to_string(),
        environment_url: environment.as_str().to_string(),
        security_role: role,
        app_name: format!("dvhost-{}-{}", tenant.name, request.name),
        cer: certificate.der().to_vec(),
        pem: certificate.pem(),
        sha1_thumbprint: stored.sha1_thumbprint.clone(),
        sha256_thumbprint: stored.sha256_thumbprint.clone(),
        not_after: certificate.not_after(),
    };
    Ok(Prepared {
        connection,
        certificate: stored,
        request: admin_request,
    })
}

/// E-mails the request when it can, and audits the creation.
async fn deliver(
    store: &Store,
    prepared: Prepared,
    admin_email: Option<&str>,
    smtp: Option<&SmtpSettings>,
    actor: &str,
) -> Result<ManualRequested, ManualError> {
    let Prepared {
        connection,
        certificate,
        request,
    } = prepared;
    let mail = mail(&request, admin_email, smtp).await;
    audit(
        store,
        &connection,
        actor,
        "connection.create_manual",
        AuditOutcome::Success,
        json!({ "sha1_thumbprint": certificate.sha1_thumbprint, "mail": mail_detail(&mail) }),
    )
    .await?;
    Ok(ManualRequested {
        connection,
        certificate,
        request,
        mail,
    })
}

/// A new pending manual connection, or the one a previous run left without
/// a certificate.
async fn pending_connection(
    store: &Store,
    request: &ManualConnection,
    environment: &Environment,
    role: &str,
    actor: &str,
) -> Result<Connection, ManualError> {
    if let Some(existing) = store
        .connection_by_name(request.tenant, &request.name)
        .await?
    {
        let unfinished = existing.mode == ConnectionMode::Manual
            && existing.state == ConnectionState::Pending
            && store.certificates(existing.id).await?.is_empty();
        if unfinished {
            return Ok(existing);
        }
        let tenant = store.tenant(request.tenant).await?;
        return Err(ManualError::NameTaken {
            tenant: tenant.map(|t| t.name.to_string()).unwrap_or_default(),
            name: request.name.to_string(),
        });
    }
    let new = NewConnection {
        tenant: request.tenant,
        name: request.name.clone(),
        environment_url: environment.as_str().to_string(),
        entra_tenant_id: None,
        client_id: None,
        security_role: Some(role.to_string()),
        mode: ConnectionMode::Manual,
    };
    Ok(store.create_connection(new, actor).await?)
}

async fn mail(
    request: &AdminRequest,
    to: Option<&str>,
    smtp: Option<&SmtpSettings>,
) -> MailOutcome {
    let Some(to) = to else {
        return MailOutcome::NoRecipient;
    };
    let Some(smtp) = smtp else {
        return MailOutcome::NotConfigured;
    };
    match request.send(smtp, to).await {
        Ok(()) => MailOutcome::Sent { to: to.to_string() },
        Err(e) => MailOutcome::Failed {
            to: to.to_string(),
            reason: e.to_string(),
        },
    }
}

fn mail_detail(mail: &MailOutcome) -> serde_json::Value {
    match mail {
        MailOutcome::NoRecipient => json!("no recipient"),
        MailOutcome::NotConfigured => json!("smtp not configured"),
        MailOutcome::Sent { to } => json!({ "sent_to": to }),
        MailOutcome::Failed { to, reason } => json!({ "failed_to": to, "reason": reason }),
    }
}

/// Appends an audit entry about `connection` (its id and name added to
/// `detail`).
pub(super) async fn audit(
    store: &Store,
    connection: &Connection,
    actor: &str,
    action: &str,
    outcome: AuditOutcome,
    mut detail: serde_json::Value,
) -> Result<(), StoreError> {
    if let Some(map) = detail.as_object_mut() {
        map.insert("connection".into(), json!(connection.id.to_string()));
        map.insert("name".into(), json!(connection.name.as_str()));
    }
    store
        .append_audit(&NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant: Some(connection.tenant),
            plugin: None,
            actor: actor.to_string(),
            action: action.to_string(),
            outcome,
            request_id: None,
            detail,
        })
        .await
        .map(|_| ())
}

/// Completes a manual connection with the administrator's answer.
///
/// Tests `entra_tenant_id` and `client_id` with WhoAmI over client
/// credentials, signing with the connection's certificate (unsealed inside
/// `dvhost-dataverse`). When Dataverse answers, stores the ids and marks the
/// connection active. When Entra or Dataverse refuses, returns
/// [`ManualError::Refused`] with the cause in plain words; the connection
/// stays pending and its history and the audit log record the attempt.
pub async fn complete(
    store: &Store,
    master: &MasterKey,
    services: &Services,
    connection: ConnectionId,
    entra_tenant_id: Uuid,
    client_id: Uuid,
    actor: &str,
) -> Result<Connection, ManualError> {
    let current = store
        .connection(connection)
        .await?
        .ok_or(ManualError::NoConnection(connection))?;
    check_completable(&current)?;
    let stored = store.active_certificate(connection).await?.ok_or_else(|| {
        ManualError::WrongConnection {
            name: current.name.to_string(),
            why: "it has no certificate: delete it and create it again".into(),
        }
    })?;
    let answer = Answer {
        tenant: entra_tenant_id,
        client: client_id,
    };
    match who_am_i(master, services, &current, &stored, answer).await {
        Ok(user) => activate(store, &current, &stored, answer, user, actor).await,
        Err(failure) => {
            let (outcome, error) = failure.into_error(&current, &stored, answer);
            let reason = format!(
                "complete with Entra tenant {entra_tenant_id} and client id {client_id} failed: {error}"
            );
            store
                .set_connection_state(connection, ConnectionState::Pending, actor, &reason)
                .await?;
            let detail = json!({ "entra_tenant_id": entra_tenant_id, "client_id": client_id,
                "error": error.to_string() });
            audit(
                store,
                &current,
                actor,
                "connection.complete",
                outcome,
                detail,
            )
            .await?;
            Err(error)
        }
    }
}

/// The administrator's answer.
#[derive(Debug, Clone, Copy)]
struct Answer {
    tenant: Uuid,
    client: Uuid,
}

fn check_completable(connection: &Connection) -> Result<(), ManualError> {
    let why = match (connection.mode, connection.state) {
        (ConnectionMode::Automatic, _) => {
            "it was created automatically; use edit to change its ids".to_string()
        }
        (_, ConnectionState::Pending | ConnectionState::Failed) => return Ok(()),
        (_, ConnectionState::Active) => {
            "it is already active; use edit to change its tenant or client id".to_string()
        }
        (_, state) => format!("it is {state}"),
    };
    Err(ManualError::WrongConnection {
        name: connection.name.to_string(),
        why,
    })
}

/// Stores the answer and marks the connection active.
async fn activate(
    store: &Store,
    current: &Connection,
    stored: &StoredCertificate,
    answer: Answer,
    user: Uuid,
    actor: &str,
) -> Result<Connection, ManualError> {
    let changes = ConnectionChanges {
        entra_tenant_id: Some(answer.tenant),
        client_id: Some(answer.client),
        ..ConnectionChanges::default()
    };
    store.edit_connection(current.id, changes, actor).await?;
    let reason = format!("WhoAmI succeeded as application user {user}");
    let active = store
        .set_connection_state(current.id, ConnectionState::Active, actor, &reason)
        .await?;
    store
        .mark_certificate_used(stored.id, time::OffsetDateTime::now_utc())
        .await?;
    let detail = json!({ "entra_tenant_id": answer.tenant, "client_id": answer.client,
        "application_user": user });
    audit(
        store,
        current,
        actor,
        "connection.complete",
        AuditOutcome::Success,
        detail,
    )
    .await?;
    Ok(active)
}

/// Why the WhoAmI test failed.
enum TestFailure {
    Certificate(IdentityError),
    Dataverse(DataverseError),
}

/// Runs WhoAmI as the app `answer` names; the systemuser id on success.
async fn who_am_i(
    master: &MasterKey,
    services: &Services,
    connection: &Connection,
    stored: &StoredCertificate,
    answer: Answer,
) -> Result<Uuid, TestFailure> {
    let certificate = open_certificate(stored, master).map_err(TestFailure::Certificate)?;
    let environment = Environment::parse(&connection.environment_url)
        .map_err(|e| TestFailure::Certificate(e.into()))?;
    let tokens = token_source(
        services,
        answer.tenant,
        answer.client,
        &environment,
        certificate,
    )
    .map_err(TestFailure::Certificate)?;
    // Not the automatic flow's WhoAmI: it waits for propagation, which
    // would hold a wrong client id for minutes before reporting it.
    let client = Client::new(tokens);
    client
        .who_am_i(Instant::now() + TEST_TIMEOUT)
        .await
        .map(|who| who.user_id)
        .map_err(TestFailure::Dataverse)
}

impl TestFailure {
    /// The audit outcome and the error to report.
    fn into_error(
        self,
        connection: &Connection,
        stored: &StoredCertificate,
        answer: Answer,
    ) -> (AuditOutcome, ManualError) {
        let name = connection.name.to_string();
        let refused = |aadsts, cause| {
            (
                AuditOutcome::Denied,
                ManualError::Refused {
                    name: name.clone(),
                    aadsts,
                    cause,
                },
            )
        };
        match self {
            TestFailure::Certificate(e) => (AuditOutcome::Failure, ManualError::Certificate(e)),
            TestFailure::Dataverse(DataverseError::Identity(IdentityError::Entra {
                code,
                cause,
                ..
            })) if code != 0 => {
                let plain = plain_aadsts(code, cause, connection, stored, answer);
                refused(Some(code), plain)
            }
            TestFailure::Dataverse(DataverseError::Api {
                status: 401 | 403,
                message,
                ..
            }) => refused(
                None,
                format!(
                    "Entra accepted the app, but environment {} refused it: {message}. Check that an application user exists there for client id {} with a security role",
                    connection.environment_url, answer.client
                ),
            ),
            TestFailure::Dataverse(e) if is_transient_failure(&e) => (
                AuditOutcome::Failure,
                ManualError::Untested {
                    name,
                    why: e.to_string(),
                },
            ),
            TestFailure::Dataverse(e) => refused(None, e.to_string()),
        }
    }
}

/// Whether a Dataverse error says nothing about the answer (the test could
/// not run).
fn is_transient_failure(e: &DataverseError) -> bool {
    match e {
        DataverseError::Unreachable(_)
        | DataverseError::Transport(_)
        | DataverseError::Deadline(_) => true,
        DataverseError::Identity(e) => e.is_transient(),
        _ => false,
    }
}

/// An AADSTS refusal of the answer in plain words, naming what was tried.
fn plain_aadsts(
    code: u32,
    cause: &str,
    connection: &Connection,
    stored: &StoredCertificate,
    answer: Answer,
) -> String {
    let (tenant, client) = (answer.tenant, answer.client);
    match code {
        700016 => format!(
            "no application with client id {client} in tenant {tenant}: check the client id (AADSTS700016)"
        ),
        90002 => format!("no Entra tenant {tenant}: check the tenant id (AADSTS90002)"),
        700027 => format!(
            "the application {client} does not hold this connection's certificate (SHA-1 thumbprint {}): upload the .cer to its app registration (AADSTS700027)",
            stored.sha1_thumbprint
        ),
        7000229 => format!(
            "the application {client} has no service principal in tenant {tenant}: create it (enterprise application) (AADSTS7000229)"
        ),
        500011 => format!(
            "the environment {} is not in tenant {tenant}: check the tenant id (AADSTS500011)",
            connection.environment_url
        ),
        7000112 => {
            format!("the application {client} is disabled in tenant {tenant} (AADSTS7000112)")
        }
        _ => format!("Entra refused client id {client} in tenant {tenant}: {cause} (AADSTS{code})"),
    }
}
