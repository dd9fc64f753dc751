//! dvhost's HTTP service: callers invoke plugin actions with a tenant API
//! key, tenants deploy and roll back plugin versions, operators manage
//! tenants, keys, connections and generated table integrations with the
//! admin key, and everything is audited, measured and described by an
//! OpenAPI document.
//!
//! The server knows nothing of credentials: it reaches a connection's
//! Dataverse through the [`Connections`] trait, which the `dvhost` binary
//! implements with the secret-owning transport, and it runs plugins with
//! `dvhost-runtime`.
//!
//! # Routes
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /v1/tenants/{t}/plugins/{p}/actions/{a}` | invoke | run an action |
//! | `GET /v1/tenants/{t}/plugins[/{p}]` | invoke | the catalogue |
//! | `PUT /v1/tenants/{t}/plugins/{p}` | deploy | deploy a version |
//! | `PATCH /v1/tenants/{t}/plugins/{p}` | deploy | grants, limits, connection |
//! | `POST /v1/tenants/{t}/plugins/{p}/rollback` | deploy | serve an earlier version |
//! | `DELETE /v1/tenants/{t}/plugins/{p}` | deploy | delete a plugin |
//! | `GET /v1/tenants/{t}/audit` | audit | the audit log |
//! | `/v1/admin/...` | admin key | tenants, keys, connections, integrations |
//! | `GET /healthz`, `/readyz`, `/metrics`, `/openapi.json` | anyone | operations |
//!
//! Every error is `{"error": {"code", "message", ...}}`.
#![deny(missing_docs)]

mod audit;
mod auth;
mod config;
mod connections;
mod error;
mod gate;
mod metrics;
mod openapi;
mod registry;
mod routes;
mod state;

use std::future::{Future, IntoFuture as _};
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use tracing::Instrument as _;
use utoipa::OpenApi as _;

pub use auth::Caller;
pub use config::{ServerConfig, TenantLimits};
pub use connections::{
    AdministratorAnswer, AutomaticCreated, AutomaticRequest, ConnectionBackend, ConnectionFailure,
    Connections, FlowError, FlowErrorKind, MailReport, ManualRequest, ManualRequested,
    NoConnections, Rotated, SignInChoice,
};
pub use error::{ApiError, ErrorBody};
pub use openapi::ApiDoc;
pub use routes::invoke::{REQUEST_ID_HEADER, VERSION_HEADER};
pub use state::{AppState, Services};

use crate::error::ApiError as Error;
use routes::{
    admin, audit as audit_routes, connections as connection_routes, health, invoke, plugins,
};

/// The service's routes with their middleware: request ids, tracing, body
/// limits and JSON 404s.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let deploy_routes = Router::new()
        .route(
            "/v1/tenants/{tenant}/plugins/{plugin}",
            get(plugins::show)
                .put(plugins::deploy)
                .patch(plugins::configure)
                .delete(plugins::delete),
        )
        .layer(DefaultBodyLimit::max(config.component_limit_bytes));
    let api = Router::new()
        .route(
            "/v1/tenants/{tenant}/plugins/{plugin}/actions/{action}",
            post(invoke::invoke),
        )
        .route("/v1/tenants/{tenant}/plugins", get(plugins::list))
        .route(
            "/v1/tenants/{tenant}/plugins/{plugin}/rollback",
            post(plugins::rollback),
        )
        .route("/v1/tenants/{tenant}/audit", get(audit_routes::audit))
        .route(
            "/v1/admin/tenants",
            get(admin::tenants).post(admin::create_tenant),
        )
        .route(
            "/v1/admin/tenants/{tenant}",
            axum::routing::delete(admin::delete_tenant),
        )
        .route(
            "/v1/admin/tenants/{tenant}/keys",
            get(admin::keys).post(admin::create_key),
        )
        .route(
            "/v1/admin/tenants/{tenant}/keys/{id}",
            axum::routing::delete(admin::revoke_key),
        )
        .route(
            "/v1/admin/tenants/{tenant}/connections",
            get(admin::connections).post(connection_routes::create),
        )
        .route(
            "/v1/admin/tenants/{tenant}/connections/{connection}",
            get(connection_routes::show).delete(connection_routes::delete),
        )
        .route(
            "/v1/admin/tenants/{tenant}/connections/{connection}/complete",
            post(connection_routes::complete),
        )
        .route(
            "/v1/admin/tenants/{tenant}/connections/{connection}/rotate",
            post(connection_routes::rotate),
        )
        .route(
            "/v1/admin/tenants/{tenant}/connections/{connection}/test",
            post(admin::test_connection),
        )
        .route(
            "/v1/admin/tenants/{tenant}/integrations",
            post(admin::create_integration),
        )
        .layer(DefaultBodyLimit::max(config.body_limit_bytes));
    Router::new()
        .merge(api)
        .merge(deploy_routes)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(|| async { Error::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), frame))
        .with_state(state)
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// Every request's frame, in one middleware rather than a layer each (a
/// layer on the router wraps every route, and each is paid on every
/// request): the request id (the caller's `x-request-id`, or a new UUID),
/// echoed in the answer and carried by a tracing span; the configured
/// request timeout, bounding the whole request (queueing, the plugin's
/// run, the audit entry); and the answer counted by status.
async fn frame(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(REQUEST_ID_HEADER) {
        Some(id) => id.clone(),
        None => {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            let id = HeaderValue::from_str(text).expect("a UUID is a valid header value");
            request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id.to_str().unwrap_or(""),
    );
    let limit = state.config().request_timeout();
    let started = Instant::now();
    let mut response = tokio::time::timeout(limit, next.run(request))
        .instrument(span.clone())
        .await
        .unwrap_or_else(|_| {
            Error::new(
                StatusCode::GATEWAY_TIMEOUT,
                "request_timeout",
                format!("the request took longer than the server's limit of {limit:?}"),
            )
            .into_response()
        });
    let status = response.status();
    metrics::http_answer(status.as_u16());
    span.in_scope(|| {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), latency_ms, "request answered");
        }
    });
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, reports not ready, gives in-flight requests up to the
/// configured grace time to finish, and writes out the audit log.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config().shutdown_grace();
    let draining = state.clone();
    let app = router(state.clone());
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        draining.0.draining.store(true, Ordering::Release);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        result = &mut server => result,
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace = ?grace, "in-flight requests outlived the shutdown grace time");
            Ok(())
        }
    };
    state.flush_audit().await;
    result
}
