//! `POST /{tenant}/oauth2/v2.0/token` and `/devicecode` ("OAuth 2.0 client
//! credentials flow", <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>;
//! "OAuth 2.0 device authorization grant",
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code>).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::assertion::{self, AssertionContext};
use super::error::EntraError;
use super::scopes::{self, DelegatedScopes, Resource};
use super::{Authority, correlation_id, resolve_authority};
use crate::Emulator;
use crate::state::{
    App, DeviceCode, DeviceCodeStatus, Directory, RefreshGrant, Tenant, User,
    WELL_KNOWN_PUBLIC_CLIENTS,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Form fields, first value wins. Entra only reads form bodies, so any
/// other content type reads as an empty form (and fails on `grant_type`).
struct Form(HashMap<String, String>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let mut map = HashMap::new();
        if is_form {
            for (k, v) in url::form_urlencoded::parse(body) {
                map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
        }
        Form(map)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn require(&self, k: &str) -> Result<&str, EntraError> {
        self.get(k).ok_or_else(|| EntraError::missing(k))
    }
}

fn body_error(rejection: BytesRejection) -> EntraError {
    let status = rejection.status();
    let mut e = EntraError::invalid_request(
        9002313,
        format!(
            "Invalid request. Request is malformed or invalid. ({})",
            rejection.body_text()
        ),
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        e.status = status;
    }
    e
}

fn ok_json(body: Value) -> Response {
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn parse_client_id(raw: &str, tenant: &str) -> Result<Uuid, EntraError> {
    Uuid::parse_str(raw).map_err(|_| unknown_client(raw, tenant))
}

fn unknown_client(client: &str, tenant: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

/// The token endpoint.
pub(super) async fn token(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let now = emu.now();
    let refusals = TokenRefusals {
        emu: &emu,
        headers: &headers,
        now,
    };
    let target = crate::faults::Target {
        env: "entra",
        method: "POST",
        path: "token",
        explicit: true,
    };
    crate::faults::serve(&emu, target, &refusals, || {
        (token_inner(&emu, &tenant, &headers, body, now), ())
    })
    .await
}

/// Injected refusals of the token endpoint: Entra's transient error
/// (AADSTS90033), counted as a request.
struct TokenRefusals<'a> {
    emu: &'a Emulator,
    headers: &'a HeaderMap,
    now: time::OffsetDateTime,
}

impl TokenRefusals<'_> {
    fn transient(&self, status: StatusCode) -> Response {
        self.emu.dir.write().stats.requests += 1;
        EntraError::new(
            status,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        )
        .into_response_with(correlation_id(self.headers), self.now)
    }
}

impl crate::faults::Refusals for TokenRefusals<'_> {
    fn throttled(&self, retry_after_secs: u64) -> Response {
        let mut resp = self.transient(StatusCode::TOO_MANY_REQUESTS);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        resp
    }

    fn failed(&self, status: StatusCode) -> Response {
        self.transient(status)
    }
}

fn token_inner(
    emu: &Emulator,
    tenant: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    now: time::OffsetDateTime,
) -> Response {
    let form = body.map(|b| Form::parse(headers, &b));
    let client_for_stats = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("client_id"))
        .unwrap_or("-")
        .to_string();
    let grant_for_stats = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("grant_type"))
        .unwrap_or("-")
        .to_string();
    let result = match form {
        Ok(form) => handle_token(emu, tenant, &form),
        Err(rejection) => Err(body_error(rejection)),
    };
    {
        let mut dir = emu.dir.write();
        let stats = &mut dir.stats;
        stats.requests += 1;
        *stats.by_client.entry(client_for_stats.clone()).or_default() += 1;
        *stats.by_grant.entry(grant_for_stats.clone()).or_default() += 1;
        match &result {
            Ok(_) => stats.issued += 1,
            Err(_) => stats.rejected += 1,
        }
    }
    // One line per token request; never the assertion, a secret or a token.
    match result {
        Ok(body) => {
            tracing::info!(tenant = %tenant, client_id = %client_for_stats, grant = %grant_for_stats, "token issued");
            emu.persist_if_delegated(&body);
            ok_json(body)
        }
        Err(e) => {
            tracing::info!(tenant = %tenant, client_id = %client_for_stats, grant = %grant_for_stats, status = e.status.as_u16(), code = e.code, "token request rejected");
            e.into_response_with(correlation_id(headers), now)
        }
    }
}

impl Emulator {
    /// Refresh tokens live in the directory; persist when one was issued.
    fn persist_if_delegated(&self, body: &Value) {
        if body.get("refresh_token").is_some() {
            self.persist();
        }
    }
}

fn handle_token(emu: &Emulator, tenant: &str, form: &Form) -> Result<Value, EntraError> {
    let authority = resolve_authority(emu, tenant)?;
    let grant = form.require("grant_type")?;
    match grant {
        "client_credentials" => {
            let Authority::Tenant(t) = authority else {
                return Err(EntraError::invalid_request(
                    9001023,
                    "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
                ));
            };
            client_credentials(emu, &t, form)
        }
        DEVICE_CODE_GRANT => redeem_device_code(emu, &authority, form),
        "refresh_token" => refresh(emu, &authority, form),
        other => Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn client_credentials(emu: &Emulator, tenant: &Tenant, form: &Form) -> Result<Value, EntraError> {
    let client_raw = form.require("client_id")?;
    let scope = form.require("scope")?;
    if form.get("client_secret").is_none() && form.get("client_assertion").is_none() {
        return Err(EntraError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let client_id = parse_client_id(client_raw, &tenant.id.to_string())?;
    let dir = emu.dir.read();
    let app = dir
        .app(tenant.id, client_id)
        .ok_or_else(|| unknown_client(client_raw, &tenant.id.to_string()))?;
    if form.get("client_secret").is_some() {
        return Err(EntraError::invalid_client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    if form.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(EntraError::invalid_request(
            90011,
            format!("Invalid client_assertion_type; expected '{JWT_BEARER}'."),
        ));
    }
    let resource = scopes::parse_client_credentials(&dir, tenant.id, scope)?;
    let settings = &dir.settings;
    let audiences = token_urls(&emu.base_urls, tenant);
    let now = emu.now().unix_timestamp();
    assertion::verify(
        form.require("client_assertion")?,
        &AssertionContext {
            client_id: client_raw,
            audiences: &audiences,
            keys: &app.keys,
            now,
            skew: settings.clock_skew_secs as i64,
            max_lifetime: settings.max_assertion_lifetime_secs as i64,
        },
    )?;
    let sp = app.service_principal.ok_or_else(|| {
        EntraError::invalid_client(
            7000229,
            format!("The client application {client_id} is missing service principal in the tenant {}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119", tenant.id),
        )
    })?;
    let (access_token, expires_in) =
        issue_access_token(emu, &dir, tenant, &resource, Subject::App { app, sp }, now);
    Ok(token_body(&dir, access_token, expires_in, None))
}

/// Token URLs an assertion's `aud` may name: this tenant's v2.0 endpoint by
/// id and by each domain, at the emulator's own base URLs (never the `Host`
/// a caller sends, which anyone can choose).
fn token_urls(bases: &[String], tenant: &Tenant) -> Vec<String> {
    let mut out = Vec::new();
    for b in bases {
        for seg in std::iter::once(tenant.id.to_string())
            .chain(tenant.domains.iter().cloned())
            .chain([tenant.name.clone()])
        {
            out.push(format!("{b}/{seg}/oauth2/v2.0/token"));
        }
    }
    out
}

fn token_body(
    dir: &Directory,
    access_token: String,
    expires_in: i64,
    delegated: Option<Value>,
) -> Value {
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    });
    if let Some(refresh_in) = dir.settings.refresh_in_secs {
        body["refresh_in"] = json!(refresh_in.min(expires_in.max(0) as u64));
    }
    if let Some(Value::Object(extra)) = delegated {
        body.as_object_mut().expect("object").extend(extra);
    }
    body
}

/// Who a token is for.
enum Subject<'a> {
    App {
        app: &'a App,
        sp: Uuid,
    },
    User {
        user: &'a User,
        client_id: Uuid,
        scopes: &'a DelegatedScopes,
    },
}

/// Signs an access token in the v1 format Dataverse receives: `iss`
/// `https://sts.windows.net/{tid}/`, `aud` the organization URL
/// ("Access tokens in the Microsoft identity platform",
/// <https://learn.microsoft.com/entra/identity-platform/access-tokens>).
fn issue_access_token(
    emu: &Emulator,
    dir: &Directory,
    tenant: &Tenant,
    resource: &Resource,
    subject: Subject<'_>,
    now: i64,
) -> (String, i64) {
    let lifetime = match dir.settings.token_lifetime_secs {
        Some(s) => s as i64,
        // Entra's default: random between 60 and 90 minutes.
        None => rand::rng().random_range(3600..=5400),
    };
    let sts = format!("https://sts.windows.net/{}/", tenant.id);
    let mut claims = json!({
        "aud": resource.audience(),
        "iss": sts,
        "idp": sts,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant.id,
        "ver": "1.0",
        "uti": URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()),
        "rh": "0.emulator",
    });
    match subject {
        Subject::App { app, sp } => {
            claims["appid"] = json!(app.app_id);
            claims["appidacr"] = json!("2");
            claims["oid"] = json!(sp);
            claims["sub"] = json!(sp);
            claims["idtyp"] = json!("app");
            claims["app_displayname"] = json!(app.display_name);
        }
        Subject::User {
            user,
            client_id,
            scopes,
        } => {
            claims["appid"] = json!(client_id);
            claims["appidacr"] = json!("0");
            claims["oid"] = json!(user.id);
            claims["sub"] = json!(user.id);
            claims["upn"] = json!(user.upn);
            claims["unique_name"] = json!(user.upn);
            claims["name"] = json!(user.display_name);
            claims["scp"] = json!(scopes.scp());
            claims["amr"] = json!(["pwd"]);
            claims["idtyp"] = json!("user");
            if user.admin {
                // Global Administrator role template id.
                claims["wids"] = json!(["62e90394-69f5-4237-9190-012177145e10"]);
            }
        }
    }
    (emu.signing.sign(&claims), lifetime)
}

/// Finds the client for a delegated flow: an app of the tenant (or, for the
/// `common`/`organizations` authorities, of any tenant), or a well-known
/// Microsoft public client.
fn delegated_client(
    dir: &Directory,
    tenant: Option<Uuid>,
    client_raw: &str,
) -> Result<(Uuid, bool), EntraError> {
    let tenant_name = tenant
        .map(|t| t.to_string())
        .unwrap_or_else(|| "organizations".into());
    let client_id = parse_client_id(client_raw, &tenant_name)?;
    if WELL_KNOWN_PUBLIC_CLIENTS
        .iter()
        .any(|(id, _)| Uuid::parse_str(id).ok() == Some(client_id))
    {
        return Ok((client_id, true));
    }
    dir.apps
        .iter()
        .find(|a| a.app_id == client_id && tenant.is_none_or(|t| t == a.tenant_id))
        .map(|a| (client_id, a.public_client))
        .ok_or_else(|| unknown_client(client_raw, &tenant_name))
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..9)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(super) async fn devicecode(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let now = emu.now();
    let result = body
        .map_err(body_error)
        .and_then(|b| start_device_flow(&emu, &tenant, &Form::parse(&headers, &b)));
    match result {
        Ok(v) => ok_json(v),
        Err(e) => e.into_response_with(correlation_id(&headers), now),
    }
}

fn start_device_flow(emu: &Emulator, tenant: &str, form: &Form) -> Result<Value, EntraError> {
    let tenant_id = match resolve_authority(emu, tenant)? {
        Authority::Tenant(t) => Some(t.id),
        Authority::Alias(a) if a == "consumers" => {
            return Err(EntraError::invalid_request(
                9001023,
                "Personal Microsoft accounts are not available in the emulator.",
            ));
        }
        Authority::Alias(_) => None,
    };
    let client_raw = form.require("client_id")?;
    let scope = form.require("scope")?;
    let now = emu.now().unix_timestamp();
    let mut dir = emu.dir.write();
    let (client_id, _) = delegated_client(&dir, tenant_id, client_raw)?;
    let scopes = scopes::parse_delegated(&dir, tenant_id, scope)?;
    let settings = dir.settings.clone();
    dir.device_codes.retain(|c| c.expires_at + 600 > now);
    let code = DeviceCode {
        device_code: random_token(64),
        user_code: user_code(),
        client_id,
        tenant_id,
        scopes: scopes.to_strings(),
        expires_at: now + settings.device_code_lifetime_secs as i64,
        interval: settings.device_code_interval_secs,
        last_poll: None,
        scripted_slow_downs: 0,
        status: DeviceCodeStatus::Pending,
    };
    let verification_uri = format!("{}/devicelogin", emu.base_url);
    let body = json!({
        "user_code": code.user_code,
        "device_code": code.device_code,
        "verification_uri": verification_uri,
        "expires_in": settings.device_code_lifetime_secs,
        "interval": settings.device_code_interval_secs,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {} to authenticate.", code.user_code),
    });
    dir.device_codes.push(code);
    Ok(body)
}

fn device_error(error: &'static str, code: u32, message: &str) -> EntraError {
    EntraError::new(StatusCode::BAD_REQUEST, error, code, message)
}

fn redeem_device_code(
    emu: &Emulator,
    authority: &Authority,
    form: &Form,
) -> Result<Value, EntraError> {
    let device_code = form.require("device_code")?;
    let client_raw = form.require("client_id")?;
    let now_dt = emu.now();
    let now = now_dt.unix_timestamp();
    let now_ms = (now_dt.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut dir = emu.dir.write();
    let Some(idx) = dir
        .device_codes
        .iter()
        .position(|c| c.device_code == device_code)
    else {
        return Err(device_error(
            "bad_verification_code",
            70018,
            "Your entered code is incorrect. Make sure you have entered the correct code.",
        ));
    };
    let code = &mut dir.device_codes[idx];
    same_authority(code, authority)?;
    let user_id = poll(code, client_raw, now, now_ms)?;
    let scopes_raw = code.scopes.join(" ");
    let client_id = code.client_id;
    let requested_tenant = code.tenant_id;
    let (_, public_client) = delegated_client(&dir, requested_tenant, client_raw)?;
    if !public_client {
        return Err(EntraError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    dir.device_codes[idx].status = DeviceCodeStatus::Redeemed;
    let user = dir.user_by_id(user_id).cloned().ok_or_else(|| {
        EntraError::invalid_grant(50034, "The user account does not exist in the directory.")
    })?;
    let tenant = dir
        .tenant_by_id(user.tenant_id)
        .cloned()
        .ok_or_else(|| EntraError::invalid_grant(90002, "The user's tenant no longer exists."))?;
    let scopes = scopes::parse_delegated(&dir, Some(tenant.id), &scopes_raw)?;
    Ok(delegated_tokens(
        emu, &mut dir, &tenant, &user, client_id, &scopes, form, now,
    ))
}

/// A device code is redeemed at the authority that issued it: one started
/// at tenant T means nothing to another tenant's token endpoint ("Microsoft
/// identity platform and the OAuth 2.0 device authorization grant flow",
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code>).
fn same_authority(code: &DeviceCode, authority: &Authority) -> Result<(), EntraError> {
    let same = match authority {
        Authority::Tenant(t) => code.tenant_id == Some(t.id),
        Authority::Alias(_) => code.tenant_id.is_none(),
    };
    if same {
        Ok(())
    } else {
        Err(EntraError::invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the device code was issued by another authority.",
        ))
    }
}

/// One poll of a device code by `client_raw`: the approving user, or why
/// not yet (pending, too fast) or never (expired, declined, redeemed,
/// another client's code).
fn poll(
    code: &mut DeviceCode,
    client_raw: &str,
    now: i64,
    now_ms: i64,
) -> Result<Uuid, EntraError> {
    if !code.client_id.to_string().eq_ignore_ascii_case(client_raw) {
        return Err(EntraError::invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the device code was issued to another client.",
        ));
    }
    if now > code.expires_at {
        return Err(device_error(
            "expired_token",
            70019,
            "Verification code expired.",
        ));
    }
    let too_fast = code.interval >= 2
        && code
            .last_poll
            .is_some_and(|last| now_ms - last < (code.interval as i64) * 1000 - 1000);
    code.last_poll = Some(now_ms);
    if code.scripted_slow_downs > 0 || too_fast {
        code.scripted_slow_downs = code.scripted_slow_downs.saturating_sub(1);
        return Err(device_error(
            "slow_down",
            70016,
            "OAuth 2.0 device flow error. The client is polling too frequently; slow down.",
        ));
    }
    match code.status {
        DeviceCodeStatus::Pending => Err(device_error(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )),
        DeviceCodeStatus::Declined => Err(device_error(
            "authorization_declined",
            70020,
            "The end user denied the authorization request.",
        )),
        DeviceCodeStatus::Redeemed => Err(EntraError::invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        )),
        DeviceCodeStatus::Approved { user } => Ok(user),
    }
}

/// Access token (+ refresh token with `offline_access`, + id token with
/// `openid`) for a signed-in user.
#[allow(clippy::too_many_arguments)]
fn delegated_tokens(
    emu: &Emulator,
    dir: &mut Directory,
    tenant: &Tenant,
    user: &User,
    client_id: Uuid,
    scopes: &DelegatedScopes,
    form: &Form,
    now: i64,
) -> Value {
    let (access_token, expires_in) = issue_access_token(
        emu,
        dir,
        tenant,
        &scopes.resource,
        Subject::User {
            user,
            client_id,
            scopes,
        },
        now,
    );
    let mut extra = json!({ "scope": scopes.response_scope() });
    if scopes.wants("offline_access") {
        let rt = random_token(96);
        dir.refresh_tokens.insert(
            rt.clone(),
            RefreshGrant {
                tenant_id: tenant.id,
                user: user.id,
                client_id,
                scopes: scopes.to_strings(),
                expires_at: now + dir.settings.refresh_token_lifetime_secs as i64,
            },
        );
        extra["refresh_token"] = json!(rt);
    }
    if scopes.wants("openid") {
        let id_token = emu.signing.sign(&json!({
            "aud": client_id,
            "iss": format!("{}/{}/v2.0", emu.base_url, tenant.id),
            "iat": now, "nbf": now, "exp": now + 3600,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.upn,
            "sub": user.id,
            "tid": tenant.id,
            "ver": "2.0",
        }));
        extra["id_token"] = json!(id_token);
    }
    if form.get("client_info") == Some("1") {
        let info = json!({ "uid": user.id, "utid": tenant.id }).to_string();
        extra["client_info"] = json!(URL_SAFE_NO_PAD.encode(info));
    }
    token_body(dir, access_token, expires_in, Some(extra))
}

fn refresh(emu: &Emulator, authority: &Authority, form: &Form) -> Result<Value, EntraError> {
    let rt = form.require("refresh_token")?;
    let client_raw = form.require("client_id")?;
    let now = emu.now().unix_timestamp();
    let mut dir = emu.dir.write();
    let grant = dir.refresh_tokens.get(rt).cloned().ok_or_else(|| {
        EntraError::invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
        )
    })?;
    if now > grant.expires_at {
        return Err(EntraError::invalid_grant(
            700082,
            "The refresh token has expired due to inactivity.",
        ));
    }
    if !grant.client_id.to_string().eq_ignore_ascii_case(client_raw) {
        return Err(EntraError::invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to another client.",
        ));
    }
    if let Authority::Tenant(t) = authority
        && t.id != grant.tenant_id
    {
        return Err(EntraError::invalid_grant(
            50173,
            "The provided grant has expired or belongs to another tenant.",
        ));
    }
    let user = dir.user_by_id(grant.user).cloned().ok_or_else(|| {
        EntraError::invalid_grant(50034, "The user account does not exist in the directory.")
    })?;
    let tenant = dir
        .tenant_by_id(grant.tenant_id)
        .cloned()
        .ok_or_else(|| EntraError::invalid_grant(90002, "The tenant no longer exists."))?;
    // A refresh token is good for any resource the user may reach; without
    // `scope` the original scopes are reused.
    let scope_raw = form
        .get("scope")
        .map(str::to_string)
        .unwrap_or_else(|| grant.scopes.join(" "));
    let mut scopes = scopes::parse_delegated(&dir, Some(tenant.id), &scope_raw)?;
    if !scopes.wants("offline_access") {
        // Refreshing keeps the user signed in: Entra returns a new refresh token.
        scopes.oidc.push("offline_access".into());
    }
    Ok(delegated_tokens(
        emu,
        &mut dir,
        &tenant,
        &user,
        grant.client_id,
        &scopes,
        form,
        now,
    ))
}
