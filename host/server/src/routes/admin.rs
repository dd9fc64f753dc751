//! `/v1/admin/...`: the operator's API (admin key only) over the same store
//! and library calls as the `dvhost` command line: tenants, their API keys,
//! their connections (listed and tested), and generated table
//! integrations.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dvhost_dataverse::NewApiKey;
use dvhost_runtime::Operation;
use dvhost_store::{
    ApiKeyId, ApiKeyRight, ApiKeyRights, AuditOutcome, Name, NewApiKeyRecord, NewAuditEntry,
    Tenant, TenantId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, JsonBody, PathParams};
use crate::routes::plugins::{PluginSettings, PluginView, publish, time_text};
use crate::state::AppState;

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Its name (`/v1/tenants/{name}`).
    pub name: String,
    /// For people.
    pub display_name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Lower-case letters, digits, `-` and `_`, 1 to 63.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// For people; the name when absent.
    pub display_name: Option<String>,
}

/// An API key's record (never the key).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Its public id.
    pub id: String,
    /// What it allows.
    pub rights: Vec<String>,
    /// The operators' note.
    pub label: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

/// A key to mint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// `invoke`, `deploy`, `audit`; `["invoke"]` when absent.
    #[schema(schema_with = right_names)]
    pub rights: Option<Vec<String>>,
    /// Who or what uses it.
    pub label: Option<String>,
}

/// A minted key: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedKey {
    /// Its public id.
    pub id: String,
    /// The key itself (`dvk_<id>_<secret>`); it cannot be shown again.
    pub key: String,
    /// What it allows.
    pub rights: Vec<String>,
}

/// A connection (its public parts).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Its name.
    pub name: String,
    /// The Dataverse environment.
    pub environment_url: String,
    /// `automatic` or `manual`.
    pub mode: String,
    /// Its state.
    pub state: String,
    /// The Entra tenant.
    pub entra_tenant_id: Option<String>,
    /// The app registration.
    pub client_id: Option<String>,
}

/// A generated table integration to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntegration {
    /// Its name (a plugin name of the tenant).
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// The tenant's connection to use.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub connection: String,
    /// Table logical names, e.g. `["account", "contact"]`.
    #[schema(schema_with = table_names)]
    pub tables: Vec<String>,
    /// Operations to generate; all of `read`, `create`, `update`, `delete`
    /// when absent.
    #[schema(schema_with = operation_names)]
    pub operations: Option<Vec<Operation>>,
}

/// The schema of `NewKey::rights`: the rights `ApiKeyRight::parse` knows.
fn right_names() -> utoipa::openapi::Array {
    string_array(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["invoke", "deploy", "audit"])),
    )
}

/// The schema of `NewIntegration::tables`: at least one logical name.
fn table_names() -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z0-9_]{1,64}$")),
        )
        .min_items(Some(1))
        .build()
}

/// The schema of `NewIntegration::operations`.
fn operation_names() -> utoipa::openapi::Array {
    string_array(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["read", "create", "update", "delete"])),
    )
}

/// An array of `items`, or `null` (read as absent).
fn string_array(items: ObjectBuilder) -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(items)
        .build()
}

fn tenant_view(t: &Tenant) -> TenantView {
    TenantView {
        name: t.name.to_string(),
        display_name: t.display_name.clone(),
        created_at: time_text(t.created_at),
    }
}

fn json_body<T>(body: Result<JsonBody<T>, ApiError>) -> Result<T, ApiError> {
    body.map(|JsonBody(t)| t)
}

async fn admin_tenant(state: &AppState, caller: &Caller, name: &str) -> Result<Tenant, ApiError> {
    caller.require_admin()?;
    caller.tenant(state, name, ApiKeyRight::Deploy).await
}

async fn record(state: &AppState, tenant: Option<TenantId>, action: &str, detail: Value) {
    state
        .0
        .audit
        .record(NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant,
            plugin: None,
            actor: "admin".into(),
            action: action.into(),
            outcome: AuditOutcome::Success,
            request_id: None,
            detail,
        })
        .await;
}

/// Lists tenants.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin",
    responses(
        (status = 200, description = "Every tenant", body = Vec<TenantView>),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn tenants(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    caller.require_admin()?;
    let tenants = state.store().tenants().await?;
    Ok(Json(tenants.iter().map(tenant_view).collect()))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = NewTenant,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<NewTenant>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let new = json_body(body)?;
    let name = Name::parse(&new.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let display = new.display_name.unwrap_or_else(|| new.name.clone());
    let tenant = state.store().create_tenant(&name, &display).await?;
    state.forget_tenant(&name).await;
    record(
        &state,
        Some(tenant.id),
        "tenant.create",
        json!({"name": new.name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(tenant_view(&tenant))).into_response())
}

/// Deletes a tenant with its plugins, keys and connections.
#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant}", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn delete_tenant(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    // Not while one of its plugins is being deployed.
    let _one_at_a_time = state.0.deploys.lock().await;
    state.store().delete_tenant(tenant.id).await?;
    state.forget_tenant(&tenant.name).await;
    state.0.registry.forget_tenant(tenant.id);
    record(
        &state,
        Some(tenant.id),
        "tenant.delete",
        json!({"name": tenant.name.as_str()}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a tenant's API keys (never the keys).
#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}/keys", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The keys' records", body = Vec<KeyView>),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn keys(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let keys = state.store().api_keys(tenant.id).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyView {
                id: k.id.to_string(),
                rights: rights_list(&k.rights),
                label: k.label,
                created_at: time_text(k.created_at),
                revoked_at: k.revoked_at.map(time_text),
            })
            .collect(),
    ))
}

fn rights_list(rights: &ApiKeyRights) -> Vec<String> {
    rights
        .to_text()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// Mints an API key for a tenant; the answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/keys", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, shown once", body = MintedKey),
        (status = 400, description = "Unknown right", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
    body: Result<JsonBody<NewKey>, ApiError>,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let new = json_body(body)?;
    let rights = new
        .rights
        .unwrap_or_else(|| vec!["invoke".into()])
        .iter()
        .map(|r| ApiKeyRight::parse(r).map_err(|e| ApiError::bad_request(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let key = NewApiKey::mint();
    let record = state
        .store()
        .add_api_key(NewApiKeyRecord {
            id: ApiKeyId::parse(key.id()).map_err(|e| ApiError::internal("minting a key", e))?,
            tenant: tenant.id,
            hash: key.hash(),
            rights: ApiKeyRights::of(&rights),
            label: new.label.unwrap_or_default(),
        })
        .await?;
    record_key(&state, &tenant, &record.id, "api_key.create").await;
    // The key goes from the secret-owning crate straight into the body;
    // its alphabet (`dvk_`, letters, digits, `-`, `_`) needs no escaping.
    let rights_json = serde_json::to_string(&rights_list(&record.rights)).unwrap_or_default();
    let mut body = format!(
        "{{\"id\":\"{}\",\"rights\":{rights_json},\"key\":\"",
        record.id
    )
    .into_bytes();
    key.show_once(&mut body)
        .map_err(|e| ApiError::internal("showing a key", e))?;
    body.extend_from_slice(b"\"}");
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn record_key(state: &AppState, tenant: &Tenant, id: &ApiKeyId, action: &str) {
    record(state, Some(tenant.id), action, json!({"id": id.as_str()})).await;
}

/// Revokes a tenant's API key.
#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant}/keys/{id}", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "The key's public id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or live key", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    PathParams((tenant, id)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let none = || ApiError::not_found(format!("the tenant has no live key {id:?}"));
    let key = ApiKeyId::parse(&id).map_err(|_| none())?;
    if !state.store().revoke_api_key(tenant.id, &key).await? {
        return Err(none());
    }
    state.forget_key(&key).await;
    record_key(&state, &tenant, &key, "api_key.revoke").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a tenant's connections.
#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}/connections", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The connections", body = Vec<ConnectionView>),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn connections(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
) -> Result<Json<Vec<ConnectionView>>, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let rows = state.store().connections(tenant.id, false).await?;
    Ok(Json(
        rows.into_iter()
            .map(|c| ConnectionView {
                name: c.name.to_string(),
                environment_url: c.environment_url,
                mode: c.mode.as_str().into(),
                state: c.state.as_str().into(),
                entra_tenant_id: c.entra_tenant_id.map(|u| u.to_string()),
                client_id: c.client_id.map(|u| u.to_string()),
            })
            .collect(),
    ))
}

/// Tests a connection end to end (a token, then WhoAmI).
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/connections/{connection}/test", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name"), ("connection" = String, Path, description = "Connection name")),
    responses(
        (status = 200, description = "It works; who it acts as", body = Object),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "The connection is not active", body = ErrorBody),
        (status = 502, description = "The test failed; the message says why", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn test_connection(
    State(state): State<AppState>,
    PathParams((tenant, connection)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let none = || ApiError::not_found(format!("there is no connection named {connection:?}"));
    let name = Name::parse(&connection).map_err(|_| none())?;
    let row = state
        .store()
        .connection_by_name(tenant.id, &name)
        .await?
        .ok_or_else(none)?;
    if row.state != dvhost_store::ConnectionState::Active {
        return Err(ApiError::conflict(format!(
            "connection {connection:?} is {}: only an active connection can be tested (complete a manual one first)",
            row.state.as_str()
        )));
    }
    let result = state.0.connections.test(&row).await;
    let ok = result.is_ok();
    record(
        &state,
        Some(tenant.id),
        "connection.test",
        json!({"name": connection, "ok": ok}),
    )
    .await;
    result
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "connection_failed", e.0))
}

/// Creates (or changes) a generated table integration: a plugin running
/// dvhost's table-actions component with `<table>.create`, `.retrieve`,
/// `.update`, `.delete` and `.list` actions for exactly the given tables,
/// their schemas built from the connection's live metadata.
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant}/integrations", tag = "admin",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = NewIntegration,
    responses(
        (status = 201, description = "Served, with its actions", body = PluginView),
        (status = 400, description = "Invalid tables or operations", body = ErrorBody),
        (status = 401, description = "No or unknown key", body = ErrorBody),
        (status = 403, description = "Not the admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or connection", body = ErrorBody),
        (status = 409, description = "The named connection is not active", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 503, description = "The table-actions component is not available, or the connection cannot be used", body = ErrorBody),
    ),
    security(("admin_key" = [])))]
pub(crate) async fn create_integration(
    State(state): State<AppState>,
    PathParams(tenant): PathParams<String>,
    caller: Caller,
    body: Result<JsonBody<NewIntegration>, ApiError>,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(&state, &caller, &tenant).await?;
    let new = json_body(body)?;
    let name = Name::parse(&new.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if new.tables.is_empty() {
        return Err(ApiError::bad_request("name at least one table"));
    }
    Name::parse(&new.connection)
        .map_err(|e| ApiError::bad_request(format!("an integration needs a connection: {e}")))?;
    let operations = new.operations.unwrap_or_else(|| {
        vec![
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Delete,
        ]
    });
    let mut grants = serde_json::Map::new();
    for table in &new.tables {
        let valid = !table.is_empty()
            && table.len() <= 64
            && table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ApiError::bad_request(format!(
                "{table:?} is not a table logical name (lower-case letters, digits and '_')"
            )));
        }
        grants.insert(table.clone(), json!(operations));
    }
    let component = state.0.tables_component.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "integrations_unavailable",
            "this server has no table-actions component configured (integrations.component)",
        )
    })?;
    let compiled = state.0.registry.compile(&component).await?;
    let settings = PluginSettings {
        grants: Some(Value::Object(grants)),
        limits: None,
        connection: Some(new.connection.clone()),
    };
    let view = publish(
        &state,
        &caller,
        &tenant,
        &name,
        Some(component.to_vec()),
        settings,
        compiled,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}
