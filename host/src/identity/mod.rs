//! Identity: certificates, client-assertion JWTs and access tokens for a
//! connection. This module owns every secret the host holds; what leaves it
//! is a bearer token handed to the Dataverse transport in this crate only.
//!
//! Token policy follows MSAL: a token is cached per connection and renewed
//! ahead of expiry (at `refresh_in` when Entra sends it, else when 5
//! minutes, or half the lifetime for short tokens, remain); one request is
//! in flight per connection whatever the number of callers; transient
//! failures are retried with jittered backoff within the caller's deadline;
//! if a renewal fails while the old token is still valid, the old token is
//! served (MSAL's "aging").

mod certificate;
mod device;
mod token;

pub use certificate::Certificate;
pub use device::{DeviceCodePrompt, DeviceSignIn, PendingSignIn, UserTokens};
pub use token::{AccessToken, Connection, SigningAlgorithm, TokenSource};

/// What went wrong getting a token or handling a certificate. Never carries
/// a key, an assertion or a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    /// Entra refused the request.
    #[error(
        "Entra ID refused the token request: AADSTS{code} ({error}): {cause}. Entra said: {description}"
    )]
    Entra {
        /// HTTP status.
        status: u16,
        /// OAuth `error`.
        error: String,
        /// The AADSTS number.
        code: u32,
        /// What it usually means, in plain words.
        cause: &'static str,
        /// Entra's first description line, without trace ids.
        description: String,
    },
    /// The token endpoint could not be reached or answered nonsense.
    #[error("the token endpoint could not be used: {0}")]
    Transport(String),
    /// The certificate or key is unusable.
    #[error("certificate problem: {0}")]
    Certificate(String),
    /// The caller's deadline passed before a token was obtained.
    #[error("the deadline passed before a token was obtained{0}")]
    Deadline(String),
}

impl IdentityError {
    /// Whether retrying may help (network trouble, 5xx, 429, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            IdentityError::Transport(_) => true,
            IdentityError::Entra { status, error, .. } => {
                *status >= 500 || *status == 429 || error == "temporarily_unavailable"
            }
            _ => false,
        }
    }
}

/// Plain-language causes of the AADSTS codes a connection meets.
pub(crate) fn aadsts_cause(code: u32) -> &'static str {
    match code {
        700027 => {
            "the certificate is not registered on the app registration, has expired there, or a different private key signed the assertion"
        }
        700016 => {
            "the application (client) id was not found in this tenant: wrong tenant, wrong client id, or the app was deleted"
        }
        7000229 => {
            "the app has no service principal (enterprise application) in the tenant; an administrator must create it or grant consent"
        }
        500011 => {
            "the Dataverse environment is not provisioned in this tenant, or the environment URL is wrong"
        }
        65001 => "an administrator has not consented to the permission",
        700024 => "the client assertion is outside its valid time window; check the host's clock",
        700023 => "the assertion audience does not match this tenant's token endpoint",
        700021 => "the assertion was issued for another client id",
        90002 => "the tenant was not found; check the tenant id or domain",
        9001023 => "client credentials need a tenant-specific authority, not /common",
        70011 | 700022 => "the scope is not valid; it must be '<environment URL>/.default'",
        7000215 | 7000222 => "the client secret is wrong or expired",
        7000218 => "no credential was sent",
        7000112 => "the application is disabled",
        50027 | 5002738 => "the client assertion is malformed or uses an unsupported algorithm",
        53003 => "a Conditional Access policy blocked the sign-in",
        _ => "Entra rejected the request",
    }
}

/// An HTTP client for Entra, Graph or Dataverse that also trusts `ca_pem`
/// (the emulator's local CA, or a corporate proxy's).
pub fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, IdentityError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("dvhost/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| IdentityError::Certificate(format!("CA bundle: {e}")))?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| IdentityError::Transport(e.to_string()))
}

/// The typed error for an Entra error body (reference §1.5).
pub(crate) fn entra_error(status: u16, body: &serde_json::Value) -> IdentityError {
    let code = body
        .get("error_codes")
        .and_then(|c| c.get(0))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default() as u32;
    let description = body
        .get("error_description")
        .and_then(serde_json::Value::as_str)
        .and_then(|d| d.lines().next())
        .unwrap_or_default()
        .trim()
        .to_string();
    IdentityError::Entra {
        status,
        error: body
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_string(),
        code,
        cause: aadsts_cause(code),
        description,
    }
}
