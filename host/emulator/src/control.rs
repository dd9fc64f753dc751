//! The control API under `/_emulator/` (a prefix no Microsoft service uses):
//! build the directory, change settings and the clock, approve or decline
//! device codes, read token counters. Documented in the README.

// Control handlers return ready-made error responses; their size is irrelevant
// on this cold path and boxing them would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Emulator;
use crate::seed::{AppSeed, EnvironmentSeed, Seed, SettingsPatch, TenantSeed, UserSeed};
use crate::state::{App, DeviceCodeStatus, Directory};

fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/seed", post(seed))
        .route("/_emulator/tenants", post(add_tenant))
        .route("/_emulator/users", post(add_user))
        .route("/_emulator/apps", post(add_app))
        .route("/_emulator/environments", post(add_environment))
        .route(
            "/_emulator/settings",
            get(get_settings).patch(patch_settings),
        )
        .route("/_emulator/stats", get(stats).delete(reset_stats))
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_emulator/device-codes", get(device_codes))
        .route(
            "/_emulator/device-codes/{user_code}/{action}",
            post(device_code_action),
        )
}

/// [`routes`] behind the access guard; health stays open so scripts can
/// wait for the emulator from anywhere.
pub(crate) fn guarded_routes(emu: Arc<Emulator>) -> Router<Arc<Emulator>> {
    routes()
        .route_layer(axum::middleware::from_fn_with_state(
            emu,
            crate::control_access::guard,
        ))
        .route(
            "/_emulator/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
}

fn fail(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({"error": message.to_string()}))).into_response()
}

fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Response> {
    let bytes = body.map_err(|r| fail(r.status(), r.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn app_summary(a: &App) -> Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    json!({
        "object_id": a.object_id,
        "app_id": a.app_id,
        "tenant_id": a.tenant_id,
        "display_name": a.display_name,
        "public_client": a.public_client,
        "service_principal": a.service_principal,
        "certificates": a.keys.iter().map(|k| json!({
            "key_id": k.key_id,
            "display_name": k.display_name,
            "sha1_thumbprint": hex(&k.sha1),
            "sha256_thumbprint": hex(&k.sha256),
            "start": crate::clock::iso(k.start),
            "end": crate::clock::iso(k.end),
        })).collect::<Vec<_>>(),
    })
}

/// The directory as JSON, without refresh tokens or device codes.
fn summary(dir: &Directory) -> Value {
    json!({
        "settings": dir.settings,
        "tenants": dir.tenants,
        "users": dir.users,
        "apps": dir.apps.iter().map(app_summary).collect::<Vec<_>>(),
        "environments": dir.environments,
    })
}

async fn state(State(emu): State<Arc<Emulator>>) -> Response {
    axum::Json(summary(&emu.dir.read())).into_response()
}

/// Merges a seed (JSON, or TOML when the content type says so).
async fn seed(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let parsed: Result<Seed, Response> = if is_toml {
        body.map_err(|r| fail(r.status(), r.body_text()))
            .and_then(|b| {
                let text = String::from_utf8_lossy(&b).into_owned();
                Seed::from_toml(&text, None)
                    .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid TOML seed: {e}")))
            })
    } else {
        parse_json(body)
    };
    let seed = match parsed {
        Ok(s) => s,
        Err(r) => return r,
    };
    match emu.apply_seed(seed, false) {
        Ok(()) => {
            emu.persist();
            axum::Json(summary(&emu.dir.read())).into_response()
        }
        Err(e) => fail(StatusCode::BAD_REQUEST, e),
    }
}

/// Runs one directory mutation and answers 201 with what it created.
fn create<T, R: serde::Serialize>(
    emu: &Emulator,
    body: Result<Bytes, BytesRejection>,
    f: impl FnOnce(&mut Directory, T) -> Result<R, crate::state::SeedError>,
) -> Response
where
    T: DeserializeOwned,
{
    let input: T = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result = f(&mut emu.dir.write(), input);
    match result {
        Ok(created) => {
            emu.persist();
            (StatusCode::CREATED, axum::Json(json!(created))).into_response()
        }
        Err(e) => fail(StatusCode::BAD_REQUEST, e),
    }
}

async fn add_tenant(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    create(&emu, body, |d, s: TenantSeed| d.add_tenant(s))
}

async fn add_user(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    create(&emu, body, |d, s: UserSeed| d.add_user(s))
}

async fn add_app(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let now = emu.now();
    create(&emu, body, |d, s: AppSeed| {
        d.add_app(s, now).map(|a| app_summary(&a))
    })
}

async fn add_environment(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let seed: EnvironmentSeed = match parse_json(body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match emu.add_environment(seed) {
        Ok(env) => {
            emu.persist();
            (StatusCode::CREATED, axum::Json(json!(env))).into_response()
        }
        Err(e) => fail(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_settings(State(emu): State<Arc<Emulator>>) -> Response {
    axum::Json(json!(emu.dir.read().settings)).into_response()
}

async fn patch_settings(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let patch: SettingsPatch = match parse_json(body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let settings = {
        let mut dir = emu.dir.write();
        patch.apply(&mut dir.settings);
        dir.settings.clone()
    };
    emu.persist();
    axum::Json(json!(settings)).into_response()
}

async fn stats(State(emu): State<Arc<Emulator>>) -> Response {
    axum::Json(json!(emu.dir.read().stats)).into_response()
}

async fn reset_stats(State(emu): State<Arc<Emulator>>) -> Response {
    emu.dir.write().stats = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn device_codes(State(emu): State<Arc<Emulator>>) -> Response {
    let dir = emu.dir.read();
    let codes: Vec<Value> = dir
        .device_codes
        .iter()
        .map(|c| {
            json!({
                "user_code": c.user_code,
                "client_id": c.client_id,
                "tenant_id": c.tenant_id,
                "scopes": c.scopes,
                "expires_at": c.expires_at,
                "status": match c.status {
                    DeviceCodeStatus::Pending => "pending",
                    DeviceCodeStatus::Approved { .. } => "approved",
                    DeviceCodeStatus::Declined => "declined",
                    DeviceCodeStatus::Redeemed => "redeemed",
                },
            })
        })
        .collect();
    axum::Json(json!({ "device_codes": codes })).into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// UPN or object id of the approving user.
    user: Option<String>,
    /// For `slow-down`: how many polls to answer with `slow_down`.
    count: Option<u32>,
}

/// `approve` (body `{"user": UPN}`), `decline`, `expire`, `slow-down` (`{"count": n}`).
async fn device_code_action(
    State(emu): State<Arc<Emulator>>,
    Path((user_code, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body: ActionBody = match body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => ActionBody::default(),
        other => match parse_json(other) {
            Ok(b) => b,
            Err(r) => return r,
        },
    };
    let now = emu.now().unix_timestamp();
    let mut dir = emu.dir.write();
    let user = match (&action[..], &body.user) {
        ("approve", Some(u)) => match dir.user(u) {
            Some(u) => Some(u.clone()),
            None => return fail(StatusCode::NOT_FOUND, format!("unknown user '{u}'")),
        },
        ("approve", None) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "approve needs {\"user\": \"<upn>\"}",
            );
        }
        _ => None,
    };
    let normalized = user_code.replace('-', "").to_ascii_uppercase();
    let Some(code) = dir
        .device_codes
        .iter_mut()
        .find(|c| c.user_code == normalized)
    else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no device code '{user_code}'"),
        );
    };
    if action != "slow-down" && code.status != DeviceCodeStatus::Pending {
        return fail(
            StatusCode::CONFLICT,
            "the code was already approved, declined or redeemed (AADSTS90120)",
        );
    }
    match action.as_str() {
        "approve" => {
            let user = user.expect("checked above");
            if code.tenant_id.is_some_and(|t| t != user.tenant_id) {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "user '{}' is not in the tenant the code was requested for",
                        user.upn
                    ),
                );
            }
            code.status = DeviceCodeStatus::Approved { user: user.id };
        }
        "decline" => code.status = DeviceCodeStatus::Declined,
        "expire" => code.expires_at = now - 1,
        "slow-down" => code.scripted_slow_downs += body.count.unwrap_or(1),
        other => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("unknown action '{other}' (approve, decline, expire, slow-down)"),
            );
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(emu): State<Arc<Emulator>>) -> Response {
    axum::Json(json!({ "faults": emu.dir.read().faults })).into_response()
}

/// Adds a fault rule (the seed's `[[faults]]` shape) → 201 with its index.
async fn add_fault(
    State(emu): State<Arc<Emulator>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let rule: crate::seed::FaultRule = match parse_json(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match crate::faults::FaultState::new(rule) {
        Ok(state) => {
            let mut dir = emu.dir.write();
            dir.faults.push(state);
            (
                StatusCode::CREATED,
                axum::Json(json!({ "index": dir.faults.len() - 1 })),
            )
                .into_response()
        }
        Err(why) => fail(StatusCode::BAD_REQUEST, why),
    }
}

async fn clear_faults(State(emu): State<Arc<Emulator>>) -> Response {
    emu.dir.write().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}
