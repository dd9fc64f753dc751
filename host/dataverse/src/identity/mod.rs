//! Identity: certificates, client-assertion JWTs and access tokens for a
//! connection, delegated sign-in with device codes, and Global Discovery.
//! Keys, assertions and tokens stay inside this crate: the Web API client in
//! this crate is the only place a bearer value is put on the wire.
//!
//! Token policy follows MSAL: a token is cached per connection and renewed
//! ahead of expiry (at `refresh_in` when Entra sends it, else when 5
//! minutes, or half the lifetime for short tokens, remain); one request is
//! in flight per connection whatever the number of callers; transient
//! failures are retried by the crate's one retry policy within the caller's
//! deadline; if a renewal fails while the old token is still valid, the old
//! token is served (MSAL's "aging").

mod certificate;
mod device;
mod discovery;
mod sealed;
mod sealed_sign_in;
mod token;

use std::time::Duration;

use serde_json::Value;

use crate::endpoint::EndpointError;
use crate::retry::{Failure, Retryable};

pub use certificate::Certificate;
pub use device::{DeviceCodePrompt, DeviceSignIn, PendingSignIn, UserTokens};
pub use discovery::{Discovery, Instance};
pub use sealed::{MasterKey, SealedKey};
pub use sealed_sign_in::SealedSignIn;
pub(crate) use token::AccessToken;
pub use token::{Connection, SigningAlgorithm, TokenInfo, TokenSource};

/// What went wrong getting a token or handling a certificate. Never carries
/// a key, an assertion or a token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    /// Entra refused the request.
    #[error("Entra ID refused the request: {}", entra_text(*code, error, cause, description))]
    Entra {
        /// HTTP status.
        status: u16,
        /// OAuth `error`.
        error: String,
        /// The AADSTS number (0 when Entra sent none).
        code: u32,
        /// What it usually means, in plain words.
        cause: &'static str,
        /// Entra's first description line, without trace ids.
        description: String,
        /// Seconds Entra asked to wait before trying again (429), clamped.
        retry_after: Option<u64>,
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
    /// An authority, environment or tenant that cannot be used.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A sign-in cannot be kept or a stored one cannot be used.
    #[error("the sign-in cannot be used: {0}")]
    SignIn(String),
}

/// The readable part of an Entra refusal: the AADSTS code only when Entra
/// sent one, its description only when not empty.
fn entra_text(code: u32, error: &str, cause: &str, description: &str) -> String {
    let mut text = if code == 0 {
        format!("{error}: {cause}")
    } else {
        format!("AADSTS{code} ({error}): {cause}")
    };
    if !description.is_empty() {
        text.push_str(". Entra said: ");
        text.push_str(description);
    }
    text
}

impl IdentityError {
    /// Whether retrying may help (network trouble, 5xx, 429, throttling).
    pub fn is_transient(&self) -> bool {
        !matches!(self.failure(), Failure::Final)
    }
}

impl Retryable for IdentityError {
    fn failure(&self) -> Failure {
        match self {
            // Token requests are safe to repeat whatever happened to them.
            IdentityError::Transport(_) => Failure::Unknown,
            IdentityError::Entra {
                status: 429,
                retry_after,
                ..
            } => Failure::NotRun {
                retry_after: retry_after.map(Duration::from_secs),
            },
            IdentityError::Entra { status, error, .. }
                if *status >= 500 || error == "temporarily_unavailable" =>
            {
                Failure::Unknown
            }
            _ => Failure::Final,
        }
    }

    fn deadline(last: Option<&Self>) -> Self {
        IdentityError::Deadline(
            last.map(|e| format!(" (last error: {e})"))
                .unwrap_or_default(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_without_error_codes_names_no_aadsts_number() {
        let plain = entra_error(400, &serde_json::json!({"error": "invalid_grant"}), None);
        let text = plain.to_string();
        assert!(!text.contains("AADSTS"), "{text}");
        assert!(text.contains("invalid_grant"), "{text}");
        let coded = entra_error(
            401,
            &serde_json::json!({"error": "invalid_client", "error_codes": [700027],
                "error_description": "AADSTS700027: Client assertion failed.\r\nTrace ID: x"}),
            None,
        );
        let text = coded.to_string();
        assert!(text.contains("AADSTS700027 (invalid_client)"), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
    }
}

/// The HTTP client every request of this crate goes through. It is built
/// here, not passed in, so that no caller can give it a proxy, a redirect
/// policy or anything else that would carry a token elsewhere: redirects are
/// not followed, no proxy is used (not even from the environment), and the
/// only extra trust is the CA named at construction.
#[derive(Clone)]
pub struct HttpClient(reqwest::Client);

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client that trusts the system roots and, when given, `extra_ca_pem`
    /// (the emulator's local CA, or a corporate one).
    pub fn new(extra_ca_pem: Option<&str>) -> Result<HttpClient, IdentityError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("dvhost/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| IdentityError::Certificate(format!("CA bundle: {e}")))?;
            b = b.tls_certs_merge(certs);
        }
        b.build()
            .map(HttpClient)
            .map_err(|e| IdentityError::Transport(e.to_string()))
    }

    pub(crate) fn inner(&self) -> &reqwest::Client {
        &self.0
    }
}

/// Reads a response body of at most `limit` bytes. `Ok(None)` when the
/// answer is larger: the server is not what it should be.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out.freeze()))
}

/// Largest Entra or Discovery answer read.
const MAX_ENTRA_BODY: usize = 1024 * 1024;

/// Reads an Entra or Discovery JSON answer (at most 1 MiB).
pub(crate) async fn read_json(resp: reqwest::Response) -> Result<Value, IdentityError> {
    let status = resp.status().as_u16();
    let unreadable = |why: String| {
        IdentityError::Transport(format!("unreadable response (HTTP {status}): {why}"))
    };
    let bytes = read_limited(resp, MAX_ENTRA_BODY)
        .await
        .map_err(|e| unreadable(e.without_url().to_string()))?
        .ok_or_else(|| unreadable("larger than 1 MiB".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))
}

/// An answer of the token or device-code endpoint, whatever its status.
pub(crate) struct FormReply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

impl FormReply {
    /// The body of a 200, or the typed Entra error.
    pub(crate) fn ok(self) -> Result<Value, IdentityError> {
        if self.status == 200 {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }

    /// The typed error for this answer.
    pub(crate) fn error(&self) -> IdentityError {
        entra_error(self.status, &self.body, self.retry_after)
    }
}

/// Posts a form to Entra and reads the JSON answer. reqwest errors carry the
/// URL only, never the form body; even the URL is dropped.
pub(crate) async fn post_form(
    http: &HttpClient,
    url: url::Url,
    form: &[(&str, &str)],
) -> Result<FormReply, IdentityError> {
    let resp = http
        .inner()
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| IdentityError::Transport(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = crate::seconds::retry_after(resp.headers());
    let body = read_json(resp).await?;
    Ok(FormReply {
        status,
        retry_after,
        body,
    })
}

/// The typed error for an Entra error body (Microsoft identity platform,
/// "Error response" of the OAuth 2.0 client credentials flow).
pub(crate) fn entra_error(
    status: u16,
    body: &serde_json::Value,
    retry_after: Option<Duration>,
) -> IdentityError {
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
        retry_after: retry_after.map(|d| d.as_secs()),
    }
}
