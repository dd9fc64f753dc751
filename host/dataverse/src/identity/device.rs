//! Delegated sign-in with the OAuth 2.0 device authorization grant
//! (RFC 8628) against Entra ID v2.0 (Microsoft identity platform, "OAuth 2.0
//! device authorization grant"): the host shows a code,
//! the user enters it in a browser on any device, and the host polls the
//! token endpoint until the user has approved, declined, or time ran out.
//!
//! The device code and the tokens are secrets: they live in [`Zeroizing`]
//! strings and no `Debug` output shows them.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{FormReply, HttpClient, IdentityError, post_form};
use crate::endpoint::{Authority, check_tenant};
use crate::retry::{self, Repeat};
use crate::seconds;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Poll interval when Entra names none (MSAL's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Code lifetime when Entra names none (Entra's documented default, 15 min).
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(900);
/// Shortest poll interval honoured.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// What RFC 8628 §3.5 says to add to the interval on `slow_down`.
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// `start` has no caller deadline; this bounds the one request it makes,
/// since the shared client has a connect timeout only.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Who issued a device code or user tokens: they are only ever sent back
/// there, whichever [`DeviceSignIn`] or [`super::Discovery`] is asked to use them.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Issuer {
    /// `https://login.microsoftonline.com` (or the emulator).
    pub(crate) authority: Authority,
    /// Tenant id, verified domain, or `organizations` for any work account.
    pub(super) tenant: String,
    /// Application (client) id of a registration that allows public-client flows.
    pub(super) client_id: String,
}

/// A public client that signs users in with device codes.
pub struct DeviceSignIn {
    pub(super) issuer: Issuer,
    http: HttpClient,
}

impl std::fmt::Debug for DeviceSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSignIn")
            .field("authority", &self.issuer.authority.as_str())
            .field("tenant", &self.issuer.tenant)
            .field("client_id", &self.issuer.client_id)
            .finish_non_exhaustive()
    }
}

/// What to show the user: where to go and which code to enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The short code the user types in.
    pub user_code: String,
    /// The page where the user types it.
    pub verification_uri: String,
    /// Entra's ready-made instruction for the user (names the page and the code).
    pub message: String,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds between polls of the token endpoint.
    pub interval: u64,
}

/// A started sign-in, waiting for the user. Pass it to
/// [`DeviceSignIn::complete`].
pub struct PendingSignIn {
    prompt: DeviceCodePrompt,
    /// Whoever holds it can redeem the user's approval: never shown.
    device_code: Zeroizing<String>,
    /// When the code expires, measured from before the request was sent so
    /// the local view never outlives Entra's.
    expires_at: Instant,
    /// The scopes asked for, in case the token response names none.
    scope: String,
    /// Where the device code may be redeemed.
    issuer: Issuer,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("prompt", &self.prompt)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl PendingSignIn {
    /// What to show the user.
    pub fn prompt(&self) -> &DeviceCodePrompt {
        &self.prompt
    }
}

/// A signed-in user's tokens.
#[derive(Clone)]
pub struct UserTokens {
    pub(super) access_token: Zeroizing<String>,
    pub(super) refresh_token: Option<Zeroizing<String>>,
    /// When the access token expires.
    pub expires_at: Instant,
    /// The scopes granted, space-separated, as Entra returned them.
    pub scope: String,
    /// The user's sign-in name, when an id token came back (ask for `openid`).
    pub upn: Option<String>,
    /// The user's object id, when an id token came back.
    pub oid: Option<String>,
    /// The user's Entra tenant (`tid`), when an id token came back.
    pub entra_tenant_id: Option<String>,
    /// Where the refresh token may be redeemed (and whose Discovery service
    /// may see the access token).
    pub(crate) issuer: Issuer,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field(
                "expires_in",
                &self.expires_at.saturating_duration_since(Instant::now()),
            )
            .field("scope", &self.scope)
            .field("upn", &self.upn)
            .field("oid", &self.oid)
            .field("entra_tenant_id", &self.entra_tenant_id)
            .field("has_refresh_token", &self.has_refresh_token())
            .finish_non_exhaustive()
    }
}

impl UserTokens {
    /// The bearer value for the resource the token was issued for (Graph,
    /// Global Discovery, an environment); for this crate's requests only.
    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    /// Whether [`DeviceSignIn::refresh`] can be used (`offline_access` was granted).
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }
}

/// How one poll of the token endpoint ended, short of a fatal error.
enum Poll {
    Done(Box<UserTokens>),
    Pending,
    SlowDown,
}

impl DeviceSignIn {
    /// A sign-in client for `tenant` (id, domain or `organizations`) with the
    /// public client `client_id`, talking to `authority`.
    pub fn new(
        authority: Authority,
        tenant: &str,
        client_id: &str,
        http: HttpClient,
    ) -> Result<Self, IdentityError> {
        check_tenant(tenant)?;
        Ok(DeviceSignIn {
            issuer: Issuer {
                authority,
                tenant: tenant.into(),
                client_id: client_id.into(),
            },
            http,
        })
    }

    /// Refuses a device code or tokens another sign-in client issued: they
    /// go back to their own authority, tenant and client only.
    fn check_issuer(&self, issuer: &Issuer) -> Result<(), IdentityError> {
        if *issuer == self.issuer {
            Ok(())
        } else {
            Err(IdentityError::Endpoint(crate::EndpointError::Mismatch(
                "these credentials were issued to another authority, tenant or client",
            )))
        }
    }

    /// Posts `form` to one of the tenant's OAuth endpoints through the
    /// crate's retry policy (token requests are safe to repeat).
    async fn post(
        &self,
        leaf: &str,
        form: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<FormReply, IdentityError> {
        let url = self.issuer.authority.oauth2(&self.issuer.tenant, leaf)?;
        retry::run(&retry::TOKEN, Repeat::Safe, deadline, "Entra form", |_| {
            let url = url.clone();
            async move {
                let reply = post_form(&self.http, url, form).await?;
                if reply.status == 200 {
                    return Ok(reply);
                }
                // Throttling and outages are retried; other refusals are answers.
                match reply.error() {
                    e if e.is_transient() => Err(e),
                    _ => Ok(reply),
                }
            }
        })
        .await
    }

    /// Asks Entra for a device code for `scopes` (e.g.
    /// `https://contoso.crm.dynamics.com/user_impersonation offline_access`).
    /// Show [`PendingSignIn::prompt`] to the user, then call [`Self::complete`].
    pub async fn start(&self, scopes: &[&str]) -> Result<PendingSignIn, IdentityError> {
        let scope = scopes.join(" ");
        let form = [
            ("client_id", self.issuer.client_id.as_str()),
            ("scope", scope.as_str()),
        ];
        let sent = Instant::now();
        let reply = self.post("devicecode", &form, sent + START_TIMEOUT).await?;
        if reply.status != 200 {
            return Err(device_error(&reply));
        }
        let body = reply.body;
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    IdentityError::Transport(format!("the device-code response has no {k}"))
                })
        };
        let device_code = Zeroizing::new(text("device_code")?);
        let user_code = text("user_code")?;
        // Older endpoints spell it `verification_url`.
        let verification_uri = text("verification_uri").or_else(|_| text("verification_url"))?;
        let expires_in = seconds::from_json(body.get("expires_in")).unwrap_or(DEFAULT_EXPIRES_IN);
        // At least a second between polls, whatever the server says, so a
        // server answering 0 cannot make this a busy loop.
        let interval = seconds::from_json(body.get("interval"))
            .unwrap_or(DEFAULT_INTERVAL)
            .max(MIN_INTERVAL);
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
                )
            });
        Ok(PendingSignIn {
            prompt: DeviceCodePrompt {
                user_code,
                verification_uri,
                message,
                expires_in: expires_in.as_secs(),
                interval: interval.as_secs(),
            },
            device_code,
            expires_at: sent + expires_in,
            scope,
            issuer: self.issuer.clone(),
        })
    }

    /// Waits for the user to approve `pending`, polling every `interval`
    /// seconds (plus 5 s per `slow_down`), until the code expires or
    /// `deadline` passes ([`IdentityError::Deadline`]). A decline, an expired
    /// or unknown code, or any other refusal is an [`IdentityError::Entra`]
    /// whose `error` is Entra's (`authorization_declined`, `expired_token`,
    /// `bad_verification_code`...).
    pub async fn complete(
        &self,
        pending: PendingSignIn,
        deadline: Instant,
    ) -> Result<UserTokens, IdentityError> {
        self.check_issuer(&pending.issuer)?;
        let expired =
            || IdentityError::Deadline(" (the sign-in code expired before it was approved)".into());
        let mut interval = Duration::from_secs(pending.prompt.interval);
        loop {
            // RFC 8628 §3.5: wait the interval before each poll; nobody can
            // have approved a code the instant it was shown.
            let now = Instant::now();
            let (limit, on_limit) = if deadline <= pending.expires_at {
                (deadline, IdentityError::Deadline(String::new()))
            } else {
                (pending.expires_at, expired())
            };
            if now + interval >= limit {
                // Polling again would come too late: give up when the
                // deadline (or the code's expiry) is reached, not before.
                tokio::time::sleep_until(limit.into()).await;
                return Err(on_limit);
            }
            tokio::time::sleep(interval).await;
            let polled = match self.poll(&pending, limit).await {
                Err(IdentityError::Deadline(_)) => return Err(on_limit),
                other => other?,
            };
            match polled {
                Poll::Done(tokens) => return Ok(*tokens),
                Poll::Pending => {}
                Poll::SlowDown => {
                    interval += SLOW_DOWN;
                    tracing::debug!(
                        interval_secs = interval.as_secs(),
                        "Entra asked to poll more slowly"
                    );
                }
            }
        }
    }

    async fn poll(&self, pending: &PendingSignIn, limit: Instant) -> Result<Poll, IdentityError> {
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", self.issuer.client_id.as_str()),
            ("device_code", pending.device_code.as_str()),
        ];
        let sent = Instant::now();
        let reply = self.post("token", &form, limit).await?;
        if reply.status == 200 {
            return tokens_from(&reply.body, sent, &pending.scope, &self.issuer, None)
                .map(|t| Poll::Done(Box::new(t)));
        }
        match reply.body.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => Ok(Poll::Pending),
            Some("slow_down") => Ok(Poll::SlowDown),
            _ => Err(device_error(&reply)),
        }
    }

    /// New tokens for `scopes` from `tokens`' refresh token. A refresh token
    /// is good for any resource the user consented to, so `scopes` may name
    /// another resource than the original (e.g. Graph after Discovery); an
    /// empty `scopes` asks again for the scopes `tokens` holds. When Entra
    /// sends no new refresh token, the old one is kept.
    pub async fn refresh(
        &self,
        tokens: &UserTokens,
        scopes: &[&str],
        deadline: Instant,
    ) -> Result<UserTokens, IdentityError> {
        self.check_issuer(&tokens.issuer)?;
        let Some(refresh_token) = &tokens.refresh_token else {
            return Err(IdentityError::Entra {
                status: 400,
                error: "invalid_grant".into(),
                code: 0,
                cause: "there is no refresh token: sign in again and ask for offline_access",
                description: String::new(),
                retry_after: None,
            });
        };
        // Entra v2.0 requires `scope` on refresh.
        let scope = if scopes.is_empty() {
            tokens.scope.clone()
        } else {
            scopes.join(" ")
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.issuer.client_id.as_str()),
            ("refresh_token", refresh_token.as_str()),
            ("scope", scope.as_str()),
        ];
        let sent = Instant::now();
        let reply = self.post("token", &form, deadline).await?;
        if reply.status != 200 {
            return Err(device_error(&reply));
        }
        tokens_from(&reply.body, sent, &scope, &self.issuer, Some(tokens))
    }
}

/// The Entra error with plain causes for the device-flow outcomes, whose
/// AADSTS numbers say little to a user.
fn device_error(reply: &FormReply) -> IdentityError {
    let mut e = reply.error();
    if let IdentityError::Entra { error, cause, .. } = &mut e {
        match error.as_str() {
            "authorization_declined" => *cause = "the user declined the sign-in",
            "expired_token" => {
                *cause = "the code expired before the user entered it; start the sign-in again"
            }
            "bad_verification_code" => {
                *cause = "Entra does not know this device code; start the sign-in again"
            }
            _ => {}
        }
    }
    e
}

/// Reads a successful token response. `requested_scope` stands in for a
/// missing `scope`; `previous` supplies the refresh token and the user when
/// a refresh response omits them.
fn tokens_from(
    body: &Value,
    sent: Instant,
    requested_scope: &str,
    issuer: &Issuer,
    previous: Option<&UserTokens>,
) -> Result<UserTokens, IdentityError> {
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .map(|s| Zeroizing::new(s.to_string()))
        .ok_or_else(|| IdentityError::Transport("the token response has no access_token".into()))?;
    let expires_in = seconds::from_json(body.get("expires_in"))
        .ok_or_else(|| IdentityError::Transport("the token response has no expires_in".into()))?;
    let refresh_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .map(|s| Zeroizing::new(s.to_string()))
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let scope = body
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or(requested_scope)
        .to_string();
    let (upn, oid, entra_tenant_id) = match body.get("id_token").and_then(Value::as_str) {
        Some(id_token) => id_token_user(id_token),
        // A refresh without `openid` is still the same user.
        None => previous
            .map(|p| (p.upn.clone(), p.oid.clone(), p.entra_tenant_id.clone()))
            .unwrap_or_default(),
    };
    Ok(UserTokens {
        access_token,
        refresh_token,
        expires_at: sent + expires_in,
        scope,
        upn,
        oid,
        entra_tenant_id,
        issuer: issuer.clone(),
    })
}

/// The user's sign-in name, object id and tenant from an id token. The signature is
/// NOT verified: the values are only displayed ("signed in as ..."), never
/// used to decide access, and the token came straight from the token
/// endpoint over TLS. Anything malformed yields nothing rather than an error.
fn id_token_user(id_token: &str) -> (Option<String>, Option<String>, Option<String>) {
    let claims = id_token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let Some(claims) = claims else {
        return (None, None, None);
    };
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    // v2.0 id tokens carry `preferred_username`; `upn` appears in some tenants' tokens.
    (
        claim("preferred_username").or_else(|| claim("upn")),
        claim("oid"),
        claim("tid"),
    )
}
