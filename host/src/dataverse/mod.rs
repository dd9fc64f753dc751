//! The Dataverse Web API client: requests with the standard headers, OData
//! errors mapped to typed errors, authentication through the connection's
//! [`TokenSource`], bounded concurrency that follows `x-ms-dop-hint`, and
//! retries that never repeat a write blindly:
//!
//! - 429 is always retried after `Retry-After` (Dataverse did not run it);
//! - 502/503/504 and dropped connections are retried only for requests
//!   that are safe to repeat: reads, PUT/DELETE, PATCH without `If-Match`,
//!   and creates that carry a client-generated id (a repeat that finds the
//!   row already there proves the first attempt landed);
//! - everything is bounded by the caller's deadline.

mod batch;
mod metadata;
mod query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::identity::{IdentityError, TokenSource};

pub use batch::{BatchOperation, BatchPart, BatchResponse};
pub use metadata::{ColumnInfo, OptionValue, TableDescription, TableInfo};
pub use query::{Query, escape_string};

/// A Web API failure. Carries no token, key or Authorization header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataverseError {
    /// Dataverse answered with an error body.
    #[error("Dataverse returned HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        /// Hex code such as `0x80040217` (may be empty).
        code: String,
        message: String,
        /// Seconds to wait, on 429.
        retry_after: Option<u64>,
    },
    /// Getting a token failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The request could not be sent or the answer read.
    #[error("the Dataverse request failed: {0}")]
    Transport(String),
    /// The caller's deadline passed.
    #[error("the deadline passed before Dataverse answered{0}")]
    Deadline(String),
}

impl DataverseError {
    /// The Dataverse error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DataverseError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            DataverseError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The `WhoAmI` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WhoAmI {
    pub user_id: Uuid,
    pub business_unit_id: Uuid,
    pub organization_id: Uuid,
}

/// How a request may be repeated after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, PUT, DELETE, PATCH without `If-Match`.
    Safe,
    /// A create carrying its own id: a repeat that meets "already exists" succeeded.
    CreateWithId,
    /// Only 429 (never executed) is retried.
    Never,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// Retry counters, for tests and logs.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
}

/// Concurrency limit that follows the server's `x-ms-dop-hint`.
#[derive(Debug)]
struct Parallelism {
    semaphore: tokio::sync::Semaphore,
    limit: parking_lot::Mutex<usize>,
}

impl Parallelism {
    fn follow(&self, hint: usize) {
        let hint = hint.clamp(1, 64);
        let mut limit = self.limit.lock();
        if hint > *limit {
            self.semaphore.add_permits(hint - *limit);
        } else if hint < *limit {
            let _ = self.semaphore.forget_permits(*limit - hint);
        }
        *limit = hint;
    }
}

/// A client for one environment.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `<environment URL>/api/data/v9.2/`.
    api: String,
    tokens: Arc<TokenSource>,
    parallel: Arc<Parallelism>,
    stats: Arc<Stats>,
    metadata: Arc<metadata::Cache>,
}

fn transport(e: reqwest::Error) -> DataverseError {
    DataverseError::Transport(e.without_url().to_string())
}

impl Client {
    /// `environment_url` is the organization URL, e.g. `https://contoso.crm.dynamics.com`.
    pub fn new(environment_url: &str, tokens: Arc<TokenSource>, http: reqwest::Client) -> Self {
        let initial = 8;
        Client {
            http,
            api: format!("{}/api/data/v9.2/", environment_url.trim_end_matches('/')),
            tokens,
            parallel: Arc::new(Parallelism {
                semaphore: tokio::sync::Semaphore::new(initial),
                limit: parking_lot::Mutex::new(initial),
            }),
            stats: Arc::default(),
            metadata: Arc::default(),
        }
    }

    /// The API base, `<environment URL>/api/data/v9.2/`.
    pub fn api_base(&self) -> &str {
        &self.api
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Current concurrency limit (the server's `x-ms-dop-hint` once seen).
    pub fn parallelism(&self) -> usize {
        *self.parallel.limit.lock()
    }

    /// Sends one request (a path relative to the API base, or a full URL
    /// such as a next link) with retries per `repeat`, before `deadline`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        repeat: Repeat,
        deadline: Instant,
    ) -> Result<Reply, DataverseError> {
        let url = if path.starts_with("https://") || path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{path}", self.api)
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(&method, &url, body, headers, deadline).await;
            let (retry, wait) = match &outcome {
                Ok(_) => return outcome,
                Err(DataverseError::Api {
                    status: 412, code, ..
                }) if attempt > 1 && repeat == Repeat::CreateWithId && code == "0x80040237" => {
                    // The first attempt created the row before the connection dropped.
                    return Ok(Reply {
                        status: 204,
                        headers: Default::default(),
                        body: Value::Null,
                    });
                }
                Err(DataverseError::Api { status: 404, .. })
                    if attempt > 1 && method == reqwest::Method::DELETE =>
                {
                    return Ok(Reply {
                        status: 204,
                        headers: Default::default(),
                        body: Value::Null,
                    });
                }
                Err(DataverseError::Api {
                    status: 429,
                    retry_after,
                    ..
                }) => (true, Duration::from_secs(retry_after.unwrap_or(1))),
                Err(DataverseError::Api {
                    status: 502..=504, ..
                })
                | Err(DataverseError::Transport(_)) => (repeat != Repeat::Never, backoff(attempt)),
                Err(DataverseError::Api { status: 401, .. }) if attempt == 1 => {
                    (true, Duration::ZERO)
                }
                Err(_) => return outcome,
            };
            if !retry || attempt >= 10 {
                return outcome;
            }
            if Instant::now() + wait >= deadline {
                let last = outcome
                    .err()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(DataverseError::Deadline(last));
            }
            self.stats
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a Dataverse request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        method: &reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Reply, DataverseError> {
        let json_body = body.map(|b| (bytes::Bytes::from(b.to_string()), "application/json"));
        let (status, headers, bytes) = self
            .attempt_raw(method, url, json_body, headers, deadline)
            .await?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status >= 400 {
            return Err(api_error(status, &headers, &body));
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// One HTTP exchange with auth and the standard headers; the body is
    /// returned as bytes whatever the status.
    async fn attempt_raw(
        &self,
        method: &reqwest::Method,
        url: &str,
        body: Option<(bytes::Bytes, &str)>,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<(u16, reqwest::header::HeaderMap, bytes::Bytes), DataverseError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _permit = tokio::time::timeout(remaining, self.parallel.semaphore.acquire())
            .await
            .map_err(|_| DataverseError::Deadline(String::new()))?
            .map_err(|_| DataverseError::Deadline(String::new()))?;
        let token = self.tokens.token(deadline).await?;
        self.stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self
            .http
            .request(method.clone(), url)
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
            // Defeats caches of expanded collections (reference §3.2).
            req = req.header("If-None-Match", "null");
        }
        if let Some((b, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(b);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let resp = tokio::time::timeout(remaining, req.send())
            .await
            .map_err(|_| DataverseError::Deadline(String::new()))?
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(hint) = headers
            .get("x-ms-dop-hint")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.parallel.follow(hint);
        }
        if status == 401 {
            self.tokens.invalidate();
        }
        let bytes = resp.bytes().await.map_err(transport)?;
        Ok((status, headers, bytes))
    }

    /// `WhoAmI`: which systemuser the connection is.
    pub async fn who_am_i(&self, deadline: Instant) -> Result<WhoAmI, DataverseError> {
        let r = self
            .send(
                reqwest::Method::GET,
                "WhoAmI",
                None,
                &[],
                Repeat::Safe,
                deadline,
            )
            .await?;
        serde_json::from_value(r.body)
            .map_err(|e| DataverseError::Transport(format!("unexpected WhoAmI body: {e}")))
    }

    /// Creates a row and returns its id. The id is generated here (or taken
    /// from `id`) and sent in the body, so a retry cannot create a duplicate.
    pub async fn create(
        &self,
        entity_set: &str,
        primary_id: &str,
        record: &Map<String, Value>,
        id: Option<Uuid>,
        deadline: Instant,
    ) -> Result<Uuid, DataverseError> {
        let id = id.unwrap_or_else(Uuid::new_v4);
        let mut body = record.clone();
        body.insert(primary_id.to_string(), json!(id));
        self.send(
            reqwest::Method::POST,
            entity_set,
            Some(&Value::Object(body)),
            &[],
            Repeat::CreateWithId,
            deadline,
        )
        .await?;
        Ok(id)
    }

    /// Retrieves a row by id (or an alternate-key segment like `accountnumber='A-1'`).
    pub async fn retrieve(
        &self,
        entity_set: &str,
        key: &str,
        select: &[&str],
        deadline: Instant,
    ) -> Result<Map<String, Value>, DataverseError> {
        let mut path = format!("{entity_set}({key})");
        if !select.is_empty() {
            path.push_str(&format!("?$select={}", select.join(",")));
        }
        let r = self
            .send(
                reqwest::Method::GET,
                &path,
                None,
                &[],
                Repeat::Safe,
                deadline,
            )
            .await?;
        match r.body {
            Value::Object(m) => Ok(m),
            _ => Err(DataverseError::Transport(
                "the record body is not an object".into(),
            )),
        }
    }

    /// Updates a row; with `if_match` the update only applies to that version
    /// (and is then never repeated after an ambiguous failure).
    pub async fn update(
        &self,
        entity_set: &str,
        id: Uuid,
        changes: &Map<String, Value>,
        if_match: Option<&str>,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let path = format!("{entity_set}({id})");
        let etag = if_match.unwrap_or("*");
        let repeat = if if_match.is_some() {
            Repeat::Never
        } else {
            Repeat::Safe
        };
        self.send(
            reqwest::Method::PATCH,
            &path,
            Some(&Value::Object(changes.clone())),
            &[("If-Match", etag)],
            repeat,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Creates or updates the row at `key` (an id or an alternate-key segment).
    pub async fn upsert(
        &self,
        entity_set: &str,
        key: &str,
        record: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.send(
            reqwest::Method::PATCH,
            &format!("{entity_set}({key})"),
            Some(&Value::Object(record.clone())),
            &[],
            Repeat::Safe,
            deadline,
        )
        .await
        .map(|_| ())
    }

    pub async fn delete(
        &self,
        entity_set: &str,
        id: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("{entity_set}({id})"),
            None,
            &[],
            Repeat::Safe,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Associates `target` (an entity set and id) through a navigation property.
    pub async fn associate(
        &self,
        entity_set: &str,
        id: Uuid,
        navigation: &str,
        target_set: &str,
        target: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let body = json!({"@odata.id": format!("{}{target_set}({target})", self.api)});
        self.send(
            reqwest::Method::POST,
            &format!("{entity_set}({id})/{navigation}/$ref"),
            Some(&body),
            &[],
            Repeat::Safe,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Removes an association made through a collection-valued navigation property.
    pub async fn disassociate(
        &self,
        entity_set: &str,
        id: Uuid,
        navigation: &str,
        target: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("{entity_set}({id})/{navigation}({target})/$ref"),
            None,
            &[],
            Repeat::Safe,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Runs a query; returns one page and the next link.
    pub async fn query(&self, q: &Query, deadline: Instant) -> Result<Page, DataverseError> {
        let prefer = q.page_size.map(|n| format!("odata.maxpagesize={n}"));
        let headers: Vec<(&str, &str)> = prefer.iter().map(|p| ("Prefer", p.as_str())).collect();
        let r = self
            .send(
                reqwest::Method::GET,
                &q.to_path(),
                None,
                &headers,
                Repeat::Safe,
                deadline,
            )
            .await?;
        Page::from_body(r.body, q.page_size)
    }

    /// Follows a next link (verbatim, with the same page size).
    pub async fn next_page(
        &self,
        page: &Page,
        deadline: Instant,
    ) -> Result<Option<Page>, DataverseError> {
        let Some(link) = &page.next_link else {
            return Ok(None);
        };
        let prefer = page.page_size.map(|n| format!("odata.maxpagesize={n}"));
        let headers: Vec<(&str, &str)> = prefer.iter().map(|p| ("Prefer", p.as_str())).collect();
        let r = self
            .send(
                reqwest::Method::GET,
                link,
                None,
                &headers,
                Repeat::Safe,
                deadline,
            )
            .await?;
        let next = Page::from_body(r.body, page.page_size)?;
        if next.next_link.as_deref() == Some(link.as_str()) {
            return Err(DataverseError::Transport(
                "the server returned the same next link twice".into(),
            ));
        }
        Ok(Some(next))
    }

    /// Runs a query and follows next links to the end.
    pub async fn query_all(
        &self,
        q: &Query,
        deadline: Instant,
    ) -> Result<Vec<Map<String, Value>>, DataverseError> {
        let mut page = self.query(q, deadline).await?;
        let mut rows = std::mem::take(&mut page.rows);
        while let Some(mut next) = self.next_page(&page, deadline).await? {
            rows.append(&mut next.rows);
            page = next;
        }
        Ok(rows)
    }

    /// Runs FetchXML against an entity set (one page).
    pub async fn fetch_xml(
        &self,
        entity_set: &str,
        fetch: &str,
        deadline: Instant,
    ) -> Result<Vec<Map<String, Value>>, DataverseError> {
        let encoded: String = url::form_urlencoded::byte_serialize(fetch.as_bytes()).collect();
        let r = self
            .send(
                reqwest::Method::GET,
                &format!("{entity_set}?fetchXml={encoded}"),
                None,
                &[],
                Repeat::Safe,
                deadline,
            )
            .await?;
        Ok(Page::from_body(r.body, None)?.rows)
    }

    /// `CreateMultiple`: creates all or none; returns the ids. Each target
    /// gets a client-generated id first, so the caller knows them even if
    /// the answer is lost.
    pub async fn create_multiple(
        &self,
        entity_set: &str,
        logical_name: &str,
        primary_id: &str,
        records: &[Map<String, Value>],
        deadline: Instant,
    ) -> Result<Vec<Uuid>, DataverseError> {
        let mut ids = Vec::with_capacity(records.len());
        let targets: Vec<Value> = records
            .iter()
            .map(|r| {
                let id = Uuid::new_v4();
                ids.push(id);
                let mut t = r.clone();
                t.insert(
                    "@odata.type".into(),
                    json!(format!("Microsoft.Dynamics.CRM.{logical_name}")),
                );
                t.insert(primary_id.to_string(), json!(id));
                Value::Object(t)
            })
            .collect();
        let body = json!({ "Targets": targets });
        self.send(
            reqwest::Method::POST,
            &format!("{entity_set}/Microsoft.Dynamics.CRM.CreateMultiple"),
            Some(&body),
            &[],
            Repeat::Never,
            deadline,
        )
        .await?;
        Ok(ids)
    }

    /// `UpdateMultiple` / `UpsertMultiple` (each record carries its key).
    pub async fn write_multiple(
        &self,
        message: BulkWrite,
        entity_set: &str,
        logical_name: &str,
        records: &[Map<String, Value>],
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let targets: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut t = r.clone();
                t.insert(
                    "@odata.type".into(),
                    json!(format!("Microsoft.Dynamics.CRM.{logical_name}")),
                );
                Value::Object(t)
            })
            .collect();
        let name = match message {
            BulkWrite::Update => "UpdateMultiple",
            BulkWrite::Upsert => "UpsertMultiple",
        };
        self.send(
            reqwest::Method::POST,
            &format!("{entity_set}/Microsoft.Dynamics.CRM.{name}"),
            Some(&json!({"Targets": targets})),
            &[],
            Repeat::Safe,
            deadline,
        )
        .await
        .map(|_| ())
    }
}

/// A Dataverse error body as a typed error.
fn api_error(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> DataverseError {
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
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
        retry_after,
    }
}

/// Which bulk write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkWrite {
    Update,
    Upsert,
}

/// One page of a query.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<Map<String, Value>>,
    pub next_link: Option<String>,
    pub count: Option<u64>,
    page_size: Option<u32>,
}

impl Page {
    fn from_body(body: Value, page_size: Option<u32>) -> Result<Page, DataverseError> {
        let rows = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| DataverseError::Transport("the query answer has no value array".into()))?
            .iter()
            .filter_map(|r| r.as_object().cloned())
            .collect();
        Ok(Page {
            rows,
            next_link: body
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(String::from),
            count: body.get("@odata.count").and_then(Value::as_u64),
            page_size,
        })
    }
}

/// Jittered exponential backoff: up to 100 ms, 200 ms, ... capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    let cap = (100u64 << attempt.min(6)).min(5_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}
