//! Global Discovery Service: `GET /api/discovery/v2.0/Instances` and its
//! key forms ("Discover the URL for your organization",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/discover-url-organization-web-api>).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::bearer::{self, BearerError};
use crate::odata::filter::Expr;
use crate::state::{DISCOVERY_RESOURCE, Environment, User};
use crate::{Emulator, odata};

pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new().route("/api/discovery/v2.0/{resource}", get(instances))
}

const CONTEXT: &str = "https://globaldisco.crm.dynamics.com/api/discovery/v2.0/$metadata#Instances";

fn instance(env: &Environment, user: &User) -> Map<String, Value> {
    let v = json!({
        "Id": env.id,
        "UniqueName": env.unique_name,
        "UrlName": env.unique_name,
        "FriendlyName": env.friendly_name,
        "State": 0,
        "Version": "9.2.25103.00193",
        "Url": env.url,
        "ApiUrl": env.url,
        "LastUpdated": "2025-01-01T00:00:00Z",
        "EnvironmentId": env.environment_id,
        "TenantId": env.tenant_id,
        "Region": env.region,
        "Purpose": "",
        "IsUserSysAdmin": env.admins.contains(&user.id),
        "OrganizationType": 0,
        "TrialExpirationDate": null,
        "DatacenterId": Uuid::nil(),
        "DatacenterName": null,
        "StatusMessage": 0,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! object"),
    }
}

/// Which instances a path segment asks for.
enum Key {
    All,
    Id(Uuid),
    UniqueName(String),
}

fn parse_key(segment: &str) -> Option<Key> {
    if segment == "Instances" {
        return Some(Key::All);
    }
    let inner = segment.strip_prefix("Instances(")?.strip_suffix(')')?;
    if let Some(v) = inner.strip_prefix("UniqueName=") {
        let v = v.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
        return Some(Key::UniqueName(v));
    }
    Uuid::parse_str(inner).ok().map(Key::Id)
}

async fn instances(
    State(emu): State<Arc<Emulator>>,
    Path(resource): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let claims = match emu.bearer_claims(&headers, &[DISCOVERY_RESOURCE]) {
        Ok(c) => c,
        Err(e) => return unauthorized(&emu, &e.to_string()),
    };
    let Some(key) = parse_key(&resource) else {
        return odata::error(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{resource}'."),
        );
    };
    let dir = emu.dir.read();
    let user = claims
        .get("oid")
        .and_then(Value::as_str)
        .and_then(|oid| dir.user(oid))
        .cloned();
    // Discovery lists what the token's own tenant knows about its user.
    if user
        .as_ref()
        .is_some_and(|u| bearer::issuing_tenant(&claims).ok() != Some(u.tenant_id))
    {
        return unauthorized(&emu, &BearerError::WrongTenant.to_string());
    }
    let Some(user) = user.filter(|_| claims.get("scp").is_some()) else {
        return odata::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Global Discovery lists the environments of a signed-in user; app-only tokens are not accepted.",
        );
    };
    let (filter, select) = match query_options(&query) {
        Ok(o) => o,
        Err(message) => return odata::error(StatusCode::BAD_REQUEST, "0x0", message),
    };
    let visible = dir
        .environments
        .iter()
        .filter(|e| dir.user_can_reach(e, &user))
        .filter(|e| match &key {
            Key::All => true,
            Key::Id(id) => e.id == *id,
            Key::UniqueName(n) => e.unique_name.eq_ignore_ascii_case(n),
        });
    let mut rows = Vec::new();
    for env in visible {
        match row(instance(env, &user), filter.as_ref(), select) {
            Ok(Some(r)) => rows.push(Value::Object(r)),
            Ok(None) => {}
            Err(message) => return odata::error(StatusCode::BAD_REQUEST, "0x0", message),
        }
    }
    match key {
        Key::All => odata::ok(json!({ "@odata.context": CONTEXT, "value": rows })),
        _ => match rows.into_iter().next() {
            Some(Value::Object(mut one)) => {
                one.insert("@odata.context".into(), json!(format!("{CONTEXT}/$entity")));
                odata::ok(Value::Object(one))
            }
            _ => odata::error(
                StatusCode::NOT_FOUND,
                "0x80040217",
                "Instance does not exist or the user cannot access it.",
            ),
        }
        .into_response(),
    }
}

/// 401 with the challenge that names the authority and the resource.
fn unauthorized(emu: &Emulator, message: &str) -> Response {
    let mut resp = odata::error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let challenge = format!(
        "Bearer authorization_uri={}/common/oauth2/authorize, resource_id={DISCOVERY_RESOURCE}",
        emu.base_url
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// `$filter` (parsed) and `$select`; other system query options are an
/// error (its message).
fn query_options(query: &[(String, String)]) -> Result<(Option<Expr>, Option<&str>), String> {
    let mut filter = None;
    let mut select = None;
    for (k, v) in query {
        match k.as_str() {
            "$filter" => filter = Some(v.as_str()),
            "$select" => select = Some(v.as_str()),
            other if other.starts_with('$') => {
                return Err(format!("The query parameter '{other}' is not supported."));
            }
            _ => {}
        }
    }
    let filter = filter
        .map(odata::filter::parse)
        .transpose()
        .map_err(|e| format!("Invalid $filter: {e}"))?;
    Ok((filter, select))
}

/// An instance record as returned: `None` when the filter drops it, the
/// selected properties otherwise; an evaluation or selection error's
/// message.
fn row(
    record: Map<String, Value>,
    filter: Option<&Expr>,
    select: Option<&str>,
) -> Result<Option<Map<String, Value>>, String> {
    if let Some(f) = filter
        && !odata::filter::eval(f, &Value::Object(record.clone())).map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    match select {
        Some(s) => odata::select(&record, s)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(Some(record)),
    }
}
