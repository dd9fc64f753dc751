//! Probes, metrics, the OpenAPI document and unknown routes.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{HELLO, Server};

#[tokio::test]
async fn probes_answer_without_a_key() {
    let server = Server::start().await;
    let health = server.call(Method::GET, "/healthz", None).await;
    assert_eq!(health.expect(StatusCode::OK), json!({"status": "ok"}));
    let ready = server.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready.expect(StatusCode::OK), json!({"status": "ok"}));
    assert!(ready.header("x-request-id").is_some());
}

#[tokio::test]
async fn metrics_count_invocations() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    server
        .invoke(&key, "acme", HELLO, "hello", &json!({"name": "Ada"}))
        .await
        .expect(StatusCode::OK);
    server
        .invoke(&key, "acme", HELLO, "hello", &json!({}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "schema_mismatch");
    // The next instance is prepared after a call answers: calls (spaced,
    // so one is ready) until one found it.
    let prepared = |text: &str| {
        text.lines()
            .any(|l| l.starts_with("dvhost_invocations_prepared_total "))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        server
            .invoke(&key, "acme", HELLO, "hello", &json!({"name": "Grace"}))
            .await
            .expect(StatusCode::OK);
        let metrics = server.call(Method::GET, "/metrics", None).await;
        if prepared(&metrics.text()) || std::time::Instant::now() > deadline {
            break metrics;
        }
    };
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let text = metrics.text();
    assert!(
        text.lines()
            .any(|l| l.starts_with("dvhost_invocations_total{outcome=\"ok\"}")),
        "{text}"
    );
    assert!(
        text.contains("dvhost_invocation_duration_seconds"),
        "{text}"
    );
    assert!(prepared(&text), "{text}");
    assert!(
        text.contains("dvhost_http_requests_total{status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("dvhost_http_requests_total{status=\"400\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_routes() {
    let server = Server::start().await;
    let answer = server.call(Method::GET, "/openapi.json", None).await;
    let document = answer.expect(StatusCode::OK);
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{document}"
    );
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/tenants/{tenant}/plugins/{plugin}/actions/{action}",
        "/v1/tenants/{tenant}/plugins",
        "/v1/tenants/{tenant}/plugins/{plugin}",
        "/v1/tenants/{tenant}/plugins/{plugin}/rollback",
        "/v1/tenants/{tenant}/audit",
        "/v1/admin/tenants",
        "/v1/admin/tenants/{tenant}",
        "/v1/admin/tenants/{tenant}/keys",
        "/v1/admin/tenants/{tenant}/keys/{id}",
        "/v1/admin/tenants/{tenant}/connections",
        "/v1/admin/tenants/{tenant}/connections/{connection}/test",
        "/v1/admin/tenants/{tenant}/integrations",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from {:?}",
            paths.keys()
        );
    }
    let invoke = &paths["/v1/tenants/{tenant}/plugins/{plugin}/actions/{action}"]["post"];
    for status in ["200", "400", "401", "403", "404", "413", "429", "504"] {
        assert!(
            invoke["responses"].get(status).is_some(),
            "invoke lacks {status}: {invoke}"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer", "{schemes}");
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let server = Server::start().await;
    for uri in [
        "/",
        "/v2/tenants",
        "/v1/tenants/acme/nothing",
        "/healthz/extra",
    ] {
        let answer = server.call(Method::GET, uri, None).await;
        answer.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    // Unknown routes do not ask for a key first.
    let answer = server.call(Method::POST, "/v1/admin/nothing", None).await;
    answer.expect_error(StatusCode::NOT_FOUND, "not_found");
}
