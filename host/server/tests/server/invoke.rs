//! Calling actions: the answer and its version, unknown plugins and
//! actions, bodies that are not JSON, do not match the schema or are too
//! large, tenant isolation and rights.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use dvhost_server::ServerConfig;
use serde_json::json;

use crate::common::{HELLO, Server, request};

#[tokio::test]
async fn hello_answers_with_its_output_and_version() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let answer = server
        .invoke(&key, "acme", HELLO, "hello", &json!({"name": "Ada"}))
        .await;
    assert_eq!(
        answer.expect(StatusCode::OK),
        json!({"greeting": "Hello, Ada!"})
    );
    assert_eq!(answer.header("dvhost-plugin-version"), Some("1"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(
        answer
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );

    let noop = server
        .invoke(&key, "acme", HELLO, "noop", &json!([1, "two", null]))
        .await;
    assert_eq!(noop.expect(StatusCode::OK), json!({}));
}

#[tokio::test]
async fn unknown_plugins_and_actions_are_404() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let input = json!({"name": "Ada"});
    let plugin = server.invoke(&key, "acme", "nope", "hello", &input).await;
    plugin.expect_error(StatusCode::NOT_FOUND, "not_found");
    let invalid_name = server
        .invoke(&key, "acme", "No%20Such", "hello", &input)
        .await;
    invalid_name.expect_error(StatusCode::NOT_FOUND, "not_found");
    let action = server.invoke(&key, "acme", HELLO, "goodbye", &input).await;
    action.expect_error_saying(StatusCode::NOT_FOUND, "unknown_action", "goodbye");
    let tenant = server
        .invoke(&server.admin, "nobody", HELLO, "hello", &input)
        .await;
    tenant.expect_error(StatusCode::NOT_FOUND, "not_found");
    // GET on an action is not a route of its own.
    let get = server
        .get("/v1/tenants/acme/plugins/hello/actions/hello", &key)
        .await;
    assert!(get.status.is_client_error(), "{get:?}");
}

#[tokio::test]
async fn bodies_that_are_not_json_or_do_not_match_the_schema_are_400() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let uri = "/v1/tenants/acme/plugins/hello/actions/hello";
    for body in ["not JSON", "{\"name\":", ""] {
        let answer = server
            .send(
                request(Method::POST, uri, Some(&key))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        answer.expect_error_saying(StatusCode::BAD_REQUEST, "invalid_input", "not JSON");
    }

    let missing = server
        .invoke(&key, "acme", HELLO, "hello", &json!({}))
        .await;
    let error = missing.expect_error(StatusCode::BAD_REQUEST, "schema_mismatch");
    let details = error["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {error}"));
    assert_eq!(details.len(), 1, "{error}");
    assert_eq!(details[0]["path"], "");
    assert!(
        details[0]["message"].as_str().unwrap().contains("name"),
        "{error}"
    );

    let wrong_type = server
        .invoke(&key, "acme", HELLO, "hello", &json!({"name": 5}))
        .await;
    let error = wrong_type.expect_error(StatusCode::BAD_REQUEST, "schema_mismatch");
    assert_eq!(error["details"][0]["path"], "/name", "{error}");
    assert!(
        error["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("string"),
        "{error}"
    );

    let not_object = server
        .invoke(&key, "acme", HELLO, "hello", &json!("Ada"))
        .await;
    not_object.expect_error(StatusCode::BAD_REQUEST, "schema_mismatch");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let server = Server::with_config(ServerConfig {
        body_limit_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let key = server.tenant_with_hello("acme").await;
    let small = server
        .invoke(
            &key,
            "acme",
            HELLO,
            "noop",
            &json!({"pad": "x".repeat(900)}),
        )
        .await;
    small.expect(StatusCode::OK);
    let too_large = [
        ("noop", json!({"pad": "x".repeat(2000)})),
        ("hello", json!({"name": "x".repeat(2000)})),
    ];
    for (action, input) in too_large {
        let answer = server.invoke(&key, "acme", HELLO, action, &input).await;
        answer.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
    // The deploy routes have their own, larger limit.
    server
        .deploy("acme", "second", &crate::common::hello())
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_key_reaches_only_its_own_tenant() {
    let server = Server::start().await;
    let key_a = server.tenant_with_hello("tenant-a").await;
    let key_b = server.tenant_with_hello("tenant-b").await;
    let input = json!({"name": "Ada"});

    let routes: Vec<(Method, String)> = vec![
        (
            Method::POST,
            "/v1/tenants/tenant-b/plugins/hello/actions/hello".into(),
        ),
        (Method::GET, "/v1/tenants/tenant-b/plugins".into()),
        (Method::GET, "/v1/tenants/tenant-b/plugins/hello".into()),
        (Method::PUT, "/v1/tenants/tenant-b/plugins/hello".into()),
        (Method::PATCH, "/v1/tenants/tenant-b/plugins/hello".into()),
        (Method::DELETE, "/v1/tenants/tenant-b/plugins/hello".into()),
        (
            Method::POST,
            "/v1/tenants/tenant-b/plugins/hello/rollback".into(),
        ),
        (Method::GET, "/v1/tenants/tenant-b/audit".into()),
    ];
    let mut foreign = Vec::new();
    for (method, uri) in &routes {
        let answer = server.json(method.clone(), uri, Some(&key_a), &input).await;
        answer.expect_error(StatusCode::NOT_FOUND, "not_found");
        foreign.push(answer.body);
    }
    // tenant-b still works for its own key.
    let own = server
        .invoke(&key_b, "tenant-b", HELLO, "hello", &input)
        .await;
    own.expect(StatusCode::OK);

    // Once tenant-b is gone, the same requests get exactly the same bodies.
    let deleted = server
        .call(
            Method::DELETE,
            "/v1/admin/tenants/tenant-b",
            Some(&server.admin),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for ((method, uri), before) in routes.iter().zip(&foreign) {
        let answer = server.json(method.clone(), uri, Some(&key_a), &input).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(
            answer.text(),
            String::from_utf8_lossy(before),
            "{method} {uri}: another tenant's answer differs from a missing tenant's"
        );
    }
    // And tenant-b's own key opens nothing any more: 404 while the server
    // still trusts its cached key record (up to 5 s), 401 after.
    let refused = [StatusCode::NOT_FOUND, StatusCode::UNAUTHORIZED];
    let gone = server
        .invoke(&key_b, "tenant-b", HELLO, "hello", &input)
        .await;
    assert!(refused.contains(&gone.status), "{gone:?}");
    // A new tenant of the same name is another tenant: the old key does
    // not open it.
    server.create_tenant("tenant-b").await;
    let reborn = server.get("/v1/tenants/tenant-b/plugins", &key_b).await;
    assert!(refused.contains(&reborn.status), "{reborn:?}");
}

#[tokio::test]
async fn keys_without_the_right_are_403() {
    let server = Server::start().await;
    server.tenant_with_hello("acme").await;
    let (_, auditor) = server.mint_key("acme", &["audit"]).await;
    let (_, invoker) = server.mint_key("acme", &["invoke"]).await;
    let input = json!({"name": "Ada"});

    server
        .invoke(&auditor, "acme", HELLO, "hello", &input)
        .await
        .expect_error_saying(StatusCode::FORBIDDEN, "forbidden", "invoke");
    server
        .get("/v1/tenants/acme/plugins", &auditor)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    server
        .get("/v1/tenants/acme/audit", &invoker)
        .await
        .expect_error_saying(StatusCode::FORBIDDEN, "forbidden", "audit");
    server
        .invoke(&invoker, "acme", HELLO, "hello", &input)
        .await
        .expect(StatusCode::OK);
    server
        .get("/v1/tenants/acme/audit", &auditor)
        .await
        .expect(StatusCode::OK);
    // No key at all.
    let anonymous = server
        .call(
            Method::POST,
            "/v1/tenants/acme/plugins/hello/actions/hello",
            None,
        )
        .await;
    anonymous.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(anonymous.header("www-authenticate").is_some());
}
