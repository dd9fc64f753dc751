//! Answers for requests no route takes: a JSON 404 (never an empty body),
//! after reading the request body to its end, so an HTTP/2 client that is
//! still sending gets the answer instead of a stream reset.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// How much of an unmatched request's body is read before giving up (the
/// largest body any route accepts).
const DRAIN_LIMIT: usize = crate::DATAVERSE_MAX_BODY_BYTES;

/// Reads and discards a request body.
pub(crate) async fn drain(body: Body) {
    if let Err(e) = axum::body::to_bytes(body, DRAIN_LIMIT).await {
        tracing::debug!(error = %e, "unmatched request body not read to its end");
    }
}

/// The 404 for a path no service has.
pub(crate) async fn not_found(req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    drain(req.into_body()).await;
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {
            "code": "NotFound",
            "message": format!("No resource is served at '{path}'."),
        }})),
    )
        .into_response()
}
