//! Certificates and the token source against the in-process emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost::dataverse::Client;
use dvhost::emulator::{
    AppSeed, EmulatorBuilder, EnvironmentSeed, RunningEmulator, Seed, Settings, TenantSeed,
};
use dvhost::identity::{
    Certificate, Connection, IdentityError, SigningAlgorithm, TokenSource, http_client,
};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";

async fn emulator(cert: &Certificate, settings: Settings) -> RunningEmulator {
    let seed = Seed {
        settings,
        tenants: vec![TenantSeed {
            name: "contoso".into(),
            id: Some(TENANT.parse().unwrap()),
            domains: vec![],
            display_name: None,
        }],
        apps: vec![AppSeed {
            tenant: "contoso".into(),
            display_name: "sync".into(),
            app_id: Some(CLIENT.parse().unwrap()),
            public_client: false,
            certificates: vec![cert.pem()],
            certificate_files: vec![],
            service_principal: true,
        }],
        environments: vec![EnvironmentSeed {
            tenant: "contoso".into(),
            unique_name: "contoso-dev".into(),
            friendly_name: None,
            url: None,
            id: None,
            region: "NA".into(),
            users: vec![],
            admins: vec![],
            app_users: vec![CLIENT.into()],
            tables: vec![],
            alternate_keys: Default::default(),
        }],
        ..Seed::default()
    };
    EmulatorBuilder::new()
        .tls(true)
        .seed(seed)
        .start()
        .await
        .unwrap()
}

fn source(
    emu: &RunningEmulator,
    cert: Arc<Certificate>,
    algorithm: SigningAlgorithm,
) -> Arc<TokenSource> {
    let http = http_client(emu.ca_certificate_pem()).unwrap();
    Arc::new(TokenSource::new(
        Connection {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            authority_host: emu.base_url().into(),
            resource: format!("{}/contoso-dev", emu.base_url()),
            certificate: cert,
            algorithm,
        },
        http,
    ))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn generated_certificates_export_and_never_show_their_key() {
    let cert = Certificate::generate(
        "dvhost connection contoso-dev",
        Certificate::default_validity(),
    )
    .unwrap();
    assert!(cert.subject().contains("dvhost connection contoso-dev"));
    let years = (cert.not_after() - cert.not_before()).whole_days();
    assert!((729..=731).contains(&years), "{years}");
    assert!(cert.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(cert.sha1_thumbprint_hex().len(), 40);
    // The PEM round-trips with its key; another key is refused.
    let key = cert.export_private_key_pem();
    let again = Certificate::from_pem(&cert.pem(), &key).unwrap();
    assert_eq!(again.sha256_thumbprint(), cert.sha256_thumbprint());
    let other = Certificate::generate("other", time::Duration::days(1)).unwrap();
    assert!(matches!(
        Certificate::from_pem(&cert.pem(), &other.export_private_key_pem()),
        Err(IdentityError::Certificate(_))
    ));
    assert!(matches!(
        Certificate::from_pem("nope", "nope"),
        Err(IdentityError::Certificate(_))
    ));
    let shown = format!("{cert:?} {again:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains(&key[40..80]),
        "{shown}"
    );
}

#[tokio::test]
async fn tokens_for_both_algorithms_work_at_dataverse() {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    let emu = emulator(&cert, Settings::default()).await;
    for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::Ps256] {
        let tokens = source(&emu, cert.clone(), alg);
        let client = Client::new(
            &format!("{}/contoso-dev", emu.base_url()),
            tokens.clone(),
            http_client(emu.ca_certificate_pem()).unwrap(),
        );
        let who = client.who_am_i(soon()).await.unwrap();
        assert!(!who.user_id.is_nil());
        let t = tokens.token(soon()).await.unwrap();
        assert!(
            t.expires_at > Instant::now() + Duration::from_secs(3000),
            "Entra's default lifetime is 60-90 minutes"
        );
        assert!(
            !format!("{t:?} {tokens:?}").contains("eyJ"),
            "no token in Debug"
        );
    }
}

#[tokio::test]
async fn a_thousand_concurrent_callers_cause_one_token_request() {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    let emu = emulator(&cert, Settings::default()).await;
    let tokens = source(&emu, cert, SigningAlgorithm::Rs256);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let t = tokens.clone();
        tasks.push(tokio::spawn(async move {
            t.token(soon()).await.map(|t| t.expires_at)
        }));
    }
    let mut expiries = Vec::new();
    for t in tasks {
        expiries.push(t.await.unwrap().unwrap());
    }
    assert!(
        expiries.windows(2).all(|w| w[0] == w[1]),
        "everyone got the same token"
    );
    assert_eq!(
        emu.token_stats().by_client.get(CLIENT),
        Some(&1),
        "{:?}",
        emu.token_stats()
    );
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire() {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    let emu = emulator(
        &cert,
        Settings {
            token_lifetime_secs: Some(4),
            ..Settings::default()
        },
    )
    .await;
    let tokens = source(&emu, cert, SigningAlgorithm::Ps256);
    let first = tokens.token(soon()).await.unwrap();
    assert!(first.refresh_at < first.expires_at);
    // Before the renewal point the cached token is reused.
    let again = tokens.token(soon()).await.unwrap();
    assert_eq!(again.expires_at, first.expires_at);
    assert_eq!(emu.token_stats().issued, 1);
    // Past the renewal point (half of 4 s) but before expiry: a new token.
    tokio::time::sleep_until(tokio::time::Instant::from_std(
        first.refresh_at + Duration::from_millis(50),
    ))
    .await;
    assert!(Instant::now() < first.expires_at);
    let renewed = tokens.token(soon()).await.unwrap();
    assert!(renewed.expires_at > first.expires_at);
    assert_eq!(emu.token_stats().issued, 2);
}

#[tokio::test]
async fn a_wrong_certificate_gives_the_typed_aadsts_error() {
    let registered = Certificate::generate("sync", Certificate::default_validity()).unwrap();
    let emu = emulator(&registered, Settings::default()).await;
    let wrong =
        Arc::new(Certificate::generate("not registered", Certificate::default_validity()).unwrap());
    let err = source(&emu, wrong, SigningAlgorithm::Rs256)
        .token(soon())
        .await
        .unwrap_err();
    match &err {
        IdentityError::Entra {
            status,
            error,
            code,
            cause,
            description,
        } => {
            assert_eq!(
                (*status, error.as_str(), *code),
                (401, "invalid_client", 700027)
            );
            assert!(cause.contains("certificate is not registered"));
            assert!(description.starts_with("AADSTS700027:") && !description.contains("Trace ID"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("AADSTS700027") && !text.contains("eyJ"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_authority_fails_within_the_deadline() {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    // A port with nothing listening: connection refused, retried, then given up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let tokens = TokenSource::new(
        Connection {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            authority_host: format!("http://127.0.0.1:{port}"),
            resource: "https://contoso.crm.dynamics.com".into(),
            certificate: cert,
            algorithm: SigningAlgorithm::Rs256,
        },
        http_client(None).unwrap(),
    );
    let start = Instant::now();
    let err = tokens
        .token(Instant::now() + Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(4));
    assert!(
        matches!(
            err,
            IdentityError::Transport(_) | IdentityError::Deadline(_)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn transient_token_endpoint_failures_are_retried() {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    let emu = emulator(&cert, Settings::default()).await;
    let control = http_client(emu.ca_certificate_pem()).unwrap();
    for rule in [
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "status", "status": 503}, "times": 1}),
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "throttle", "retry_after_secs": 0}, "skip": 1, "times": 1}),
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "drop_before"}, "skip": 2, "times": 1}),
    ] {
        let resp = control
            .post(format!("{}/_emulator/faults", emu.base_url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let tokens = source(&emu, cert.clone(), SigningAlgorithm::Rs256);
    tokens
        .token(soon())
        .await
        .expect("a 503, a 429 and a dropped connection are retried");
    let stats = emu.token_stats();
    assert_eq!((stats.issued, stats.requests), (1, 3), "{stats:?}");
    let faults: serde_json::Value = control
        .get(format!("{}/_emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let applied: Vec<u64> = faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["applied"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [1, 1, 1]);
    // Rules for every environment never touch the token endpoint.
    control
        .delete(format!("{}/_emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap();
    control
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&serde_json::json!({"path": "*", "action": {"kind": "status", "status": 503}}))
        .send()
        .await
        .unwrap();
    source(&emu, cert, SigningAlgorithm::Ps256)
        .token(soon())
        .await
        .expect("Dataverse-wide rules do not apply to Entra");
}
