//! Device authorization grant and refresh tokens.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn device_code_round_trip() {
    let w = World::start().await;
    let scope = format!(
        "{}/user_impersonation offline_access openid profile",
        w.env_url
    );
    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    for f in ["device_code", "user_code", "verification_uri", "message"] {
        assert!(dc[f].is_string(), "{f} in {dc}");
    }
    assert_eq!(dc["expires_in"], 900);
    assert_eq!(dc["interval"], 1);
    assert!(
        dc["message"]
            .as_str()
            .unwrap()
            .contains(dc["user_code"].as_str().unwrap())
    );
    let device_code = dc["device_code"].as_str().unwrap();
    let user_code = dc["user_code"].as_str().unwrap();

    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, device_code).await;
    assert_entra_error(s, &b, 400, "authorization_pending", 70016);

    // The control API lists the pending code and approves it as a user.
    let (_, list) = w.control(Method::GET, "device-codes", None).await;
    assert_eq!(list["device_codes"][0]["user_code"], user_code);
    assert_eq!(list["device_codes"][0]["status"], "pending");
    let (s, _) = w
        .control(
            Method::POST,
            &format!("device-codes/{user_code}/approve"),
            Some(json!({"user": USER})),
        )
        .await;
    assert_eq!(s, 204);

    let (s, tokens) = w.poll(TENANT_ID, PUBLIC_APP_ID, device_code).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    let scope_out = tokens["scope"].as_str().unwrap();
    assert!(
        scope_out.contains(&format!("{}/user_impersonation", w.env_url))
            && scope_out.contains("offline_access"),
        "{scope_out}"
    );
    let claims = w
        .verify_with_jwks(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["aud"], w.env_url);
    assert_eq!(claims["upn"], USER);
    assert_eq!(claims["scp"], "user_impersonation");
    assert_eq!(claims["appid"], PUBLIC_APP_ID);

    // A redeemed code cannot be used again.
    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, device_code).await;
    assert_entra_error(s, &b, 400, "invalid_grant", 54005);

    let rt = tokens["refresh_token"].as_str().unwrap();
    // The control API never shows refresh or access tokens.
    let (_, state) = w.control(Method::GET, "state", None).await;
    let (_, codes) = w.control(Method::GET, "device-codes", None).await;
    for doc in [state.to_string(), codes.to_string()] {
        assert!(
            !doc.contains(rt)
                && !doc.contains(tokens["access_token"].as_str().unwrap())
                && !doc.contains(device_code)
        );
    }
}

/// A refresh-token request for `client_id`, optionally for `scope`.
async fn refresh(
    w: &World,
    client_id: &str,
    rt: &str,
    scope: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", rt),
    ];
    form.extend(scope.map(|s| ("scope", s)));
    w.post_form(&format!("/{TENANT_ID}/oauth2/v2.0/token"), &form)
        .await
}

#[tokio::test]
async fn refresh_tokens_renew_reach_other_resources_and_expire() {
    let w = World::start().await;
    let scope = format!(
        "{}/user_impersonation offline_access openid profile",
        w.env_url
    );
    let tokens = w.sign_in(USER, &scope).await;
    // Refresh, also for another resource (Graph) with the same refresh token.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (s, refreshed) = refresh(&w, PUBLIC_APP_ID, rt, None).await;
    assert_eq!(s, 200, "{refreshed}");
    assert!(refreshed["refresh_token"].is_string());
    assert_eq!(
        w.verify_with_jwks(refreshed["access_token"].as_str().unwrap())
            .await["aud"],
        w.env_url
    );
    let (s, graph) = refresh(
        &w,
        PUBLIC_APP_ID,
        rt,
        Some("https://graph.microsoft.com/.default offline_access"),
    )
    .await;
    assert_eq!(s, 200, "{graph}");
    assert_eq!(
        w.verify_with_jwks(graph["access_token"].as_str().unwrap())
            .await["aud"],
        "https://graph.microsoft.com"
    );
    // Bad refresh tokens.
    let (s, b) = refresh(&w, PUBLIC_APP_ID, "nope", None).await;
    assert_entra_error(s, &b, 400, "invalid_grant", 9002313);
    let (s, b) = refresh(&w, APP_ID, rt, None).await;
    assert_entra_error(s, &b, 400, "invalid_grant", 70000);
    // Expired: move the clock past the refresh token lifetime.
    w.control(
        Method::PATCH,
        "settings",
        Some(json!({"clock_offset_secs": 91 * 86400})),
    )
    .await;
    let (s, b) = refresh(&w, PUBLIC_APP_ID, rt, None).await;
    assert_entra_error(s, &b, 400, "invalid_grant", 700082);
}

#[tokio::test]
async fn no_offline_access_means_no_refresh_token() {
    let w = World::start().await;
    let tokens = w
        .sign_in(USER, &format!("{}/user_impersonation", w.env_url))
        .await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("id_token").is_none());
}

#[tokio::test]
async fn declined_expired_slow_down_and_unknown_codes() {
    let w = World::start().await;
    let scope = format!("{}/.default", w.env_url);

    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    w.code_action(&dc, "decline", None).await;
    let (s, b) = w.poll_dc(PUBLIC_APP_ID, &dc).await;
    assert_entra_error(s, &b, 400, "authorization_declined", 70020);
    // A decided code cannot be approved afterwards.
    let s = w
        .code_action(&dc, "approve", Some(json!({"user": USER})))
        .await;
    assert_eq!(s, 409);

    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    w.code_action(&dc, "expire", None).await;
    let (s, b) = w.poll_dc(PUBLIC_APP_ID, &dc).await;
    assert_entra_error(s, &b, 400, "expired_token", 70019);

    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    w.control(
        Method::POST,
        &format!(
            "device-codes/{}/slow-down",
            dc["user_code"].as_str().unwrap()
        ),
        Some(json!({"count": 2})),
    )
    .await;
    for _ in 0..2 {
        let (s, b) = w.poll_dc(PUBLIC_APP_ID, &dc).await;
        assert_entra_error(s, &b, 400, "slow_down", 70016);
    }
    let (s, b) = w.poll_dc(PUBLIC_APP_ID, &dc).await;
    assert_entra_error(s, &b, 400, "authorization_pending", 70016);

    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, "no-such-code").await;
    assert_entra_error(s, &b, 400, "bad_verification_code", 70018);

    // Approving as a user of another tenant than the authority is refused.
    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    let s = w
        .code_action(
            &dc,
            "approve",
            Some(json!({"user": "bob@fabrikam.example"})),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_device_code_is_redeemed_only_at_the_tenant_that_issued_it() {
    let w = World::start().await;
    let scope = format!("{}/.default", w.env_url);
    let dc = w.device_code(TENANT_ID, PUBLIC_APP_ID, &scope).await;
    let s = w
        .code_action(&dc, "approve", Some(json!({"user": USER})))
        .await;
    assert_eq!(s, 204);
    let code = dc["device_code"].as_str().unwrap();
    for other in ["fabrikam", "organizations"] {
        let (s, b) = w.poll(other, PUBLIC_APP_ID, code).await;
        assert_entra_error(s, &b, 400, "invalid_grant", 70000);
    }
    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, code).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn polling_faster_than_the_interval_gets_slow_down() {
    let w = World::start_with(dvhost_emulator::Settings {
        device_code_interval_secs: 5,
        ..Default::default()
    })
    .await;
    let dc = w
        .device_code(TENANT_ID, PUBLIC_APP_ID, &format!("{}/.default", w.env_url))
        .await;
    let code = dc["device_code"].as_str().unwrap();
    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, code).await;
    assert_entra_error(s, &b, 400, "authorization_pending", 70016);
    let (s, b) = w.poll(TENANT_ID, PUBLIC_APP_ID, code).await;
    assert_entra_error(s, &b, 400, "slow_down", 70016);
}

#[tokio::test]
async fn device_flow_needs_a_public_client_and_valid_scopes() {
    let w = World::start().await;
    // A confidential app may start the flow but cannot redeem without a credential.
    let dc = w
        .device_code(TENANT_ID, APP_ID, &format!("{}/.default", w.env_url))
        .await;
    w.code_action(&dc, "approve", Some(json!({"user": USER})))
        .await;
    let (s, b) = w.poll_dc(APP_ID, &dc).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000218);

    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/devicecode"),
            &[
                ("client_id", PUBLIC_APP_ID),
                (
                    "scope",
                    &format!("{}/a https://graph.microsoft.com/User.Read", w.env_url),
                ),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 700022);
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/devicecode"),
            &[
                ("client_id", "aaaaaaaa-0000-0000-0000-00000000dead"),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
    let (s, b) = w
        .post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/devicecode"),
            &[("client_id", PUBLIC_APP_ID)],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    // Well-known Microsoft public clients (Azure CLI) work in every tenant.
    let dc = w
        .device_code(
            "fabrikam.example",
            "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert!(dc["user_code"].is_string());
}
