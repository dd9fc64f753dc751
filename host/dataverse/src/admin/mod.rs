//! Administrative operations made with a signed-in administrator's own
//! token: registering a connection's Entra application (Microsoft Graph) and
//! creating its Dataverse application user. The tokens stay here; callers
//! get ids, names and thumbprints back.
//!
//! Requests are one-shot: a create whose answer is lost must not be sent
//! again blindly (it would register a second app). The flows above this
//! module make every step idempotent instead: they look for what an earlier
//! attempt made before creating anything.

mod environment;
mod graph;

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::endpoint::{Authority, EndpointError};
use crate::identity::{IdentityError, UserTokens, read_json};

pub use environment::EnvironmentAdmin;
pub use graph::{AppRegistration, GraphAdmin, RegisteredKey};

/// Directory roles (template ids) that may register applications and
/// create service principals: Global Administrator, Application
/// Administrator, Cloud Application Administrator.
const APP_ADMIN_ROLES: &[&str] = &[
    "62e90394-69f5-4237-9190-012177145e10",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
];

/// What went wrong in an administrative operation. Never carries a token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdminError {
    /// The signed-in user may not do this (no administrator role, or not a
    /// System Administrator of the environment).
    #[error("{who} is not an administrator: {why}")]
    NotAdministrator {
        /// The user's sign-in name (or object id).
        who: String,
        /// What is missing.
        why: String,
    },
    /// Graph or Dataverse refused the request.
    #[error("{service} returned HTTP {status} {code}: {message}")]
    Refused {
        /// `Microsoft Graph` or `Dataverse`.
        service: &'static str,
        /// HTTP status.
        status: u16,
        /// The service's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The security role named for the application user does not exist.
    #[error("the security role '{0}' does not exist in the environment's business unit")]
    RoleNotFound(String),
    /// The request could not be sent or its answer read.
    #[error("the request failed: {0}")]
    Transport(String),
    /// An answer that cannot be used.
    #[error("unusable answer: {0}")]
    Unexpected(String),
    /// Getting the administrator's token failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An endpoint that cannot be used.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl AdminError {
    /// Whether the service refused with this HTTP status.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Microsoft Graph, `https://graph.microsoft.com` in the public cloud (or
/// the emulator's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphService(Authority);

impl GraphService {
    /// Checks a Graph base URL (`https`, or `http` on loopback).
    pub fn parse(url: &str) -> Result<GraphService, EndpointError> {
        Authority::parse(url).map(GraphService)
    }

    /// `https://graph.microsoft.com`.
    pub fn public_cloud() -> GraphService {
        GraphService::parse("https://graph.microsoft.com").expect("a valid constant")
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether tokens issued by `authority` may be shown to this service:
    /// Microsoft's Graph for Microsoft's public cloud, or a service on the
    /// authority's own origin (the emulator serves both).
    fn trusts(&self, authority: &Authority) -> bool {
        if *authority == Authority::public_cloud() {
            *self == GraphService::public_cloud()
        } else {
            self.0.origin() == authority.origin()
        }
    }

    /// `<graph>/v1.0/<path>`; `path` is built here from constants and ids.
    fn url(&self, path: &str) -> Result<url::Url, AdminError> {
        url::Url::parse(&format!("{}/v1.0/{path}", self.as_str()))
            .map_err(|e| AdminError::Unexpected(format!("Graph URL: {e}")))
    }
}

/// An OData string literal (quotes doubled).
fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The signed-in user's name, else object id, for messages and history.
fn who(tokens: &UserTokens) -> String {
    tokens
        .upn
        .clone()
        .or_else(|| tokens.oid.clone())
        .unwrap_or_else(|| "the signed-in user".into())
}

/// Sends one request with the administrator's bearer token and reads the
/// JSON answer; an error status becomes [`AdminError::Refused`].
async fn send(
    service: &'static str,
    request: reqwest::RequestBuilder,
    bearer: &str,
    deadline: Instant,
) -> Result<(Value, reqwest::header::HeaderMap), AdminError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let resp = request
        .bearer_auth(bearer)
        .header("Accept", "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| AdminError::Transport(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = if status == 204 {
        Value::Null
    } else {
        read_json(resp).await.unwrap_or(Value::Null)
    };
    if status >= 400 {
        return Err(AdminError::Refused {
            service,
            status,
            code: body["error"]["code"].as_str().unwrap_or_default().into(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect(),
        });
    }
    Ok((body, headers))
}

/// The `wids` (directory role template ids) of an access token, read
/// without verification: the token is the user's own, just received from
/// Entra, and is only used to refuse early and clearly.
fn directory_roles(access_token: &str) -> Vec<String> {
    let claims = access_token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    claims["wids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether a Graph access token names a role that may register apps.
fn may_register_apps(access_token: &str) -> bool {
    directory_roles(access_token)
        .iter()
        .any(|r| APP_ADMIN_ROLES.contains(&r.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.sig",
            part(&serde_json::json!({"alg": "RS256"})),
            part(&claims)
        )
    }

    #[test]
    fn only_app_registering_roles_count_as_administrator() {
        let global = token(serde_json::json!({"wids": ["62E90394-69F5-4237-9190-012177145E10"]}));
        assert!(may_register_apps(&global));
        let reader = token(serde_json::json!({"wids": ["88d8e3e3-8f55-4a1e-953a-9b9898b8876b"]}));
        assert!(!may_register_apps(&reader));
        assert!(!may_register_apps(&token(serde_json::json!({"oid": "x"}))));
        assert!(!may_register_apps("not a token"));
    }

    #[test]
    fn odata_strings_double_their_quotes() {
        assert_eq!(odata_string("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn graph_trusts_its_own_cloud_or_the_authority_origin() {
        assert!(GraphService::public_cloud().trusts(&Authority::public_cloud()));
        let local = Authority::parse("https://127.0.0.1:8443").unwrap();
        assert!(!GraphService::public_cloud().trusts(&local));
        assert!(
            GraphService::parse("https://127.0.0.1:8443")
                .unwrap()
                .trusts(&local)
        );
        let elsewhere = GraphService::parse("https://127.0.0.1:9443").unwrap();
        assert!(!elsewhere.trusts(&local));
    }
}
