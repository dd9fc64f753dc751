//! `/v1/admin/tenants/{tenant}/connections/...`: a tenant's connections
//! through their lifecycle (admin key only): create (manual, through an
//! administrator request, or automatic, as a stored administrator sign-in),
//! complete a manual one, rotate the certificate, show and delete. The
//! flows run behind [`Connections`](crate::Connections), on the credential
//! side; these handlers see names, ids, public certificates, thumbprints,
//! states and messages only. Listing and testing are in `admin.rs`.

use std::future::Future;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dvhost_store::{
    AuditOutcome, Connection, HistoryEntry, Name, NewAuditEntry, StepRecord, StoredCertificate,
    Tenant,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::connections::{
    AdministratorAnswer, AutomaticRequest, FlowError, FlowErrorKind, ManualRequest, SignInChoice,
};
use crate::error::{ApiError, ErrorBody, JsonBody, PathParams};
use crate::routes::plugins::time_text;
use crate::state::AppState;

/// How the audit log and the connection's history name the caller.
const ACTOR: &str = "admin";

/// A stored delegated sign-in (`dvhost login`) to act as.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// The signed-in user's sign-in name (UPN) or object id.
    #[schema(min_length = 1)]
    pub user: String,
    /// The user's Entra tenant id.
    pub entra_tenant: Uuid,
}

/// A connection to create, by `mode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NewConnectionBody {
    /// dvhost prepares a request (certificate and instructions) for an
    /// administrator, who registers the app and sends back two ids.
    Manual {
        /// Its name among the tenant's connections.
        #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
        name: String,
        /// The Dataverse environment's URL (`https://org.crm.dynamics.com`).
        #[schema(pattern = "^https://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?/?$")]
        environment_url: String,
        /// The application user's security role; `Basic User` when absent.
        security_role: Option<String>,
        /// The administrator's address, named in the request (and e-mailed
        /// to when the server can send mail).
        admin_email: Option<String>,
    },
    /// dvhost registers the app itself, as a stored administrator sign-in.
    Automatic {
        /// Its name among the tenant's connections.
        #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
        name: String,
        /// The Dataverse environment's URL (`https://org.crm.dynamics.com`).
        #[schema(pattern = "^https://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?/?$")]
        environment_url: String,
        /// The application user's security role; `Basic User` when absent.
        security_role: Option<String>,
        /// The administrator's stored sign-in.
        sign_in: SignInBody,
    },
}

/// The administrator's answer to a manual request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The Entra tenant the app is registered in.
    pub entra_tenant_id: Uuid,
    /// The application (client) id.
    pub client_id: Uuid,
}

/// Which administrator rotates.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The administrator's stored sign-in; when absent, the only one stored
    /// for the connection's Entra tenant.
    pub sign_in: Option<SignInBody>,
}

/// A connection's public parts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionSummary {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The Dataverse environment.
    pub environment_url: String,
    /// `automatic` or `manual`.
    pub mode: String,
    /// `pending`, `active`, `failed` or `deleted`.
    pub state: String,
    /// The Entra tenant (unknown until a manual connection is completed).
    pub entra_tenant_id: Option<Uuid>,
    /// The app registration's client id.
    pub client_id: Option<Uuid>,
    /// The application user's security role.
    pub security_role: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// A certificate's public parts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// `active`, `pending` (being rolled in) or `retiring` (being rolled out).
    pub state: String,
    /// SHA-1 thumbprint, hex (what the Entra portal shows).
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint, hex.
    pub sha256_thumbprint: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// When a call last succeeded with it.
    pub last_used_at: Option<String>,
}

/// One change in a connection's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// Its position, from 1.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// The connection's state after it.
    pub state: String,
    /// Changed fields, thumbprints, reasons.
    pub detail: Value,
}

/// A recorded step of the automatic flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// The step (`certificate`, `app_registration`, `service_principal`,
    /// `application_user`, `role_assignment`, `connection_test`).
    pub step: String,
    /// `started` or `done`.
    pub status: String,
    /// The ids it produced.
    pub detail: Value,
    /// When it was recorded (RFC 3339).
    pub updated_at: String,
}

/// A connection with its certificates, history and provisioning steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionDetails {
    /// The connection.
    pub connection: ConnectionSummary,
    /// Its certificates (public parts).
    pub certificates: Vec<CertificateView>,
    /// Every change, oldest first.
    pub history: Vec<HistoryView>,
    /// The automatic flow's steps, in flow order (none for a manual one).
    pub steps: Vec<StepView>,
}

/// The request an administrator needs to register a manual connection's app.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdministratorRequestView {
    /// The public certificate, PEM (upload it to the app registration).
    pub certificate_pem: String,
    /// SHA-1 thumbprint, hex.
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint, hex.
    pub sha256_thumbprint: String,
    /// End of the certificate's validity (RFC 3339).
    pub not_after: String,
    /// The display name suggested for the app registration.
    pub app_name: String,
    /// Step-by-step instructions, plain text.
    pub instructions: String,
}

/// Whether the request was e-mailed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailView {
    /// The relay took it.
    pub sent: bool,
    /// The address, when one was given.
    pub to: Option<String>,
    /// Why it was not sent.
    pub reason: Option<String>,
}

/// A created connection: with the administrator request (manual), or with
/// the automatic flow's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedConnection {
    /// The connection (`pending` for a manual one, `active` for an
    /// automatic one).
    pub connection: ConnectionSummary,
    /// Manual: the request for the administrator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<AdministratorRequestView>,
    /// Manual: whether it was e-mailed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailView>,
    /// Automatic: what this run did, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Vec<String>>,
    /// Automatic: the steps recorded for the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Value>>,
    /// What to do next.
    pub next: String,
}

/// A finished rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationView {
    /// The certificate rolled out (gone from the app and the store).
    pub old_sha1_thumbprint: String,
    /// The certificate in use now.
    pub new_sha1_thumbprint: String,
    /// The rotation's steps, in order.
    pub progress: Vec<String>,
}

/// A connection flow that had not ended when the answer was due: it goes
/// on in the background (its outcome is audited when it ends).
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRunning {
    /// The connection's name.
    pub connection: String,
    /// What is still running and where to follow it.
    pub message: String,
}

/// Runs a connection flow as a task of its own, so that it is not cut
/// short when the request's answer is due (provisioning in Entra and
/// Dataverse, and the propagation waited for, can outlast the request
/// timeout): its result when it ends within three quarters of the request
/// timeout, `None` when it is still running.
async fn detached<T: Send + 'static>(
    state: &AppState,
    flow: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Option<Result<T, ApiError>> {
    let wait = state.config().request_timeout() * 3 / 4;
    match tokio::time::timeout(wait, tokio::spawn(flow)).await {
        Ok(Ok(result)) => Some(result),
        Ok(Err(failed)) => Some(Err(ApiError::internal("a connection flow", failed))),
        Err(_) => None,
    }
}

/// 202 for a flow still running in the background.
fn still_running(tenant: &Tenant, connection: &str, what: &str) -> Response {
    let message = format!(
        "{what} is still running and goes on in the background; GET /v1/admin/tenants/{}/connections/{connection} shows its state and steps once it has any (a new connection is recorded after the administrator's rights and the security role are checked), and the audit log ({}) how it ended",
        tenant.name,
        format_args!("/v1/tenants/{}/audit", tenant.name)
    );
    let body = FlowRunning {
        connection: connection.to_owned(),
        message,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn summary(c: &Connection) -> ConnectionSummary {
    ConnectionSummary {
        id: c.id.as_uuid(),
        name: c.name.to_string(),
        environment_url: c.environment_url.clone(),
        mode: c.mode.as_str().into(),
        state: c.state.as_str().into(),
        entra_tenant_id: c.entra_tenant_id,
        client_id: c.client_id,
        security_role: c.security_role.clone(),
        created_at: time_text(c.created_at),
        updated_at: time_text(c.updated_at),
    }
}

fn certificate_view(c: &StoredCertificate) -> CertificateView {
    CertificateView {
        state: c.state.as_str().into(),
        sha1_thumbprint: c.sha1_thumbprint.clone(),
        sha256_thumbprint: c.sha256_thumbprint.clone(),
        not_before: time_text(c.not_before),
        not_after: time_text(c.not_after),
        last_used_at: c.last_used_at.map(time_text),
    }
}

fn history_view(h: &HistoryEntry) -> HistoryView {
    HistoryView {
        seq: h.seq,
        at: time_text(h.at),
        actor: h.actor.clone(),
        event: h.event.as_str().into(),
        state: h.state.as_str().into(),
        detail: h.detail.clone(),
    }
}

fn step_view(s: &StepRecord) -> StepView {
    StepView {
        step: s.step.as_str().into(),
        status: s.status.as_str().into(),
        detail: s.detail.clone(),
        updated_at: time_text(s.updated_at),
    }
}

/// A flow's failure as an API error.
fn flow_error(e: FlowError) -> ApiError {
    let (status, code) = match e.kind {
        FlowErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_input"),
        FlowErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        FlowErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        FlowErrorKind::SignInRequired => (StatusCode::CONFLICT, "sign_in_required"),
        FlowErrorKind::NotAdministrator => (StatusCode::FORBIDDEN, "not_administrator"),
        FlowErrorKind::AnswerRefused => (StatusCode::UNPROCESSABLE_ENTITY, "answer_refused"),
        FlowErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "upstream_failed"),
        FlowErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "flows_unavailable"),
        _ => return ApiError::internal("a connection flow", e.message),
    };
    let error = ApiError::new(status, code, e.message);
    match e.details {
        Some(details) => error.details(details),
        None => error,
    }
}

async fn record(
    state: &AppState,
    tenant: &Tenant,
    action: &str,
    outcome: AuditOutcome,
    detail: Value,
) {
    state
        .0
        .audit
        .record(NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant: Some(tenant.id),
            plugin: None,
            actor: ACTOR.into(),
            action: action.into(),
            outcome,
            request_id: None,
            detail,
        })
        .await;
}

/// Records a flow's outcome in the audit log and passes it on.
async fn audited<T>(
    state: &AppState,
    tenant: &Tenant,
    action: &str,
    mut detail: Value,
    result: Result<T, FlowError>,
) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => AuditOutcome::Success,
        Err(e) => {
            detail["error"] = json!(e.message);
            AuditOutcome::Failure
        }
    };
    record(state, tenant, action, outcome, detail).await;
    result.map_err(flow_error)
}

async fn admin_tenant(state: &AppState, caller: &Caller, name: &str) -> Result<Tenant, ApiError> {
    caller.require_admin()?;
    caller
        .tenant(state, name, dvhost_store::ApiKeyRight::Deploy)
        .await
}

/// The tenant's live connection named `name`: 404 otherwise.
async fn live_connection(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
) -> Result<Connection, ApiError> {
    let none = || ApiError::not_found(format!("there is no connection named {name:?}"));
    let parsed = Name::parse(name).map_err(|_| none())?;
    state
        .store()
        .connection_by_name(tenant.id, &parsed)
        .await?
        .ok_or_else(none)
}

fn sign_in_choice(body: SignInBody) -> SignInChoice {
    SignInChoice {
        user: body.user,
        entra_tenant: body.entra_tenant,
    }
}

/// Creates a connection. `manual`: a pending connection and the request for
/// its administrator (public certificate, thumbprints, instructions);
/// complete it with the administrator's answer. `automatic`: the app, its
/// service principal, the application user and its role are created as the
/// stored sign-in `sign_in`, and the connection is proven with WhoAmI; a
/// failure keeps what was done (`details.done`) and the same request
/// resumes it; a flow still running when the answer is due goes on in the
/// background (202).
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/connections", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = NewConnectionBody,
    responses(
        (status = 201, description = "Created: pending with the administrator request (manual), or active (automatic)", body = CreatedConnection),
        (status = 202, description = "Automatic: still running when the answer was due; it goes on in the background (GET the connection for its steps)", body = FlowRunning),
        (status = 400, description = "Invalid name, environment URL or fields for the mode", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key, or the signed-in user is not an administrator (`not_administrator`)", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The name is taken, or no stored sign-in fits (`sign_in_required`: run `dvhost login`)", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 502, description = "Entra, Graph or Dataverse failed during the automatic flow; `details` has the steps done; the same request resumes", body = ErrorBody),
        (status = 503, description = "This server cannot run connection flows", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
    body: Result<JsonBody<NewConnectionBody>, ApiError>,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let JsonBody(new) = body?;
    let connections = &state.0.connections;
    let created = match new {
        NewConnectionBody::Manual {
            name,
            environment_url,
            security_role,
            admin_email,
        } => {
            let name = Name::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let request = ManualRequest {
                tenant: tenant.clone(),
                name,
                environment_url,
                security_role,
                admin_email,
            };
            // The flow itself writes the audit entry (`connection.create_manual`).
            let made = connections
                .create_manual(request, ACTOR)
                .await
                .map_err(flow_error)?;
            let path = format!(
                "/v1/admin/tenants/{}/connections/{}/complete",
                tenant.name, made.connection.name
            );
            CreatedConnection {
                connection: summary(&made.connection),
                request: Some(AdministratorRequestView {
                    certificate_pem: made.certificate_pem,
                    sha1_thumbprint: made.sha1_thumbprint,
                    sha256_thumbprint: made.sha256_thumbprint,
                    not_after: time_text(made.not_after),
                    app_name: made.app_name,
                    instructions: made.instructions,
                }),
                mail: Some(MailView {
                    sent: made.mail.sent,
                    to: made.mail.to,
                    reason: made.mail.reason,
                }),
                progress: None,
                steps: None,
                next: format!(
                    "send the request to an administrator, then POST {path} with their entra_tenant_id and client_id"
                ),
            }
        }
        NewConnectionBody::Automatic {
            name,
            environment_url,
            security_role,
            sign_in,
        } => {
            let name = Name::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let named = name.to_string();
            let detail = json!({"name": name.as_str(), "user": sign_in.user});
            let request = AutomaticRequest {
                tenant: tenant.clone(),
                name,
                environment_url,
                security_role,
                sign_in: sign_in_choice(sign_in),
            };
            let flow = {
                let (state, tenant) = (state.clone(), tenant.clone());
                async move {
                    let made = state.0.connections.create_automatic(request).await;
                    audited(&state, &tenant, "connection.create_automatic", detail, made).await
                }
            };
            let Some(made) = detached(&state, flow).await else {
                return Ok(still_running(&tenant, &named, "creating the connection"));
            };
            let made = made?;
            CreatedConnection {
                connection: summary(&made.connection),
                request: None,
                mail: None,
                progress: Some(made.progress),
                steps: Some(made.steps),
                next: "the connection is active: bind plugins to it".into(),
            }
        }
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Shows a connection: its public parts, certificates (thumbprints, dates,
/// states), history and the automatic flow's steps.
#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}/connections/{connection}", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("connection" = String, Path, description = "Connection name")),
    responses(
        (status = 200, description = "The connection", body = ConnectionDetails),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    PathParams((tenant, connection)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<ConnectionDetails>, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let row = live_connection(&state, &tenant, &connection).await?;
    let store = state.store();
    let certificates = store.certificates(row.id).await?;
    let history = store.connection_history(row.id).await?;
    let steps = store.provisioning_steps(row.id).await?;
    Ok(Json(ConnectionDetails {
        connection: summary(&row),
        certificates: certificates.iter().map(certificate_view).collect(),
        history: history.iter().map(history_view).collect(),
        steps: steps.iter().map(step_view).collect(),
    }))
}

/// Completes a manual connection with the administrator's answer: a token
/// for that app with the connection's certificate, then WhoAmI; only then
/// is the answer stored and the connection active. A refused answer leaves
/// it pending and says why (the AADSTS code in words, `details.aadsts`).
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/connections/{connection}/complete", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("connection" = String, Path, description = "Connection name")),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Tested and active", body = ConnectionSummary),
        (status = 400, description = "Invalid ids", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "Not a pending manual connection", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Entra or Dataverse refused the answer; the connection stays pending", body = ErrorBody),
        (status = 502, description = "The test could not be run (Entra or Dataverse unreachable); try again", body = ErrorBody),
        (status = 503, description = "This server cannot run connection flows", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    PathParams((tenant, connection)): PathParams<(String, String)>,
    caller: Caller,
    body: Result<JsonBody<CompleteBody>, ApiError>,
) -> Result<Json<ConnectionSummary>, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let row = live_connection(&state, &tenant, &connection).await?;
    let JsonBody(answer) = body?;
    let answer = AdministratorAnswer {
        entra_tenant_id: answer.entra_tenant_id,
        client_id: answer.client_id,
    };
    // The flow itself writes the audit entry (`connection.complete`), and
    // its implementation forgets what it cached of the connection.
    let done = state
        .0
        .connections
        .complete(&row, answer, ACTOR)
        .await
        .map_err(flow_error)?;
    Ok(Json(summary(&done)))
}

/// Rotates an automatic connection's certificate with overlap: a new
/// certificate is added to the app, proven, switched to, and the old one is
/// removed from the app and the store. Calls keep working throughout; an
/// interrupted rotation resumes with the same request. A rotation still
/// running when the answer is due goes on in the background (202).
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/connections/{connection}/rotate", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("connection" = String, Path, description = "Connection name")),
    request_body(content = Option<RotateBody>, description = "The administrator's stored sign-in; optional"),
    responses(
        (status = 200, description = "Rotated", body = RotationView),
        (status = 202, description = "Still running when the answer was due; it goes on in the background (GET the connection for its steps)", body = FlowRunning),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key, or the signed-in user is not an administrator (`not_administrator`)", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "Not a completed automatic connection, or no stored sign-in fits (`sign_in_required`)", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 502, description = "Entra, Graph or Dataverse failed; both certificates stay registered until the rotation is run again", body = ErrorBody),
        (status = 503, description = "This server cannot run connection flows", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    PathParams((tenant, connection)): PathParams<(String, String)>,
    caller: Caller,
    body: Result<Option<JsonBody<RotateBody>>, ApiError>,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let row = live_connection(&state, &tenant, &connection).await?;
    let JsonBody(choice) = body?.unwrap_or(JsonBody(RotateBody::default()));
    let named = row.name.to_string();
    let flow = {
        let (state, tenant) = (state.clone(), tenant.clone());
        async move {
            let rotated = state
                .0
                .connections
                .rotate(&row, choice.sign_in.map(sign_in_choice))
                .await;
            let detail = json!({"name": row.name.as_str()});
            audited(&state, &tenant, "connection.rotate", detail, rotated).await
        }
    };
    let Some(rotated) = detached(&state, flow).await else {
        return Ok(still_running(&tenant, &named, "the rotation"));
    };
    let rotated = rotated?;
    Ok(Json(RotationView {
        old_sha1_thumbprint: rotated.old_sha1_thumbprint,
        new_sha1_thumbprint: rotated.new_sha1_thumbprint,
        progress: rotated.progress,
    })
    .into_response())
}

/// Deletes a connection and its sealed keys (the Entra app stays; remove it
/// there). Refused while plugins are bound to it.
#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant}/connections/{connection}", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("connection" = String, Path, description = "Connection name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "Plugins are bound to it", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    PathParams((tenant, connection)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let row = live_connection(&state, &tenant, &connection).await?;
    state.store().delete_connection(row.id, ACTOR).await?;
    state.0.connections.forget(row.id).await;
    record(
        &state,
        &tenant,
        "connection.delete",
        AuditOutcome::Success,
        json!({"name": row.name.as_str()}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
