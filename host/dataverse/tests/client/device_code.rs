//! Delegated sign-in with device codes against the in-process emulator:
//! approval, refresh for another resource, decline/expiry/slow_down, the
//! caller's deadline, and no secret in Debug output.

use crate::common;

use std::time::{Duration, Instant};

use common::{ADMIN, PUBLIC_CLIENT, TENANT, soon};
use dvhost_dataverse::{
    Authority, DeviceSignIn, Discovery, DiscoveryService, IdentityError, Instance, UserTokens,
};
use dvhost_emulator::RunningEmulator;
use serde_json::{Value, json};

const DISCOVERY: &str = "https://globaldisco.crm.dynamics.com/user_impersonation";
const GRAPH: &str = "https://graph.microsoft.com/.default";

struct Setup {
    emu: RunningEmulator,
    /// For the emulator's control API.
    http: reqwest::Client,
    sign_in: DeviceSignIn,
    discovery: Discovery,
}

async fn setup() -> Setup {
    let emu = common::emulator(
        &common::generated("unused"),
        "device_code_interval_secs = 1",
    )
    .await;
    let sign_in = common::device_sign_in(&emu);
    let discovery = Discovery::new(
        DiscoveryService::parse(emu.base_url()).unwrap(),
        common::http(&emu),
    );
    Setup {
        http: common::control(&emu),
        emu,
        sign_in,
        discovery,
    }
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
        common::approve_later(&self.emu, user_code)
    }

    async fn instances(&self, tokens: &UserTokens) -> Result<Vec<Instance>, IdentityError> {
        self.discovery.instances(tokens, soon()).await
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

    let instances = s.instances(&tokens).await.unwrap();
    let dev = instances
        .iter()
        .find(|i| i.unique_name == "contoso-dev")
        .unwrap_or_else(|| panic!("{instances:?}"));
    let printed = s.emu.environment_url("contoso-dev").unwrap();
    assert_eq!(dev.url.as_str(), printed.trim_end_matches('/'), "{dev:?}");
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
    // The user is remembered even when the refresh brings no id token.
    assert_eq!(graph.upn.as_deref(), Some(ADMIN));

    // The Graph token is not a Discovery token.
    let e = s.instances(&graph).await.unwrap_err();
    assert!(
        matches!(e, IdentityError::Entra { status: 401, .. }),
        "{e:?}"
    );

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
        Authority::parse(s.emu.base_url()).unwrap(),
        TENANT,
        "aaaaaaaa-0000-0000-0000-00000000ffff",
        common::http(&s.emu),
    )
    .unwrap();
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
        // JWTs start with a base64 `{"` header.
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(debug.contains("has_refresh_token: true"), "{debug}");
    }
}

#[tokio::test]
async fn codes_and_tokens_go_back_only_to_their_issuer() {
    let s = setup().await;
    let (foreign, hits) = common::fake::counting_listener("127.0.0.2:0").await;
    let elsewhere = format!("http://{foreign}");
    let rogue = DeviceSignIn::new(
        Authority::parse(&elsewhere).unwrap(),
        TENANT,
        PUBLIC_CLIENT,
        common::http(&s.emu),
    )
    .unwrap();
    let mismatch = |e: IdentityError| {
        assert!(
            matches!(
                e,
                IdentityError::Endpoint(dvhost_dataverse::EndpointError::Mismatch(_))
            ),
            "{e:?}"
        )
    };
    // A pending device code cannot be polled elsewhere.
    let pending = s
        .sign_in
        .start(&[DISCOVERY, "offline_access"])
        .await
        .unwrap();
    let user_code = pending.prompt().user_code.clone();
    mismatch(rogue.complete(pending, soon()).await.unwrap_err());
    // Tokens cannot be refreshed elsewhere, nor shown to another Discovery.
    s.act(&user_code, "approve", json!({ "user": ADMIN })).await;
    let tokens = s.signed_in(&[DISCOVERY, "offline_access"]).await;
    mismatch(rogue.refresh(&tokens, &[GRAPH], soon()).await.unwrap_err());
    let rogue_discovery = Discovery::new(
        DiscoveryService::parse(&elsewhere).unwrap(),
        common::http(&s.emu),
    );
    mismatch(
        rogue_discovery
            .instances(&tokens, soon())
            .await
            .unwrap_err(),
    );
    // Nor to Microsoft's own service: these came from the emulator.
    let public = Discovery::new(DiscoveryService::public_cloud(), common::http(&s.emu));
    mismatch(public.instances(&tokens, soon()).await.unwrap_err());
    // Another client id at the same authority is another issuer too.
    let other_client = DeviceSignIn::new(
        Authority::parse(s.emu.base_url()).unwrap(),
        TENANT,
        "aaaaaaaa-0000-0000-0000-00000000ffff",
        common::http(&s.emu),
    )
    .unwrap();
    mismatch(
        other_client
            .refresh(&tokens, &[GRAPH], soon())
            .await
            .unwrap_err(),
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // The issuer itself still works.
    s.sign_in.refresh(&tokens, &[GRAPH], soon()).await.unwrap();
}
