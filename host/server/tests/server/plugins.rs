//! Deploys (raw and multipart), refused components, the catalogue,
//! settings changes, rollbacks and deletion.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{HELLO, Server, hello, request};

fn action_names(view: &Value) -> Vec<String> {
    view["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no actions: {view}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn deploys_raw_and_multipart_and_lists_the_catalogue() {
    let server = Server::start().await;
    server.create_tenant("acme").await;
    let (_, deployer) = server.mint_key("acme", &["invoke", "deploy"]).await;
    let bytes = hello();

    let raw = server
        .put_wasm("/v1/tenants/acme/plugins/hello", &deployer, &bytes)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(raw["name"], "hello");
    assert_eq!(raw["active_version"], 1);
    assert_eq!(raw["versions"].as_array().unwrap().len(), 1);
    assert_eq!(raw["versions"][0]["component_bytes"], bytes.len());
    assert_eq!(
        raw["versions"][0]["component_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        action_names(&raw),
        [
            "hello",
            "noop",
            "retrieve-account",
            "retrieve-account-record"
        ]
    );

    let settings = json!({"limits": {"deadline_ms": 2000}, "grants": {"account": ["read"]}});
    let form = server
        .deploy_form("acme", HELLO, &bytes, Some(&settings))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(form["active_version"], 2);
    assert_eq!(form["versions"][1]["limits"]["deadline_ms"], 2000);
    assert_eq!(form["versions"][1]["grants"], json!({"account": ["read"]}));
    assert_eq!(
        form["versions"][0]["component_sha256"],
        form["versions"][1]["component_sha256"]
    );

    let listed = server
        .get("/v1/tenants/acme/plugins", &deployer)
        .await
        .expect(StatusCode::OK);
    let plugins = listed.as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{listed}");
    assert_eq!(plugins[0]["name"], "hello");
    assert_eq!(plugins[0]["active_version"], 2);
    assert_eq!(plugins[0]["versions"].as_array().unwrap().len(), 2);
    assert!(
        plugins[0].get("actions").is_none(),
        "the list leaves actions out: {listed}"
    );

    let shown = server
        .get("/v1/tenants/acme/plugins/hello", &deployer)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["active_version"], 2);
    assert!(shown["connection"].is_null());
    let greet = shown["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "hello")
        .unwrap_or_else(|| panic!("no hello action: {shown}"));
    assert_eq!(greet["description"], "Greets someone by name.");
    assert_eq!(greet["input_schema"]["type"], "object");
    assert_eq!(greet["input_schema"]["required"], json!(["name"]));
    assert_eq!(
        greet["input_schema"]["properties"]["name"]["type"],
        "string"
    );
    assert_eq!(
        greet["output_schema"]["properties"]["greeting"]["type"],
        "string"
    );

    let unknown = server.get("/v1/tenants/acme/plugins/nope", &deployer).await;
    unknown.expect_error(StatusCode::NOT_FOUND, "not_found");

    let answer = server
        .invoke(&deployer, "acme", HELLO, "hello", &json!({"name": "Ada"}))
        .await;
    assert_eq!(
        answer.expect(StatusCode::OK),
        json!({"greeting": "Hello, Ada!"})
    );
    assert_eq!(answer.header("dvhost-plugin-version"), Some("2"));
}

#[tokio::test]
async fn invalid_components_are_refused_and_the_served_version_stays() {
    let server = Server::start().await;
    server.create_tenant("acme").await;
    server
        .deploy("acme", HELLO, &hello())
        .await
        .expect(StatusCode::CREATED);

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let garbage = b"this is not WebAssembly".to_vec();
    let truncated = hello()[..hello().len() / 2].to_vec();
    for bytes in [&core_module, &garbage, &truncated, &Vec::new()] {
        let answer = server.deploy("acme", HELLO, bytes).await;
        answer.expect_error(StatusCode::BAD_REQUEST, "invalid_component");
        let answer = server.deploy_form("acme", HELLO, bytes, None).await;
        answer.expect_error(StatusCode::BAD_REQUEST, "invalid_component");
    }
    let core = server.deploy("acme", HELLO, &core_module).await;
    let message =
        core.expect_error(StatusCode::BAD_REQUEST, "invalid_component")["message"].clone();
    assert!(message.as_str().unwrap().contains("module"), "{message}");

    // Settings the runtime refuses, and malformed forms.
    let too_long = json!({"limits": {"deadline_ms": 120000}});
    let answer = server
        .deploy_form("acme", HELLO, &hello(), Some(&too_long))
        .await;
    answer.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let unknown = json!({"limits": {"cpu": 1}});
    let answer = server
        .deploy_form("acme", HELLO, &hello(), Some(&unknown))
        .await;
    answer.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let no_component = server
        .send(
            request(
                Method::PUT,
                "/v1/tenants/acme/plugins/hello",
                Some(&server.admin),
            )
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=b")
            .body(Body::from(
                "--b\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n{}\r\n--b--\r\n",
            ))
            .unwrap(),
        )
        .await;
    no_component.expect_error(StatusCode::BAD_REQUEST, "invalid_input");

    let shown = server
        .get("/v1/tenants/acme/plugins/hello", &server.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["active_version"], 1, "{shown}");
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1, "{shown}");
    let (_, key) = server.mint_key("acme", &["invoke"]).await;
    let answer = server
        .invoke(&key, "acme", HELLO, "hello", &json!({"name": "Ada"}))
        .await;
    answer.expect(StatusCode::OK);
    assert_eq!(answer.header("dvhost-plugin-version"), Some("1"));

    // A refused first deploy creates nothing.
    let answer = server.deploy("acme", "broken", &garbage).await;
    answer.expect_error(StatusCode::BAD_REQUEST, "invalid_component");
    let missing = server
        .get("/v1/tenants/acme/plugins/broken", &server.admin)
        .await;
    missing.expect_error(StatusCode::NOT_FOUND, "not_found");
    let listed = server
        .get("/v1/tenants/acme/plugins", &server.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn settings_changes_publish_versions_and_rollbacks_switch_back() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let uri = "/v1/tenants/acme/plugins/hello";
    let version_of =
        |answer: &crate::common::Answer| answer.header("dvhost-plugin-version").map(str::to_owned);
    let ada = json!({"name": "Ada"});
    let greet = || server.invoke(&key, "acme", HELLO, "hello", &ada);

    let patched = server
        .patch(uri, &key, &json!({"limits": {"deadline_ms": 1500}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(patched["active_version"], 2);
    assert_eq!(
        patched["versions"][1]["limits"],
        json!({"deadline_ms": 1500})
    );
    assert_eq!(
        patched["versions"][1]["grants"],
        patched["versions"][0]["grants"]
    );
    assert_eq!(
        action_names(&patched),
        [
            "hello",
            "noop",
            "retrieve-account",
            "retrieve-account-record"
        ]
    );
    assert_eq!(version_of(&greet().await).as_deref(), Some("2"));

    // Only what is given changes.
    let granted = server
        .patch(uri, &key, &json!({"grants": {"contact": ["read"]}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(granted["active_version"], 3);
    assert_eq!(
        granted["versions"][2]["limits"],
        json!({"deadline_ms": 1500})
    );
    assert_eq!(
        granted["versions"][2]["grants"],
        json!({"contact": ["read"]})
    );

    let bad = server
        .patch(uri, &key, &json!({"limits": {"deadline_ms": 0}}))
        .await;
    bad.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let unknown = server.patch(uri, &key, &json!({"colour": "red"})).await;
    unknown.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let no_connection = server
        .patch(uri, &key, &json!({"connection": "prod"}))
        .await;
    no_connection.expect_error(StatusCode::NOT_FOUND, "not_found");
    let missing = server
        .patch("/v1/tenants/acme/plugins/nope", &key, &json!({}))
        .await;
    missing.expect_error(StatusCode::NOT_FOUND, "not_found");

    // Back to the one before, then to a named version.
    let rollback = format!("{uri}/rollback");
    let back = server
        .call(Method::POST, &rollback, Some(&key))
        .await
        .expect(StatusCode::OK);
    assert_eq!(back["active_version"], 2, "{back}");
    assert_eq!(version_of(&greet().await).as_deref(), Some("2"));
    let back = server
        .post(&rollback, &key, &json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(back["active_version"], 1, "{back}");
    assert_eq!(version_of(&greet().await).as_deref(), Some("1"));
    let earliest = server.call(Method::POST, &rollback, Some(&key)).await;
    earliest.expect_error(StatusCode::NOT_FOUND, "not_found");
    let named = server
        .post(&rollback, &key, &json!({"version": 3}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(named["active_version"], 3);
    assert_eq!(
        named["versions"].as_array().unwrap().len(),
        3,
        "a rollback publishes nothing"
    );
    assert_eq!(version_of(&greet().await).as_deref(), Some("3"));
    let nine = server.post(&rollback, &key, &json!({"version": 9})).await;
    nine.expect_error(StatusCode::NOT_FOUND, "not_found");
    let shown = server.get(uri, &key).await.expect(StatusCode::OK);
    assert_eq!(shown["active_version"], 3);

    // A key without the deploy right can do none of it.
    let (_, invoker) = server.mint_key("acme", &["invoke"]).await;
    for answer in [
        server.patch(uri, &invoker, &json!({})).await,
        server.call(Method::POST, &rollback, Some(&invoker)).await,
        server.call(Method::DELETE, uri, Some(&invoker)).await,
        server.put_wasm(uri, &invoker, &hello()).await,
    ] {
        answer.expect_error(StatusCode::FORBIDDEN, "forbidden");
    }

    let deleted = server.call(Method::DELETE, uri, Some(&key)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    server
        .get(uri, &key)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    greet()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    server
        .call(Method::DELETE, uri, Some(&key))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let listed = server
        .get("/v1/tenants/acme/plugins", &key)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed, json!([]));

    // The name can be deployed again, from version 1.
    let again = server
        .deploy("acme", HELLO, &hello())
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again["active_version"], 1, "{again}");
    assert_eq!(version_of(&greet().await).as_deref(), Some("1"));
}
