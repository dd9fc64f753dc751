//! Client credentials with a certificate assertion, cached and single-flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Certificate, HttpClient, IdentityError, post_form};
use crate::endpoint::{Authority, Environment, check_tenant};
use crate::retry::{self, Repeat};
use crate::seconds;

/// How assertions are signed (Microsoft identity platform, "Certificate
/// credentials": RS256 with `x5t`, or PS256 with `x5t#S256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// RS256 with a SHA-1 `x5t`: what every Entra version accepts.
    #[default]
    Rs256,
    /// PS256 with a SHA-256 `x5t#S256`: Entra's current recommendation.
    Ps256,
}

/// What identifies a connection: an Entra tenant and app, the certificate
/// that proves the app's identity, and the one environment its tokens are
/// for.
#[derive(Debug, Clone)]
pub struct Connection {
    authority: Authority,
    tenant: String,
    client_id: String,
    environment: Environment,
    certificate: Arc<Certificate>,
    algorithm: SigningAlgorithm,
}

impl Connection {
    /// A connection of app `client_id` in `tenant` (id or verified domain)
    /// at `authority`, for `environment`.
    pub fn new(
        authority: Authority,
        tenant: &str,
        client_id: &str,
        environment: Environment,
        certificate: Arc<Certificate>,
        algorithm: SigningAlgorithm,
    ) -> Result<Connection, IdentityError> {
        check_tenant(tenant)?;
        Ok(Connection {
            authority,
            tenant: tenant.into(),
            client_id: client_id.into(),
            environment,
            certificate,
            algorithm,
        })
    }

    /// The Entra tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The environment the tokens are for and requests go to.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The certificate the connection was made with (public parts only
    /// leave it); a [`TokenSource`] may have switched to a newer one since
    /// ([`TokenSource::switch_certificate`]).
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    fn token_url(&self) -> Result<url::Url, IdentityError> {
        Ok(self.authority.oauth2(&self.tenant, "token")?)
    }

    /// Signs a fresh client assertion (new `jti`, 10 minutes) with `cert`.
    fn assertion(&self, cert: &Certificate) -> Result<Zeroizing<String>, IdentityError> {
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
            "aud": self.token_url()?.as_str(),
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

/// An access token. Neither it nor its value leaves this crate.
#[derive(Clone)]
pub(crate) struct AccessToken {
    value: Arc<Zeroizing<String>>,
    /// When it expires.
    pub(crate) expires_at: Instant,
    /// When it should be renewed.
    pub(crate) refresh_at: Instant,
    /// Which token of its source this is (1 for the first).
    generation: u64,
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

    fn info(&self) -> TokenInfo {
        TokenInfo {
            expires_at: self.expires_at,
            refresh_at: self.refresh_at,
            generation: self.generation,
        }
    }
}

/// What may be known about a connection's current token outside this crate:
/// its timing, not its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// When it expires.
    pub expires_at: Instant,
    /// When it will be renewed.
    pub refresh_at: Instant,
    /// Which token of this source it is (1 for the first, 2 after the first
    /// renewal...).
    pub generation: u64,
}

/// A connection's token: cached, renewed ahead of expiry, one request in flight.
pub struct TokenSource {
    connection: Connection,
    http: HttpClient,
    issued: AtomicU64,
    /// The certificate assertions are signed with: the connection's, until
    /// a rotation switches it.
    signer: parking_lot::RwLock<Arc<Certificate>>,
    cached: parking_lot::RwLock<Option<AccessToken>>,
    /// Held by the one caller that talks to Entra; the others wait and reuse its result.
    inflight: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("tenant", &self.connection.tenant)
            .field("client_id", &self.connection.client_id)
            .field("environment", &self.connection.environment.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for `connection`, talking to Entra through `http`.
    pub fn new(connection: Connection, http: HttpClient) -> Self {
        TokenSource {
            signer: parking_lot::RwLock::new(connection.certificate.clone()),
            connection,
            http,
            issued: AtomicU64::new(0),
            cached: Default::default(),
            inflight: Default::default(),
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Signs the next token requests with `certificate` (rotation). Waits
    /// for a request in flight, so none signed with the previous certificate
    /// is still on its way once this returns: the previous one may then be
    /// removed from the app. The cached token stays in use until renewal.
    pub async fn switch_certificate(&self, certificate: Arc<Certificate>) {
        let _guard = self.inflight.lock().await;
        *self.signer.write() = certificate;
    }

    /// The SHA-1 thumbprint (upper-case hex) of the certificate token
    /// requests are signed with.
    pub fn certificate_thumbprint(&self) -> String {
        self.signer.read().sha1_thumbprint_hex()
    }

    /// Makes sure a valid token is cached (getting one if needed) and tells
    /// its timing, e.g. to test a connection before marking it active.
    pub async fn warm(&self, deadline: Instant) -> Result<TokenInfo, IdentityError> {
        self.token(deadline).await.map(|t| t.info())
    }

    /// A valid token, fetching or renewing it when needed, before `deadline`.
    pub(crate) async fn token(&self, deadline: Instant) -> Result<AccessToken, IdentityError> {
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
    pub(crate) fn invalidate(&self) {
        *self.cached.write() = None;
    }

    async fn fetch(&self, deadline: Instant) -> Result<AccessToken, IdentityError> {
        let fetched = retry::run(
            &retry::TOKEN,
            Repeat::Safe,
            deadline,
            "token request",
            |_| self.request(),
        )
        .await;
        // Counted through the `metrics` facade: a no-op unless the host
        // installed a recorder (the server's /metrics).
        let outcome = if fetched.is_ok() { "ok" } else { "error" };
        metrics::counter!("dvhost_token_renewals_total", "outcome" => outcome).increment(1);
        fetched
    }

    async fn request(&self) -> Result<AccessToken, IdentityError> {
        let c = &self.connection;
        let signer = self.signer.read().clone();
        let assertion = c.assertion(&signer)?;
        let scope = c.environment.default_scope();
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
        let body = post_form(&self.http, c.token_url()?, &form).await?.ok()?;
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                IdentityError::Transport("the token response has no access_token".into())
            })?;
        let lifetime = seconds::from_json(body.get("expires_in")).ok_or_else(|| {
            IdentityError::Transport("the token response has no expires_in".into())
        })?;
        let expires_at = sent + lifetime;
        let usable_until = expires_at - Duration::from_secs(5).min(lifetime / 10);
        let margin = Duration::from_secs(300).min(lifetime / 2);
        let refresh_at = match seconds::from_json(body.get("refresh_in")) {
            Some(r) => (sent + r).min(expires_at - margin),
            None => expires_at - margin,
        };
        tracing::debug!(
            client_id = %c.client_id,
            expires_in_s = lifetime.as_secs(),
            "token acquired"
        );
        Ok(AccessToken {
            value: Arc::new(Zeroizing::new(value.to_string())),
            expires_at,
            refresh_at,
            usable_until,
            generation: self.issued.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }
}
