//! Client credentials with a certificate assertion, cached and single-flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng as _;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Certificate, IdentityError, entra_error};

/// How assertions are signed (reference §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// RS256 with a SHA-1 `x5t`: what every Entra version accepts.
    #[default]
    Rs256,
    /// PS256 with a SHA-256 `x5t#S256`: Entra's current recommendation.
    Ps256,
}

/// What identifies a connection to Entra.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Tenant id or verified domain.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Entra authority host, `https://login.microsoftonline.com` (or the emulator).
    pub authority_host: String,
    /// The resource, e.g. the environment URL `https://contoso.crm.dynamics.com`.
    pub resource: String,
    pub certificate: Arc<Certificate>,
    pub algorithm: SigningAlgorithm,
}

impl Connection {
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.trim_end_matches('/'),
            self.tenant
        )
    }

    /// Signs a fresh client assertion (new `jti`, 10 minutes).
    fn assertion(&self) -> Result<Zeroizing<String>, IdentityError> {
        let cert = &self.certificate;
        let (alg, header) = match self.algorithm {
            SigningAlgorithm::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(URL_SAFE_NO_PAD.encode(cert.sha1_thumbprint()));
                (Algorithm::RS256, h)
            }
            SigningAlgorithm::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(cert.sha256_thumbprint()));
                (Algorithm::PS256, h)
            }
        };
        debug_assert_eq!(header.alg, alg);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "aud": self.token_url(),
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        });
        let key = EncodingKey::from_rsa_pem(cert.private_key_pem().as_bytes())
            .map_err(|_| IdentityError::Certificate("the private key cannot sign".into()))?;
        jsonwebtoken::encode(&header, &claims, &key)
            .map(Zeroizing::new)
            .map_err(|_| IdentityError::Certificate("signing the client assertion failed".into()))
    }
}

/// An access token. Its value is visible only inside this crate.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<Zeroizing<String>>,
    /// When it expires.
    pub expires_at: Instant,
    /// When it should be renewed.
    pub refresh_at: Instant,
    /// Last moment it is handed out (a little before expiry, so a request
    /// in flight does not arrive with an expired token).
    usable_until: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field(
                "expires_in",
                &self.expires_at.saturating_duration_since(Instant::now()),
            )
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The bearer value, for the transport in this crate.
    pub(crate) fn secret(&self) -> &str {
        &self.value
    }

    fn usable(&self, now: Instant) -> bool {
        now < self.usable_until
    }
}

/// A connection's token: cached, renewed ahead of expiry, one request in flight.
pub struct TokenSource {
    connection: Connection,
    http: reqwest::Client,
    cached: parking_lot::RwLock<Option<AccessToken>>,
    /// Held by the one caller that talks to Entra; the others wait and reuse its result.
    inflight: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("tenant", &self.connection.tenant)
            .field("client_id", &self.connection.client_id)
            .field("resource", &self.connection.resource)
            .finish_non_exhaustive()
    }
}

/// Token-endpoint attempts before giving up on transient failures.
const MAX_ATTEMPTS: u32 = 4;

impl TokenSource {
    pub fn new(connection: Connection, http: reqwest::Client) -> Self {
        TokenSource {
            connection,
            http,
            cached: Default::default(),
            inflight: Default::default(),
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// A valid token, fetching or renewing it when needed, before `deadline`.
    pub async fn token(&self, deadline: Instant) -> Result<AccessToken, IdentityError> {
        if let Some(t) = self.fresh(Instant::now()) {
            return Ok(t);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _guard = tokio::time::timeout(remaining, self.inflight.lock())
            .await
            .map_err(|_| IdentityError::Deadline(String::new()))?;
        // Another caller may have renewed it while we waited.
        if let Some(t) = self.fresh(Instant::now()) {
            return Ok(t);
        }
        match self.fetch(deadline).await {
            Ok(t) => {
                *self.cached.write() = Some(t.clone());
                Ok(t)
            }
            Err(e) => {
                // Aging: a failed renewal keeps serving a still-valid token.
                let old = self
                    .cached
                    .read()
                    .clone()
                    .filter(|t| t.usable(Instant::now()));
                match old {
                    Some(t) => {
                        tracing::warn!(client_id = %self.connection.client_id, error = %e, "token renewal failed; using the current token until it expires");
                        Ok(t)
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn fresh(&self, now: Instant) -> Option<AccessToken> {
        self.cached
            .read()
            .clone()
            .filter(|t| now < t.refresh_at && t.usable(now))
    }

    /// Drops the cached token (e.g. after a 401 from the resource).
    pub fn invalidate(&self) {
        *self.cached.write() = None;
    }

    async fn fetch(&self, deadline: Instant) -> Result<AccessToken, IdentityError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(IdentityError::Deadline(String::new()));
            }
            let result = match tokio::time::timeout(remaining, self.request()).await {
                Ok(r) => r,
                Err(_) => return Err(IdentityError::Deadline(String::new())),
            };
            match result {
                Ok(t) => return Ok(t),
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    // Exponential backoff with full jitter: 0-200 ms, 0-400 ms, 0-800 ms.
                    let cap = 200u64 << (attempt - 1);
                    let wait = Duration::from_millis(rand::rng().random_range(0..=cap));
                    if Instant::now() + wait >= deadline {
                        return Err(IdentityError::Deadline(format!(" (last error: {e})")));
                    }
                    tracing::debug!(attempt, error = %e, "retrying the token request");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn request(&self) -> Result<AccessToken, IdentityError> {
        let c = &self.connection;
        let assertion = c.assertion()?;
        let scope = format!("{}/.default", c.resource.trim_end_matches('/'));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("scope", scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let sent = Instant::now();
        // reqwest errors carry the URL only, never the form body.
        let resp = self
            .http
            .post(c.token_url())
            .form(&form)
            .send()
            .await
            .map_err(|e| IdentityError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| {
            IdentityError::Transport(format!(
                "unreadable response (HTTP {status}): {}",
                e.without_url()
            ))
        })?;
        if status != 200 {
            return Err(entra_error(status, &body));
        }
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                IdentityError::Transport("the token response has no access_token".into())
            })?;
        // `expires_in` may be a number or a numeric string (v1 endpoints).
        let secs = |k: &str| {
            body.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let expires_in = secs("expires_in").ok_or_else(|| {
            IdentityError::Transport("the token response has no expires_in".into())
        })?;
        let lifetime = Duration::from_secs(expires_in);
        let expires_at = sent + lifetime;
        let usable_until = expires_at - Duration::from_secs(5).min(lifetime / 10);
        let margin = Duration::from_secs(300).min(lifetime / 2);
        let refresh_at = match secs("refresh_in") {
            Some(r) => (sent + Duration::from_secs(r)).min(expires_at - margin),
            None => expires_at - margin,
        };
        Ok(AccessToken {
            value: Arc::new(Zeroizing::new(value.to_string())),
            expires_at,
            refresh_at,
            usable_until,
        })
    }
}
