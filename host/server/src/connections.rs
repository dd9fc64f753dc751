//! The one door from the server to credentials: [`Connections`], which the
//! `dvhost` binary implements with the secret-owning transport. The server
//! asks for a connection's Dataverse backend or for a test of it, and runs
//! the connection flows through it (create manual or automatic, complete,
//! rotate), and gets trait objects and plain results back: names, ids,
//! public certificates, thumbprints, states and messages, never a key, a
//! token or a sealed sign-in.

use std::sync::Arc;

use async_trait::async_trait;
use dvhost_runtime::{Metadata, Records};
use dvhost_store::{Connection, ConnectionId, Name, Tenant};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A connection's Dataverse, as the runtime reaches it.
#[derive(Clone)]
pub struct ConnectionBackend {
    /// Row operations.
    pub records: Arc<dyn Records>,
    /// Table metadata.
    pub metadata: Arc<dyn Metadata>,
}

/// Why a connection cannot be used. The message reaches API callers: it
/// names the connection and what to do, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConnectionFailure(pub String);

/// What the server needs from the credential-holding side of the host.
#[async_trait]
pub trait Connections: Send + Sync + 'static {
    /// The backend for an active connection (cached by the implementation:
    /// one token source per connection, so this is cheap on every call).
    async fn backend(
        &self,
        connection: ConnectionId,
    ) -> Result<ConnectionBackend, ConnectionFailure>;

    /// Tests a connection end to end (WhoAmI) and describes the result.
    async fn test(&self, connection: &Connection) -> Result<Value, ConnectionFailure>;

    /// Forgets what is cached for a connection (after a rotation, an edit,
    /// a deletion), so the next call uses the store's current state.
    async fn forget(&self, connection: ConnectionId);

    /// Creates a pending manual connection: its certificate is generated
    /// and sealed on the credential side, and the administrator request
    /// (public certificate, thumbprints, instructions) comes back.
    async fn create_manual(
        &self,
        request: ManualRequest,
        actor: &str,
    ) -> Result<ManualRequested, FlowError> {
        let _ = (request, actor);
        Err(FlowError::unavailable())
    }

    /// Completes a manual connection with the administrator's answer, which
    /// is tested with WhoAmI before the connection becomes active.
    async fn complete(
        &self,
        connection: &Connection,
        answer: AdministratorAnswer,
        actor: &str,
    ) -> Result<Connection, FlowError> {
        let _ = (connection, answer, actor);
        Err(FlowError::unavailable())
    }

    /// Creates (or resumes creating) an automatic connection as a signed-in
    /// administrator whose sign-in is stored (`dvhost login`).
    async fn create_automatic(
        &self,
        request: AutomaticRequest,
    ) -> Result<AutomaticCreated, FlowError> {
        let _ = request;
        Err(FlowError::unavailable())
    }

    /// Rotates an automatic connection's certificate with overlap, as a
    /// signed-in administrator (the only stored sign-in of the connection's
    /// Entra tenant when `sign_in` is `None`).
    async fn rotate(
        &self,
        connection: &Connection,
        sign_in: Option<SignInChoice>,
    ) -> Result<Rotated, FlowError> {
        let _ = (connection, sign_in);
        Err(FlowError::unavailable())
    }
}

/// A manual connection to create.
#[derive(Debug, Clone)]
pub struct ManualRequest {
    /// The tenant that owns it.
    pub tenant: Tenant,
    /// Its name.
    pub name: Name,
    /// The Dataverse environment URL.
    pub environment_url: String,
    /// The application user's security role (the flow's default if `None`).
    pub security_role: Option<String>,
    /// Where to e-mail the request, when the implementation can send mail.
    pub admin_email: Option<String>,
}

/// What a manual creation produced: the pending connection and the request
/// for the administrator. Nothing in it is secret.
#[derive(Debug, Clone)]
pub struct ManualRequested {
    /// The pending connection.
    pub connection: Connection,
    /// The public certificate, PEM (upload it to the app registration).
    pub certificate_pem: String,
    /// SHA-1 thumbprint, hex.
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint, hex.
    pub sha256_thumbprint: String,
    /// End of the certificate's validity.
    pub not_after: OffsetDateTime,
    /// The display name suggested for the app registration.
    pub app_name: String,
    /// The step-by-step instructions for the administrator.
    pub instructions: String,
    /// Whether it was e-mailed, in words.
    pub mail: MailReport,
}

/// Whether the administrator request went out by e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailReport {
    /// The relay took it.
    pub sent: bool,
    /// The address, when one was given.
    pub to: Option<String>,
    /// Why it was not sent.
    pub reason: Option<String>,
}

/// The administrator's answer to a manual request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdministratorAnswer {
    /// The Entra tenant the app is registered in.
    pub entra_tenant_id: Uuid,
    /// The application (client) id.
    pub client_id: Uuid,
}

/// Which stored sign-in acts as the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInChoice {
    /// The user's sign-in name (UPN) or object id.
    pub user: String,
    /// The user's Entra tenant id.
    pub entra_tenant: Uuid,
}

/// An automatic connection to create.
#[derive(Debug, Clone)]
pub struct AutomaticRequest {
    /// The tenant that owns it.
    pub tenant: Tenant,
    /// Its name.
    pub name: Name,
    /// The Dataverse environment URL.
    pub environment_url: String,
    /// The application user's security role (the flow's default if `None`).
    pub security_role: Option<String>,
    /// The administrator's stored sign-in.
    pub sign_in: SignInChoice,
}

/// What an automatic creation did.
#[derive(Debug, Clone)]
pub struct AutomaticCreated {
    /// The connection, active.
    pub connection: Connection,
    /// The flow's progress in this run, in order (e.g. `app_registration:
    /// done`).
    pub progress: Vec<String>,
    /// The provisioning steps recorded for the connection (ids only).
    pub steps: Vec<Value>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// SHA-1 thumbprint of the certificate rolled out (removed from the app
    /// and the store).
    pub old_sha1_thumbprint: String,
    /// SHA-1 thumbprint of the certificate in use now.
    pub new_sha1_thumbprint: String,
    /// The rotation's steps done in this run, in order.
    pub progress: Vec<String>,
}

/// What kind of failure a [`FlowError`] is, for its HTTP status.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowErrorKind {
    /// The request is malformed (an environment URL that cannot be used).
    Invalid,
    /// No such connection.
    NotFound,
    /// The request does not fit the connection's state or mode, or the name
    /// is taken.
    Conflict,
    /// No usable stored sign-in: someone must run `dvhost login`.
    SignInRequired,
    /// The signed-in user lacks the administrator rights the flow needs.
    NotAdministrator,
    /// Entra or Dataverse refused the administrator's answer.
    AnswerRefused,
    /// Entra, Graph or Dataverse failed during the flow; what was done is
    /// kept and the same request resumes it.
    Upstream,
    /// This server cannot run connection flows.
    Unavailable,
    /// The host itself failed (the store); the message is for the log.
    Internal,
}

/// Why a connection flow failed. The message names what to do and never
/// carries a secret; `details` holds ids, steps and AADSTS codes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FlowError {
    /// What kind of failure.
    pub kind: FlowErrorKind,
    /// For a person.
    pub message: String,
    /// Structured details (steps done, the AADSTS code).
    pub details: Option<Value>,
}

impl FlowError {
    /// A failure of `kind`.
    pub fn new(kind: FlowErrorKind, message: impl Into<String>) -> FlowError {
        FlowError {
            kind,
            message: message.into(),
            details: None,
        }
    }

    /// With details.
    pub fn details(mut self, details: Value) -> FlowError {
        self.details = Some(details);
        self
    }

    /// What a server without credentials answers.
    pub fn unavailable() -> FlowError {
        FlowError::new(
            FlowErrorKind::Unavailable,
            "this server cannot run connection flows: it has no credentials configured",
        )
    }
}

/// No credentials at all: every connection is unusable. For a server that
/// only runs plugins without Dataverse access, and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConnections;

#[async_trait]
impl Connections for NoConnections {
    async fn backend(&self, _: ConnectionId) -> Result<ConnectionBackend, ConnectionFailure> {
        Err(ConnectionFailure(
            "connections cannot be used: this server has no credentials configured".into(),
        ))
    }

    async fn test(&self, connection: &Connection) -> Result<Value, ConnectionFailure> {
        self.backend(connection.id).await.map(|_| Value::Null)
    }

    async fn forget(&self, _: ConnectionId) {}
}
