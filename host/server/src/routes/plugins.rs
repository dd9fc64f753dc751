//! A tenant's plugins: the catalogue (plugins, versions, actions with their
//! schemas, like Dataverse's Custom API catalogue), deploys, settings,
//! rollbacks and deletion.
//!
//! A deploy compiles and describes the new version before anything is
//! switched: a component that does not load is refused and the served
//! version stays. The switch is one store update followed by the swap in
//! memory; calls already running finish on the version they started with.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dvhost_runtime::Plugin as Compiled;
use dvhost_store::{
    ApiKeyRight, AuditOutcome, ConnectionId, Name, NewAuditEntry, NewPluginVersion, Plugin,
    PluginVersion, Tenant,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, JsonBody, PathParams};
use crate::registry::Settings;
use crate::state::AppState;

/// A plugin as the catalogue shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// Its name.
    pub name: String,
    /// The connection its Dataverse calls use.
    pub connection: Option<String>,
    /// The version served.
    pub active_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// The active version's actions (in the single-plugin view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionView>>,
}

/// One version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// Its number.
    pub version: u32,
    /// SHA-256 of the component.
    pub component_sha256: String,
    /// Size of the component.
    pub component_bytes: u64,
    /// Tables × operations granted.
    pub grants: Value,
    /// Limits.
    pub limits: Value,
    /// When it was published (RFC 3339).
    pub created_at: String,
}

/// One action with its schemas.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    /// Its name (`/actions/{name}`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output.
    pub output_schema: Value,
}

/// Grants, limits and connection of a plugin. Absent fields keep their
/// current value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Tables × operations, e.g. `{"contact": ["read", "create"]}`.
    pub grants: Option<Value>,
    /// Limits, e.g. `{"deadline_ms": 2000}`.
    pub limits: Option<Value>,
    /// The tenant's connection to use (its name), or `""` to unbind.
    pub connection: Option<String>,
}

/// Which version to serve again.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version; the one before the active version when absent.
    #[serde(default, deserialize_with = "whole_number")]
    pub version: Option<u32>,
}

/// A version number written as any JSON number with an integral value
/// (`3` or `3.0`, both integers to JSON Schema).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a version number")))
}

pub(crate) fn time_text(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn version_view(v: &PluginVersion) -> VersionView {
    VersionView {
        version: v.version,
        component_sha256: v.component.to_hex(),
        component_bytes: v.component_size,
        grants: v.grants.clone(),
        limits: v.limits.clone(),
        created_at: time_text(v.created_at),
    }
}

pub(crate) fn action_views(compiled: &Compiled) -> Vec<ActionView> {
    compiled
        .actions()
        .iter()
        .map(|a| ActionView {
            name: a.name.clone(),
            description: a.description.clone(),
            input_schema: a.input_schema.clone(),
            output_schema: a.output_schema.clone(),
        })
        .collect()
}

async fn view(
    state: &AppState,
    plugin: &Plugin,
    actions: Option<Vec<ActionView>>,
) -> Result<PluginView, ApiError> {
    let connection = match plugin.connection {
        Some(id) => state
            .store()
            .connection(id)
            .await?
            .map(|c| c.name.to_string()),
        None => None,
    };
    let versions = state.store().plugin_versions(plugin.id).await?;
    Ok(PluginView {
        name: plugin.name.to_string(),
        connection,
        active_version: plugin.active_version,
        versions: versions.iter().map(version_view).collect(),
        actions,
    })
}

pub(crate) fn plugin_name(name: &str) -> Result<Name, ApiError> {
    Name::parse(name).map_err(|_| ApiError::not_found(format!("there is no plugin named {name:?}")))
}

async fn existing(state: &AppState, tenant: &Tenant, name: &str) -> Result<Plugin, ApiError> {
    let name = plugin_name(name)?;
    state
        .store()
        .plugin_by_name(tenant.id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no plugin named {name:?}")))
}

/// Lists a tenant's plugins with their versions.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/plugins", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant's plugins", body = Vec<PluginView>),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
) -> Result<Json<Vec<PluginView>>, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Invoke).await?;
    let mut views = Vec::new();
    for plugin in state.store().plugins(tenant.id).await? {
        views.push(view(&state, &plugin, None).await?);
    }
    Ok(Json(views))
}

/// One plugin with its versions and the active version's actions.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("plugin" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "The plugin", body = PluginView),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 404, description = "No such tenant or plugin", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    PathParams((tenant, plugin)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<PluginView>, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Invoke).await?;
    let row = existing(&state, &tenant, &plugin).await?;
    let actions = match row.active_version {
        Some(_) => Some(action_views(
            &state
                .0
                .registry
                .deployed(tenant.id, &row.name)
                .await?
                .compiled,
        )),
        None => None,
    };
    Ok(Json(view(&state, &row, actions).await?))
}

/// A WebAssembly component's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body `Upload` reads
pub(crate) struct ComponentBytes(Vec<u8>);

/// A deploy as a form: the component and, optionally, its settings.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form `Upload` reads
pub(crate) struct DeployForm {
    /// The component's bytes.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// Grants, limits and connection as JSON (see PluginSettings).
    settings: Option<String>,
}

/// A deploy's body: the component alone, or a form with the component and
/// settings.
pub(crate) struct Upload {
    component: Bytes,
    settings: PluginSettings,
}

impl FromRequest<AppState> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Upload, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let limit = state.config().component_limit_bytes;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a component may have at most {limit} bytes"),
            )
        };
        if !is_form {
            let component = Bytes::from_request(req, state).await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })?;
            return Ok(Upload {
                component,
                settings: PluginSettings::default(),
            });
        }
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let (mut component, mut settings) = (None, PluginSettings::default());
        let bad = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(format!("the form is malformed: {}", e.body_text()))
            }
        };
        while let Some(field) = form.next_field().await.map_err(bad)? {
            match field.name() {
                Some("component") => component = Some(field.bytes().await.map_err(bad)?),
                Some("settings") => {
                    let text = field.bytes().await.map_err(bad)?;
                    settings = serde_json::from_slice(&text).map_err(|e| {
                        ApiError::bad_request(format!("the settings part is not valid: {e}"))
                    })?;
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unexpected form part {:?}: send `component` and optionally `settings`",
                        other.unwrap_or("")
                    )));
                }
            }
        }
        let component =
            component.ok_or_else(|| ApiError::bad_request("the form has no `component` part"))?;
        Ok(Upload {
            component,
            settings,
        })
    }
}

/// Deploys a new version of a plugin (creating the plugin on first deploy)
/// and serves it once it has loaded.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("plugin" = String, Path, description = "Plugin name")),
    request_body(
        description = "The component's bytes (`application/wasm`; any type but a form is read as the bytes), or a `multipart/form-data` form with a `component` part and an optional `settings` part (JSON, see PluginSettings)",
        content(
            (ComponentBytes = "application/wasm"),
            (ComponentBytes = "application/octet-stream"),
            (DeployForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "The new version is served", body = PluginView),
        (status = 400, description = "The component or the settings are invalid", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the deploy right", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "The named connection is not active", body = ErrorBody),
        (status = 413, description = "The component is too large", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn deploy(
    State(state): State<AppState>,
    PathParams((tenant, plugin)): PathParams<(String, String)>,
    caller: Caller,
    upload: Upload,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Deploy).await?;
    let name = Name::parse(&plugin).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let compiled = state.0.registry.compile(&upload.component).await?;
    let view = publish(
        &state,
        &caller,
        &tenant,
        &name,
        Some(upload.component.to_vec()),
        upload.settings,
        compiled,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Changes a plugin's grants, limits or connection: publishes a new
/// version of the same component with them.
#[utoipa::path(
    patch, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("plugin" = String, Path, description = "Plugin name")),
    request_body = PluginSettings,
    responses(
        (status = 200, description = "The new version is served", body = PluginView),
        (status = 400, description = "The settings are invalid", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the deploy right", body = ErrorBody),
        (status = 404, description = "No such tenant, plugin or connection", body = ErrorBody),
        (status = 409, description = "The named connection is not active", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn configure(
    State(state): State<AppState>,
    PathParams((tenant, plugin)): PathParams<(String, String)>,
    caller: Caller,
    settings: Result<JsonBody<PluginSettings>, ApiError>,
) -> Result<Json<PluginView>, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Deploy).await?;
    let JsonBody(settings) = settings?;
    let row = existing(&state, &tenant, &plugin).await?;
    let current = state.0.registry.deployed(tenant.id, &row.name).await?;
    let compiled = current.compiled.clone();
    let view = publish(
        &state, &caller, &tenant, &row.name, None, settings, compiled,
    )
    .await?;
    Ok(Json(view))
}

/// The connection a deploy names: `None` to keep the current one,
/// `Some(None)` to unbind (`""`), `Some(Some(id))` for an active
/// connection of the tenant.
async fn bound_connection(
    state: &AppState,
    tenant: &Tenant,
    named: Option<String>,
) -> Result<Option<Option<ConnectionId>>, ApiError> {
    let store = state.store();
    Ok(match named {
        None => None,
        Some(connection) if connection.is_empty() => Some(None),
        Some(connection) => {
            let cname =
                Name::parse(&connection).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let found = store
                .connection_by_name(tenant.id, &cname)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("there is no connection named {connection:?}"))
                })?;
            if found.state != dvhost_store::ConnectionState::Active {
                return Err(ApiError::conflict(format!(
                    "connection {connection:?} is {}, not active: complete or test it first",
                    found.state.as_str()
                )));
            }
            Some(Some(found.id))
        }
    })
}

/// Publishes and serves a version: `component` (or the active version's
/// component), with `settings` over the active version's.
pub(crate) async fn publish(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    name: &Name,
    component: Option<Vec<u8>>,
    settings: PluginSettings,
    compiled: Compiled,
) -> Result<PluginView, ApiError> {
    let store = state.store();
    // The connection is resolved before anything is written, so a deploy
    // naming an unknown connection leaves no plugin behind.
    let connection = bound_connection(state, tenant, settings.connection).await?;
    let _one_at_a_time = state.0.deploys.lock().await;
    let existing = store.plugin_by_name(tenant.id, name).await?;
    let versions = match &existing {
        Some(row) => store.plugin_versions(row.id).await?,
        None => Vec::new(),
    };
    let active = existing.as_ref().and_then(|row| {
        versions
            .iter()
            .find(|v| Some(v.version) == row.active_version)
    });
    let grants = settings
        .grants
        .or_else(|| active.map(|v| v.grants.clone()))
        .unwrap_or_else(|| json!({}));
    let limits = settings
        .limits
        .or_else(|| active.map(|v| v.limits.clone()))
        .unwrap_or_else(|| json!({}));
    Settings::parse(&grants, &limits)?;
    let mut row = match existing {
        Some(row) => row,
        None => store.create_plugin(tenant.id, name).await?,
    };
    if let Some(id) = connection {
        row = store.bind_plugin(row.id, id).await?;
    }
    let component = match (component, active) {
        (Some(bytes), _) => bytes,
        // Gone only when the plugin or its tenant was deleted meanwhile.
        (None, Some(v)) => store
            .component(&v.component)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} was deleted meanwhile")))?,
        (None, None) => return Err(ApiError::not_found("the plugin has no version to change")),
    };
    let version = store
        .publish_version(
            row.id,
            NewPluginVersion {
                component,
                grants,
                limits,
            },
            false,
        )
        .await?;
    let detail =
        json!({"version": version.version, "component_sha256": version.component.to_hex()});
    activate(
        state,
        caller,
        row,
        version,
        &compiled,
        "plugin.deploy",
        detail,
    )
    .await
}

/// Serves `version` of `row`: describes it under its settings (a version
/// that cannot be described is not served; the failure is audited), marks
/// it active in the store, swaps it into the registry, and audits `action`
/// with `detail`.
async fn activate(
    state: &AppState,
    caller: &Caller,
    mut row: Plugin,
    version: PluginVersion,
    compiled: &Compiled,
    action: &str,
    mut detail: Value,
) -> Result<PluginView, ApiError> {
    let number = version.version;
    row.active_version = Some(number);
    let deployed = match state
        .0
        .registry
        .prepare(row.clone(), version, compiled, &caller.actor())
        .await
    {
        Ok(d) => d,
        Err(e) => {
            detail["error"] = json!(e.message);
            audit(state, caller, &row, action, AuditOutcome::Failure, detail).await;
            return Err(e);
        }
    };
    let row = state.store().activate_version(row.id, number).await?;
    state.0.registry.install(deployed.clone()).await;
    audit(state, caller, &row, action, AuditOutcome::Success, detail).await;
    view(state, &row, Some(action_views(&deployed.compiled))).await
}

/// Serves an earlier version again.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/plugins/{plugin}/rollback", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("plugin" = String, Path, description = "Plugin name")),
    request_body = Rollback,
    responses(
        (status = 200, description = "The version is served", body = PluginView),
        (status = 400, description = "The body is not a valid rollback", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the deploy right", body = ErrorBody),
        (status = 404, description = "No such tenant, plugin or version", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    PathParams((tenant, plugin)): PathParams<(String, String)>,
    caller: Caller,
    body: Result<Option<JsonBody<Rollback>>, ApiError>,
) -> Result<Json<PluginView>, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Deploy).await?;
    let body = body?;
    let store = state.store();
    let _one_at_a_time = state.0.deploys.lock().await;
    let row = existing(&state, &tenant, &plugin).await?;
    let versions = store.plugin_versions(row.id).await?;
    let wanted = match body.and_then(|JsonBody(b)| b.version) {
        Some(v) => v,
        None => {
            let active = row.active_version.unwrap_or(0);
            versions
                .iter()
                .map(|v| v.version)
                .filter(|v| *v < active)
                .max()
                .ok_or_else(|| ApiError::not_found("there is no earlier version to roll back to"))?
        }
    };
    let version = versions
        .into_iter()
        .find(|v| v.version == wanted)
        .ok_or_else(|| ApiError::not_found(format!("the plugin has no version {wanted}")))?;
    let bytes = store
        .component(&version.component)
        .await?
        .ok_or_else(|| ApiError::internal("rolling back", "the component is missing"))?;
    let compiled = state.0.registry.compile(&bytes).await?;
    let detail = json!({"version": wanted});
    let view = activate(
        &state,
        &caller,
        row,
        version,
        &compiled,
        "plugin.rollback",
        detail,
    )
    .await?;
    Ok(Json(view))
}

/// Deletes a plugin with all its versions.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("plugin" = String, Path, description = "Plugin name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "The key lacks the deploy right", body = ErrorBody),
        (status = 404, description = "No such tenant or plugin", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    PathParams((tenant, plugin)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let tenant = caller.tenant(&state, &tenant, ApiKeyRight::Deploy).await?;
    let _one_at_a_time = state.0.deploys.lock().await;
    let row = existing(&state, &tenant, &plugin).await?;
    state.store().delete_plugin(row.id).await?;
    state.0.registry.forget(tenant.id, &row.name).await;
    audit(
        &state,
        &caller,
        &row,
        "plugin.delete",
        AuditOutcome::Success,
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn audit(
    state: &AppState,
    caller: &Caller,
    plugin: &Plugin,
    action: &str,
    outcome: AuditOutcome,
    mut detail: Value,
) {
    detail["plugin"] = json!(plugin.name.as_str());
    state
        .0
        .audit
        .record(NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant: Some(plugin.tenant),
            plugin: Some(plugin.id),
            actor: caller.actor(),
            action: action.into(),
            outcome,
            request_id: None,
            detail,
        })
        .await;
}
