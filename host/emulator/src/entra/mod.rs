//! The Entra ID v2.0 endpoints: OpenID discovery, JWKS, token, device code.

pub(crate) mod assertion;
pub mod error;
pub(crate) mod keys;
pub(crate) mod scopes;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use uuid::Uuid;

use crate::Emulator;
use error::EntraError;

/// Authority aliases that are not a tenant ("OAuth 2.0 client credentials
/// flow", <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
pub(crate) const ALIASES: &[&str] = &["common", "organizations", "consumers"];

pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(token::devicecode))
        .route("/devicelogin", get(devicelogin))
}

/// The `client-request-id` a client sent, echoed as Entra's correlation id.
pub(crate) fn correlation_id(headers: &HeaderMap) -> Option<Uuid> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
}

/// Which tenant an authority segment names.
pub(crate) enum Authority {
    Tenant(crate::state::Tenant),
    /// `common` / `organizations` / `consumers`.
    Alias(String),
}

pub(crate) fn resolve_authority(emu: &Emulator, segment: &str) -> Result<Authority, EntraError> {
    if ALIASES.iter().any(|a| a.eq_ignore_ascii_case(segment)) {
        return Ok(Authority::Alias(segment.to_ascii_lowercase()));
    }
    emu.dir.read().tenant(segment).cloned().map(Authority::Tenant).ok_or_else(|| {
        EntraError::invalid_request(
            90002,
            format!("Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        )
    })
}

async fn openid_configuration(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = emu.now();
    let segment = match resolve_authority(&emu, &tenant) {
        Ok(Authority::Tenant(t)) => t.id.to_string(),
        Ok(Authority::Alias(a)) => a,
        Err(e) => return e.into_response_with(correlation_id(&headers), now),
    };
    let base = emu.request_base(&headers);
    // Entra names the tenant id in the issuer; the aliases use a template.
    let issuer_tenant = if ALIASES.contains(&segment.as_str()) {
        "{tenantid}".to_string()
    } else {
        segment.clone()
    };
    let a = format!("{base}/{segment}");
    axum::Json(json!({
        "token_endpoint": format!("{a}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{a}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{a}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{a}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{a}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{a}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

async fn jwks(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = resolve_authority(&emu, &tenant) {
        return e.into_response_with(correlation_id(&headers), emu.now());
    }
    axum::Json(json!({ "keys": [emu.signing.jwk()] })).into_response()
}

/// The page a device-code message points at. Without a browser, codes are
/// approved through the control API or `dvhost emulator approve`.
async fn devicelogin(State(emu): State<Arc<Emulator>>) -> Html<String> {
    let pending: String = emu
        .dir
        .read()
        .device_codes
        .iter()
        .filter(|c| c.status == crate::state::DeviceCodeStatus::Pending)
        .map(|c| {
            format!(
                "<li><code>{}</code> for client {}</li>",
                c.user_code, c.client_id
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>dvhost emulator sign-in</title><h1>Device sign-in (emulator)</h1>\
         <p>Approve a code with <code>dvhost emulator approve CODE --user UPN --url {base}</code> \
         or <code>POST {base}/_emulator/device-codes/CODE/approve</code> with <code>{{\"user\":\"UPN\"}}</code>.</p>\
         <h2>Pending codes</h2><ul>{pending}</ul>",
        base = emu.base_url
    ))
}
