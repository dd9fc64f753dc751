//! The Microsoft Graph calls used to register an application for a
//! connection ("Add a certificate to an app using Microsoft Graph",
//! <https://learn.microsoft.com/graph/applications-how-to-add-certificate>): applications with certificate
//! `keyCredentials`, `addKey`/`removeKey` for rotation, service principals.
//! Every call needs a delegated token of a tenant administrator.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::bearer::{self, BearerError};
use crate::state::{App, Directory, GRAPH_APP_ID, GRAPH_RESOURCE, KeyCredential, Tenant, User};
use crate::{Emulator, clock};

const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";
/// Audience of `addKey`/`removeKey` proof tokens (Azure AD Graph's app id).
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";

pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/v1.0/applications",
            post(create_application).get(list_applications),
        )
        .route(
            "/v1.0/applications/{id}",
            get(get_application)
                .patch(patch_application)
                .delete(delete_application),
        )
        .route("/v1.0/applications/{id}/addKey", post(add_key))
        .route("/v1.0/applications/{id}/removeKey", post(remove_key))
        .route(
            "/v1.0/servicePrincipals",
            post(create_service_principal).get(list_service_principals),
        )
}

/// A Graph error: `{"error":{"code","message","innerError":{...}}}`.
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn gerr(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
    GraphError {
        status,
        code,
        message: message.into(),
    }
}

fn bad_request(message: impl Into<String>) -> GraphError {
    gerr(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

fn not_found(id: &str) -> GraphError {
    gerr(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": clock::iso(OffsetDateTime::now_utc()),
                "request-id": Uuid::new_v4(),
                "client-request-id": Uuid::new_v4(),
            }
        }});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""));
        }
        resp
    }
}

type GraphResult = Result<Response, GraphError>;

/// Graph's 401 for a token it does not accept.
fn invalid_token(e: BearerError) -> GraphError {
    gerr(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        format!("Access token validation failure. {e}"),
    )
}

/// The administrator behind a request, and their tenant.
fn admin(emu: &Emulator, headers: &HeaderMap) -> Result<(User, Tenant), GraphError> {
    let claims = emu
        .bearer_claims(headers, &[GRAPH_RESOURCE, GRAPH_APP_ID])
        .map_err(invalid_token)?;
    let denied = || {
        gerr(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    };
    let dir = emu.dir.read();
    let scp = claims
        .get("scp")
        .and_then(Value::as_str)
        .ok_or_else(denied)?;
    let user = claims
        .get("oid")
        .and_then(Value::as_str)
        .and_then(|oid| dir.user(oid))
        .cloned()
        .ok_or_else(denied)?;
    // Graph serves the directory that issued the token: a token from
    // another tenant never reaches this user's tenant.
    if bearer::issuing_tenant(&claims).map_err(invalid_token)? != user.tenant_id {
        return Err(invalid_token(BearerError::WrongTenant));
    }
    let allowed = scp
        .split(' ')
        .any(|s| s == "Application.ReadWrite.All" || s == "Directory.AccessAsUser.All");
    if !user.admin || !allowed {
        return Err(denied());
    }
    let tenant = dir
        .tenant_by_id(user.tenant_id)
        .cloned()
        .ok_or_else(denied)?;
    Ok((user, tenant))
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, GraphError> {
    let bytes = body.map_err(|r| {
        let status = r.status();
        gerr(
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            "Request_BadRequest",
            r.body_text(),
        )
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("The request body must be a JSON object.")),
        Err(e) => Err(bad_request(format!(
            "Unable to read JSON request payload: {e}"
        ))),
    }
}

fn key_json(k: &KeyCredential, with_key: bool) -> Value {
    json!({
        "customKeyIdentifier": STANDARD.encode(k.sha1),
        "displayName": k.display_name,
        "endDateTime": clock::iso(k.end),
        "key": if with_key { json!(STANDARD.encode(&k.cert_der)) } else { Value::Null },
        "keyId": k.key_id,
        "startDateTime": clock::iso(k.start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

fn app_json(app: &App, tenant: &Tenant, with_keys: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(app.object_id));
    m.insert("appId".into(), json!(app.app_id));
    m.insert("displayName".into(), json!(app.display_name));
    m.insert("createdDateTime".into(), json!(clock::iso(app.created)));
    m.insert("deletedDateTime".into(), Value::Null);
    m.insert("signInAudience".into(), json!("AzureADMyOrg"));
    m.insert("publisherDomain".into(), json!(tenant.domains.last()));
    m.insert("isFallbackPublicClient".into(), json!(app.public_client));
    m.insert("passwordCredentials".into(), json!([]));
    m.insert("requiredResourceAccess".into(), json!([]));
    for (k, v) in &app.graph_extra {
        m.insert(k.clone(), v.clone());
    }
    m.insert(
        "keyCredentials".into(),
        Value::Array(app.keys.iter().map(|k| key_json(k, with_keys)).collect()),
    );
    m
}

fn entity(kind: &str, mut m: Map<String, Value>) -> Map<String, Value> {
    m.insert(
        "@odata.context".into(),
        json!(format!("{CONTEXT}#{kind}/$entity")),
    );
    m
}

/// Parses one `keyCredential`; `existing` lets a PATCH keep a key by `keyId` alone.
fn parse_key_credential(
    v: &Value,
    existing: &[KeyCredential],
) -> Result<KeyCredential, GraphError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad_request("A keyCredential must be an object."))?;
    let key_id = match obj.get("keyId") {
        Some(Value::String(s)) => {
            Some(Uuid::parse_str(s).map_err(|_| bad_request(format!("Invalid keyId '{s}'.")))?)
        }
        _ => None,
    };
    let key_b64 = obj.get("key").and_then(Value::as_str);
    if key_b64.is_none()
        && let Some(kept) = key_id.and_then(|id| existing.iter().find(|k| k.key_id == id))
    {
        return Ok(kept.clone());
    }
    check_type_and_usage(obj)?;
    let der = key_b64
        .and_then(|k| {
            STANDARD
                .decode(k.split_whitespace().collect::<String>())
                .ok()
        })
        .ok_or_else(|| {
            invalid_key("Key credential 'key' must be the base64 DER of an X.509 certificate.")
        })?;
    let display = obj
        .get("displayName")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(90).collect());
    let mut kc = KeyCredential::from_certificate(&der, display)
        .map_err(|e| invalid_key(format!("Invalid certificate: {e}")))?;
    set_validity(&mut kc, obj)?;
    if let Some(id) = key_id {
        kc.key_id = id;
    }
    Ok(kc)
}

fn invalid_key(message: impl Into<String>) -> GraphError {
    gerr(
        StatusCode::BAD_REQUEST,
        "KeyCredentialsInvalidValue",
        message,
    )
}

/// A key credential must be an `AsymmetricX509Cert` for `Verify`.
fn check_type_and_usage(obj: &Map<String, Value>) -> Result<(), GraphError> {
    match obj.get("type").and_then(Value::as_str) {
        Some("AsymmetricX509Cert") => {}
        Some(other) => {
            return Err(invalid_key(format!(
                "Key credential type '{other}' is not supported; use AsymmetricX509Cert."
            )));
        }
        None => {
            return Err(invalid_key("Key credential type is required."));
        }
    }
    if obj.get("usage").and_then(Value::as_str) != Some("Verify") {
        return Err(invalid_key(
            "Key credential usage must be 'Verify' for a certificate.",
        ));
    }
    Ok(())
}

/// Applies `startDateTime`/`endDateTime`, which must lie within a day of
/// the certificate's own validity, the end after the start.
fn set_validity(kc: &mut KeyCredential, obj: &Map<String, Value>) -> Result<(), GraphError> {
    let date = |name: &str| -> Result<Option<OffsetDateTime>, GraphError> {
        match obj.get(name).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(Some)
                .map_err(|_| bad_request(format!("Invalid {name} '{s}'."))),
        }
    };
    let (cert_start, cert_end) = (kc.start, kc.end);
    if let Some(s) = date("startDateTime")? {
        kc.start = s;
    }
    if let Some(e) = date("endDateTime")? {
        kc.end = e;
    }
    if kc.end <= kc.start
        || kc.end > cert_end + time::Duration::days(1)
        || kc.start < cert_start - time::Duration::days(1)
    {
        return Err(gerr(
            StatusCode::BAD_REQUEST,
            "KeyCredentialsInvalidEndDate",
            "Key credential end date is invalid.",
        ));
    }
    Ok(())
}

fn parse_key_credentials(
    v: &Value,
    existing: &[KeyCredential],
) -> Result<Vec<KeyCredential>, GraphError> {
    let list = v
        .as_array()
        .ok_or_else(|| bad_request("keyCredentials must be an array."))?;
    let keys = list
        .iter()
        .map(|k| parse_key_credential(k, existing))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, k) in keys.iter().enumerate() {
        if keys[..i]
            .iter()
            .any(|o| o.sha1 == k.sha1 || o.key_id == k.key_id)
        {
            return Err(invalid_key("Duplicate key credential."));
        }
    }
    Ok(keys)
}

/// Properties stored as given; everything else is rejected like Graph does.
const EXTRA_PROPS: &[&str] = &[
    "signInAudience",
    "requiredResourceAccess",
    "web",
    "publicClient",
    "spa",
    "tags",
    "notes",
    "description",
    "identifierUris",
    "api",
    "info",
];

fn apply_properties(app: &mut App, body: &Map<String, Value>) -> Result<(), GraphError> {
    for (k, v) in body {
        match k.as_str() {
            "displayName" => {
                app.display_name = v
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| bad_request("displayName must be a non-empty string."))?
                    .to_string();
            }
            "keyCredentials" => app.keys = parse_key_credentials(v, &app.keys)?,
            "isFallbackPublicClient" => {
                app.public_client = v
                    .as_bool()
                    .ok_or_else(|| bad_request("isFallbackPublicClient must be a boolean."))?
            }
            "passwordCredentials" if v.as_array().is_some_and(Vec::is_empty) => {}
            k if EXTRA_PROPS.contains(&k) => {
                app.graph_extra.insert(k.to_string(), v.clone());
            }
            other if other.starts_with('@') => {}
            other => {
                return Err(bad_request(format!(
                    "Property '{other}' does not exist on type 'microsoft.graph.application'."
                )));
            }
        }
    }
    Ok(())
}

fn find_app<'d>(dir: &'d Directory, tenant: &Tenant, id: &str) -> Result<&'d App, GraphError> {
    let oid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    dir.apps
        .iter()
        .find(|a| a.tenant_id == tenant.id && a.object_id == oid)
        .ok_or_else(|| not_found(id))
}

fn created(location: String, body: Map<String, Value>) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(Value::Object(body))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn create_application(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let body = json_body(body)?;
    if body
        .get("displayName")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(bad_request("Property 'displayName' is required."));
    }
    let mut app = App {
        object_id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        tenant_id: tenant.id,
        display_name: String::new(),
        public_client: false,
        keys: Vec::new(),
        service_principal: None,
        created: emu.now(),
        graph_extra: Map::new(),
    };
    apply_properties(&mut app, &body)?;
    let out = entity("applications", app_json(&app, &tenant, false));
    let location = format!(
        "https://graph.microsoft.com/v2/{}/directoryObjects/{}/Microsoft.DirectoryServices.Application",
        tenant.id, app.object_id
    );
    emu.dir.write().apps.push(app);
    emu.persist();
    Ok(created(location, out))
}

async fn list_applications(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let dir = emu.dir.read();
    let rows = filtered(
        &q,
        dir.apps
            .iter()
            .filter(|a| a.tenant_id == tenant.id)
            .map(|a| app_json(a, &tenant, false)),
    )?;
    Ok(
        axum::Json(json!({"@odata.context": format!("{CONTEXT}#applications"), "value": rows}))
            .into_response(),
    )
}

/// Applies `$filter` (e.g. `appId eq '...'`) to Graph collections.
fn filtered(
    q: &[(String, String)],
    rows: impl Iterator<Item = Map<String, Value>>,
) -> Result<Vec<Value>, GraphError> {
    let filter = q
        .iter()
        .find(|(k, _)| k == "$filter")
        .map(|(_, f)| crate::odata::filter::parse(f))
        .transpose()
        .map_err(|e| {
            gerr(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Invalid filter clause: {e}"),
            )
        })?;
    let mut out = Vec::new();
    for r in rows {
        let v = Value::Object(r);
        let keep = match &filter {
            Some(f) => crate::odata::filter::eval(f, &v)
                .map_err(|e| gerr(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()))?,
            None => true,
        };
        if keep {
            out.push(v);
        }
    }
    Ok(out)
}

async fn get_application(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let dir = emu.dir.read();
    let app = find_app(&dir, &tenant, &id)?;
    // Graph returns certificate bytes only when keyCredentials is $selected.
    let select = q
        .iter()
        .find(|(k, _)| k == "$select")
        .map(|(_, v)| v.clone());
    let with_keys = select
        .as_deref()
        .is_some_and(|s| s.split(',').any(|p| p.trim() == "keyCredentials"));
    let mut m = app_json(app, &tenant, with_keys);
    if let Some(s) = select {
        let wanted: Vec<&str> = s.split(',').map(str::trim).collect();
        m.retain(|k, _| wanted.contains(&k.as_str()));
    }
    Ok(axum::Json(Value::Object(entity("applications", m))).into_response())
}

async fn patch_application(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let body = json_body(body)?;
    {
        let mut dir = emu.dir.write();
        let oid = find_app(&dir, &tenant, &id)?.object_id;
        let app = dir
            .apps
            .iter_mut()
            .find(|a| a.object_id == oid)
            .expect("found above");
        let mut updated = app.clone();
        apply_properties(&mut updated, &body)?;
        *app = updated;
    }
    emu.persist();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_application(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    {
        let mut dir = emu.dir.write();
        let oid = find_app(&dir, &tenant, &id)?.object_id;
        dir.apps.retain(|a| a.object_id != oid);
    }
    emu.persist();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Checks an `addKey`/`removeKey` proof: a JWT signed with one of the app's
/// current keys, `aud` = Azure AD Graph, `iss` = the application object id,
/// lifetime at most 10 minutes.
fn check_proof(app: &App, body: &Map<String, Value>, now: i64) -> Result<(), GraphError> {
    let invalid = |why: &str| {
        gerr(
            StatusCode::BAD_REQUEST,
            "Authentication_MissingOrMalformed",
            format!("Invalid proof: {why}"),
        )
    };
    let proof = body
        .get("proof")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("'proof' is required."))?;
    let signed = crate::entra::assertion::verify_signed(proof, &app.keys, now, 300)
        .map_err(|e| invalid(&e.message))?;
    let claim = |n: &str| signed.claims.get(n);
    if claim("aud").and_then(Value::as_str) != Some(PROOF_AUDIENCE) {
        return Err(invalid("aud must be 00000002-0000-0000-c000-000000000000."));
    }
    if !claim("iss")
        .and_then(Value::as_str)
        .is_some_and(|i| i.eq_ignore_ascii_case(&app.object_id.to_string()))
    {
        return Err(invalid("iss must be the application object id."));
    }
    let seconds = |n: &str| claim(n).and_then(crate::entra::assertion::seconds);
    let (Some(nbf), Some(exp)) = (seconds("nbf"), seconds("exp")) else {
        return Err(invalid("nbf and exp are required."));
    };
    if exp < now - 300 || nbf > now + 300 || exp - nbf > 600 {
        return Err(invalid(
            "the proof is expired or lives longer than 10 minutes.",
        ));
    }
    Ok(())
}

async fn add_key(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let body = json_body(body)?;
    let now = emu.now().unix_timestamp();
    let out = {
        let mut dir = emu.dir.write();
        let app = find_app(&dir, &tenant, &id)?.clone();
        check_proof(&app, &body, now)?;
        let kc = parse_key_credential(
            body.get("keyCredential")
                .ok_or_else(|| bad_request("'keyCredential' is required."))?,
            &[],
        )?;
        if app.keys.iter().any(|k| k.sha1 == kc.sha1) {
            return Err(invalid_key("The certificate is already registered."));
        }
        let out = key_json(&kc, false);
        let target = dir
            .apps
            .iter_mut()
            .find(|a| a.object_id == app.object_id)
            .expect("found above");
        target.keys.push(kc);
        out
    };
    emu.persist();
    let mut m = out.as_object().cloned().unwrap_or_default();
    m.insert(
        "@odata.context".into(),
        json!(format!("{CONTEXT}#microsoft.graph.keyCredential")),
    );
    Ok(axum::Json(Value::Object(m)).into_response())
}

async fn remove_key(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let body = json_body(body)?;
    let now = emu.now().unix_timestamp();
    {
        let mut dir = emu.dir.write();
        let app = find_app(&dir, &tenant, &id)?.clone();
        check_proof(&app, &body, now)?;
        let key_id = body
            .get("keyId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| bad_request("'keyId' must be a GUID."))?;
        if !app.keys.iter().any(|k| k.key_id == key_id) {
            return Err(not_found(&key_id.to_string()));
        }
        let target = dir
            .apps
            .iter_mut()
            .find(|a| a.object_id == app.object_id)
            .expect("found above");
        target.keys.retain(|k| k.key_id != key_id);
    }
    emu.persist();
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn sp_json(app: &App, tenant: &Tenant) -> Map<String, Value> {
    let v = json!({
        "id": app.service_principal,
        "appId": app.app_id,
        "displayName": app.display_name,
        "accountEnabled": true,
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": tenant.id,
        "servicePrincipalNames": [app.app_id],
        "signInAudience": "AzureADMyOrg",
    });
    v.as_object().cloned().unwrap_or_default()
}

async fn create_service_principal(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let body = json_body(body)?;
    let app_id = body
        .get("appId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Property 'appId' is required."))?
        .to_string();
    let out = {
        let mut dir = emu.dir.write();
        let parsed = Uuid::parse_str(&app_id).ok();
        let app = dir
            .apps
            .iter_mut()
            .find(|a| a.tenant_id == tenant.id && Some(a.app_id) == parsed)
            .ok_or_else(|| bad_request(format!("The appId '{app_id}' of the service principal does not reference a valid application object.")))?;
        if app.service_principal.is_some() {
            return Err(gerr(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created because the service principal name is already in use.",
            ));
        }
        app.service_principal = Some(Uuid::new_v4());
        let app = app.clone();
        entity("servicePrincipals", sp_json(&app, &tenant))
    };
    emu.persist();
    let location = format!(
        "https://graph.microsoft.com/v2/{}/directoryObjects/{}/Microsoft.DirectoryServices.ServicePrincipal",
        tenant.id,
        out["id"].as_str().unwrap_or_default()
    );
    Ok(created(location, out))
}

async fn list_service_principals(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> GraphResult {
    let (_, tenant) = admin(&emu, &headers)?;
    let dir = emu.dir.read();
    let rows = filtered(
        &q,
        dir.apps
            .iter()
            .filter(|a| a.tenant_id == tenant.id && a.service_principal.is_some())
            .map(|a| sp_json(a, &tenant)),
    )?;
    Ok(
        axum::Json(
            json!({"@odata.context": format!("{CONTEXT}#servicePrincipals"), "value": rows}),
        )
        .into_response(),
    )
}
