//! Token endpoint: client credentials with certificate assertions, every
//! rejection rule, OpenID discovery and JWKS.

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::test]
async fn rs256_with_x5t_gets_a_token_that_verifies_against_jwks() {
    let w = World::start().await;
    let (status, body) = w
        .client_credentials(&rs256(&w.cert, &claims(&w.token_url(), APP_ID)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_i64().expect("integer expires_in");
    assert!(
        (3600..=5400).contains(&expires_in),
        "default lifetime is 60-90 min, got {expires_in}"
    );
    assert_eq!(body["ext_expires_in"], body["expires_in"]);
    assert!(
        body.get("refresh_token").is_none(),
        "client credentials never get a refresh token"
    );
    let c = w
        .verify_with_jwks(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(c["aud"], w.env_url);
    assert_eq!(c["iss"], format!("https://sts.windows.net/{TENANT_ID}/"));
    assert_eq!(c["tid"], TENANT_ID);
    assert_eq!(c["appid"], APP_ID);
    assert!(uuid::Uuid::parse_str(c["oid"].as_str().unwrap()).is_ok());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        expires_in
    );
}

#[tokio::test]
async fn ps256_with_padded_x5t_s256_and_x5c_is_accepted() {
    let w = World::start().await;
    let (status, body) = w
        .client_credentials(&ps256(&w.cert, &claims(&w.token_url(), APP_ID)))
        .await;
    assert_eq!(status, 200, "{body}");
    // Unpadded SHA-256 thumbprint without x5c, too.
    let header =
        json!({"alg": "PS256", "typ": "JWT", "x5t#S256": URL_SAFE_NO_PAD.encode(w.cert.sha256())});
    let a = sign_raw(
        &header,
        &claims(&w.token_url(), APP_ID),
        &w.cert.key,
        Algorithm::PS256,
    );
    assert_eq!(w.client_credentials(&a).await.0, 200);
    // Padded SHA-1 x5t with RS256.
    let header = json!({"alg": "RS256", "x5t": URL_SAFE.encode(w.cert.sha1())});
    let a = sign_raw(
        &header,
        &claims(&w.token_url(), APP_ID),
        &w.cert.key,
        Algorithm::RS256,
    );
    assert_eq!(w.client_credentials(&a).await.0, 200);
}

#[tokio::test]
async fn float_times_reused_jti_and_domain_audience_are_accepted() {
    let w = World::start().await;
    let n = now() as f64 + 0.25;
    let c = json!({"aud": w.token_url(), "iss": APP_ID, "sub": APP_ID, "jti": "same", "iat": n, "exp": n + 600.5});
    let a = rs256(&w.cert, &c);
    // MSAL reuses one assertion for minutes: the same jti twice is fine.
    assert_eq!(w.client_credentials(&a).await.0, 200);
    assert_eq!(w.client_credentials(&a).await.0, 200);
    // The token URL may name the tenant by domain; nbf is optional.
    let mut c = claims(&w.url("/contoso.onmicrosoft.com/oauth2/v2.0/token"), APP_ID);
    c.as_object_mut().unwrap().remove("nbf");
    let (s, b) = w.client_credentials(&rs256(&w.cert, &c)).await;
    assert_eq!(s, 200, "{b}");
    // The domain works as the authority, too.
    let (s, b) = w
        .post_form(
            "/contoso.onmicrosoft.com/oauth2/v2.0/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", &format!("{}/.default", w.env_url)),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                (
                    "client_assertion",
                    &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
                ),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn configured_lifetime_and_refresh_in() {
    let w = World::start().await;
    let (s, _) = w
        .control(
            reqwest::Method::PATCH,
            "settings",
            Some(json!({"token_lifetime_secs": 120, "refresh_in_secs": 60})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, body) = w
        .client_credentials(&rs256(&w.cert, &claims(&w.token_url(), APP_ID)))
        .await;
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["refresh_in"], 60);
}

/// Each rejection rule: (case, assertion builder, status, error, AADSTS code).
/// Client assertions Entra rejects, each with a name and its AADSTS code.
fn rejected_assertions(w: &World) -> Vec<(&'static str, String, u32)> {
    let aud = w.token_url();
    let other = TestCert::generate("not registered");
    let t = now();
    // Valid claims with some changed; `null` removes a claim.
    let with = |changes: &[(&str, Value)]| {
        let mut c = claims(&aud, APP_ID);
        let m = c.as_object_mut().unwrap();
        for (k, v) in changes {
            match v {
                Value::Null => m.remove(*k),
                v => m.insert(k.to_string(), v.clone()),
            };
        }
        rs256(&w.cert, &c)
    };
    // A key that is not the registered one but claims its thumbprint.
    let wrong_key = sign_raw(
        &json!({"alg": "RS256", "x5t": URL_SAFE_NO_PAD.encode(w.cert.sha1())}),
        &claims(&aud, APP_ID),
        &other.key,
        Algorithm::RS256,
    );
    let hs256 = sign_raw(
        &json!({"alg": "HS256", "x5t": URL_SAFE_NO_PAD.encode(w.cert.sha1())}),
        &claims(&aud, APP_ID),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        Algorithm::HS256,
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(
            json!({"alg": "none", "x5t": URL_SAFE_NO_PAD.encode(w.cert.sha1())}).to_string()
        ),
        URL_SAFE_NO_PAD.encode(claims(&aud, APP_ID).to_string())
    );
    vec![
        (
            "wrong aud",
            with(&[(
                "aud",
                json!("https://login.microsoftonline.com/x/oauth2/v2.0/token"),
            )]),
            700023,
        ),
        (
            "aud of another tenant",
            with(&[("aud", json!(w.url("/fabrikam/oauth2/v2.0/token")))]),
            700023,
        ),
        (
            "aud as a list naming the token URL",
            with(&[("aud", json!([aud.clone()]))]),
            700023,
        ),
        ("wrong iss", with(&[("iss", json!("someone-else"))]), 700021),
        ("wrong sub", with(&[("sub", json!("someone-else"))]), 700021),
        (
            "expired",
            with(&[
                ("iat", json!(t - 3600)),
                ("nbf", json!(t - 3600)),
                ("exp", json!(t - 1200)),
            ]),
            700024,
        ),
        (
            "not yet valid",
            with(&[("nbf", json!(t + 3600)), ("exp", json!(t + 4000))]),
            700024,
        ),
        (
            "lifetime too long",
            with(&[("exp", json!(t + 3 * 86400))]),
            700024,
        ),
        (
            "unknown thumbprint",
            rs256(&other, &claims(&aud, APP_ID)),
            700027,
        ),
        ("wrong key", wrong_key, 700027),
        ("HS256", hs256, 5002738),
        ("alg none", none, 5002738),
        ("missing jti", with(&[("jti", Value::Null)]), 50027),
        ("missing exp", with(&[("exp", Value::Null)]), 50027),
        (
            "no thumbprint",
            sign_raw(
                &json!({"alg": "RS256"}),
                &claims(&aud, APP_ID),
                &w.cert.key,
                Algorithm::RS256,
            ),
            700027,
        ),
        ("garbage", "not-a-jwt".to_string(), 50027),
        ("garbage base64", "@@@.###.$$$".to_string(), 50027),
        (
            "header not JSON",
            format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode("nope"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
            50027,
        ),
    ]
}

#[tokio::test]
async fn assertion_rejections_carry_the_entra_codes() {
    let w = World::start().await;
    let cases = rejected_assertions(&w);
    for (case, assertion, code) in cases {
        let (status, body) = w.client_credentials(&assertion).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_entra_error(status, &body, 401, "invalid_client", code);
    }
    let stats = w.emu.token_stats();
    assert_eq!(stats.issued, 0);
    assert_eq!(stats.rejected, 18);
}

#[tokio::test]
async fn assertion_audiences_come_from_the_emulator_not_the_host_header() {
    let w = World::start().await;
    let scope = format!("{}/.default", w.env_url);
    for scheme in ["http", "https"] {
        let aud = format!("{scheme}://sts.other.example/{TENANT_ID}/oauth2/v2.0/token");
        let resp = w
            .http
            .post(w.token_url())
            .header(reqwest::header::HOST, "sts.other.example")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", &scope),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &rs256(&w.cert, &claims(&aud, APP_ID))),
            ])
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        let b: Value = resp.json().await.unwrap();
        assert_entra_error(s, &b, 401, "invalid_client", 700023);
    }
    // `localhost` names a loopback emulator too.
    let port = w.emu.local_addr().port();
    let aud = format!("http://localhost:{port}/{TENANT_ID}/oauth2/v2.0/token");
    let (s, b) = w
        .client_credentials(&rs256(&w.cert, &claims(&aud, APP_ID)))
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn a_wrong_assertion_type_is_aadsts90011() {
    let w = World::start().await;
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", &format!("{}/.default", w.env_url)),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                (
                    "client_assertion",
                    &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
                ),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 90011);
}

#[tokio::test]
async fn client_credentials_need_one_default_scope_of_a_known_resource() {
    let w = World::start().await;
    let good = rs256(&w.cert, &claims(&w.token_url(), APP_ID));
    let env_scope = format!("{}/.default", w.env_url);
    // Two resources, two scopes of one resource, a non-.default scope, an unknown resource.
    let (s, b) = w
        .client_credentials_as(
            APP_ID,
            &good,
            &format!("{env_scope} https://graph.microsoft.com/.default"),
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 700022);
    let (s, b) = w
        .client_credentials_as(
            APP_ID,
            &good,
            &format!("{env_scope} {}/user_impersonation", w.env_url),
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 70011);
    let (s, b) = w
        .client_credentials_as(APP_ID, &good, &format!("{}/user_impersonation", w.env_url))
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 70011);
    let (s, b) = w
        .client_credentials_as(APP_ID, &good, "https://unknown.crm.dynamics.com/.default")
        .await;
    assert_entra_error(s, &b, 400, "invalid_resource", 500011);
    // Another tenant's environment is not a resource of this tenant.
    let (s, b) = w
        .client_credentials_as(APP_ID, &good, &w.url("/fabrikam-dev/.default"))
        .await;
    assert_entra_error(s, &b, 400, "invalid_resource", 500011);
}

#[tokio::test]
async fn unknown_clients_tenants_and_common_are_refused() {
    let w = World::start().await;
    let good = rs256(&w.cert, &claims(&w.token_url(), APP_ID));
    let env_scope = format!("{}/.default", w.env_url);
    // Unknown client, unknown tenant, /common.
    let (s, b) = w
        .client_credentials_as("aaaaaaaa-0000-0000-0000-00000000dead", &good, &env_scope)
        .await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", APP_ID),
        ("scope", env_scope.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", good.as_str()),
    ];
    let (s, b) = w
        .post_form("/nosuchtenant.onmicrosoft.com/oauth2/v2.0/token", &form)
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 90002);
    let (s, b) = w.post_form("/common/oauth2/v2.0/token", &form).await;
    assert_entra_error(s, &b, 400, "invalid_request", 9001023);
}

#[tokio::test]
async fn missing_credentials_fields_and_grants_are_refused() {
    let w = World::start().await;
    let env_scope = format!("{}/.default", w.env_url);
    // Missing credentials, a secret, missing fields, unsupported grant.
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", &env_scope),
            ],
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000218);
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", &env_scope),
                ("client_secret", "s3cret"),
            ],
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000215);
    assert!(
        !b.to_string().contains("s3cret"),
        "a secret never appears in an error"
    );
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[("grant_type", "client_credentials"), ("scope", &env_scope)],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("'client_id'")
    );
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[("grant_type", "client_credentials"), ("client_id", APP_ID)],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(b["error_description"].as_str().unwrap().contains("'scope'"));
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[("grant_type", "password")],
        )
        .await;
    assert_entra_error(s, &b, 400, "unsupported_grant_type", 70003);

    // A JSON body is not a form: Entra reports the missing grant_type.
    let resp = w
        .http
        .post(w.token_url())
        .json(&json!({"grant_type": "client_credentials", "client_id": APP_ID}))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("'grant_type'")
    );
}

#[tokio::test]
async fn app_without_service_principal_is_refused() {
    let w = World::start().await;
    let cert = TestCert::generate("nosp");
    let (s, b) = w
        .control(reqwest::Method::POST, "apps", Some(json!({"tenant": "contoso", "display_name": "nosp", "certificates": [cert.cert_pem], "service_principal": false})))
        .await;
    assert_eq!(s, 201, "{b}");
    let client = b["app_id"].as_str().unwrap().to_string();
    let (s, b) = w
        .client_credentials_as(
            &client,
            &rs256(&cert, &claims(&w.token_url(), &client)),
            &format!("{}/.default", w.env_url),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000229);
}

#[tokio::test]
async fn errors_echo_client_request_id_and_carry_no_cache_headers() {
    let w = World::start().await;
    let rid = "0b6a2c3e-1111-2222-3333-444455556666";
    let resp = w
        .http
        .post(w.token_url())
        .header("client-request-id", rid)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["cache-control"], "no-store, no-cache");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["correlation_id"], rid);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains(&format!("Correlation ID: {rid}"))
    );
}

#[tokio::test]
async fn oversized_and_malformed_bodies_get_entra_shaped_4xx() {
    let w = World::start().await;
    let big = "a".repeat(dvhost_emulator::MAX_BODY_BYTES + 10);
    let resp = w
        .http
        .post(w.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&x={big}"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_entra_error(s, &b, 413, "invalid_request", 9002313);
    // Invalid UTF-8 and percent-garbage in a form still yield a clean 4xx.
    let resp = w
        .http
        .post(w.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'%', b'z', b'=', 0x80])
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    // The emulator still serves afterwards.
    assert_eq!(
        w.client_credentials(&rs256(&w.cert, &claims(&w.token_url(), APP_ID)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn openid_configuration_and_keys_are_shaped_like_entra() {
    let w = World::start().await;
    for tenant in [TENANT_ID, "contoso.onmicrosoft.com", "contoso"] {
        let doc: Value = w
            .http
            .get(w.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc["token_endpoint"],
            w.url(&format!("/{TENANT_ID}/oauth2/v2.0/token"))
        );
        assert_eq!(
            doc["device_authorization_endpoint"],
            w.url(&format!("/{TENANT_ID}/oauth2/v2.0/devicecode"))
        );
        assert_eq!(
            doc["jwks_uri"],
            w.url(&format!("/{TENANT_ID}/discovery/v2.0/keys"))
        );
        assert_eq!(doc["issuer"], w.url(&format!("/{TENANT_ID}/v2.0")));
        assert!(doc["authorization_endpoint"].is_string());
        assert!(
            doc["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt"))
        );
    }
    let common: Value = w
        .http
        .get(w.url("/organizations/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(common["issuer"], w.url("/{tenantid}/v2.0"));
    let resp = w
        .http
        .get(w.url("/nope/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_entra_error(
        s,
        &resp.json().await.unwrap(),
        400,
        "invalid_request",
        90002,
    );

    let keys: Value = w
        .http
        .get(w.url(&format!("/{TENANT_ID}/discovery/v2.0/keys")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = &keys["keys"][0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kid"], k["x5t"]);
    assert!(k["n"].as_str().unwrap().len() > 300 && k["e"] == "AQAB");
    assert!(k["x5c"][0].is_string());
}

#[tokio::test]
async fn tls_mode_serves_https_with_its_own_ca() {
    let emu = dvhost_emulator::EmulatorBuilder::new()
        .tls(true)
        .start()
        .await
        .unwrap();
    assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    let client = https_client(emu.ca_certificate_pem().unwrap());
    for host in ["127.0.0.1", "localhost"] {
        let url = format!(
            "https://{host}:{}/_emulator/health",
            emu.local_addr().port()
        );
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
    }
    // Without trusting the CA the handshake fails.
    let plain = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("{}/_emulator/health", emu.base_url()))
            .send()
            .await
            .is_err()
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let cert = TestCert::generate("persist");
    let emu = dvhost_emulator::EmulatorBuilder::new()
        .state_file(&path)
        .start()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let post = |p: &str, b: Value| {
        http.post(format!("{}/_emulator/{p}", emu.base_url()))
            .json(&b)
            .send()
    };
    assert_eq!(
        post("tenants", json!({"name": "contoso", "id": TENANT_ID}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(post("apps", json!({"tenant": "contoso", "display_name": "p", "app_id": APP_ID, "certificates": [cert.cert_pem]})).await.unwrap().status(), 201);
    let port = emu.local_addr().port();
    let jwk_before: Value = http
        .get(format!(
            "{}/{TENANT_ID}/discovery/v2.0/keys",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    emu.shutdown().await;
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains(&cert.key_pem),
        "client private keys are never stored"
    );

    let emu = dvhost_emulator::EmulatorBuilder::new()
        .listen(([127, 0, 0, 1], port).into())
        .state_file(&path)
        .start()
        .await
        .unwrap();
    let state: Value = http
        .get(format!("{}/_emulator/state", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["apps"][0]["app_id"], APP_ID);
    let jwk_after: Value = http
        .get(format!(
            "{}/{TENANT_ID}/discovery/v2.0/keys",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwk_before, jwk_after, "the signing key is kept");
    emu.shutdown().await;
}
