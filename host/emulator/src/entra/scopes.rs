//! Scope parsing: which resource a token is for, and which scopes it carries
//! ("OAuth 2.0 client credentials flow",
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>, and "OAuth 2.0 device
//! authorization grant", <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code>).

use super::error::EntraError;
use crate::state::{DISCOVERY_RESOURCE, Directory, GRAPH_APP_ID, GRAPH_RESOURCE};
use uuid::Uuid;

/// Scopes that ask for OpenID Connect artefacts rather than a resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// The resource a token is issued for.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// A Dataverse environment; the value is its URL (the token `aud`).
    Environment(String),
    Graph,
    Discovery,
}

impl Resource {
    /// The `aud` claim of tokens for this resource.
    pub fn audience(&self) -> &str {
        match self {
            Resource::Environment(url) => url,
            Resource::Graph => GRAPH_RESOURCE,
            Resource::Discovery => DISCOVERY_RESOURCE,
        }
    }
}

/// A parsed delegated scope request.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegatedScopes {
    pub resource: Resource,
    /// Permission names on the resource (`user_impersonation`, `User.Read`, `.default`).
    pub permissions: Vec<String>,
    /// The OIDC scopes that were asked for.
    pub oidc: Vec<String>,
}

impl DelegatedScopes {
    /// The `scp` claim value.
    pub fn scp(&self) -> String {
        let mut scp: Vec<&str> = Vec::new();
        for p in &self.permissions {
            match (&self.resource, p.as_str()) {
                (Resource::Graph, ".default") => {
                    scp.extend(["Application.ReadWrite.All", "User.Read"])
                }
                (_, ".default") => scp.push("user_impersonation"),
                (_, other) => scp.push(other),
            }
        }
        scp.dedup();
        scp.join(" ")
    }

    /// The `scope` field of the token response.
    pub fn response_scope(&self) -> String {
        let base = self.resource.audience();
        self.permissions
            .iter()
            .map(|p| format!("{base}/{p}"))
            .chain(
                self.oidc
                    .iter()
                    .filter(|s| *s != "offline_access" && *s != "email")
                    .cloned(),
            )
            .chain(self.oidc.iter().filter(|s| *s == "offline_access").cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Scopes in the canonical string form kept with refresh tokens.
    pub fn to_strings(&self) -> Vec<String> {
        let base = self.resource.audience();
        self.permissions
            .iter()
            .map(|p| format!("{base}/{p}"))
            .chain(self.oidc.iter().cloned())
            .collect()
    }

    pub fn wants(&self, oidc_scope: &str) -> bool {
        self.oidc.iter().any(|s| s == oidc_scope)
    }
}

fn invalid_scope(code: u32, message: String) -> EntraError {
    EntraError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_scope",
        code,
        message,
    )
}

/// Resolves a resource identifier to a resource this tenant can get tokens for.
pub fn resolve_resource(
    dir: &Directory,
    tenant: Option<Uuid>,
    raw: &str,
) -> Result<Resource, EntraError> {
    let r = raw.trim_end_matches('/');
    let lower = r.to_ascii_lowercase();
    if lower == GRAPH_RESOURCE
        || lower == GRAPH_APP_ID
        || lower == "https://graph.microsoft.com/v1.0"
    {
        return Ok(Resource::Graph);
    }
    if lower == DISCOVERY_RESOURCE {
        return Ok(Resource::Discovery);
    }
    match dir.environment_for_resource(r) {
        // The `aud` is the resource id as asked for (the environment URL,
        // its origin or the path form), as Entra names the requested resource.
        Some(env) if tenant.is_none_or(|t| t == env.tenant_id) => Ok(Resource::Environment(
            dir.environment_audiences(env)
                .into_iter()
                .find(|a| a.eq_ignore_ascii_case(r))
                .unwrap_or_else(|| env.url.clone()),
        )),
        _ => {
            let tenant_name = tenant
                .map(|t| t.to_string())
                .unwrap_or_else(|| "organizations".into());
            Err(EntraError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {r} was not found in the tenant named {tenant_name}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            ))
        }
    }
}

/// Splits `<resource>/<permission>`; a bare permission belongs to Graph.
fn split_scope(s: &str) -> (String, String) {
    match s.rfind('/') {
        Some(i) if s.contains("://") || s[..i].parse::<Uuid>().is_ok() => {
            (s[..i].to_string(), s[i + 1..].to_string())
        }
        _ => (GRAPH_RESOURCE.to_string(), s.to_string()),
    }
}

/// Client credentials: exactly one `<resource>/.default` scope.
pub fn parse_client_credentials(
    dir: &Directory,
    tenant: Uuid,
    raw: &str,
) -> Result<Resource, EntraError> {
    let scopes: Vec<&str> = raw.split_whitespace().collect();
    if scopes.is_empty() {
        return Err(EntraError::missing("scope"));
    }
    let resources: Vec<(String, String)> = scopes.iter().map(|s| split_scope(s)).collect();
    let first = &resources[0].0;
    if resources.iter().any(|(r, _)| {
        !r.trim_end_matches('/')
            .eq_ignore_ascii_case(first.trim_end_matches('/'))
    }) {
        return Err(invalid_scope(
            700022,
            format!(
                "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {raw} is not valid."
            ),
        ));
    }
    if scopes.len() != 1 || resources[0].1 != ".default" {
        return Err(invalid_scope(
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {raw} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    resolve_resource(dir, Some(tenant), first)
}

/// Delegated flows: one resource's permissions plus OIDC scopes. Asking
/// only for OIDC scopes yields a Graph `User.Read` token, as Entra does.
pub fn parse_delegated(
    dir: &Directory,
    tenant: Option<Uuid>,
    raw: &str,
) -> Result<DelegatedScopes, EntraError> {
    let mut oidc = Vec::new();
    let mut resource: Option<String> = None;
    let mut permissions = Vec::new();
    for s in raw.split_whitespace() {
        if OIDC_SCOPES.contains(&s.to_ascii_lowercase().as_str()) {
            oidc.push(s.to_ascii_lowercase());
            continue;
        }
        let (r, p) = split_scope(s);
        if p.is_empty() {
            return Err(invalid_scope(
                70011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                ),
            ));
        }
        match &resource {
            Some(existing)
                if !existing
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(r.trim_end_matches('/')) =>
            {
                return Err(invalid_scope(
                    700022,
                    format!(
                        "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {raw} is not valid."
                    ),
                ));
            }
            _ => resource = Some(r),
        }
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    if raw.split_whitespace().next().is_none() {
        return Err(EntraError::missing("scope"));
    }
    let resource = match resource {
        Some(r) => resolve_resource(dir, tenant, &r)?,
        None => {
            permissions.push("User.Read".into());
            Resource::Graph
        }
    };
    Ok(DelegatedScopes {
        resource,
        permissions,
        oidc,
    })
}
