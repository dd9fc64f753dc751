//! Delegated sign-in with device codes against the in-process emulator:
//! approval, refresh for another resource, decline/expiry/slow_down, the
//! caller's deadline, and no secret in Debug output.

use std::time::{Duration, Instant};

use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use dvhost::identity::{DeviceSignIn, IdentityError, UserTokens, http_client};
use serde_json::{Value, json};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
const ADMIN: &str = "admin@contoso.onmicrosoft.com";
const DISCOVERY: &str = "https://globaldisco.crm.dynamics.com/user_impersonation";
const GRAPH: &str = "https://graph.microsoft.com/.default";

struct Setup {
    emu: RunningEmulator,
    http: reqwest::Client,
    sign_in: DeviceSignIn,
}

async fn setup() -> Setup {
    let toml = format!(
        r#"
        [settings]
        device_code_interval_secs = 1
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[users]]
        tenant = "contoso"
        upn = "{ADMIN}"
        admin = true
        [[users]]
        tenant = "contoso"
        upn = "maker@contoso.onmicrosoft.com"
        admin = false
        [[apps]]
        tenant = "contoso"
        display_name = "dvhost cli"
        app_id = "{PUBLIC_CLIENT}"
        public_client = true
        [[environments]]
        tenant = "contoso"
        unique_name = "contoso-dev"
        "#
    );
    let seed = Seed::from_toml(&toml, None).unwrap();
    let emu = EmulatorBuilder::new()
        .tls(true)
        .seed(seed)
        .start()
        .await
        .unwrap();
    let http = http_client(emu.ca_certificate_pem()).unwrap();
    let sign_in = DeviceSignIn::new(emu.base_url(), TENANT, PUBLIC_CLIENT, http.clone());
    Setup { emu, http, sign_in }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

impl Setup {
    /// A control-API action on a device code (`approve`, `decline`, ...).
    async fn act(&self, user_code: &str, action: &str, body: Value) {
        let resp = self
            .http
            .post(format!(
                "{}/_emulator/device-codes/{user_code}/{action}",
                self.emu.base_url()
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{action}: {}", resp.status());
    }

    /// Approves `user_code` as the admin after a short delay, as a user would.
    fn approve_later(&self, user_code: &str) -> tokio::task::JoinHandle<()> {
        let http = self.http.clone();
        let url = format!(
            "{}/_emulator/device-codes/{user_code}/approve",
            self.emu.base_url()
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let resp = http
                .post(url)
                .json(&json!({ "user": ADMIN }))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "approve: {}", resp.status());
        })
    }

    async fn get(&self, path: &str, tokens: &UserTokens) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.emu.base_url()))
            .bearer_auth(tokens.access_token())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A full sign-in for `scopes`, approved by the admin.
    async fn signed_in(&self, scopes: &[&str]) -> UserTokens {
        let pending = self.sign_in.start(scopes).await.unwrap();
        let approver = self.approve_later(&pending.prompt().user_code);
        let tokens = self.sign_in.complete(pending, soon()).await.unwrap();
        approver.await.unwrap();
        tokens
    }
}

fn entra_error(e: IdentityError) -> String {
    match e {
        IdentityError::Entra { error, .. } => error,
        other => panic!("expected an Entra error, got {other:?}"),
    }
}

#[tokio::test]
async fn approved_sign_in_reaches_discovery() {
    let s = setup().await;
    let pending = s
        .sign_in
        .start(&[DISCOVERY, "offline_access", "openid"])
        .await
        .unwrap();
    let p = pending.prompt().clone();
    assert!(!p.user_code.is_empty());
    assert!(p.verification_uri.starts_with(s.emu.base_url()), "{p:?}");
    assert!(p.message.contains(&p.user_code), "{p:?}");
    assert_eq!(p.interval, 1);
    assert!(p.expires_in > 0);

    let approver = s.approve_later(&p.user_code);
    let tokens = s.sign_in.complete(pending, soon()).await.unwrap();
    approver.await.unwrap();
    assert!(tokens.has_refresh_token());
    assert!(tokens.expires_at > Instant::now());
    assert!(tokens.scope.contains("user_impersonation"), "{tokens:?}");
    assert_eq!(tokens.upn.as_deref(), Some(ADMIN));
    assert!(tokens.oid.is_some());

    let (status, body) = s.get("/api/discovery/v2.0/Instances", &tokens).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["UniqueName"].as_str())
        .collect();
    assert!(names.contains(&"contoso-dev"), "{body}");
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let s = setup().await;
    let tokens = s.signed_in(&[DISCOVERY]).await;
    assert!(!tokens.has_refresh_token());
    assert_eq!(tokens.upn, None, "no id token without openid");
    let e = s
        .sign_in
        .refresh(&tokens, &[GRAPH], soon())
        .await
        .unwrap_err();
    assert_eq!(entra_error(e), "invalid_grant");
}

#[tokio::test]
async fn refresh_for_another_resource() {
    let s = setup().await;
    let tokens = s.signed_in(&[DISCOVERY, "offline_access", "openid"]).await;

    let graph = s.sign_in.refresh(&tokens, &[GRAPH], soon()).await.unwrap();
    assert!(graph.has_refresh_token());
    assert!(graph.scope.contains("graph.microsoft.com"), "{graph:?}");
    assert_ne!(graph.access_token(), tokens.access_token());
    // The user is remembered even when the refresh brings no id token.
    assert_eq!(graph.upn.as_deref(), Some(ADMIN));
    // Graph's application list needs a tenant administrator's delegated token.
    let (status, body) = s.get("/v1.0/applications", &graph).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains(PUBLIC_CLIENT), "{body}");

    // The Graph token is not a Discovery token.
    let (status, _) = s.get("/api/discovery/v2.0/Instances", &graph).await;
    assert_eq!(status, 401);

    // Empty scopes: the scopes the tokens already hold.
    let again = s.sign_in.refresh(&graph, &[], soon()).await.unwrap();
    assert!(again.scope.contains("graph.microsoft.com"), "{again:?}");
}

#[tokio::test]
async fn declined_is_typed() {
    let s = setup().await;
    let pending = s.sign_in.start(&[DISCOVERY]).await.unwrap();
    s.act(&pending.prompt().user_code, "decline", json!({}))
        .await;
    let e = s.sign_in.complete(pending, soon()).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(entra_error(e), "authorization_declined");
    assert!(text.contains("declined"), "{text}");
}

#[tokio::test]
async fn expired_is_typed() {
    let s = setup().await;
    let pending = s.sign_in.start(&[DISCOVERY]).await.unwrap();
    s.act(&pending.prompt().user_code, "expire", json!({}))
        .await;
    let e = s.sign_in.complete(pending, soon()).await.unwrap_err();
    assert_eq!(entra_error(e), "expired_token");
}

#[tokio::test]
async fn slow_down_adds_to_the_interval() {
    let s = setup().await;
    let pending = s
        .sign_in
        .start(&[DISCOVERY, "offline_access"])
        .await
        .unwrap();
    let code = pending.prompt().user_code.clone();
    s.act(&code, "slow-down", json!({ "count": 1 })).await;
    s.act(&code, "approve", json!({ "user": ADMIN })).await;
    let started = Instant::now();
    let tokens = s.sign_in.complete(pending, soon()).await.unwrap();
    // 1 s before the first poll, which is told to slow down, then 1 + 5 s.
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(tokens.has_refresh_token());
}

#[tokio::test]
async fn deadline_when_nobody_approves() {
    let s = setup().await;
    let pending = s.sign_in.start(&[DISCOVERY]).await.unwrap();
    let started = Instant::now();
    let e = s
        .sign_in
        .complete(pending, started + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::Deadline(_)), "{e:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn unknown_client_is_typed() {
    let s = setup().await;
    let other = DeviceSignIn::new(
        s.emu.base_url(),
        TENANT,
        "aaaaaaaa-0000-0000-0000-00000000ffff",
        s.http.clone(),
    );
    let e = other.start(&[DISCOVERY]).await.unwrap_err();
    assert!(
        matches!(e, IdentityError::Entra { code: 700016, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn debug_shows_no_secret() {
    let s = setup().await;
    let pending = s
        .sign_in
        .start(&[DISCOVERY, "offline_access", "openid"])
        .await
        .unwrap();
    let pending_debug = format!("{pending:?}");
    assert!(pending_debug.contains(&pending.prompt().user_code));
    assert!(!pending_debug.contains("device_code"), "{pending_debug}");
    let approver = s.approve_later(&pending.prompt().user_code);
    let tokens = s.sign_in.complete(pending, soon()).await.unwrap();
    approver.await.unwrap();
    let refreshed = s.sign_in.refresh(&tokens, &[GRAPH], soon()).await.unwrap();
    for t in [&tokens, &refreshed] {
        let debug = format!("{t:?}");
        assert!(!debug.contains(t.access_token()), "{debug}");
        // JWTs start with a base64 `{"` header.
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(debug.contains("has_refresh_token: true"), "{debug}");
    }
}
