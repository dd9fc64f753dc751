//! The Dataverse Web API (`<environment URL>/api/data/v9.2/`), one
//! environment per seed entry, served at `<emulator>/<unique_name>/api/data/...`
//! so that a token's `aud` (the environment URL) matches the URL the client
//! calls ("Compose HTTP requests and handle errors",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors>); this module
//! routes, authenticates and answers.

mod batch;
mod bulk;
mod csdl;
mod definitions;
pub mod error;
mod fetchxml;
mod limits;
pub mod metadata;
mod path;
pub mod query;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Emulator;
use crate::state::Environment;
use error::{DvError, DvResult};
use metadata::{Kind, Schema, Table};
use path::{Key, Segment};
use query::{Annotations, QueryOptions};
use store::{Caller, EnvData};

/// Every environment's data, created on first use, and the service
/// protection counters.
#[derive(Default)]
pub(crate) struct Environments {
    envs: Mutex<HashMap<Uuid, Arc<RwLock<EnvData>>>>,
    limits: Arc<limits::Tracker>,
}

/// Longest GET URL accepted outside `$batch` ("Query data using the Web
/// API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview>).
const MAX_URL: usize = 32_768;

pub(crate) fn routes() -> Router<Arc<Emulator>> {
    // The first segment is named like the Entra routes' (`tenant`) because
    // the router requires one name per position; here it is the environment.
    Router::new()
        .route("/{tenant}/api/data/{version}", any(handle_root))
        .route("/{tenant}/api/data/{version}/", any(handle_root))
        .route("/{tenant}/api/data/{version}/{*rest}", any(handle))
}

/// Everything a handler needs about one request.
struct Ctx {
    data: Arc<RwLock<EnvData>>,
    caller: Caller,
    /// `https://host:port/<env>/api/data/v9.2/` as the client addressed it.
    api_base: String,
    headers: HeaderMap,
    prefer: Prefer,
    /// Set for the operations of a `$batch` (internal state a client cannot
    /// set): a `$batch` inside one is rejected.
    in_batch: bool,
}

#[derive(Debug, Default, Clone)]
struct Prefer {
    representation: bool,
    max_page_size: Option<usize>,
    annotations: Option<String>,
    continue_on_error: bool,
}

impl Prefer {
    fn parse(headers: &HeaderMap) -> Prefer {
        let mut p = Prefer::default();
        for v in headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for item in split_prefer(v) {
                let (k, val) = item
                    .split_once('=')
                    .map(|(k, v)| (k.trim(), Some(v.trim())))
                    .unwrap_or((item.trim(), None));
                match k {
                    "return" if val == Some("representation") => p.representation = true,
                    "odata.maxpagesize" => p.max_page_size = val.and_then(|v| v.parse().ok()),
                    "odata.include-annotations" => {
                        p.annotations = val.map(|v| v.trim_matches('"').to_string())
                    }
                    "odata.continue-on-error" => p.continue_on_error = true,
                    _ => {}
                }
            }
        }
        p
    }

    /// The `Preference-Applied` value for what was honoured.
    fn applied(&self, page_size_used: bool) -> Option<String> {
        let mut out = Vec::new();
        if self.representation {
            out.push("return=representation".to_string());
        }
        if page_size_used && let Some(n) = self.max_page_size {
            out.push(format!("odata.maxpagesize={n}"));
        }
        if let Some(a) = &self.annotations {
            out.push(format!("odata.include-annotations=\"{a}\""));
        }
        (!out.is_empty()).then(|| out.join(","))
    }
}

/// Splits a Prefer header on commas outside quotes.
fn split_prefer(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

async fn handle_root(
    state: State<Arc<Emulator>>,
    Path((env, version)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    q: RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(
        state,
        Path((env, version, String::new())),
        method,
        headers,
        q,
        body,
    )
    .await
}

async fn handle(
    State(emu): State<Arc<Emulator>>,
    Path((env_name, version, rest)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = crate::faults::Target {
        env: &env_name,
        method: method.as_str(),
        path: &rest,
        explicit: false,
    };
    let mut resp = crate::faults::serve(&emu, target, &WebApiRefusals, || {
        match handle_inner(
            &emu,
            &env_name,
            &version,
            &rest,
            &method,
            &headers,
            raw_query.as_deref(),
            body,
        ) {
            Ok(done) => done,
            Err(e) => (e.into_response(), None),
        }
    })
    .await;
    if resp.status().as_u16() >= 400 {
        resp = annotate_error(resp, &Prefer::parse(&headers)).await;
    }
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        h.insert("REQ_ID", v);
    }
    h.insert("x-ms-dop-hint", HeaderValue::from_static("4"));
    resp
}

/// Injected refusals of the Web API: the service-protection 429 and
/// Dataverse's generic error.
struct WebApiRefusals;

impl crate::faults::Refusals for WebApiRefusals {
    fn throttled(&self, retry_after_secs: u64) -> Response {
        throttled(&limits::Throttled {
            code: "0x80072322",
            message:
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
                    .into(),
            retry_after_secs,
        })
    }

    fn failed(&self, status: StatusCode) -> Response {
        DvError::new(
            status,
            "0x80040216",
            "An unexpected error occurred (injected fault).",
        )
        .into_response()
    }
}

/// With `Prefer: odata.include-annotations`, error bodies gain the
/// `@Microsoft.PowerApps.CDS.*` members Dataverse adds ("Compose HTTP requests
/// and handle errors", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors>);
/// without it they stay `{"error":{"code","message"}}`.
async fn annotate_error(resp: Response, prefer: &Prefer) -> Response {
    let ann = Annotations::parse(prefer.annotations.as_deref());
    if !ann.any() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    if let Some(err) = v.get_mut("error").and_then(Value::as_object_mut) {
        let code = err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_start_matches("0x")
            .to_string();
        let message = err.get("message").cloned().unwrap_or(Value::Null);
        let extra = [
            (
                "Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus",
                Value::from("0"),
            ),
            (
                "Microsoft.PowerApps.CDS.ErrorDetails.SubErrorCode",
                Value::from(
                    i64::from_str_radix(&code, 16)
                        .map(|c| c as i32)
                        .unwrap_or_default()
                        .to_string(),
                ),
            ),
            (
                "Microsoft.PowerApps.CDS.HelpLink",
                Value::from(format!(
                    "http://go.microsoft.com/fwlink/?LinkID=398563&error=Microsoft.Crm.CrmException%3a{code}&client=platform"
                )),
            ),
            ("Microsoft.PowerApps.CDS.TraceText", Value::from("")),
            ("Microsoft.PowerApps.CDS.InnerError.Message", message),
        ];
        for (name, value) in extra {
            if ann.wants(name) {
                err.insert(format!("@{name}"), value);
            }
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(v.to_string()))
}

/// A 429 with `Retry-After` and the service-protection error body.
fn throttled(t: &limits::Throttled) -> Response {
    let mut resp =
        DvError::new(StatusCode::TOO_MANY_REQUESTS, t.code, t.message.clone()).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs));
    resp
}

/// The environment a URL names, or a 404.
fn environment(emu: &Emulator, name: &str) -> DvResult<Environment> {
    emu.dir
        .read()
        .environments
        .iter()
        .find(|e| e.unique_name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| {
            DvError::new(
                StatusCode::NOT_FOUND,
                "0x80060888",
                format!("No environment named '{name}' is served here."),
            )
        })
}

impl Environments {
    fn get_or_create(&self, env: &Environment) -> Arc<RwLock<EnvData>> {
        self.envs
            .lock()
            .entry(env.id)
            .or_insert_with(|| {
                // Validated when the environment was seeded.
                let schema = Arc::new(
                    metadata::build_schema(&env.tables, &env.alternate_keys)
                        .unwrap_or_else(|_| Schema::standard().clone()),
                );
                Arc::new(RwLock::new(EnvData::new(schema, env.id, &env.unique_name)))
            })
            .clone()
    }
}

fn unauthorized(emu: &Emulator, env: &Environment, headers: &HeaderMap) -> Response {
    let base = emu.request_base(headers);
    let challenge = format!(
        "Bearer authorization_uri={base}/{}/oauth2/authorize, resource_id={}",
        env.tenant_id, env.url
    );
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn privilege_denied(message: impl Into<String>) -> DvError {
    DvError::new(StatusCode::FORBIDDEN, "0x80040220", message)
}

/// Maps the token's principal to its systemuser, provisioning users of
/// the tenant who may reach the environment (as Dataverse's user sync does).
fn resolve_caller(
    emu: &Emulator,
    env: &Environment,
    data: &RwLock<EnvData>,
    claims: &Value,
) -> DvResult<Caller> {
    let is_user = claims.get("scp").is_some();
    let (field, id) = if is_user {
        ("azureactivedirectoryobjectid", claims.get("oid"))
    } else {
        ("applicationid", claims.get("appid"))
    };
    let id = id
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| privilege_denied("The token names no principal."))?;
    let find = |d: &EnvData| {
        d.rows("systemuser").and_then(|t| {
            t.rows
                .iter()
                .find(|(_, r)| {
                    r.values.get(field).and_then(Value::as_str) == Some(id.to_string().as_str())
                })
                .map(|(uid, r)| (*uid, r.clone()))
        })
    };
    let existing = find(&data.read());
    let (uid, row) = match existing {
        Some(found) => found,
        None => {
            let dir = emu.dir.read();
            let provision = if is_user {
                dir.user_by_id(id)
                    .filter(|u| dir.user_can_reach(env, u))
                    .map(|u| {
                        (
                            u.clone(),
                            env.admins.contains(&u.id) || (env.admins.is_empty() && u.admin),
                        )
                    })
            } else {
                None
            };
            let app_user = (!is_user && env.app_users.contains(&id)).then(|| {
                dir.apps
                    .iter()
                    .find(|a| a.app_id == id)
                    .map(|a| a.display_name.clone())
                    .unwrap_or_else(|| id.to_string())
            });
            drop(dir);
            let mut d = data.write();
            let uid = Uuid::new_v4();
            let bu = d.root_business_unit;
            let role = d.sysadmin_role;
            let basic = d.basic_role;
            if let Some((user, admin)) = provision {
                d.insert_system(
                    "systemuser",
                    uid,
                    &[
                        ("fullname", user.display_name.clone().into()),
                        ("domainname", user.upn.clone().into()),
                        ("internalemailaddress", user.upn.clone().into()),
                        ("azureactivedirectoryobjectid", user.id.to_string().into()),
                        ("isdisabled", false.into()),
                    ],
                    &[("_businessunitid_value", "businessunit", bu)],
                );
                let given = if admin { role } else { basic };
                d.link(
                    "systemuserroles_association",
                    "systemuser",
                    "role",
                    uid,
                    given,
                    true,
                );
            } else if let Some(name) = app_user {
                d.insert_system(
                    "systemuser",
                    uid,
                    &[
                        ("fullname", name.into()),
                        ("applicationid", id.to_string().into()),
                        ("isdisabled", false.into()),
                        ("accessmode", 4.into()),
                    ],
                    &[("_businessunitid_value", "businessunit", bu)],
                );
                d.link(
                    "systemuserroles_association",
                    "systemuser",
                    "role",
                    uid,
                    role,
                    true,
                );
            } else if is_user {
                return Err(privilege_denied(format!(
                    "The user with Microsoft Entra object id {id} is not a member of the organization {}.",
                    env.id
                )));
            } else {
                return Err(privilege_denied(format!(
                    "The application user for application id {id} does not exist in the organization {}. Create an application user and give it a security role.",
                    env.id
                )));
            }
            let row = d.get("systemuser", &uid).cloned().expect("just inserted");
            (uid, row)
        }
    };
    if row.values.get("isdisabled") == Some(&Value::Bool(true)) {
        return Err(privilege_denied(format!(
            "The user with id {uid} is disabled."
        )));
    }
    let d = data.read();
    let roles = d.linked("systemuserroles_association", "systemuser", "role", uid);
    if roles.is_empty() {
        return Err(privilege_denied(format!(
            "Principal user (Id={uid}, type=8, roleCount=0) is missing prvReadAccount privilege. Assign a security role to the user."
        )));
    }
    let business_unit = row
        .values
        .get("_businessunitid_value")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or(d.root_business_unit);
    Ok(Caller {
        systemuser: uid,
        business_unit,
        is_admin: roles.contains(&d.sysadmin_role),
    })
}

/// Applies `CallerObjectId` / `MSCRMCallerID` impersonation and checks the
/// `MSCRM.BypassCustomPluginExecution` privilege ("Impersonate another user
/// using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/impersonate-another-user-web-api>;
/// "Bypass custom Dataverse logic", <https://learn.microsoft.com/power-apps/developer/data-platform/bypass-custom-business-logic>).
fn effective_caller(
    emu: &Emulator,
    env: &Environment,
    data: &RwLock<EnvData>,
    caller: Caller,
    headers: &HeaderMap,
) -> DvResult<Caller> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let target = match (header("CallerObjectId"), header("MSCRMCallerID")) {
        (None, None) => None,
        (by_oid, by_id) => {
            if !caller.is_admin {
                return Err(privilege_denied(format!(
                    "Principal user (Id={}, type=8) is missing prvActOnBehalfOfAnotherUser privilege (CannotActOnBehalfOfAnotherUser).",
                    caller.systemuser
                )));
            }
            let parse = |v: &str| {
                Uuid::parse_str(v).map_err(|_| {
                    DvError::bad_request(
                        "0x80040203",
                        format!("'{v}' is not a valid id for impersonation."),
                    )
                })
            };
            Some(match (by_oid, by_id) {
                (Some(oid), _) => resolve_caller(
                    emu,
                    env,
                    data,
                    &json!({"scp": "user_impersonation", "oid": parse(oid)?}),
                )?,
                (None, Some(id)) => {
                    let uid = parse(id)?;
                    let d = data.read();
                    let row = d
                        .get("systemuser", &uid)
                        .ok_or_else(|| DvError::not_found("systemuser", &uid))?;
                    let oid = row
                        .values
                        .get("azureactivedirectoryobjectid")
                        .and_then(Value::as_str)
                        .map(String::from);
                    let app = row
                        .values
                        .get("applicationid")
                        .and_then(Value::as_str)
                        .map(String::from);
                    drop(d);
                    let claims = match (oid, app) {
                        (Some(o), _) => json!({"scp": "user_impersonation", "oid": o}),
                        (None, Some(a)) => json!({"appid": a}),
                        _ => {
                            return Err(privilege_denied(format!(
                                "The user {uid} cannot be impersonated."
                            )));
                        }
                    };
                    resolve_caller(emu, env, data, &claims)?
                }
                (None, None) => unreachable!("matched above"),
            })
        }
    };
    let effective = target.unwrap_or(caller);
    if header("MSCRM.BypassCustomPluginExecution").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && !effective.is_admin
    {
        return Err(privilege_denied(format!(
            "Principal user (Id={}, type=8) is missing prvBypassCustomPlugins privilege (Id=148a9eaf-d0c4-4196-9852-c3a38e35f6a1).",
            effective.systemuser
        )));
    }
    Ok(effective)
}

#[allow(clippy::too_many_arguments)]
fn handle_inner(
    emu: &Emulator,
    env_name: &str,
    version: &str,
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> DvResult<(Response, Option<limits::Admission>)> {
    let env = environment(emu, env_name)?;
    if !matches!(version, "v9.0" | "v9.1" | "v9.2") {
        return Err(DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{version}'."),
        ));
    }
    if method == Method::GET && rest.len() + raw_query.map_or(0, str::len) > MAX_URL {
        return Err(DvError::new(
            StatusCode::URI_TOO_LONG,
            "0x80060888",
            "The request URL is longer than 32,768 characters; send the query inside $batch.",
        ));
    }
    let claims = match emu.bearer_claims(headers, &[&env.url]) {
        Ok(c) => c,
        Err(_) => return Ok((unauthorized(emu, &env, headers), None)),
    };
    let data = emu.dataverse.get_or_create(&env);
    let caller = resolve_caller(emu, &env, &data, &claims)?;
    let caller = effective_caller(emu, &env, &data, caller, headers)?;
    let limits = emu.dir.read().settings.service_protection.clone();
    let admission = match emu
        .dataverse
        .limits
        .admit(env.id, caller.systemuser, &limits)
    {
        Ok(a) => a,
        Err(t) => return Ok((throttled(&t), None)),
    };
    let api_base = format!(
        "{}/{}/api/data/{version}/",
        emu.request_base(headers),
        env.unique_name
    );
    let cx = Ctx {
        data,
        caller,
        api_base,
        headers: headers.clone(),
        prefer: Prefer::parse(headers),
        in_batch: false,
    };
    let pairs: Vec<(String, String)> = raw_query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = body.map_err(|r| DvError::new(r.status(), "0x80048d19", r.body_text()))?;
    let segments = path::parse(rest)?;
    let mut resp = dispatch(&cx, method, &segments, &pairs, &body, raw_query)
        .unwrap_or_else(IntoResponse::into_response);
    let h = resp.headers_mut();
    h.insert(
        "x-ms-ratelimit-burst-remaining-xrm-requests",
        HeaderValue::from(admission.remaining_requests),
    );
    if let Ok(v) = HeaderValue::from_str(&limits::format_seconds(admission.remaining_time)) {
        h.insert("x-ms-ratelimit-time-remaining-xrm-requests", v);
    }
    Ok((resp, Some(admission)))
}

fn json_body(body: &Bytes) -> DvResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DvError::payload("The request body must be a JSON object.")),
        Err(e) => Err(DvError::payload(format!("Invalid JSON. {e}"))),
    }
}

fn odata_json(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, crate::odata::ok(body)).into_response();
    *resp.status_mut() = status;
    resp
}

fn table_for(schema: &Schema, set: &str) -> DvResult<Arc<Table>> {
    schema.by_set(set).cloned().ok_or_else(|| {
        DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{set}'."),
        )
    })
}

/// Finds the row a key segment names; `Ok(None)` when absent.
fn locate(d: &EnvData, table: &Table, key: &Key) -> DvResult<Option<Uuid>> {
    match key {
        Key::Id(id) => Ok(d.get(&table.logical_name, id).map(|_| *id)),
        Key::Alternate(pairs) => {
            let declared = table.alternate_keys.iter().any(|k| {
                k.len() == pairs.len() && k.iter().all(|c| pairs.iter().any(|(n, _)| n == c))
            });
            let is_lookup_key = pairs
                .iter()
                .all(|(n, _)| n.starts_with('_') && n.ends_with("_value"));
            if !declared && !is_lookup_key {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!(
                        "The key specified does not match any alternate key defined on '{}'.",
                        table.logical_name
                    ),
                ));
            }
            Ok(d.find_by_key(table, pairs))
        }
    }
}

fn key_not_found(table: &Table, key: &Key) -> DvError {
    match key {
        Key::Id(id) => DvError::not_found(&table.logical_name, id),
        Key::Alternate(pairs) => {
            let desc: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}:{}",
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            DvError::new(
                StatusCode::NOT_FOUND,
                "0x80060891",
                format!(
                    "A record with the specified key values does not exist in {} entity. Key values: {}",
                    table.logical_name,
                    desc.join(",")
                ),
            )
        }
    }
}

fn dispatch(
    cx: &Ctx,
    method: &Method,
    segments: &[Segment],
    pairs: &[(String, String)],
    body: &Bytes,
    raw_query: Option<&str>,
) -> DvResult<Response> {
    let schema = cx.data.read().schema.clone();
    match (method, segments) {
        (&Method::GET, []) => Ok(service_document(cx, &schema)),
        (&Method::GET, [Segment { name, key: None }]) if name == "$metadata" => {
            let mut resp = csdl::document(&schema)
                .map_err(|e| {
                    DvError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "0x80040216",
                        format!("The $metadata document could not be written: {e}"),
                    )
                })?
                .into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            Ok(resp)
        }
        (&Method::GET, [Segment { name, key: None }]) if name == "WhoAmI" || name == "WhoAmI()" => {
            let d = cx.data.read();
            Ok(odata_json(
                StatusCode::OK,
                json!({
                    "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", cx.api_base),
                    "BusinessUnitId": cx.caller.business_unit,
                    "UserId": cx.caller.systemuser,
                    "OrganizationId": d.organization_id,
                }),
            ))
        }
        (&Method::POST, [Segment { name, key: None }]) if name == "$batch" => {
            if cx.in_batch {
                return Err(DvError::payload(
                    "Nested $batch requests are not supported.",
                ));
            }
            batch::handle(cx, &cx.headers, body)
        }
        (
            &Method::POST,
            [
                Segment { name, key: None },
                Segment {
                    name: action,
                    key: None,
                },
            ],
        ) if action.starts_with("Microsoft.Dynamics.CRM.") => {
            let table = table_for(&schema, name)?;
            bulk::handle(
                cx,
                &table,
                &action["Microsoft.Dynamics.CRM.".len()..],
                &json_body(body)?,
            )
        }
        (&Method::GET, [Segment { name, .. }, ..]) if name == "EntityDefinitions" => {
            let body = definitions::handle(&schema, segments, pairs, &cx.api_base)?;
            Ok(odata_json(StatusCode::OK, body))
        }
        (_, [Segment { name, key: None }]) => {
            let table = table_for(&schema, name)?;
            match *method {
                Method::GET => query_collection(cx, &table, pairs, raw_query),
                Method::POST => create(cx, &table, body, pairs),
                _ => Err(DvError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "0x80060888",
                    format!(
                        "The HTTP method '{method}' is not allowed on the collection '{name}'."
                    ),
                )),
            }
        }
        (
            _,
            [
                Segment {
                    name,
                    key: Some(key),
                },
            ],
        ) => {
            let table = table_for(&schema, name)?;
            match *method {
                Method::GET => retrieve(cx, &table, key, pairs),
                Method::PATCH => upsert(cx, &table, key, body, pairs),
                Method::DELETE => delete(cx, &table, key),
                _ => Err(DvError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "0x80060888",
                    format!("The HTTP method '{method}' is not allowed on a record."),
                )),
            }
        }
        (
            _,
            [
                Segment { name, key: None },
                Segment {
                    name: count,
                    key: None,
                },
            ],
        ) if count == "$count" && method == Method::GET => {
            let table = table_for(&schema, name)?;
            let n = cx
                .data
                .read()
                .rows(&table.logical_name)
                .map_or(0, |t| t.rows.len())
                .min(query::MAX_PAGE);
            let mut resp = format!("\u{feff}{n}").into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain;charset=utf-8"),
            );
            Ok(resp)
        }
        (
            _,
            [
                Segment {
                    name,
                    key: Some(key),
                },
                Segment {
                    name: prop,
                    key: None,
                },
            ],
        ) => {
            let table = table_for(&schema, name)?;
            property(cx, &table, key, prop, method, body)
        }
        (
            _,
            [
                Segment {
                    name,
                    key: Some(key),
                },
                Segment {
                    name: nav,
                    key: nav_key,
                },
                Segment { name: r, key: None },
            ],
        ) if r == "$ref" => {
            let table = table_for(&schema, name)?;
            reference(cx, &table, key, nav, nav_key.as_ref(), method, body, pairs)
        }
        _ => Err(DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            "Resource not found for the segment provided in the URL.",
        )),
    }
}

fn service_document(cx: &Ctx, schema: &Schema) -> Response {
    let mut value: Vec<Value> = schema
        .tables
        .iter()
        .map(|t| json!({"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set}))
        .collect();
    value.push(
        json!({"name": "EntityDefinitions", "kind": "EntitySet", "url": "EntityDefinitions"}),
    );
    odata_json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata", cx.api_base), "value": value}),
    )
}

fn annotations(cx: &Ctx) -> Annotations {
    Annotations::parse(cx.prefer.annotations.as_deref())
}

fn select_of(table: &Table, pairs: &[(String, String)]) -> DvResult<Option<Vec<String>>> {
    let relevant: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "$select")
        .cloned()
        .collect();
    Ok(query::parse_options(table, &relevant)?.select)
}

fn context_url(cx: &Ctx, table: &Table, select: Option<&[String]>, entity: bool) -> String {
    let cols = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    format!(
        "{}$metadata#{}{}{}",
        cx.api_base,
        table.entity_set,
        cols,
        if entity { "/$entity" } else { "" }
    )
}

fn with_preference(mut resp: Response, cx: &Ctx, page_size_used: bool) -> Response {
    if let Some(v) = cx
        .prefer
        .applied(page_size_used)
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        resp.headers_mut().insert("Preference-Applied", v);
    }
    resp
}

fn query_collection(
    cx: &Ctx,
    table: &Table,
    pairs: &[(String, String)],
    raw_query: Option<&str>,
) -> DvResult<Response> {
    if let Some((_, xml)) = pairs.iter().find(|(k, _)| k == "fetchXml") {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| k.starts_with('$')) {
            return Err(DvError::segment(format!(
                "The query option {k} cannot be combined with fetchXml."
            )));
        }
        return fetch_query(cx, table, xml);
    }
    let o: QueryOptions = query::parse_options(table, pairs)?;
    let page_size = cx.prefer.max_page_size.map(|n| n.clamp(1, query::MAX_PAGE));
    let ctx = crate::odata::filter::EvalContext {
        user_id: Some(cx.caller.systemuser.to_string()),
        now: Some(time::OffsetDateTime::now_utc()),
    };
    let d = cx.data.read();
    if let Some(apply) = &o.apply {
        // $apply: filter (both $filter and filter()), then group and aggregate.
        let all = d
            .rows(&table.logical_name)
            .map(|t| t.rows.values().collect::<Vec<_>>())
            .unwrap_or_default();
        let mut selected = query::select_rows(
            &d,
            table,
            all.into_iter(),
            &QueryOptions {
                orderby: Vec::new(),
                ..o.clone()
            },
            &ctx,
        )?;
        if let Some(f) = &apply.filter {
            let mut kept = Vec::with_capacity(selected.len());
            for r in selected {
                if crate::odata::filter::eval_with(f, r.values.as_value(), &ctx)
                    .map_err(DvError::from)?
                {
                    kept.push(r);
                }
            }
            selected = kept;
        }
        let value = query::aggregate(&selected, apply)?;
        return Ok(odata_json(
            StatusCode::OK,
            json!({"@odata.context": format!("{}$metadata#{}", cx.api_base, table.entity_set), "value": value}),
        ));
    }
    let (rows, next, count) = query::run(&d, table, &o, page_size, &ctx)?;
    let ann = annotations(cx);
    let mut value: Vec<Value> = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut m = query::render(&d, table, r, o.select.as_deref(), &ann);
        query::expand_into(
            &d,
            table,
            r,
            &o.expand,
            true,
            &cx.api_base,
            &ann,
            &ctx,
            &mut m,
        )?;
        value.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, o.select.as_deref(), false)),
    );
    if o.count {
        body.insert("@odata.count".into(), Value::from(count));
    }
    if ann.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcount".into(),
            Value::from(if o.count { count as i64 } else { -1 }),
        );
        body.insert(
            "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded".into(),
            Value::Bool(o.count && count >= query::MAX_PAGE),
        );
    }
    body.insert("value".into(), Value::Array(value));
    if let Some(offset) = next {
        // The next link repeats the request exactly, with only $skiptoken changed.
        let kept: String = raw_query
            .unwrap_or_default()
            .split('&')
            .filter(|p| {
                !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
            })
            .collect::<Vec<_>>()
            .join("&");
        let page = offset / page_size.unwrap_or(query::MAX_PAGE) + 1;
        let token: String =
            url::form_urlencoded::byte_serialize(query::encode_skiptoken(offset, page).as_bytes())
                .collect();
        let sep = if kept.is_empty() { "" } else { "&" };
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{}{}?{kept}{sep}$skiptoken={token}",
                cx.api_base, table.entity_set
            )),
        );
    }
    Ok(with_preference(
        odata_json(StatusCode::OK, Value::Object(body)),
        cx,
        page_size.is_some(),
    ))
}

/// Runs a FetchXML query.
fn fetch_query(cx: &Ctx, table: &Table, xml: &str) -> DvResult<Response> {
    let f = fetchxml::parse(table, xml)?;
    let ctx = crate::odata::filter::EvalContext {
        user_id: Some(cx.caller.systemuser.to_string()),
        now: Some(time::OffsetDateTime::now_utc()),
    };
    let d = cx.data.read();
    let all = d
        .rows(&table.logical_name)
        .map(|t| t.rows.values().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut rows = query::select_rows(&d, table, all.into_iter(), &f.options, &ctx)?;
    if let Some(top) = f.top {
        rows.truncate(top);
    }
    let count = f.count.unwrap_or(query::MAX_PAGE).clamp(1, query::MAX_PAGE);
    let page = f.page.unwrap_or(1).max(1);
    let start = ((page - 1) * count).min(rows.len());
    let end = (start + count).min(rows.len());
    let more = end < rows.len();
    let ann = annotations(cx);
    let value: Vec<Value> = rows[start..end]
        .iter()
        .map(|r| {
            let mut m = query::render(&d, table, r, f.attributes.as_deref(), &ann);
            fetchxml::strip_nulls(&mut m);
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, None, false)),
    );
    if ann.wants("Microsoft.Dynamics.CRM.fetchxmlpagingcookie") && more {
        let last = rows[end - 1]
            .values
            .get(&table.primary_id)
            .and_then(Value::as_str)
            .unwrap_or_default();
        // The inner cookie is URL-encoded twice, as Dataverse sends it.
        let inner = format!(
            "<cookie page=\"{page}\"><{pk} last=\"{{{last}}}\" /></cookie>",
            pk = table.primary_id
        );
        let encode = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let twice = encode(&encode(&inner));
        body.insert(
            "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie".into(),
            Value::String(format!(
                "<cookie pagenumber=\"{}\" pagingcookie=\"{twice}\" istracking=\"False\" />",
                page + 1
            )),
        );
    }
    if ann.wants("Microsoft.Dynamics.CRM.morerecords") && more {
        body.insert(
            "@Microsoft.Dynamics.CRM.morerecords".into(),
            Value::Bool(true),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(with_preference(
        odata_json(StatusCode::OK, Value::Object(body)),
        cx,
        false,
    ))
}

fn entity_id_header(resp: &mut Response, cx: &Ctx, table: &Table, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&format!("{}{}({id})", cx.api_base, table.entity_set)) {
        resp.headers_mut().insert("OData-EntityId", v);
    }
}

fn represent(
    cx: &Ctx,
    table: &Table,
    id: Uuid,
    pairs: &[(String, String)],
    status: StatusCode,
    expand: bool,
) -> DvResult<Response> {
    let select = select_of(table, pairs)?;
    let d = cx.data.read();
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    let ann = annotations(cx);
    let mut body = query::render(&d, table, row, select.as_deref(), &ann);
    if expand {
        // Update with return=representation ignores $expand ("Update and
        // delete table rows using the Web API").
        let expands: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k == "$expand")
            .cloned()
            .collect();
        let o = query::parse_options(table, &expands)?;
        let ctx = crate::odata::filter::EvalContext {
            user_id: Some(cx.caller.systemuser.to_string()),
            now: Some(time::OffsetDateTime::now_utc()),
        };
        query::expand_into(
            &d,
            table,
            row,
            &o.expand,
            false,
            &cx.api_base,
            &ann,
            &ctx,
            &mut body,
        )?;
    }
    body.insert(
        "@odata.context".into(),
        Value::String(context_url(cx, table, select.as_deref(), true)),
    );
    let mut resp = odata_json(status, Value::Object(body));
    if let Ok(v) = HeaderValue::from_str(&row.etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(with_preference(resp, cx, false))
}

fn create(cx: &Ctx, table: &Table, body: &Bytes, pairs: &[(String, String)]) -> DvResult<Response> {
    let body = json_body(body)?;
    // Validate $select before writing, so a bad query loses nothing.
    select_of(table, pairs)?;
    let id = cx.data.write().create(table, &body, None, cx.caller)?;
    if cx.prefer.representation {
        return represent(cx, table, id, pairs, StatusCode::CREATED, true);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    entity_id_header(&mut resp, cx, table, id);
    Ok(resp)
}

fn if_match(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn retrieve(cx: &Ctx, table: &Table, key: &Key, pairs: &[(String, String)]) -> DvResult<Response> {
    // Only checked here: `represent` applies `$select` itself.
    select_of(table, pairs)?;
    for (k, _) in pairs {
        if k.starts_with('$') && k != "$select" {
            query::parse_options(
                table,
                &pairs
                    .iter()
                    .filter(|(x, _)| x == k)
                    .cloned()
                    .collect::<Vec<_>>(),
            )?;
        }
    }
    let id = {
        let d = cx.data.read();
        locate(&d, table, key)?.ok_or_else(|| key_not_found(table, key))?
    };
    let etag = cx
        .data
        .read()
        .get(&table.logical_name, &id)
        .map(|r| r.etag());
    // Conditional GET: 304 when unchanged, never with $expand or annotations.
    if let (Some(inm), Some(etag)) = (if_match(&cx.headers, header::IF_NONE_MATCH), etag)
        && inm == etag
        && cx.prefer.annotations.is_none()
        && !pairs.iter().any(|(k, _)| k == "$expand")
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    represent(cx, table, id, pairs, StatusCode::OK, true)
}

fn precondition(message: &str) -> DvError {
    DvError::new(StatusCode::PRECONDITION_FAILED, "0x80060882", message)
}

/// PATCH: update, or create at that key (the upsert matrix of "Update and
/// delete table rows using the Web API",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api>).
fn upsert(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    body: &Bytes,
    pairs: &[(String, String)],
) -> DvResult<Response> {
    let mut body = json_body(body)?;
    select_of(table, pairs)?;
    let im = if_match(&cx.headers, header::IF_MATCH);
    let inm = if_match(&cx.headers, header::IF_NONE_MATCH);
    let mut d = cx.data.write();
    let existing = locate(&d, table, key)?;
    match existing {
        Some(id) => {
            if inm.as_deref() == Some("*") {
                return Err(DvError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80040237",
                    "A record with matching key values already exists.",
                ));
            }
            if let Some(tag) = im.as_deref().filter(|t| *t != "*")
                && d.get(&table.logical_name, &id).map(|r| r.etag()).as_deref() != Some(tag)
            {
                return Err(precondition(
                    "The version of the existing record doesn't match the RowVersion property provided.",
                ));
            }
            d.update(table, id, &body, cx.caller)?;
            drop(d);
            if cx.prefer.representation {
                return represent(cx, table, id, pairs, StatusCode::OK, false);
            }
            let mut resp = StatusCode::NO_CONTENT.into_response();
            entity_id_header(&mut resp, cx, table, id);
            Ok(resp)
        }
        None => {
            if im.is_some() {
                return Err(key_not_found(table, key));
            }
            let id = match key {
                Key::Id(id) => Some(*id),
                Key::Alternate(pairs) => {
                    // The key values become column values of the new row.
                    for (k, v) in pairs {
                        body.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    None
                }
            };
            let id = d.create(table, &body, id, cx.caller)?;
            drop(d);
            if cx.prefer.representation {
                return represent(cx, table, id, pairs, StatusCode::CREATED, false);
            }
            let mut resp = StatusCode::NO_CONTENT.into_response();
            entity_id_header(&mut resp, cx, table, id);
            Ok(resp)
        }
    }
}

fn delete(cx: &Ctx, table: &Table, key: &Key) -> DvResult<Response> {
    let mut d = cx.data.write();
    let id = locate(&d, table, key)?.ok_or_else(|| key_not_found(table, key))?;
    if let Some(tag) = if_match(&cx.headers, header::IF_MATCH).filter(|t| t != "*")
        && d.get(&table.logical_name, &id).map(|r| r.etag()).as_deref() != Some(tag.as_str())
    {
        return Err(precondition(
            "The version of the existing record doesn't match the RowVersion property provided.",
        ));
    }
    d.delete(table, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET/PUT/DELETE <record>/<property>`, and `GET <record>/<navigation>`.
fn property(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    prop: &str,
    method: &Method,
    body: &Bytes,
) -> DvResult<Response> {
    let id = {
        let d = cx.data.read();
        locate(&d, table, key)?.ok_or_else(|| key_not_found(table, key))?
    };
    let attr = table
        .attributes
        .iter()
        .find(|a| a.kind != Kind::Other && a.web_api_name() == prop);
    match (method, attr) {
        (&Method::GET, Some(a)) => {
            let d = cx.data.read();
            let v = d
                .get(&table.logical_name, &id)
                .and_then(|r| r.values.get(&a.web_api_name()).cloned())
                .unwrap_or(Value::Null);
            if v.is_null() {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            Ok(odata_json(
                StatusCode::OK,
                json!({"@odata.context": format!("{}$metadata#{}({id})/{prop}", cx.api_base, table.entity_set), "value": v}),
            ))
        }
        (&Method::PUT, Some(a)) if a.kind != Kind::Lookup => {
            let body = json_body(body)?;
            let value = body
                .get("value")
                .cloned()
                .ok_or_else(|| DvError::payload("The body must be {\"value\": ...}."))?;
            let mut m = Map::new();
            m.insert(a.logical_name.clone(), value);
            cx.data.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::DELETE, Some(a)) if a.kind != Kind::Lookup => {
            let mut m = Map::new();
            m.insert(a.logical_name.clone(), Value::Null);
            cx.data.write().update(table, id, &m, cx.caller)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, None) => navigate(cx, table, id, prop),
        _ => Err(DvError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "0x80060888",
            format!("The HTTP method '{method}' is not allowed on '{prop}'."),
        )),
    }
}

/// `GET <record>/<navigation property>`: the related row or rows.
fn navigate(cx: &Ctx, table: &Table, id: Uuid, nav: &str) -> DvResult<Response> {
    let d = cx.data.read();
    let ann = annotations(cx);
    let row = d
        .get(&table.logical_name, &id)
        .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
    if table.single_nav(nav).is_some() {
        return Ok(match query::single_related(&d, table, row, nav) {
            Some((tt, r)) => {
                let mut body = query::render(&d, &tt, r, None, &ann);
                body.insert(
                    "@odata.context".into(),
                    Value::String(context_url(cx, &tt, None, true)),
                );
                odata_json(StatusCode::OK, Value::Object(body))
            }
            None => StatusCode::NO_CONTENT.into_response(),
        });
    }
    let cn = table
        .collection_nav(nav)
        .ok_or_else(|| DvError::segment(format!("Resource not found for the segment '{nav}'.")))?;
    let (other, rows) =
        query::collection_related(&d, table, row, nav).ok_or_else(|| unserved(&cn.other))?;
    let value: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(query::render(&d, &other, r, None, &ann)))
        .collect();
    Ok(odata_json(
        StatusCode::OK,
        json!({"@odata.context": context_url(cx, &other, None, false), "value": value}),
    ))
}

/// 501 for a relationship whose other table the emulator does not serve.
fn unserved(table: &str) -> DvError {
    DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040219",
        format!("The table '{table}' is not served by the emulator."),
    )
}

/// `$ref` association endpoints ("Associate and disassociate table rows
/// using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api>).
#[allow(clippy::too_many_arguments)]
fn reference(
    cx: &Ctx,
    table: &Table,
    key: &Key,
    nav: &str,
    nav_key: Option<&Key>,
    method: &Method,
    body: &Bytes,
    pairs: &[(String, String)],
) -> DvResult<Response> {
    let mut d = cx.data.write();
    let id = locate(&d, table, key)?.ok_or_else(|| key_not_found(table, key))?;
    let body_ref = || -> DvResult<String> {
        json_body(body)?
            .get("@odata.id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| DvError::payload("The body must be {\"@odata.id\": \"<entity URL>\"}."))
    };
    if let Some((attr, _)) = table.single_nav(nav) {
        let attr = attr.clone();
        match *method {
            Method::PUT => {
                let (target, tid) = d.resolve_reference(&body_ref()?)?;
                d.set_lookup(table, id, &attr, Some((target.logical_name.clone(), tid)))?;
            }
            Method::DELETE => d.set_lookup(table, id, &attr, None)?,
            _ => {
                return Err(DvError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "0x80060888",
                    "Use PUT or DELETE on a single-valued navigation property's $ref.",
                ));
            }
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let cn = table
        .collection_nav(nav)
        .cloned()
        .ok_or_else(|| DvError::segment(format!("Resource not found for the segment '{nav}'.")))?;
    let other = d
        .schema
        .table(&cn.other)
        .cloned()
        .ok_or_else(|| unserved(&cn.other))?;
    let target_id = match (method, nav_key) {
        (&Method::POST, _) => {
            let (t, tid) = d.resolve_reference(&body_ref()?)?;
            if t.logical_name != other.logical_name {
                return Err(DvError::payload(format!(
                    "'{nav}' relates to '{}', not '{}'.",
                    other.logical_name, t.logical_name
                )));
            }
            tid
        }
        (&Method::DELETE, Some(Key::Id(tid))) => *tid,
        (&Method::DELETE, None) => {
            let r = pairs
                .iter()
                .find(|(k, _)| k == "$id")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    DvError::segment("DELETE of a collection $ref needs $id or a key.")
                })?;
            d.resolve_reference(&r)?.1
        }
        _ => {
            return Err(DvError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                "Use POST or DELETE on a collection-valued navigation property's $ref.",
            ));
        }
    };
    let add = *method == Method::POST;
    match &cn.referencing_attribute {
        Some(attr_name) => {
            let attr = other
                .attribute(attr_name)
                .cloned()
                .ok_or_else(|| DvError::segment(format!("'{nav}' cannot be associated here.")))?;
            d.set_lookup(
                &other,
                target_id,
                &attr,
                add.then(|| (table.logical_name.clone(), id)),
            )?;
        }
        None => {
            if d.get(&other.logical_name, &target_id).is_none() {
                return Err(DvError::not_found(&other.logical_name, &target_id));
            }
            d.link(
                &cn.relationship,
                &table.logical_name,
                &other.logical_name,
                id,
                target_id,
                add,
            );
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
