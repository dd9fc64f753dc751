//! The audit log over HTTP: invocations with plugin, version, action,
//! status and the request id the caller sent, deploys, filters and paging.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{HELLO, Server, request};

async fn invoke_with_id(
    server: &Server,
    key: &str,
    action: &str,
    input: &Value,
    id: &str,
) -> String {
    let answer = server
        .send(
            request(
                Method::POST,
                &format!("/v1/tenants/acme/plugins/hello/actions/{action}"),
                Some(key),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", id)
            .body(Body::from(input.to_string()))
            .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.header("x-request-id").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn invocations_are_audited_with_their_request_ids() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let (auditor_id, auditor) = server.mint_key("acme", &["invoke", "audit"]).await;

    let echoed = invoke_with_id(
        &server,
        &auditor,
        "hello",
        &json!({"name": "Ada"}),
        "req-hello-1",
    )
    .await;
    assert_eq!(echoed, "req-hello-1");
    let echoed = invoke_with_id(&server, &auditor, "noop", &json!({}), "req-noop-2").await;
    assert_eq!(echoed, "req-noop-2");
    // Without one, the server makes one up and stores that.
    let generated = server
        .invoke(&auditor, "acme", HELLO, "hello", &json!({"name": "Bo"}))
        .await;
    generated.expect(StatusCode::OK);
    let generated_id = generated
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    assert!(!generated_id.is_empty());
    // Refused before the plugin ran: audited as denied.
    let refused = server
        .invoke(&auditor, "acme", HELLO, "hello", &json!({}))
        .await;
    refused.expect_error(StatusCode::BAD_REQUEST, "schema_mismatch");
    let refused_id = refused.header("x-request-id").expect("a request id");

    server.state.flush_audit().await;
    let page = server
        .get("/v1/tenants/acme/audit", &key)
        .await
        .expect(StatusCode::OK);
    let entries = page["entries"].as_array().unwrap();
    assert!(page.get("next").is_none(), "{page}");
    let invocations: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "plugin.invoke")
        .collect();
    assert_eq!(invocations.len(), 4, "{page}");
    // Newest first.
    let denied = invocations[0];
    assert_eq!(denied["request_id"], refused_id);
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["detail"]["status"], 400);
    assert_eq!(denied["detail"]["error"], "schema_mismatch");
    assert_eq!(denied["detail"]["version"], 1);
    assert_eq!(invocations[1]["request_id"], generated_id.as_str());
    assert_eq!(invocations[2]["request_id"], "req-noop-2");
    assert_eq!(invocations[3]["request_id"], "req-hello-1");
    let hello = invocations[3];
    assert_eq!(hello["outcome"], "success");
    assert_eq!(hello["actor"], format!("api_key:{auditor_id}"));
    assert_eq!(hello["detail"]["plugin"], "hello");
    assert_eq!(hello["detail"]["version"], 1);
    assert_eq!(hello["detail"]["action"], "hello");
    assert_eq!(hello["detail"]["status"], 200);
    assert!(hello["detail"]["error"].is_null());
    assert!(
        hello["detail"]["duration_ms"]
            .as_f64()
            .is_some_and(|d| d > 0.0),
        "{hello}"
    );
    assert_eq!(hello["detail"]["calls"], json!([]));
    assert!(hello["at"].as_str().is_some_and(|t| t.contains('T')));
    assert_eq!(invocations[2]["detail"]["action"], "noop");
    // The deploy is there too, by the admin.
    let deploy = entries
        .iter()
        .find(|e| e["action"] == "plugin.deploy")
        .expect("the deploy");
    assert_eq!(deploy["actor"], "admin");
    assert_eq!(deploy["detail"]["plugin"], "hello");
    assert_eq!(deploy["detail"]["version"], 1);
    // Positions decrease.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

    // Page by page, the same entries.
    let mut paged = Vec::new();
    let mut uri = "/v1/tenants/acme/audit?limit=2".to_owned();
    loop {
        let page = server.get(&uri, &key).await.expect(StatusCode::OK);
        let got = page["entries"].as_array().unwrap();
        assert!(got.len() <= 2, "{page}");
        paged.extend(got.iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(next) => uri = format!("/v1/tenants/acme/audit?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, seqs);
    let one = server
        .get("/v1/tenants/acme/audit?limit=1", &key)
        .await
        .expect(StatusCode::OK);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    assert_eq!(one["next"], seqs[0]);

    // Filters.
    let by_plugin = server
        .get("/v1/tenants/acme/audit?plugin=hello", &key)
        .await
        .expect(StatusCode::OK);
    assert!(
        by_plugin["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["detail"]["plugin"] == "hello"),
        "{by_plugin}"
    );
    let later = server
        .get("/v1/tenants/acme/audit?since=2999-01-01T00:00:00Z", &key)
        .await
        .expect(StatusCode::OK);
    assert_eq!(later["entries"], json!([]));
    let earlier = server
        .get("/v1/tenants/acme/audit?until=2000-01-01T00:00:00Z", &key)
        .await
        .expect(StatusCode::OK);
    assert_eq!(earlier["entries"], json!([]));
    let since = server
        .get("/v1/tenants/acme/audit?since=2000-01-01T00:00:00Z", &key)
        .await
        .expect(StatusCode::OK);
    assert_eq!(since["entries"].as_array().unwrap().len(), entries.len());

    for bad in [
        "since=yesterday",
        "until=2024-13-01",
        "limit=0",
        "limit=1001",
        "limit=many",
        "before=x",
        "colour=red",
    ] {
        let answer = server
            .get(&format!("/v1/tenants/acme/audit?{bad}"), &key)
            .await;
        answer.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let unknown = server.get("/v1/tenants/acme/audit?plugin=nope", &key).await;
    unknown.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_audit_entries() {
    let server = Server::start().await;
    let key_a = server.tenant_with_hello("acme").await;
    let key_b = server.tenant_with_hello("other").await;
    server
        .invoke(&key_a, "acme", HELLO, "hello", &json!({"name": "A"}))
        .await
        .expect(StatusCode::OK);
    server.state.flush_audit().await;
    let page = server
        .get("/v1/tenants/other/audit", &key_b)
        .await
        .expect(StatusCode::OK);
    let entries = page["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["action"] != "plugin.invoke"),
        "{page}"
    );
    // The admin key reads any tenant's log.
    let page = server
        .get("/v1/tenants/acme/audit", &server.admin)
        .await
        .expect(StatusCode::OK);
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "plugin.invoke")
    );
}
