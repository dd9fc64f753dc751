//! `$batch` requests: multipart/mixed bodies with change sets, and the
//! multipart answer parsed back (multer for the parts, httparse for each
//! part's HTTP response).

use std::time::Instant;

use futures_util::FutureExt as _;
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use super::target::{EntitySet, RecordKey, Target};
use super::{Body, Client, DataverseError, Query, api_error};
use crate::retry::{self, Repeat};

/// Where a batch operation goes: a typed target, or `$n`, the result of an
/// earlier operation of the same change set.
#[derive(Debug, Clone, PartialEq)]
enum Address {
    Target(Target),
    Reference(u32),
}

/// One request inside a batch, built from typed targets only (no path
/// text, so nothing can smuggle a line break into the multipart body).
#[derive(Debug, Clone)]
pub struct BatchOperation {
    method: reqwest::Method,
    address: Address,
    body: Option<Value>,
    content_id: Option<u32>,
}

impl BatchOperation {
    fn new(method: reqwest::Method, address: Address, body: Option<Value>) -> Self {
        BatchOperation {
            method,
            address,
            body,
            content_id: None,
        }
    }

    /// `POST <set>` with `record`.
    pub fn create(entity_set: &EntitySet, record: Value) -> Self {
        Self::new(
            reqwest::Method::POST,
            Address::Target(Target::set(entity_set)),
            Some(record),
        )
    }

    /// `PATCH <set>(<key>)` with `changes` (an upsert, as the Web API does).
    pub fn update(entity_set: &EntitySet, key: &RecordKey, changes: Value) -> Self {
        Self::new(
            reqwest::Method::PATCH,
            Address::Target(Target::record(entity_set, key)),
            Some(changes),
        )
    }

    /// `DELETE <set>(<key>)`.
    pub fn delete(entity_set: &EntitySet, key: &RecordKey) -> Self {
        Self::new(
            reqwest::Method::DELETE,
            Address::Target(Target::record(entity_set, key)),
            None,
        )
    }

    /// `GET <set>(<key>)`.
    pub fn retrieve(entity_set: &EntitySet, key: &RecordKey) -> Self {
        Self::new(
            reqwest::Method::GET,
            Address::Target(Target::record(entity_set, key)),
            None,
        )
    }

    /// `GET` of a query (its first page).
    pub fn query(query: &Query) -> Self {
        Self::new(reqwest::Method::GET, Address::Target(query.target()), None)
    }

    /// `PATCH $n`: changes the record an earlier operation of the same
    /// change set created.
    pub fn update_reference(content_id: u32, changes: Value) -> Self {
        Self::new(
            reqwest::Method::PATCH,
            Address::Reference(content_id),
            Some(changes),
        )
    }

    /// Names this operation `$id` for later operations of its change set.
    pub fn content_id(mut self, id: u32) -> Self {
        self.content_id = Some(id);
        self
    }
}

/// A top-level part: a single request, or a change set that succeeds or
/// fails as a whole.
#[derive(Debug, Clone)]
pub enum BatchPart {
    /// One request.
    Request(BatchOperation),
    /// Requests that succeed or fail together.
    ChangeSet(Vec<BatchOperation>),
}

/// One answer from the batch, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    /// HTTP status of the operation.
    pub status: u16,
    /// The operation's `Content-ID`, when it had one.
    pub content_id: Option<u32>,
    /// Its response headers.
    pub headers: Vec<(String, String)>,
    /// Its JSON body (`null` when empty or not JSON).
    pub body: Value,
}

fn write_operation(
    out: &mut String,
    boundary: &str,
    api: &Url,
    op: &BatchOperation,
) -> Result<(), DataverseError> {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = op.content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    // Absolute URLs from checked targets: percent-encoded, no spaces or
    // line breaks, under the Web API.
    let url = match &op.address {
        Address::Target(t) => t.url(api)?.to_string(),
        Address::Reference(n) => format!("${n}"),
    };
    out.push_str(&format!("\r\n{} {url} HTTP/1.1\r\n", op.method));
    match &op.body {
        Some(b) => {
            let text = b.to_string();
            out.push_str(&format!("Content-Type: application/json; type=entry\r\nContent-Length: {}\r\n\r\n{text}\r\n", text.len()));
        }
        // The CRLF before the next boundary belongs to the delimiter, so a
        // body-less request needs one more blank line (as Microsoft's samples send).
        None => out.push_str("\r\n\r\n"),
    }
    Ok(())
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn parts(
    body: bytes::Bytes,
    boundary: &str,
) -> Result<Vec<(reqwest::header::HeaderMap, bytes::Bytes)>, DataverseError> {
    let bad =
        |e: multer::Error| DataverseError::Transport(format!("unreadable $batch answer: {e}"));
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(body)));
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    // The body is in memory: every future is ready on its first poll.
    while let Some(field) = mp
        .next_field()
        .now_or_never()
        .ok_or_else(|| DataverseError::Transport("$batch answer not in memory".into()))?
        .map_err(bad)?
    {
        let headers = field.headers().clone();
        let bytes = field
            .bytes()
            .now_or_never()
            .ok_or_else(|| DataverseError::Transport("$batch answer not in memory".into()))?
            .map_err(bad)?;
        out.push((headers, bytes));
    }
    Ok(out)
}

fn parse_response(
    part_headers: &reqwest::header::HeaderMap,
    bytes: &[u8],
) -> Result<BatchResponse, DataverseError> {
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut raw);
    let httparse::Status::Complete(head) = resp
        .parse(bytes)
        .map_err(|e| DataverseError::Transport(format!("unreadable $batch part: {e}")))?
    else {
        return Err(DataverseError::Transport("incomplete $batch part".into()));
    };
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let text = String::from_utf8_lossy(&bytes[head..]);
    let body = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    let content_id = part_headers
        .get("content-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Ok(BatchResponse {
        status,
        content_id,
        headers,
        body,
    })
}

impl Client {
    /// Sends a `$batch`. Without `continue_on_error` Dataverse stops at the
    /// first failure (its answer is the last one returned); a failed change
    /// set is rolled back and answered by one error response. Only 429 is
    /// retried: a batch with writes is never repeated blindly.
    pub async fn batch(
        &self,
        parts_in: &[BatchPart],
        continue_on_error: bool,
        deadline: Instant,
    ) -> Result<Vec<BatchResponse>, DataverseError> {
        let boundary = format!("batch_{}", Uuid::new_v4());
        let mut body = String::new();
        for part in parts_in {
            match part {
                BatchPart::Request(op) => write_operation(&mut body, &boundary, &self.api, op)?,
                BatchPart::ChangeSet(ops) => {
                    let cs = format!("changeset_{}", Uuid::new_v4());
                    body.push_str(&format!(
                        "--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"
                    ));
                    for op in ops {
                        write_operation(&mut body, &cs, &self.api, op)?;
                    }
                    body.push_str(&format!("--{cs}--\r\n"));
                }
            }
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let body = bytes::Bytes::from(body);
        let content_type = format!("multipart/mixed; boundary={boundary}");
        let url = Target::fixed("$batch").url(&self.api)?;
        let prefer = [("Prefer", "odata.continue-on-error")];
        let headers: &[(&str, &str)] = if continue_on_error { &prefer } else { &[] };
        // A batch with writes is never repeated unless it provably did not run.
        let (status, resp_headers, bytes) = retry::run(
            &retry::WEB_API,
            Repeat::Never,
            deadline,
            "$batch",
            |attempt| {
                let (url, body) = (url.clone(), body.clone());
                let content_type = content_type.as_str();
                async move {
                    let raw = Body::Raw(body, content_type);
                    let r = self
                        .exchange(
                            &reqwest::Method::POST,
                            &url,
                            raw,
                            headers,
                            attempt,
                            deadline,
                        )
                        .await?;
                    match r.0 {
                        401 | 429 | 502..=504 => Err(api_error(
                            r.0,
                            &r.1,
                            &serde_json::from_slice(&r.2).unwrap_or(Value::Null),
                        )),
                        _ => Ok(r),
                    }
                }
            },
        )
        .await?;
        let ct = resp_headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let Some(b) = boundary_of(&ct).filter(|_| ct.starts_with("multipart/mixed")) else {
            // A malformed batch is answered with a plain error body.
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(api_error(status, &resp_headers, &json));
        };
        let mut out = Vec::new();
        for (h, part) in parts(bytes, &b)? {
            let pct = h
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            match boundary_of(pct).filter(|_| pct.starts_with("multipart/mixed")) {
                Some(inner) => {
                    for (ih, ipart) in parts(part, &inner)? {
                        out.push(parse_response(&ih, &ipart)?);
                    }
                }
                None => out.push(parse_response(&h, &part)?),
            }
        }
        Ok(out)
    }
}
