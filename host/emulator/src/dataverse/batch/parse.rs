//! Parsing a `$batch` body: multipart/mixed with multer, each part an
//! HTTP request parsed with httparse; change sets are nested multiparts.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use futures_util::FutureExt as _;

use super::MAX_OPERATIONS;
use crate::dataverse::error::DvError;

/// Why a `$batch` body is rejected (all 0x80048d19, 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// No `multipart/mixed` content type with a boundary.
    #[error("A $batch request needs Content-Type: multipart/mixed with a boundary.")]
    NoBoundary,
    /// The multipart structure is broken.
    #[error("The batch request is malformed: {0}.")]
    Malformed(String),
    /// The body could not be read at once.
    #[error("The batch body could not be read.")]
    Unreadable,
    /// A part that is not `application/http`.
    #[error("Each batch part must have Content-Type: application/http.")]
    NotHttp,
    /// A part that does not parse as an HTTP request.
    #[error("A batch part is not an HTTP request: {0}.")]
    BadRequestLine(String),
    /// A part whose request head is cut short.
    #[error("A batch part's HTTP request is incomplete.")]
    Incomplete,
    /// A part without a (valid) method.
    #[error("A batch part has no method.")]
    NoMethod,
    /// A `GET` inside a change set.
    #[error("GET requests are not allowed inside a change set ({url}).")]
    GetInChangeSet {
        /// The GET's URL.
        url: String,
    },
    /// More than [`MAX_OPERATIONS`] requests.
    #[error("The number of requests in a batch exceeds the limit of {MAX_OPERATIONS}.")]
    TooMany,
    /// No parts.
    #[error("The batch request contains no operations.")]
    Empty,
}

/// 0x80048d19: the payload is not a valid batch.
impl From<BatchError> for DvError {
    fn from(e: BatchError) -> Self {
        DvError::payload(e.to_string())
    }
}

/// One inner request.
pub(super) struct Operation {
    pub(super) method: Method,
    /// The URL as written (absolute path, full URL, relative, or `$n/...`).
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) content_id: Option<String>,
}

pub(super) enum Part {
    Single(Operation),
    ChangeSet(Vec<Operation>),
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/mixed") {
        return None;
    }
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parts of a multipart body; the whole body is in memory, so every
/// future completes on its first poll.
fn multipart_parts(body: Bytes, boundary: &str) -> Result<Vec<(HeaderMap, Bytes)>, BatchError> {
    let malformed = |e: multer::Error| BatchError::Malformed(e.to_string());
    let stream = futures_util::stream::once(std::future::ready(Ok::<Bytes, std::io::Error>(body)));
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let field = mp
            .next_field()
            .now_or_never()
            .ok_or(BatchError::Unreadable)?
            .map_err(malformed)?;
        let Some(field) = field else { break };
        let headers = field.headers().clone();
        let bytes = field
            .bytes()
            .now_or_never()
            .ok_or(BatchError::Unreadable)?
            .map_err(malformed)?;
        out.push((headers, bytes));
        if out.len() > MAX_OPERATIONS + 1 {
            break;
        }
    }
    Ok(out)
}

pub(super) fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn parse_operation(part_headers: &HeaderMap, bytes: &[u8]) -> Result<Operation, BatchError> {
    if !content_type(part_headers)
        .to_ascii_lowercase()
        .starts_with("application/http")
    {
        return Err(BatchError::NotHttp);
    }
    // The CRLF before a boundary belongs to the delimiter, so a body-less
    // request may arrive without its final blank line: accept that.
    let padded;
    let bytes = if bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        bytes
    } else {
        padded = [bytes, b"\r\n\r\n"].concat();
        &padded[..]
    };
    let mut raw_headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut raw_headers);
    let status = req
        .parse(bytes)
        .map_err(|e| BatchError::BadRequestLine(e.to_string()))?;
    let httparse::Status::Complete(head_len) = status else {
        return Err(BatchError::Incomplete);
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(BatchError::NoMethod)?;
    let url = req.path.unwrap_or_default().to_string();
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            headers.append(n, v);
        }
    }
    let body = &bytes[head_len..];
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let content_id = part_headers
        .get("content-id")
        .or_else(|| headers.get("content-id"))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    Ok(Operation {
        method,
        url,
        headers,
        body: Bytes::copy_from_slice(&body[..end]),
        content_id,
    })
}

pub(super) fn parse_batch(content_type_header: &str, body: Bytes) -> Result<Vec<Part>, BatchError> {
    let b = boundary(content_type_header).ok_or(BatchError::NoBoundary)?;
    let mut parts = Vec::new();
    let mut count = 0;
    for (h, bytes) in multipart_parts(body, &b)? {
        let ct = content_type(&h);
        if let Some(inner) = boundary(&ct) {
            let ops = multipart_parts(bytes, &inner)?
                .iter()
                .map(|(h, b)| parse_operation(h, b))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(get) = ops.iter().find(|o| o.method == Method::GET) {
                return Err(BatchError::GetInChangeSet {
                    url: get.url.clone(),
                });
            }
            count += ops.len();
            parts.push(Part::ChangeSet(ops));
        } else {
            count += 1;
            parts.push(Part::Single(parse_operation(&h, &bytes)?));
        }
        if count > MAX_OPERATIONS {
            return Err(BatchError::TooMany);
        }
    }
    if parts.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::must_not_panic;

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/mixed; boundary=\"batch_1\"").as_deref(),
            Some("batch_1")
        );
        assert_eq!(boundary("multipart/mixed;boundary=b"), Some("b".into()));
        assert_eq!(boundary("application/json"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), b in "[a-z_]{1,12}") {
            must_not_panic(parse_batch(&format!("multipart/mixed; boundary={b}"), Bytes::from(body)));
        }
    }
}
