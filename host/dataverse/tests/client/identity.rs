//! Certificates, sealed keys and the token source against the in-process
//! emulator.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CLIENT, TENANT, add_fault, clear_faults, control, emulator, soon};
use dvhost_dataverse::{
    Authority, Certificate, Client, Connection, Environment, HttpClient, IdentityError, MasterKey,
    SealedKey, SigningAlgorithm, TokenSource,
};
use dvhost_emulator::RunningEmulator;

fn source(
    emu: &RunningEmulator,
    cert: Arc<Certificate>,
    algorithm: SigningAlgorithm,
) -> Arc<TokenSource> {
    common::token_source(emu, cert, CLIENT, algorithm)
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
    // A PEM import round-trips with its key; another key is refused.
    let known = common::known_key("imported");
    let again = Certificate::from_pem(&known.cert.pem(), &known.key_pem).unwrap();
    assert_eq!(again.sha256_thumbprint(), known.cert.sha256_thumbprint());
    let other = common::known_key("other");
    assert!(matches!(
        Certificate::from_pem(&known.cert.pem(), &other.key_pem),
        Err(IdentityError::Certificate(_))
    ));
    assert!(matches!(
        Certificate::from_pem("nope", "nope"),
        Err(IdentityError::Certificate(_))
    ));
    let shown = format!("{cert:?} {again:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains(&known.key_pem[40..80]),
        "{shown}"
    );
}

#[tokio::test]
async fn tokens_for_both_algorithms_work_at_dataverse() {
    let cert = common::generated("sync");
    let emu = emulator(&cert, "").await;
    for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::Ps256] {
        let tokens = source(&emu, cert.clone(), alg);
        let client = Client::new(tokens.clone());
        let who = client.who_am_i(soon()).await.unwrap();
        assert!(!who.user_id.is_nil());
        let t = tokens.warm(soon()).await.unwrap();
        assert_eq!(t.generation, 1, "WhoAmI's token is reused");
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
    let cert = common::generated("sync");
    let emu = emulator(&cert, "").await;
    let tokens = source(&emu, cert, SigningAlgorithm::Rs256);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let t = tokens.clone();
        tasks.push(tokio::spawn(async move {
            t.warm(soon()).await.map(|t| t.expires_at)
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
    let cert = common::generated("sync");
    let emu = emulator(&cert, "token_lifetime_secs = 4").await;
    let tokens = source(&emu, cert, SigningAlgorithm::Ps256);
    let first = tokens.warm(soon()).await.unwrap();
    assert!(first.refresh_at < first.expires_at);
    // Before the renewal point the cached token is reused.
    let again = tokens.warm(soon()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(emu.token_stats().issued, 1);
    // Past the renewal point (half of 4 s) but before expiry: a new token.
    tokio::time::sleep_until(tokio::time::Instant::from_std(
        first.refresh_at + Duration::from_millis(50),
    ))
    .await;
    assert!(Instant::now() < first.expires_at);
    let renewed = tokens.warm(soon()).await.unwrap();
    assert!(renewed.expires_at > first.expires_at);
    assert_eq!(renewed.generation, 2);
    assert_eq!(emu.token_stats().issued, 2);
}

#[tokio::test]
async fn a_wrong_certificate_gives_the_typed_aadsts_error() {
    let registered = Certificate::generate("sync", Certificate::default_validity()).unwrap();
    let emu = emulator(&registered, "").await;
    let wrong =
        Arc::new(Certificate::generate("not registered", Certificate::default_validity()).unwrap());
    let err = source(&emu, wrong, SigningAlgorithm::Rs256)
        .warm(soon())
        .await
        .unwrap_err();
    match &err {
        IdentityError::Entra {
            status,
            error,
            code,
            cause,
            description,
            retry_after,
        } => {
            assert_eq!(*retry_after, None);
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
    let cert = common::generated("sync");
    // A port with nothing listening: connection refused, retried, then given up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let connection = Connection::new(
        Authority::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        TENANT,
        CLIENT,
        Environment::parse("https://contoso.crm.dynamics.com").unwrap(),
        cert,
        SigningAlgorithm::Rs256,
    )
    .unwrap();
    let tokens = TokenSource::new(connection, HttpClient::new(None).unwrap());
    let start = Instant::now();
    let err = tokens
        .warm(Instant::now() + Duration::from_secs(3))
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
    let cert = common::generated("sync");
    let emu = emulator(&cert, "").await;
    let control = control(&emu);
    for rule in [
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "status", "status": 503}, "times": 1}),
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "throttle", "retry_after_secs": 0}, "skip": 1, "times": 1}),
        serde_json::json!({"environment": "entra", "path": "token", "action": {"kind": "drop_before"}, "skip": 2, "times": 1}),
    ] {
        add_fault(&emu, rule).await;
    }
    let tokens = source(&emu, cert.clone(), SigningAlgorithm::Rs256);
    tokens
        .warm(soon())
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
    clear_faults(&emu).await;
    add_fault(
        &emu,
        serde_json::json!({"path": "*", "action": {"kind": "status", "status": 503}}),
    )
    .await;
    source(&emu, cert, SigningAlgorithm::Ps256)
        .warm(soon())
        .await
        .expect("Dataverse-wide rules do not apply to Entra");
}

#[test]
fn sealed_keys_open_only_with_their_master_key_and_certificate() {
    let master = MasterKey::from_bytes([7; 32]);
    let cert = common::generated("sealed");
    let sealed = cert.seal_private_key(&master);
    assert!(format!("{sealed:?}").starts_with("SealedKey("));
    let stored = SealedKey::from_bytes(sealed.as_bytes().to_vec());
    let opened = Certificate::unseal(&cert.pem(), &stored, &master).unwrap();
    assert_eq!(opened.sha256_thumbprint(), cert.sha256_thumbprint());
    // Sealing twice gives different bytes (fresh nonce).
    assert_ne!(cert.seal_private_key(&master), sealed);

    let refused = |r: Result<Certificate, IdentityError>| matches!(r, Err(IdentityError::Certificate(m)) if m.contains("cannot be opened"));
    let wrong = MasterKey::from_bytes([8; 32]);
    assert!(refused(Certificate::unseal(&cert.pem(), &sealed, &wrong)));
    let other = common::generated("other");
    assert!(refused(Certificate::unseal(&other.pem(), &sealed, &master)));
    let mut damaged = sealed.as_bytes().to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(refused(Certificate::unseal(
        &cert.pem(),
        &SealedKey::from_bytes(damaged),
        &master
    )));
    assert!(refused(Certificate::unseal(
        &cert.pem(),
        &SealedKey::from_bytes(vec![]),
        &master
    )));
    // The sealed bytes do not contain the key's PEM text.
    assert!(
        !String::from_utf8_lossy(sealed.as_bytes()).contains("PRIVATE KEY"),
        "the key is encrypted"
    );
    assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    assert!(MasterKey::from_base64(&format!("{}=", "A".repeat(43))).is_ok());
}
