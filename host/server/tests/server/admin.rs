//! The admin API: tenants, API keys shown once, revocation, and who may
//! use the admin routes.

use axum::http::{Method, StatusCode};
use dvhost_dataverse::NewApiKey;
use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn tenants_are_created_once_with_valid_names() {
    let server = Server::start().await;
    let admin = server.admin.clone();
    let created = server
        .post(
            "/v1/admin/tenants",
            &admin,
            &json!({"name": "acme", "display_name": "Acme Ltd"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created["name"], "acme");
    assert_eq!(created["display_name"], "Acme Ltd");
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "{created}"
    );

    let duplicate = server
        .post("/v1/admin/tenants", &admin, &json!({"name": "acme"}))
        .await;
    duplicate.expect_error(StatusCode::CONFLICT, "conflict");

    for bad in ["Bad Name", "", "-leading", "x".repeat(64).as_str()] {
        let answer = server
            .post("/v1/admin/tenants", &admin, &json!({"name": bad}))
            .await;
        answer.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let unknown_field = server
        .post(
            "/v1/admin/tenants",
            &admin,
            &json!({"name": "b", "colour": "red"}),
        )
        .await;
    unknown_field.expect_error(StatusCode::BAD_REQUEST, "invalid_input");

    let listed = server
        .get("/v1/admin/tenants", &admin)
        .await
        .expect(StatusCode::OK);
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("acme")]);

    let deleted = server
        .call(Method::DELETE, "/v1/admin/tenants/acme", Some(&admin))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = server
        .call(Method::DELETE, "/v1/admin/tenants/acme", Some(&admin))
        .await;
    again.expect_error(StatusCode::NOT_FOUND, "not_found");
    // The name is free again.
    server.create_tenant("acme").await;
}

#[tokio::test]
async fn keys_are_shown_once_and_revoked_keys_are_refused() {
    let server = Server::start().await;
    let admin = server.admin.clone();
    server.create_tenant("acme").await;
    let minted = server
        .post(
            "/v1/admin/tenants/acme/keys",
            &admin,
            &json!({"rights": ["invoke", "audit"], "label": "ci"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = minted["id"].as_str().unwrap().to_owned();
    let key = minted["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("dvk_{id}_")), "{minted}");
    assert_eq!(minted["rights"], json!(["invoke", "audit"]));

    let listed = server.get("/v1/admin/tenants/acme/keys", &admin).await;
    let keys = listed.expect(StatusCode::OK);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["label"], "ci");
    assert_eq!(keys[0]["rights"], json!(["invoke", "audit"]));
    assert!(keys[0]["revoked_at"].is_null());
    assert!(keys[0].get("key").is_none(), "{keys}");
    // The secret is base64url, which may itself hold '_'.
    let secret = &key[format!("dvk_{id}_").len()..];
    assert_eq!(secret.len(), 43, "32 random bytes in base64url");
    assert!(
        !listed.text().contains(secret),
        "the key was shown again: {}",
        listed.text()
    );

    // The key works on its tenant.
    let plugins = server.get("/v1/tenants/acme/plugins", &key).await;
    assert_eq!(plugins.expect(StatusCode::OK), json!([]));

    let revoked = server
        .call(
            Method::DELETE,
            &format!("/v1/admin/tenants/acme/keys/{id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    let refused = server.get("/v1/tenants/acme/plugins", &key).await;
    refused.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        refused
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let listed = server
        .get("/v1/admin/tenants/acme/keys", &admin)
        .await
        .expect(StatusCode::OK);
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");

    let twice = server
        .call(
            Method::DELETE,
            &format!("/v1/admin/tenants/acme/keys/{id}"),
            Some(&admin),
        )
        .await;
    twice.expect_error(StatusCode::NOT_FOUND, "not_found");

    let unknown_right = server
        .post(
            "/v1/admin/tenants/acme/keys",
            &admin,
            &json!({"rights": ["root"]}),
        )
        .await;
    unknown_right.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let no_tenant = server
        .post("/v1/admin/tenants/nobody/keys", &admin, &json!({}))
        .await;
    no_tenant.expect_error(StatusCode::NOT_FOUND, "not_found");

    // Without rights given, a key may invoke only.
    let default = server
        .post("/v1/admin/tenants/acme/keys", &admin, &json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(default["rights"], json!(["invoke"]));
}

#[tokio::test]
async fn admin_routes_need_the_admin_key() {
    let server = Server::start().await;
    server.create_tenant("acme").await;
    let (_, tenant_key) = server
        .mint_key("acme", &["invoke", "deploy", "audit"])
        .await;

    let anonymous = server.call(Method::GET, "/v1/admin/tenants", None).await;
    anonymous.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"dvhost\"")
    );

    let mut text = Vec::new();
    NewApiKey::mint().show_once(&mut text).unwrap();
    let stranger = String::from_utf8(text).unwrap();
    for key in [stranger.as_str(), "not-a-key", "dvk_", "dvk_abc_def"] {
        let answer = server
            .call(Method::GET, "/v1/admin/tenants", Some(key))
            .await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(answer.header("www-authenticate").is_some());
    }
    let basic = server
        .send(
            crate::common::request(Method::GET, "/v1/admin/tenants", None)
                .header("authorization", format!("Basic {}", server.admin))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    basic.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    for (method, uri) in [
        (Method::GET, "/v1/admin/tenants"),
        (Method::POST, "/v1/admin/tenants"),
        (Method::GET, "/v1/admin/tenants/acme/keys"),
        (Method::POST, "/v1/admin/tenants/acme/keys"),
        (Method::DELETE, "/v1/admin/tenants/acme"),
        (Method::GET, "/v1/admin/tenants/acme/connections"),
    ] {
        let answer = server
            .json(
                method.clone(),
                uri,
                Some(&tenant_key),
                &json!({"name": "other"}),
            )
            .await;
        let error = answer.expect_error(StatusCode::FORBIDDEN, "forbidden");
        assert!(
            error["message"].as_str().unwrap().contains("admin key"),
            "{method} {uri}: {error}"
        );
    }
    // Nothing was changed by the refused calls.
    let tenants = server
        .get("/v1/admin/tenants", &server.admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
}
