//! Microsoft Graph app registration and Global Discovery.

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{Value, json};

async fn graph(
    w: &World,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = w.http.request(method, w.url(&format!("/v1.0/{path}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

fn key_credential(cert: &TestCert) -> Value {
    json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": cert.b64(), "displayName": "CN=test"})
}

/// A proof-of-possession token for addKey/removeKey.
fn proof(cert: &TestCert, object_id: &str) -> String {
    let t = now();
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(cert.sha1())});
    sign_raw(
        &header,
        &json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": object_id, "nbf": t, "exp": t + 600}),
        &cert.key,
        Algorithm::RS256,
    )
}

#[tokio::test]
async fn register_an_app_with_a_fresh_certificate_then_use_it() {
    let w = World::start().await;
    let admin = w
        .sign_in(
            ADMIN,
            "https://graph.microsoft.com/Application.ReadWrite.All",
        )
        .await;
    let token = admin["access_token"].as_str().unwrap();
    let cert = TestCert::generate("registered");
    let app = register_app(&w, token, &cert).await;
    let object_id = app["id"].as_str().unwrap().to_string();
    let client = app["appId"].as_str().unwrap().to_string();
    add_service_principal_then_sign_in(&w, token, &client, &cert).await;
    // GET with $select returns the certificate bytes; $filter finds it by appId.
    let (s, got) = graph(
        &w,
        Method::GET,
        &format!("applications/{object_id}?$select=id,keyCredentials"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(got["keyCredentials"][0]["key"], cert.b64());
    let (_, list) = graph(
        &w,
        Method::GET,
        &format!("applications?$filter=appId eq '{client}'"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);

    let old_key_id = app["keyCredentials"][0]["keyId"].as_str().unwrap();
    let next = rotate_key(&w, token, &object_id, &client, &cert, old_key_id).await;
    patch_then_delete(&w, token, &object_id, &client, &next).await;
}

/// `POST applications` with `cert`: the new application.
async fn register_app(w: &World, token: &str, cert: &TestCert) -> Value {
    let (s, app) = graph(
        w,
        Method::POST,
        "applications",
        Some(token),
        Some(json!({
            "displayName": "contoso-dataverse-sync",
            "signInAudience": "AzureADMyOrg",
            "keyCredentials": [key_credential(cert)],
            "requiredResourceAccess": [{"resourceAppId": "00000007-0000-0000-c000-000000000000", "resourceAccess": [{"id": "78ce3f0f-a1ce-49c2-8cde-64b5c0896db4", "type": "Scope"}]}]
        })),
    )
    .await;
    assert_eq!(s, 201, "{app}");
    let object_id = app["id"].as_str().unwrap().to_string();
    let client = app["appId"].as_str().unwrap().to_string();
    assert_ne!(object_id, client);
    assert_eq!(app["keyCredentials"][0]["type"], "AsymmetricX509Cert");
    assert_eq!(
        app["keyCredentials"][0]["key"],
        Value::Null,
        "key bytes only with $select"
    );
    assert_eq!(
        app["requiredResourceAccess"][0]["resourceAppId"],
        "00000007-0000-0000-c000-000000000000"
    );

    app
}

/// Without a service principal the app cannot sign in; with one, its
/// certificate works at once, with RS256 and PS256 assertions.
async fn add_service_principal_then_sign_in(w: &World, token: &str, client: &str, cert: &TestCert) {
    let scope = format!("{}/.default", w.env_url);
    // Without a service principal Entra refuses the client.
    let (s, b) = w.cert_token(client, cert).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000229);

    let (s, sp) = graph(
        w,
        Method::POST,
        "servicePrincipals",
        Some(token),
        Some(json!({"appId": client})),
    )
    .await;
    assert_eq!(s, 201, "{sp}");
    assert_eq!(sp["appId"], client);
    let (s, _) = graph(
        w,
        Method::POST,
        "servicePrincipals",
        Some(token),
        Some(json!({"appId": client})),
    )
    .await;
    assert_eq!(s, 409);

    // The certificate works at once, both ways.
    let (s, b) = w.cert_token(client, cert).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = w
        .client_credentials_as(
            client,
            &ps256(cert, &claims(&w.token_url(), client)),
            &scope,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let claims_out = w
        .verify_with_jwks(b["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims_out["appid"], client);
    assert_eq!(claims_out["oid"], sp["id"]);
}

/// addKey with a proof signed by the current key, then removeKey of the
/// old one (a stranger's proof is refused): the new certificate.
async fn rotate_key(
    w: &World,
    token: &str,
    object_id: &str,
    client: &str,
    cert: &TestCert,
    old_key_id: &str,
) -> TestCert {
    // Rotation: addKey with a proof signed by the current key, then removeKey of the old one.
    let next = TestCert::generate("rotated");
    let (s, added) = graph(
        w,
        Method::POST,
        &format!("applications/{object_id}/addKey"),
        Some(token),
        Some(json!({"keyCredential": key_credential(&next), "passwordCredential": null, "proof": proof(cert, object_id)})),
    )
    .await;
    assert_eq!(s, 200, "{added}");
    let (s, _) = w.cert_token(client, &next).await;
    assert_eq!(s, 200, "new key works while the old one still does");
    // A proof signed by an unregistered key is refused.
    let stranger = TestCert::generate("stranger");
    let (s, _) = graph(
        w,
        Method::POST,
        &format!("applications/{object_id}/removeKey"),
        Some(token),
        Some(json!({"keyId": old_key_id, "proof": proof(&stranger, object_id)})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, b) = graph(
        w,
        Method::POST,
        &format!("applications/{object_id}/removeKey"),
        Some(token),
        Some(json!({"keyId": old_key_id, "proof": proof(&next, object_id)})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = w.cert_token(client, cert).await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);

    next
}

/// PATCH renames the app; after DELETE it is gone and cannot sign in.
async fn patch_then_delete(w: &World, token: &str, object_id: &str, client: &str, next: &TestCert) {
    // PATCH and DELETE.
    let (s, _) = graph(
        w,
        Method::PATCH,
        &format!("applications/{object_id}"),
        Some(token),
        Some(json!({"displayName": "renamed"})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = graph(
        w,
        Method::GET,
        &format!("applications/{object_id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(got["displayName"], "renamed");
    assert_eq!(got["keyCredentials"].as_array().unwrap().len(), 1);
    let (s, _) = graph(
        w,
        Method::DELETE,
        &format!("applications/{object_id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = graph(
        w,
        Method::GET,
        &format!("applications/{object_id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "Request_ResourceNotFound");
    let (s, b) = w.cert_token(client, next).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn graph_refuses_missing_and_foreign_tokens() {
    let w = World::start().await;
    let body = json!({"displayName": "x"});
    let (s, b) = graph(&w, Method::POST, "applications", None, Some(body.clone())).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "InvalidAuthenticationToken");
    assert!(b["error"]["innerError"]["request-id"].is_string());
    let (s, _) = graph(
        &w,
        Method::POST,
        "applications",
        Some("garbage.token.here"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 401);
    // A Dataverse token is not a Graph token.
    let env_token = w
        .sign_in(ADMIN, &format!("{}/user_impersonation", w.env_url))
        .await;
    let (s, _) = graph(
        &w,
        Method::POST,
        "applications",
        env_token["access_token"].as_str(),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn graph_and_discovery_refuse_tokens_of_another_tenant() {
    let w = World::start().await;
    let fabrikam = fabrikam_id(&w).await;
    let graph_token = w
        .sign_in(
            ADMIN,
            "https://graph.microsoft.com/Application.ReadWrite.All",
        )
        .await;
    let graph_token = graph_token["access_token"].as_str().unwrap();
    let (s, _) = graph(&w, Method::GET, "applications", Some(graph_token), None).await;
    assert_eq!(s, 200);
    let (admin, _) = discovery_users(&w).await;
    assert_eq!(discovery(&w, Some(&admin), "Instances").await.0, 200);
    for tid in [fabrikam.as_str(), "99999999-9999-9999-9999-999999999999"] {
        let forged = from_tenant(&w.emu, graph_token, tid);
        let (s, b) = graph(&w, Method::GET, "applications", Some(&forged), None).await;
        assert_eq!(s, 401, "{tid}: {b}");
        assert_eq!(b["error"]["code"], "InvalidAuthenticationToken");
        let forged = json!({"access_token":
            from_tenant(&w.emu, admin["access_token"].as_str().unwrap(), tid)});
        let (s, h, _) = discovery(&w, Some(&forged), "Instances").await;
        assert_eq!(s, 401, "{tid}");
        assert!(h.contains_key("www-authenticate"));
    }
}

#[tokio::test]
async fn graph_refuses_non_admins_and_app_only_tokens() {
    let w = World::start().await;
    let body = json!({"displayName": "x"});
    let alice = w
        .sign_in(
            USER,
            "https://graph.microsoft.com/Application.ReadWrite.All",
        )
        .await;
    let (s, b) = graph(
        &w,
        Method::POST,
        "applications",
        alice["access_token"].as_str(),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(b["error"]["code"], "Authorization_RequestDenied");
    // An app-only Graph token has no user: also 403.
    let (s, app_token) = w
        .client_credentials_as(
            APP_ID,
            &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = graph(
        &w,
        Method::POST,
        "applications",
        app_token["access_token"].as_str(),
        Some(body),
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn graph_refuses_bad_bodies() {
    let w = World::start().await;
    let admin = w
        .sign_in(ADMIN, "https://graph.microsoft.com/.default")
        .await;
    let t = admin["access_token"].as_str();
    for bad in [
        json!({}),
        json!({"displayName": "x", "keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": "bm90IGEgY2VydA=="}]}),
        json!({"displayName": "x", "keyCredentials": [{"type": "Symmetric", "usage": "Sign", "key": "AAAA"}]}),
        json!({"displayName": "x", "bogusProperty": 1}),
        json!({"displayName": "x", "keyCredentials": "nope"}),
    ] {
        let (s, b) = graph(&w, Method::POST, "applications", t, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} -> {b}");
        assert!(b["error"]["code"].is_string());
    }
    let resp = w
        .http
        .post(w.url("/v1.0/applications"))
        .bearer_auth(t.unwrap())
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (s, _) = graph(
        &w,
        Method::POST,
        "servicePrincipals",
        t,
        Some(json!({"appId": "aaaaaaaa-0000-0000-0000-00000000dead"})),
    )
    .await;
    assert_eq!(s, 400);
}

/// `GET /api/discovery/v2.0/<path>`, with the token of a sign-in response.
async fn discovery(
    w: &World,
    signed_in: Option<&Value>,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = w.http.get(w.url(&format!("/api/discovery/v2.0/{path}")));
    if let Some(t) = signed_in {
        req = req.bearer_auth(t["access_token"].as_str().unwrap());
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        resp.json::<Value>().await.unwrap_or(Value::Null),
    )
}

/// Sign-ins of the admin and of Alice for Global Discovery.
async fn discovery_users(w: &World) -> (Value, Value) {
    let admin = w
        .sign_in(
            ADMIN,
            "https://globaldisco.crm.dynamics.com/user_impersonation",
        )
        .await;
    let alice = w
        .sign_in(USER, "https://globaldisco.crm.dynamics.com/.default")
        .await;
    (admin, alice)
}

#[tokio::test]
async fn global_discovery_lists_reachable_environments() {
    let w = World::start().await;
    let (admin, alice) = discovery_users(&w).await;
    let (s, h, b) = discovery(&w, Some(&admin), "Instances").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(h["odata-version"], "4.0");
    let names: Vec<&str> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["UniqueName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["contoso-dev", "contoso-prod"],
        "fabrikam's environment is not listed"
    );
    let first = &b["value"][0];
    for f in [
        "Id",
        "UniqueName",
        "UrlName",
        "FriendlyName",
        "State",
        "Version",
        "Url",
        "ApiUrl",
        "EnvironmentId",
        "TenantId",
        "Region",
    ] {
        assert!(!first[f].is_null(), "{f} missing in {first}");
    }
    assert_eq!(first["Url"], w.env_url);
    assert_eq!(first["TenantId"], TENANT_ID);

    // Alice is not listed on contoso-prod.
    let (_, _, b) = discovery(&w, Some(&alice), "Instances").await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn global_discovery_filters_selects_and_finds_by_key() {
    let w = World::start().await;
    let (admin, alice) = discovery_users(&w).await;
    let (_, _, b) = discovery(
        &w,
        Some(&admin),
        "Instances?$select=UniqueName,Url&$filter=UniqueName eq 'CONTOSO-PROD'",
    )
    .await;
    assert_eq!(
        b["value"],
        json!([{"UniqueName": "contoso-prod", "Url": w.env2_url}])
    );
    let (_, _, b) = discovery(&w, Some(&admin), "Instances(UniqueName='contoso-dev')").await;
    assert_eq!(b["UniqueName"], "contoso-dev");
    let id = b["Id"].as_str().unwrap().to_string();
    let (s, _, b) = discovery(&w, Some(&admin), &format!("Instances({id})")).await;
    assert_eq!(s, 200);
    assert_eq!(b["Id"], id.as_str());
    let (s, _, _) = discovery(&w, Some(&alice), "Instances(UniqueName='contoso-prod')").await;
    assert_eq!(s, 404);
    let (s, _, b) = discovery(&w, Some(&admin), "Instances?$filter=UniqueName eq").await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"].is_string());
    let (s, _, _) = discovery(&w, Some(&admin), "Instances?$select=Nope").await;
    assert_eq!(s, 400);

    let (s, h, _) = discovery(&w, None, "Instances").await;
    assert_eq!(s, 401);
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );
}
