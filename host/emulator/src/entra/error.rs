//! Entra's error body: `error`, `error_description` starting with
//! `AADSTSnnnnn:` and trace lines, `error_codes`, `timestamp`, `trace_id`,
//! `correlation_id`, `error_uri` ("Microsoft Entra authentication and
//! authorization error codes", <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

/// An Entra token-service error, rendered exactly as Entra renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntraError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OAuth `error` value (`invalid_client`, `invalid_request`, ...).
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// Human text after `AADSTSnnnnn: `.
    pub message: String,
}

impl EntraError {
    /// An error with this status, OAuth `error`, AADSTS number and text.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", code, message)
    }

    /// 401 `invalid_client`: the client failed to authenticate.
    pub fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", code, message)
    }

    /// AADSTS900144: a required form field is missing.
    pub fn missing(field: &str) -> Self {
        Self::invalid_request(
            900144,
            format!("The request body must contain the following parameter: '{field}'."),
        )
    }

    /// Renders the body with fresh trace ids; `correlation_id` echoes the
    /// client's `client-request-id` when it sent one, as Entra does.
    pub fn into_response_with(
        self,
        correlation_id: Option<Uuid>,
        now: time::OffsetDateTime,
    ) -> Response {
        let trace_id = Uuid::new_v4();
        let correlation_id = correlation_id.unwrap_or_else(Uuid::new_v4);
        let timestamp = crate::clock::entra_timestamp(now);
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.code, self.message
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&trace_id.to_string()) {
            h.insert("x-ms-request-id", v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 for client authentication names the scheme.
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"\""),
            );
        }
        resp
    }
}

impl std::fmt::Display for EntraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} AADSTS{}: {}", self.error, self.code, self.message)
    }
}

impl std::error::Error for EntraError {}
