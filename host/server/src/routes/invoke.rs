//! `POST /v1/tenants/{tenant}/plugins/{plugin}/actions/{action}`: one
//! action call. Authentication, the plugin's active version, the input
//! checked against the action's schema, the tenant's gate, the sandboxed
//! call, then the audit entries and the answer.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dvhost_runtime::{CallOutcome, InvokeError, Report};
use dvhost_store::{ApiKeyRight, AuditOutcome, Name, NewAuditEntry};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, PathParams};
use crate::metrics;
use crate::registry::Deployed;
use crate::state::AppState;

/// The header that names the plugin version which answered.
pub const VERSION_HEADER: &str = "dvhost-plugin-version";
/// The request id header (set by the server when the caller sent none).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Most schema violations listed in a 400.
const MAX_VIOLATIONS: usize = 20;

/// Runs a plugin action.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/plugins/{plugin}/actions/{action}",
    tag = "actions",
    params(
        ("tenant" = String, Path, description = "Tenant name"),
        ("plugin" = String, Path, description = "Plugin name"),
        ("action" = String, Path, description = "Action name, as the plugin describes it"),
    ),
    request_body(content = Object, description = "The action's input, matching its input schema", content_type = "application/json"),
    responses(
        (status = 200, description = "The action's output, matching its output schema", body = Object),
        (status = 400, description = "The body is not JSON or does not match the input schema", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the invoke right", body = ErrorBody),
        (status = 404, description = "No such tenant, plugin or action", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "The action failed", body = ErrorBody),
        (status = 429, description = "The tenant's limits, or Dataverse's throttling; see Retry-After", body = ErrorBody),
        (status = 502, description = "Dataverse answered with a server error", body = ErrorBody),
        (status = 503, description = "The connection or the host cannot serve the call now", body = ErrorBody),
        (status = 504, description = "The call ran past its deadline", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn invoke(
    State(state): State<AppState>,
    PathParams((tenant, plugin, action)): PathParams<(String, String, String)>,
    headers: HeaderMap,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + state.config().request_timeout();
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Invoke).await?;
    let name = Name::parse(&plugin)
        .map_err(|_| ApiError::not_found(format!("there is no plugin named {plugin:?}")))?;
    let deployed = state.0.registry.deployed(tenant.id, &name).await?;
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let started_at = time::OffsetDateTime::now_utc();
    let (report, answer) = run(&state, &deployed, &action, body, deadline).await;
    let code = answer.as_ref().err().map(|e| e.code);
    if let Some(report) = &report {
        metrics::invocation(report, code);
    }
    let ended = match &answer {
        Ok(_) => (AuditOutcome::Success, 200, None),
        Err(e) if report.is_none() => (AuditOutcome::Denied, e.status.as_u16(), code),
        Err(e) => (AuditOutcome::Failure, e.status.as_u16(), code),
    };
    // Calls the tenant's gate turned away are counted (metrics), not
    // audited: a flood would otherwise fill the log with refusals.
    if code == Some("tenant_busy") {
        return answer;
    }
    let call = Call {
        caller: &caller,
        deployed: &deployed,
        action: &action,
        started_at,
        request_id,
    };
    audit(&state, call, report.as_ref(), ended).await;
    answer
}

/// Checks the input, waits for the tenant's gate and runs the action; the
/// report when the plugin ran.
async fn run(
    state: &AppState,
    deployed: &Deployed,
    action: &str,
    body: Result<Bytes, BytesRejection>,
    deadline: Instant,
) -> (Option<Report>, Result<Response, ApiError>) {
    let input = match checked_input(deployed, action, body) {
        Ok(input) => input,
        Err(e) => return (None, Err(e)),
    };
    let permit = match state.0.gates.enter(deployed.plugin.tenant, deadline).await {
        Ok(permit) => permit,
        Err(e) => return (None, Err(e)),
    };
    let caps = state
        .0
        .registry
        .capabilities(
            deployed.plugin.connection,
            deployed.grants.clone(),
            deployed.limits,
        )
        .await;
    let caps = match caps {
        Ok(caps) => caps,
        Err(e) => return (None, Err(e)),
    };
    let report = {
        let _running = metrics::running();
        deployed.compiled.invoke(&caps, action, &input).await
    };
    drop(permit);
    let answer = answer(&report, deployed);
    (Some(report), answer)
}

/// The body as text, once it is JSON matching the action's input schema.
fn checked_input(
    deployed: &Deployed,
    action: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, ApiError> {
    let validator = deployed.validators.get(action).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_action",
            format!(
                "plugin {:?} has no action named {action:?}",
                deployed.plugin.name.as_str()
            ),
        )
    })?;
    let body = body.map_err(body_error)?;
    let input: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let violations: Vec<Value> = validator
        .iter_errors(&input)
        .take(MAX_VIOLATIONS)
        .map(|e| json!({ "path": e.instance_path().to_string(), "message": e.to_string() }))
        .collect();
    if !violations.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "schema_mismatch",
            format!("the input does not match the input schema of action {action:?}"),
        )
        .details(Value::Array(violations)));
    }
    // It parsed as JSON, so it is UTF-8.
    String::from_utf8(body.to_vec()).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "body_too_large", rejection.body_text())
    } else {
        ApiError::new(status, "invalid_body", rejection.body_text())
    }
}

/// The HTTP answer of a report.
fn answer(report: &Report, deployed: &Deployed) -> Result<Response, ApiError> {
    match &report.output {
        Ok(output) => {
            let mut response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                output.clone(),
            )
                .into_response();
            response
                .headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from(deployed.version.version));
            Ok(response)
        }
        Err(e) => Err(invoke_error(e, report)),
    }
}

/// Maps why an action produced no output onto a status. A failure right
/// after Dataverse throttled or failed is reported as that, so callers
/// can back off.
fn invoke_error(e: &InvokeError, report: &Report) -> ApiError {
    let message = e.to_string();
    match e {
        InvokeError::UnknownAction(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_action", message)
        }
        InvokeError::InvalidInput(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
        }
        InvokeError::Failed(_) => upstream(report, message),
        InvokeError::Deadline(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "deadline", message),
        InvokeError::Instantiate(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry_after(1)
        }
        InvokeError::OutputTooLarge { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "output_too_large", message)
        }
        InvokeError::MemoryLimit { .. } | InvokeError::StackOverflow | InvokeError::Trap(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin_crashed", message)
        }
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin_failed", message),
    }
}

fn upstream(report: &Report, message: String) -> ApiError {
    let last = report.calls.last().map(|c| &c.outcome);
    match last {
        Some(CallOutcome::Dataverse { status: 429, .. }) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "dataverse_throttled",
            message,
        )
        .retry_after(throttle_wait(report)),
        Some(CallOutcome::Dataverse { status, .. }) if *status >= 500 => {
            ApiError::new(StatusCode::BAD_GATEWAY, "dataverse_error", message)
        }
        Some(CallOutcome::Unavailable) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dataverse_unavailable",
            message,
        )
        .retry_after(5),
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "action_failed", message),
    }
}

/// Seconds to wait after Dataverse throttled the call.
fn throttle_wait(report: &Report) -> u64 {
    match report.calls.last().map(|c| &c.outcome) {
        Some(CallOutcome::Dataverse {
            retry_after: Some(seconds),
            ..
        }) => u64::from(*seconds),
        _ => 5,
    }
}

/// Who called what, for the audit entry.
struct Call<'a> {
    caller: &'a Caller,
    deployed: &'a Deployed,
    action: &'a str,
    started_at: time::OffsetDateTime,
    request_id: Option<String>,
}

async fn audit(
    state: &AppState,
    call: Call<'_>,
    report: Option<&Report>,
    (outcome, status, error): (AuditOutcome, u16, Option<&'static str>),
) {
    let deployed = call.deployed;
    let mut detail = json!({
        "plugin": deployed.plugin.name.as_str(),
        "version": deployed.version.version,
        "action": call.action,
        "status": status,
        "error": error,
    });
    if let Some(report) = report {
        detail["duration_ms"] = json!(report.duration.as_secs_f64() * 1000.0);
        detail["calls"] = json!(report.calls);
        detail["log_dropped_bytes"] = json!(report.log_dropped_bytes);
    }
    let entry = NewAuditEntry {
        at: call.started_at,
        tenant: Some(deployed.plugin.tenant),
        plugin: Some(deployed.plugin.id),
        actor: call.caller.actor(),
        action: "plugin.invoke".into(),
        outcome,
        request_id: call.request_id,
        detail,
    };
    state.0.audit.record(entry).await;
}
