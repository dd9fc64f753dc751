//! `$batch` ("Execute batch operations using the Web API",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api>): multipart/mixed
//! parsing with multer, inner HTTP requests with httparse, change sets run
//! atomically (rolled back on failure), `Content-ID` references, and
//! `odata.continue-on-error`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use uuid::Uuid;

use super::dispatch::{Request, dispatch, query_pairs};
use super::error::{DvError, DvResult};
use super::prefer::Prefer;
use super::{Ctx, path};

mod parse;

use parse::{Operation, Part, content_type, parse_batch};

/// Most operations one batch may carry.
pub const MAX_OPERATIONS: usize = 1000;
/// Longest GET URL inside a batch (twice the limit outside).
const MAX_INNER_URL: usize = 65_536;

/// Substitutes `$n` Content-ID references in a URL or a JSON body.
fn substitute(text: &str, ids: &[(String, String)]) -> String {
    let mut out = text.to_string();
    // Longest ids first, so `$10` is not read as `$1` + `0`.
    let mut sorted: Vec<&(String, String)> = ids.iter().collect();
    sorted.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
    for (id, url) in sorted {
        out = out.replace(&format!("\"${id}\""), &format!("\"{url}\""));
        if let Some(rest) = out.strip_prefix(&format!("${id}")) {
            out = format!("{url}{rest}");
        }
    }
    out
}

/// The resource path after `/api/data/v9.x/`, and the query.
fn relative(url: &str) -> (String, Option<String>) {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (url, None),
    };
    let rel = match path.find("/api/data/") {
        Some(i) => {
            let after = &path[i + "/api/data/".len()..];
            after
                .split_once('/')
                .map(|(_, r)| r)
                .unwrap_or_default()
                .to_string()
        }
        None => path.trim_start_matches('/').to_string(),
    };
    (rel, query)
}

/// Runs one inner request; returns its response.
fn execute(
    cx: &Ctx,
    op: &Operation,
    ids: &[(String, String)],
    change_set: Option<u64>,
) -> Response {
    let url = substitute(&op.url, ids);
    if op.method == Method::GET && url.len() > MAX_INNER_URL {
        return DvError::new(
            StatusCode::URI_TOO_LONG,
            "0x80060888",
            "The request URL inside $batch is longer than 65,536 characters.",
        )
        .into_response();
    }
    if unresolved_reference(&url) {
        return DvError::payload(format!(
            "Content-ID Reference: '{}' does not exist in the batch context.",
            url.split('/').next().unwrap_or_default()
        ))
        .into_response();
    }
    let body = if ids.is_empty() {
        op.body.clone()
    } else {
        Bytes::from(substitute(&String::from_utf8_lossy(&op.body), ids))
    };
    let (rel, query) = relative(&url);
    let pairs = query_pairs(query.as_deref());
    let headers = op.headers.clone();
    let inner = Ctx {
        emu: cx.emu.clone(),
        data: cx.data.clone(),
        caller: cx.caller,
        api_base: cx.api_base.clone(),
        prefer: Prefer::parse(&headers),
        headers,
        in_batch: true,
        change_set,
    };
    let result = path::parse(&rel)
        .map_err(DvError::from)
        .and_then(|segments| {
            dispatch(
                &inner,
                &Request {
                    method: &op.method,
                    segments: &segments,
                    pairs: &pairs,
                    body: &body,
                    raw_query: query.as_deref(),
                },
            )
        });
    result.unwrap_or_else(IntoResponse::into_response)
}

fn unresolved_reference(url: &str) -> bool {
    url.starts_with('$') && url[1..].chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Renders one response as an `application/http` part.
fn render_part(out: &mut String, boundary: &str, content_id: Option<&str>, resp: Response) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .now_or_never()
        .and_then(Result::ok)
        .unwrap_or_default();
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    let reason = parts.status.canonical_reason().unwrap_or("");
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {reason}\r\n",
        parts.status.as_u16()
    ));
    for (k, v) in &parts.headers {
        if k == header::CONTENT_LENGTH {
            continue;
        }
        let v = v.to_str().unwrap_or_default();
        if k == header::CONTENT_TYPE && v.starts_with("application/json") {
            out.push_str(&format!("Content-Type: {v}; odata.streaming=true\r\n"));
        } else {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if k.as_str().eq_ignore_ascii_case("odata-entityid") {
            out.push_str(&format!("Location: {v}\r\n"));
        }
    }
    out.push_str("\r\n");
    out.push_str(&String::from_utf8_lossy(&bytes));
    out.push_str("\r\n");
}

fn entity_id(resp: &Response) -> Option<String> {
    resp.headers()
        .get("OData-EntityId")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// `POST $batch`.
pub(super) fn handle(cx: &Ctx, headers: &HeaderMap, body: &Bytes) -> DvResult<Response> {
    let parts = parse_batch(&content_type(headers), body.clone())?;
    let continue_on_error = cx.prefer.continue_on_error;
    let batch_boundary = format!("batchresponse_{}", Uuid::new_v4());
    let mut out = String::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut top_status = StatusCode::OK;
    for part in parts {
        match part {
            Part::Single(op) => {
                let resp = execute(cx, &op, &ids, None);
                let failed =
                    !resp.status().is_success() && resp.status() != StatusCode::NOT_MODIFIED;
                let status = resp.status();
                render_part(&mut out, &batch_boundary, op.content_id.as_deref(), resp);
                if failed && !continue_on_error {
                    top_status = status;
                    break;
                }
            }
            Part::ChangeSet(ops) => {
                let change_set = cx.data.write().begin_journal();
                let mut responses = Vec::new();
                let mut failure = None;
                let mut set_ids = ids.clone();
                for op in &ops {
                    let resp = execute(cx, op, &set_ids, Some(change_set));
                    if !resp.status().is_success() {
                        failure = Some(resp);
                        break;
                    }
                    if let (Some(cid), Some(url)) = (&op.content_id, entity_id(&resp)) {
                        set_ids.push((cid.clone(), url));
                    }
                    responses.push((op.content_id.clone(), resp));
                }
                match failure {
                    Some(err) => {
                        // All or nothing: undo every write of the change set.
                        cx.data.write().rollback_journal(change_set);
                        let status = err.status();
                        render_part(&mut out, &batch_boundary, None, err);
                        if !continue_on_error {
                            top_status = status;
                            break;
                        }
                    }
                    None => {
                        cx.data.write().commit_journal(change_set);
                        ids = set_ids;
                        let cs = format!("changesetresponse_{}", Uuid::new_v4());
                        out.push_str(&format!("--{batch_boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"));
                        for (cid, resp) in responses {
                            render_part(&mut out, &cs, cid.as_deref(), resp);
                        }
                        out.push_str(&format!("--{cs}--\r\n"));
                    }
                }
            }
        }
    }
    out.push_str(&format!("--{batch_boundary}--\r\n"));
    let mut resp = (top_status, out).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={batch_boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if continue_on_error {
        resp.headers_mut().insert(
            "Preference-Applied",
            HeaderValue::from_static("odata.continue-on-error"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_urls() {
        let ids = vec![
            (
                "1".to_string(),
                "https://x/api/data/v9.2/accounts(1)".to_string(),
            ),
            ("10".to_string(), "U10".to_string()),
        ];
        assert_eq!(
            substitute("$1/name", &ids),
            "https://x/api/data/v9.2/accounts(1)/name"
        );
        assert_eq!(
            substitute("{\"a@odata.bind\":\"$10\"}", &ids),
            "{\"a@odata.bind\":\"U10\"}"
        );
        assert_eq!(
            relative("/org/api/data/v9.2/accounts?$top=1"),
            ("accounts".to_string(), Some("$top=1".to_string()))
        );
        assert_eq!(
            relative("https://h/api/data/v9.2/accounts(1)/name").0,
            "accounts(1)/name"
        );
        assert_eq!(relative("accounts").0, "accounts");
    }
}
