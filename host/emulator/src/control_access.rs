//! Who may use the control API. It can approve sign-ins and register apps,
//! so without a control token it answers loopback callers only; with one,
//! every caller (loopback included) presents it as
//! `Authorization: Bearer <token>` or in [`CONTROL_TOKEN_HEADER`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Emulator;

/// The header that may carry the control token instead of `Authorization`.
pub const CONTROL_TOKEN_HEADER: &str = "x-dvhost-control-token";

/// The address of the connection a request came on, set by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// Whether `headers` present `token`, by either header.
fn presents(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let custom = headers
        .get(CONTROL_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    [bearer, custom]
        .into_iter()
        .flatten()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell a caller how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware in front of the control routes.
pub(crate) async fn guard(State(emu): State<Arc<Emulator>>, req: Request, next: Next) -> Response {
    let allowed = match &emu.control_token {
        Some(token) => presents(req.headers(), token),
        None => req
            .extensions()
            .get::<Peer>()
            .is_some_and(|p| p.0.ip().to_canonical().is_loopback()),
    };
    if allowed {
        return next.run(req).await;
    }
    let why = if emu.control_token.is_some() {
        "The control API needs the emulator's control token (Authorization: Bearer <token> or x-dvhost-control-token)."
    } else {
        "The control API answers loopback callers only; start the emulator with a control token to use it from elsewhere."
    };
    (StatusCode::FORBIDDEN, axum::Json(json!({"error": why}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_header_presents_the_token() {
        let mut h = HeaderMap::new();
        assert!(!presents(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(presents(&h, "s3cret"));
        assert!(!presents(&h, "s3cret2"));
        let mut h = HeaderMap::new();
        h.insert(CONTROL_TOKEN_HEADER, "s3cret".parse().unwrap());
        assert!(presents(&h, "s3cret"));
    }
}
