//! The Dataverse Web API client: requests with the standard headers, OData
//! errors mapped to typed errors, authentication through the connection's
//! [`TokenSource`], bounded concurrency that follows `x-ms-dop-hint`, and the
//! crate's one retry policy, which never repeats a write blindly:
//!
//! - 429 is always retried after `Retry-After` (Dataverse did not run it);
//! - 502/503/504 and connections dropped after sending are retried only for
//!   requests that are safe to repeat: reads, PUT/DELETE, PATCH without
//!   `If-Match`, and creates that carry a client-generated id;
//! - after such an ambiguous failure (and only then) a repeated DELETE that
//!   finds nothing, or a repeated create that finds its id taken, proves
//!   the first attempt landed and counts as success;
//! - everything is bounded by the caller's deadline.

mod batch;
mod credentials;
mod crud;
mod metadata;
mod parallelism;
mod query;
mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use crate::identity::{HttpClient, IdentityError, TokenSource};
use crate::retry::{self, Attempt, Failure, Repeat, Retryable};

pub use batch::{BatchOperation, BatchPart, BatchResponse};
pub use crud::BulkWrite;
pub use metadata::{
    ColumnInfo, LookupTarget, MetadataCacheConfig, OptionValue, TableDescription, TableInfo,
};
pub use query::{Expand, FilterValue, Op, Query, TextMatch};
pub use target::{
    AlternateKey, ColumnName, EntitySet, KeyValue, RecordKey, TableName, TargetError,
};

use parallelism::Parallelism;
use target::Target;

/// A Web API failure. Carries no token, key or Authorization header.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataverseError {
    /// Dataverse answered with an error body.
    #[error("Dataverse returned HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Hex code such as `0x80040217` (may be empty).
        code: String,
        /// Dataverse's message.
        message: String,
        /// Seconds to wait, on 429 (clamped).
        retry_after: Option<u64>,
    },
    /// Getting a token failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A name, key or link that cannot be a request target; nothing was sent.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The connection could not be opened: the request was not sent.
    #[error("Dataverse could not be reached: {0}")]
    Unreachable(String),
    /// The request failed after it may have been sent, or the answer could
    /// not be read.
    #[error("the Dataverse request failed: {0}")]
    Transport(String),
    /// The caller's deadline passed.
    #[error("the deadline passed before Dataverse answered{0}")]
    Deadline(String),
    /// Dataverse answered something that cannot be used (too large, a loop
    /// of next links, not the expected shape). Not retried.
    #[error("unusable answer from Dataverse: {0}")]
    Unexpected(String),
}

impl DataverseError {
    /// The Dataverse error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DataverseError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when Dataverse answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DataverseError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Retryable for DataverseError {
    fn failure(&self) -> Failure {
        match self {
            DataverseError::Api {
                status: 429,
                retry_after,
                ..
            } => Failure::NotRun {
                retry_after: retry_after.map(Duration::from_secs),
            },
            DataverseError::Api {
                status: 502..=504, ..
            }
            | DataverseError::Transport(_) => Failure::Unknown,
            DataverseError::Api { status: 401, .. } => Failure::Unauthorized,
            DataverseError::Unreachable(_) => Failure::NotRun { retry_after: None },
            // The token source has retried already: no retries of retries.
            _ => Failure::Final,
        }
    }

    fn deadline(last: Option<&Self>) -> Self {
        DataverseError::Deadline(
            last.map(|e| format!(" (last error: {e})"))
                .unwrap_or_default(),
        )
    }
}

/// The `WhoAmI` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WhoAmI {
    /// The systemuser the connection acts as.
    pub user_id: Uuid,
    /// Its business unit.
    pub business_unit_id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
}

/// A successful response: its body, parsed only when it is read (a row
/// handed on as text is never parsed into a `Value`).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    bytes: bytes::Bytes,
    /// For a create with its own id: "already exists" after an attempt whose
    /// outcome is unknown. The create checks whether the row is its own.
    pub duplicate_after_ambiguity: Option<DataverseError>,
}

impl Reply {
    fn empty() -> Reply {
        Reply {
            bytes: bytes::Bytes::new(),
            duplicate_after_ambiguity: None,
        }
    }

    /// The body as JSON (`null` when empty or not JSON).
    pub(crate) fn json(&self) -> Value {
        if self.bytes.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The body as checked JSON text, unparsed: an error unless it is a
    /// JSON object.
    pub(crate) fn object_text(&self) -> Result<Box<RawValue>, DataverseError> {
        let unusable = || DataverseError::Transport("the record body is not an object".into());
        let text = std::str::from_utf8(&self.bytes).map_err(|_| unusable())?;
        let raw: Box<RawValue> = serde_json::from_str(text).map_err(|_| unusable())?;
        if raw.get().starts_with('{') {
            Ok(raw)
        } else {
            Err(unusable())
        }
    }
}

/// Request and retry counters, for tests and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// HTTP requests sent.
    pub requests: AtomicU64,
    /// Of which repeats.
    pub retries: AtomicU64,
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Json(&'a Value),
    Raw(bytes::Bytes, &'a str),
}

/// A client for one environment: the connection's own.
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient,
    /// `<environment URL>/api/data/v9.2/`.
    api: Url,
    credentials: credentials::Credentials,
    parallel: Arc<Parallelism>,
    stats: Arc<Stats>,
    metadata: Arc<metadata::Cache>,
}

/// Largest Web API answer read (a page of 5000 wide rows fits many times).
const MAX_BODY: usize = 64 * 1024 * 1024;

fn transport(e: reqwest::Error) -> DataverseError {
    if e.is_connect() {
        DataverseError::Unreachable(e.without_url().to_string())
    } else {
        DataverseError::Transport(e.without_url().to_string())
    }
}

impl Client {
    /// A client for the environment of `tokens`' connection: requests go
    /// there and nowhere else.
    pub fn new(tokens: Arc<TokenSource>) -> Self {
        Client::with_metadata_cache(tokens, MetadataCacheConfig::default())
    }

    /// [`Client::new`] with a metadata cache of the given size and lifetime.
    pub fn with_metadata_cache(tokens: Arc<TokenSource>, cache: MetadataCacheConfig) -> Self {
        Client::build(
            tokens.http().clone(),
            tokens.connection().environment().web_api(),
            credentials::Credentials::App(tokens),
            cache,
        )
    }

    fn build(
        http: HttpClient,
        api: Url,
        credentials: credentials::Credentials,
        cache: MetadataCacheConfig,
    ) -> Self {
        Client {
            http,
            api,
            credentials,
            parallel: Arc::new(Parallelism::new(8)),
            stats: Arc::default(),
            metadata: Arc::new(metadata::Cache::new(cache)),
        }
    }

    /// The API base, `<environment URL>/api/data/v9.2/`.
    pub fn api_base(&self) -> &str {
        self.api.as_str()
    }

    /// Request and retry counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Current concurrency limit (the server's `x-ms-dop-hint` once seen).
    pub fn parallelism(&self) -> usize {
        self.parallel.limit()
    }

    /// `GET` of `target` (safe to repeat); the answer's body.
    async fn get(
        &self,
        target: &Target,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Value, DataverseError> {
        Ok(self.get_reply(target, headers, deadline).await?.json())
    }

    /// [`Client::get`], the body not yet parsed.
    async fn get_reply(
        &self,
        target: &Target,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Reply, DataverseError> {
        self.send(
            reqwest::Method::GET,
            target,
            None,
            headers,
            Repeat::Safe,
            deadline,
        )
        .await
    }

    /// A write that is safe to repeat (PUT-like PATCH, DELETE, `$ref`).
    async fn write(
        &self,
        method: reqwest::Method,
        target: &Target,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.send(method, target, body, &[], Repeat::Safe, deadline)
            .await
            .map(|_| ())
    }

    /// Sends a JSON request to `target` with the retry policy.
    async fn send(
        &self,
        method: reqwest::Method,
        target: &Target,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        repeat: Repeat,
        deadline: Instant,
    ) -> Result<Reply, DataverseError> {
        let url = target.url(&self.api)?;
        self.send_url(method, url, body, headers, repeat, deadline)
            .await
    }

    /// Sends to a URL already checked to be under the API base (a target's,
    /// or a checked next link).
    async fn send_url(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        repeat: Repeat,
        deadline: Instant,
    ) -> Result<Reply, DataverseError> {
        let what = "Web API request";
        retry::run(&retry::WEB_API, repeat, deadline, what, |attempt| {
            let (method, url) = (method.clone(), url.clone());
            async move {
                let b = body.map_or(Body::None, Body::Json);
                let outcome = self
                    .exchange(&method, &url, b, headers, attempt, deadline)
                    .await
                    .and_then(|(status, headers, bytes)| json_reply(status, headers, bytes));
                self.landed_earlier(outcome, &method, repeat, attempt)
            }
        })
        .await
    }

    /// After an attempt whose outcome was unknown, a DELETE that finds
    /// nothing means that attempt landed; a create whose id is taken may
    /// have landed, which the create checks.
    fn landed_earlier(
        &self,
        outcome: Result<Reply, DataverseError>,
        method: &reqwest::Method,
        repeat: Repeat,
        attempt: Attempt,
    ) -> Result<Reply, DataverseError> {
        match outcome {
            Err(DataverseError::Api { status: 404, .. })
                if attempt.after_unknown && method == reqwest::Method::DELETE =>
            {
                Ok(Reply::empty())
            }
            Err(e @ DataverseError::Api { status: 412, .. })
                if attempt.after_unknown
                    && repeat == Repeat::CreateWithId
                    && e.code() == Some("0x80040237") =>
            {
                Ok(Reply {
                    duplicate_after_ambiguity: Some(e),
                    ..Reply::empty()
                })
            }
            other => other,
        }
    }

    /// One HTTP exchange with auth and the standard headers; the body is
    /// returned as bytes whatever the status. The one place a bearer token
    /// is attached, after checking where the request goes.
    async fn exchange(
        &self,
        method: &reqwest::Method,
        url: &Url,
        body: Body<'_>,
        headers: &[(&str, &str)],
        attempt: Attempt,
        deadline: Instant,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes), DataverseError> {
        target::check_within(&self.api, url)?;
        let _slot = self.parallel.acquire().await;
        let token = self.credentials.bearer(deadline).await?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if attempt.number > 1 {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let mut req = self
            .http
            .inner()
            .request(method.clone(), url.clone())
            .bearer_auth(token.secret())
            .header("Accept", "application/json")
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("x-ms-client-request-id", Uuid::new_v4().to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if method == reqwest::Method::GET
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("If-None-Match"))
        {
            // Defeats caches of expanded collections ("Query data using the
            // Web API": send `If-None-Match: null`).
            req = req.header("If-None-Match", "null");
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(v.to_string()),
            Body::Raw(b, content_type) => req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(b),
        };
        let started = Instant::now();
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        // The path only: a query string can hold filter values.
        tracing::debug!(
            %method,
            path = url.path(),
            status,
            attempt = attempt.number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Dataverse request"
        );
        let headers = resp.headers().clone();
        if let Some(hint) = headers
            .get("x-ms-dop-hint")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
        {
            self.parallel.follow(hint);
        }
        if status == 401 {
            self.credentials.invalidate();
        }
        if (300..400).contains(&status) {
            // Redirects are never followed: the token stays with its environment.
            return Err(DataverseError::Api {
                status,
                code: String::new(),
                message: "Dataverse answered with a redirect, which is not followed".into(),
                retry_after: None,
            });
        }
        let bytes = match crate::identity::read_limited(resp, MAX_BODY).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(DataverseError::Unexpected(format!(
                    "an answer larger than {} MiB",
                    MAX_BODY >> 20
                )));
            }
            // The status line came: an error status is the outcome even if
            // its body was cut off (only a success or a gateway error leaves
            // the outcome unknown).
            Err(_) if status >= 400 && !(502..=504).contains(&status) => {
                return Err(api_error(status, &headers, &Value::Null));
            }
            Err(e) => return Err(transport(e)),
        };
        Ok((status, headers, bytes))
    }

    /// `WhoAmI`: which systemuser the connection is.
    pub async fn who_am_i(&self, deadline: Instant) -> Result<WhoAmI, DataverseError> {
        let body = self.get(&Target::fixed("WhoAmI"), &[], deadline).await?;
        serde_json::from_value(body)
            .map_err(|e| DataverseError::Transport(format!("unexpected WhoAmI body: {e}")))
    }
}

/// A JSON answer, or the typed error of an error status.
fn json_reply(
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: bytes::Bytes,
) -> Result<Reply, DataverseError> {
    let reply = Reply {
        bytes,
        duplicate_after_ambiguity: None,
    };
    if status >= 400 {
        return Err(api_error(status, &headers, &reply.json()));
    }
    Ok(reply)
}

/// A Dataverse error body as a typed error.
fn api_error(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> DataverseError {
    DataverseError::Api {
        status,
        code: body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        message: body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        retry_after: crate::seconds::retry_after(headers).map(|d| d.as_secs()),
    }
}

/// One page of a query. The next link stays inside: it was checked when
/// the page arrived and can only be followed with [`Client::next_page`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The rows of this page.
    pub rows: Vec<Map<String, Value>>,
    /// `@odata.count`, when asked for.
    pub count: Option<u64>,
    next: Option<Url>,
    page_size: Option<u32>,
}

impl Page {
    /// Whether a next page exists.
    pub fn has_more(&self) -> bool {
        self.next.is_some()
    }

    fn from_body(body: Value, page_size: Option<u32>, api: &Url) -> Result<Page, DataverseError> {
        let rows = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| DataverseError::Transport("the query answer has no value array".into()))?
            .iter()
            .filter_map(|r| r.as_object().cloned())
            .collect();
        let next = match body.get("@odata.nextLink") {
            None | Some(Value::Null) => None,
            Some(Value::String(link)) => Some(target::continuation(api, link)?),
            Some(_) => {
                return Err(DataverseError::Transport(
                    "the next link is not a string".into(),
                ));
            }
        };
        Ok(Page {
            rows,
            next,
            count: body.get("@odata.count").and_then(Value::as_u64),
            page_size,
        })
    }
}
