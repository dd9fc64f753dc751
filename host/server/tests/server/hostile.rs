//! The hostile guest over HTTP: a runaway loop meets its deadline (504), a
//! panic and a stack overflow crash only their own call (500), and the
//! server goes on serving.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{HELLO, Server, hostile};

#[tokio::test]
async fn a_hostile_guest_ends_only_its_own_calls() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let limits = json!({"limits": {"deadline_ms": 300}});
    server
        .deploy_form("acme", "hostile", &hostile(), Some(&limits))
        .await
        .expect(StatusCode::CREATED);

    let attacks = [
        ("spin", StatusCode::GATEWAY_TIMEOUT, "deadline", "deadline"),
        (
            "panic",
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_crashed",
            "crashed",
        ),
        (
            "recurse",
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_crashed",
            "stack",
        ),
    ];
    for (action, status, code, words) in attacks {
        let answer = server
            .invoke(&key, "acme", "hostile", action, &json!({}))
            .await;
        answer.expect_error_saying(status, code, words);
    }

    // The same server, the same tenant, the same plugin: all still work.
    let hello = server
        .invoke(&key, "acme", HELLO, "hello", &json!({"name": "Ada"}))
        .await;
    assert_eq!(
        hello.expect(StatusCode::OK),
        json!({"greeting": "Hello, Ada!"})
    );
    let output = server
        .invoke(&key, "acme", "hostile", "huge-output", &json!({"bytes": 5}))
        .await;
    assert_eq!(output.expect(StatusCode::OK), json!("xxxxx"));
    let spin = server
        .invoke(&key, "acme", "hostile", "spin", &json!({}))
        .await;
    spin.expect_error(StatusCode::GATEWAY_TIMEOUT, "deadline");
    let health = server.call(Method::GET, "/healthz", None).await;
    assert_eq!(health.expect(StatusCode::OK), json!({"status": "ok"}));

    // Each failure is in the audit log with its status and code.
    server.state.flush_audit().await;
    let page = server
        .get("/v1/tenants/acme/audit?plugin=hostile", &key)
        .await
        .expect(StatusCode::OK);
    let outcomes: Vec<_> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "plugin.invoke")
        .map(|e| {
            (
                e["detail"]["action"].as_str().unwrap().to_owned(),
                e["detail"]["status"].as_u64().unwrap(),
                e["detail"]["error"].clone(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("spin".into(), 504, json!("deadline"), "failure".into()),
            ("huge-output".into(), 200, json!(null), "success".into()),
            (
                "recurse".into(),
                500,
                json!("plugin_crashed"),
                "failure".into()
            ),
            (
                "panic".into(),
                500,
                json!("plugin_crashed"),
                "failure".into()
            ),
            ("spin".into(), 504, json!("deadline"), "failure".into()),
        ],
        "{page}"
    );
}
