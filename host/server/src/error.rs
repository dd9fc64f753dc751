//! The API's one error shape: `{"error": {"code", "message", ...}}` with a
//! fitting status, and `Retry-After` when waiting helps. Messages name what
//! was wrong and what to do; none carries a secret (the server holds none).
//! The extractors [`JsonBody`] and [`PathParams`] give axum's rejections
//! (a body that is not a JSON object, a path that does not decode) the
//! same shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dvhost_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`not_found`, `invalid_input`...).
    pub code: &'static str,
    /// For a person.
    pub message: String,
    /// Seconds to wait before trying again.
    pub retry_after: Option<u64>,
    /// Structured details (schema violations, the failed Dataverse call).
    pub details: Option<Value>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// For a person.
    pub message: String,
    /// Seconds to wait before trying again, also sent as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Structured details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 404: no such thing (also what a caller gets for another tenant's
    /// things, so it learns nothing about them).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 500: a failure of the host itself; the message is logged, not sent.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; the server's log has the cause"),
        )
    }

    /// With `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// With details.
    pub fn details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                retry_after: self.retry_after,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid { .. } | StoreError::InvalidName { .. } => {
                ApiError::bad_request(e.to_string())
            }
            StoreError::NotAllowed(_) => ApiError::conflict(e.to_string()),
            StoreError::AlreadyExists { .. } => ApiError::conflict(e.to_string()),
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::internal("the store", other),
        }
    }
}

/// A JSON object body (`Content-Type: application/json`) read into `T`.
/// Unlike axum's `Json`, it refuses a body that is not an object (serde
/// would read a struct from an array) and answers every rejection with an
/// [`ApiError`]: 415 without the JSON content type, 413 past the body
/// limit, 400 otherwise.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        json_object(req, state)
            .await?
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))
    }
}

/// An optional body: `None` when the request has no `Content-Type`, or
/// when the JSON body is `null`.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<JsonBody<T>>, ApiError> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        json_object(req, state).await
    }
}

/// The body as `T` when it is a JSON object, `None` when it is `null`.
async fn json_object<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Option<JsonBody<T>>, ApiError> {
    let axum::Json(value) = <axum::Json<Value> as FromRequest<S>>::from_request(req, state)
        .await
        .map_err(json_rejection)?;
    match value {
        Value::Null => Ok(None),
        Value::Object(_) => serde_json::from_value(value)
            .map(|t| Some(JsonBody(t)))
            .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}"))),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            rejection.body_text(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        _ => ApiError::bad_request(rejection.body_text()),
    }
}

/// Path parameters read into `T`. A path segment that does not decode
/// (bad percent-encoding, not UTF-8) names nothing: 404, like any unknown
/// name, instead of axum's plain-text 400.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathParams<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|e| ApiError::not_found(format!("no such resource: {}", e.body_text())))
    }
}
