//! Dataverse's error body `{"error":{"code":"0x…","message":"…"}}` ("Compose HTTP
//! requests and handle errors", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors>).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A Web API error: HTTP status, hex code, message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DvError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type DvResult<T> = Result<T, DvError>;

impl DvError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        DvError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 0x80060888: a URL segment or query element the service does not know.
    pub fn segment(message: impl Into<String>) -> Self {
        Self::bad_request("0x80060888", message)
    }

    /// 0x80060888 as 405: a method the resource does not accept.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", message)
    }

    /// 0x80040217: the record does not exist.
    pub fn not_found(logical: &str, id: &uuid::Uuid) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("Entity '{logical}' With Id = {id} Does Not Exist"),
        )
    }

    /// 0x80060888 as 400: a property that the type does not define.
    pub fn unknown_property(name: &str, logical: &str) -> Self {
        Self::segment(format!(
            "The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{logical}'. Make sure to only use property names that are defined by the type."
        ))
    }

    /// 0x80048d19: the payload does not fit the entity type.
    pub fn payload(message: impl Into<String>) -> Self {
        Self::bad_request("0x80048d19", message)
    }
}

/// A `$filter` that does not parse or evaluate: 0x80060888, as an unknown
/// query element.
impl From<crate::odata::filter::FilterError> for DvError {
    fn from(e: crate::odata::filter::FilterError) -> Self {
        Self::segment(e.to_string())
    }
}

impl IntoResponse for DvError {
    fn into_response(self) -> Response {
        crate::odata::error(self.status, self.code, self.message)
    }
}
