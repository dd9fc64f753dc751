//! One Web API request from the wire to the answer: injected faults, the
//! environment and API version, the bearer token, the caller, service
//! protection limits, then [`dispatch`], and the headers every answer
//! carries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::caller::resolve_caller;
use super::dispatch::{Request, dispatch, query_pairs};
use super::error::{DvError, DvResult};
use super::impersonation::effective_caller;
use super::prefer::Prefer;
use super::query::Annotations;
use super::{Ctx, limits, path};
use crate::Emulator;
use crate::origins::EnvOrigin;
use crate::state::Environment;

/// Longest GET URL accepted outside `$batch` ("Query data using the Web
/// API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview>).
const MAX_URL: usize = 32_768;

/// `<env>/api/data/<version>` and `.../`: the service root.
pub(super) async fn handle_root(
    state: State<Arc<Emulator>>,
    Path((env, version)): Path<(String, String)>,
    origin: Option<Extension<EnvOrigin>>,
    method: Method,
    headers: HeaderMap,
    q: RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(
        state,
        Path((env, version, String::new())),
        origin,
        method,
        headers,
        q,
        body,
    )
    .await
}

/// Every Web API request below the service root.
pub(super) async fn handle(
    State(emu): State<Arc<Emulator>>,
    Path((env_name, version, rest)): Path<(String, String, String)>,
    origin: Option<Extension<EnvOrigin>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // At the environment's own origin the API base is that origin; in the
    // path form it is `<emulator>/<unique_name>`.
    let env_root = match origin {
        Some(Extension(EnvOrigin(o))) => o,
        None => format!("{}/{env_name}", emu.request_base(&headers)),
    };
    let target = crate::faults::Target {
        env: &env_name,
        method: method.as_str(),
        path: &rest,
        explicit: false,
    };
    let incoming = Incoming {
        env_name: &env_name,
        env_root: &env_root,
        version: &version,
        rest: &rest,
        method: &method,
        headers: &headers,
        raw_query: raw_query.as_deref(),
    };
    let mut resp = crate::faults::serve(&emu, target, &WebApiRefusals, || {
        match handle_inner(&emu, &incoming, body) {
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

/// A path under an environment's `/api` that is not the Web API: Dataverse's
/// 404 naming the first segment it does not know ("Web API error codes",
/// 0x80060888, <https://learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes>).
/// The body is read first so an HTTP/2 client still sending gets the answer.
pub(super) async fn unknown_segment(uri: axum::http::Uri, body: axum::body::Body) -> Response {
    crate::fallback::drain(body).await;
    let segment = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .nth(2)
        .unwrap_or("api")
        .to_string();
    let mut resp = DvError::new(
        StatusCode::NOT_FOUND,
        "0x80060888",
        format!("Resource not found for the segment '{segment}'."),
    )
    .into_response();
    resp.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
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

/// A request as routed: the environment and API version segments, the
/// resource path after them, and the rest of the request but its body.
struct Incoming<'a> {
    env_name: &'a str,
    /// The environment's URL as the client addressed it, without `/api/...`.
    env_root: &'a str,
    version: &'a str,
    rest: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
    raw_query: Option<&'a str>,
}

/// The environment a request addresses, once its API version and URL
/// length are acceptable.
fn environment_of(emu: &Emulator, req: &Incoming) -> DvResult<Environment> {
    let env = environment(emu, req.env_name)?;
    let version = req.version;
    if !matches!(version, "v9.0" | "v9.1" | "v9.2") {
        return Err(DvError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{version}'."),
        ));
    }
    if req.method == Method::GET && req.rest.len() + req.raw_query.map_or(0, str::len) > MAX_URL {
        return Err(DvError::new(
            StatusCode::URI_TOO_LONG,
            "0x80060888",
            "The request URL is longer than 32,768 characters; send the query inside $batch.",
        ));
    }
    Ok(env)
}

/// Authenticates, admits (service protection) and answers one request;
/// the admission is released when the caller drops it.
fn handle_inner(
    emu: &Arc<Emulator>,
    req: &Incoming,
    body: Result<Bytes, BytesRejection>,
) -> DvResult<(Response, Option<limits::Admission>)> {
    let Incoming {
        version,
        rest,
        method,
        headers,
        raw_query,
        ..
    } = *req;
    let env = environment_of(emu, req)?;
    let audiences = emu.dir.read().environment_audiences(&env);
    let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let claims = match emu.bearer_claims_for(headers, &audiences, env.tenant_id) {
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
    let api_base = format!("{}/api/data/{version}/", req.env_root);
    let cx = Ctx {
        emu: emu.clone(),
        data,
        caller,
        api_base,
        headers: headers.clone(),
        prefer: Prefer::parse(headers),
        in_batch: false,
        change_set: None,
    };
    let pairs = query_pairs(raw_query);
    let body = body.map_err(|r| DvError::new(r.status(), "0x80048d19", r.body_text()))?;
    let segments = path::parse(rest)?;
    let request = Request {
        method,
        segments: &segments,
        pairs: &pairs,
        body: &body,
        raw_query,
    };
    let mut resp = dispatch(&cx, &request).unwrap_or_else(IntoResponse::into_response);
    if !matches!(*method, Method::GET | Method::HEAD) {
        emu.dataverse.mark_dirty();
    }
    rate_limit_headers(&mut resp, &admission);
    Ok((resp, Some(admission)))
}

/// What remains of the caller's service-protection budget.
fn rate_limit_headers(resp: &mut Response, admission: &limits::Admission) {
    let h = resp.headers_mut();
    h.insert(
        "x-ms-ratelimit-burst-remaining-xrm-requests",
        HeaderValue::from(admission.remaining_requests),
    );
    if let Ok(v) = HeaderValue::from_str(&limits::format_seconds(admission.remaining_time)) {
        h.insert("x-ms-ratelimit-time-remaining-xrm-requests", v);
    }
}
