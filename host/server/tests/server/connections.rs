//! The connection routes on a server without credentials (`NoConnections`):
//! the flows are refused with 503 and say why; showing and deleting a
//! connection work on the store alone; unknown names are 404 and a tenant
//! key is refused. The flows themselves are tested end to end in
//! `host/dvhost/tests/integration/admin_connections.rs`.

use axum::http::{Method, StatusCode};
use dvhost_store::{ConnectionMode, Name, NewConnection};
use serde_json::json;

use crate::common::Server;

const BASE: &str = "/v1/admin/tenants/acme/connections";

#[tokio::test]
async fn without_credentials_the_flows_answer_503_and_show_and_delete_work() {
    let server = Server::start().await;
    server.create_tenant("acme").await;
    let environment = "https://acme.crm.dynamics.com";
    for body in [
        json!({"name": "sales", "environment_url": environment, "mode": "manual"}),
        json!({"name": "sales", "environment_url": environment, "mode": "automatic",
            "sign_in": {"user": "admin@acme.test", "entra_tenant": "11111111-2222-3333-4444-555555555555"}}),
    ] {
        server
            .post(BASE, &server.admin, &body)
            .await
            .expect_error_saying(
                StatusCode::SERVICE_UNAVAILABLE,
                "flows_unavailable",
                "no credentials",
            );
    }
    // Malformed before anything is tried.
    server
        .post(
            BASE,
            &server.admin,
            &json!({"name": "sales", "environment_url": environment, "mode": "automatic"}),
        )
        .await
        .expect_error_saying(StatusCode::BAD_REQUEST, "invalid_input", "sign_in");

    let store = server.state.store();
    let tenant = store
        .tenant_by_name(&Name::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .create_connection(
            NewConnection {
                tenant: tenant.id,
                name: Name::parse("sales").unwrap(),
                environment_url: environment.into(),
                entra_tenant_id: None,
                client_id: None,
                security_role: Some("Basic User".into()),
                mode: ConnectionMode::Manual,
            },
            "test",
        )
        .await
        .unwrap();
    let shown = server
        .get(&format!("{BASE}/sales"), &server.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["connection"]["state"], "pending", "{shown}");
    assert_eq!(shown["certificates"], json!([]));
    assert_eq!(shown["history"][0]["actor"], "test", "{shown}");
    server
        .post(
            &format!("{BASE}/sales/complete"),
            &server.admin,
            &json!({"entra_tenant_id": "11111111-2222-3333-4444-555555555555",
                "client_id": "aaaaaaaa-0000-0000-0000-000000000001"}),
        )
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "flows_unavailable");
    server
        .call(
            Method::POST,
            &format!("{BASE}/sales/rotate"),
            Some(&server.admin),
        )
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "flows_unavailable");
    let deleted = server
        .call(
            Method::DELETE,
            &format!("{BASE}/sales"),
            Some(&server.admin),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    server
        .get(&format!("{BASE}/sales"), &server.admin)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let (_, tenant_key) = server.mint_key("acme", &["invoke", "deploy"]).await;
    server
        .post(
            BASE,
            &tenant_key,
            &json!({"name": "x", "environment_url": environment, "mode": "manual"}),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
}
