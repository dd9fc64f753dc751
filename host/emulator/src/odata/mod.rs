//! OData pieces shared by the emulated services: `$filter`, `$select`, and
//! the `{"error":{"code","message"}}` body.

pub mod filter;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An OData error response (Global Discovery, Dataverse).
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.to_string()}})),
    )
        .into_response();
    resp.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    resp
}

/// A JSON response with OData headers.
pub fn ok(body: Value) -> Response {
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal"),
    );
    resp
}

/// Splits `s` on the commas outside `quote`d text (a doubled quote inside
/// quoted text, OData's escape, closes and reopens it, so it stays inside).
pub(crate) fn split_unquoted(s: &str, quote: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            c if c == quote => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Why a `$select` cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A selected property the record type does not have.
    #[error("Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.Instance'.")]
    UnknownProperty {
        /// The property as selected.
        name: String,
    },
}

/// Keeps only `select`ed properties (plus `@odata.*` annotations). Unknown
/// names are an error, as OData requires.
pub fn select(
    record: &Map<String, Value>,
    select: &str,
) -> Result<Map<String, Value>, SelectError> {
    let mut out = Map::new();
    for (k, v) in record.iter().filter(|(k, _)| k.starts_with('@')) {
        out.insert(k.clone(), v.clone());
    }
    for name in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match record.get(name) {
            Some(v) => {
                out.insert(name.to_string(), v.clone());
            }
            None => {
                return Err(SelectError::UnknownProperty {
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(out)
}
