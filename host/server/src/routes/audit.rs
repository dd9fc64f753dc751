//! `GET /v1/tenants/{tenant}/audit`: the tenant's audit log, newest first,
//! with filters and paging.

use axum::Json;
use axum::extract::{Query, State};
use dvhost_store::{ApiKeyRight, AuditQuery, MAX_AUDIT_PAGE, Name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, PathParams};
use crate::routes::plugins::time_text;
use crate::state::AppState;

/// Filters of an audit query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this plugin's entries.
    pub plugin: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Only entries older than this position (the `next` of the previous page).
    pub before: Option<i64>,
    /// At most this many entries (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    /// Entries, newest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before` for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Its position in the log.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who (`admin`, `api_key:<id>`, `user:<upn>`, `system`).
    pub actor: String,
    /// What (`plugin.invoke`, `plugin.deploy`...).
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The request id that carried it.
    pub request_id: Option<String>,
    /// Details: for an invocation, the plugin, version, action, status,
    /// duration and every Dataverse call (table, operation, outcome,
    /// duration, retries).
    pub detail: Value,
}

fn instant(text: &Option<String>, what: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    text.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &Rfc3339)
                .map_err(|e| ApiError::bad_request(format!("{what} is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// Reads the tenant's audit log.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant name"), AuditFilter),
    responses(
        (status = 200, description = "A page of entries", body = AuditPageView),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the audit right", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
    filter: Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPageView>, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Audit).await?;
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = filter.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_AUDIT_PAGE}"
        )));
    }
    let plugin = match &filter.plugin {
        Some(name) => {
            let none = || ApiError::not_found(format!("there is no plugin named {name:?}"));
            let name = Name::parse(name).map_err(|_| none())?;
            let row = state.store().plugin_by_name(tenant.id, &name).await?;
            Some(row.ok_or_else(none)?.id)
        }
        None => None,
    };
    // What was done before this request is in the answer: the writer
    // would otherwise hold entries for up to its gathering window.
    state.flush_audit().await;
    let page = state
        .store()
        .audit(&AuditQuery {
            tenant: Some(tenant.id),
            plugin,
            since: instant(&filter.since, "since")?,
            until: instant(&filter.until, "until")?,
            before_seq: filter.before,
            limit,
        })
        .await?;
    Ok(Json(AuditPageView {
        entries: page
            .entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: time_text(e.entry.at),
                actor: e.entry.actor,
                action: e.entry.action,
                outcome: e.entry.outcome.as_str().to_string(),
                request_id: e.entry.request_id,
                detail: e.entry.detail,
            })
            .collect(),
        next: page.next,
    }))
}
