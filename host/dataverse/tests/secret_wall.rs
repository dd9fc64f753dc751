//! The secret wall, tried from outside the crate through its public API
//! only: every way to put the connection's bearer token (or key) on the
//! wire to a foreign host, or in clear text, is refused with a typed error
//! before any request leaves, and listeners standing in for the foreign
//! hosts count no connection.
//!
//! A fake environment (HTTPS, its own certificate) plays a compromised or
//! malicious Dataverse: it issues a token and answers queries with whatever
//! next link, entity set name or redirect a test asks for. Every log line of
//! this test binary goes to one capture, which must never hold a token, an
//! assertion or the key.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::fake::{World, secrets};
use dvhost_dataverse::{
    AlternateKey, Authority, BatchOperation, BatchPart, ColumnName, DataverseError, EntitySet,
    Environment, Op, TableName, TargetError,
};
use serde_json::json;

// ---- log capture for the whole binary ----

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs one global TRACE subscriber (every thread, every test of this
/// binary) and returns its capture.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// The fake world, with this binary's log capture installed first.
async fn world() -> World {
    logs();
    common::fake::world().await
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

fn foreign_link(e: &DataverseError) -> bool {
    matches!(e, DataverseError::Target(TargetError::ForeignLink { .. }))
}

#[tokio::test]
async fn next_links_that_leave_the_environment_are_refused_before_anything_is_sent() {
    let w = world().await;
    let port = w.addr.port();
    let other_port = w.foreign[1].0.port();
    // A next link inside the environment is followed.
    *w.fake.next_link.lock().unwrap() = Some(format!(
        "https://127.0.0.1:{port}/api/data/v9.2/accounts?$skiptoken=2"
    ));
    let page = w
        .client()
        .query(&w.accounts(), common::soon())
        .await
        .unwrap();
    assert!(page.has_more());
    *w.fake.next_link.lock().unwrap() = None;
    let next = w.client().next_page(&page, common::soon()).await.unwrap();
    assert_eq!(next.unwrap().rows.len(), 1);
    assert_eq!(w.requests(), 2);

    let hostile = [
        format!("https://127.0.0.2:{port}/api/data/v9.2/accounts?$skiptoken=2"),
        format!("https://127.0.0.1:{other_port}/api/data/v9.2/accounts"),
        format!("http://127.0.0.1:{port}/api/data/v9.2/accounts"),
        format!("http://127.0.0.1:{other_port}/api/data/v9.2/accounts"),
        format!("https://127.0.0.1:{port}@127.0.0.2:{port}/api/data/v9.2/accounts"),
        format!("https://user:pw@127.0.0.1:{port}/api/data/v9.2/accounts"),
        format!("HTTPS://127.0.0.2:{port}/api/data/v9.2/accounts"),
        format!("//127.0.0.2:{port}/api/data/v9.2/accounts"),
        format!("https:\\\\127.0.0.2:{port}/api/data/v9.2/accounts"),
        "/somewhere/else".to_string(),
        "../../../elsewhere".to_string(),
        "accounts?$skiptoken=1\r\nHost: 127.0.0.2".to_string(),
    ];
    for link in &hostile {
        *w.fake.next_link.lock().unwrap() = Some(link.clone());
        let before = w.requests();
        let e = w
            .client()
            .query(&w.accounts(), common::soon())
            .await
            .unwrap_err();
        assert!(foreign_link(&e), "{link}: {e:?}");
        assert_eq!(
            w.requests(),
            before + 1,
            "{link}: only the query itself was sent"
        );
        // The error names no URL.
        assert!(!e.to_string().contains("127.0.0.2"), "{e}");
    }
    // query_all refuses the same way.
    let e = w
        .client()
        .query_all(&w.accounts(), common::soon())
        .await
        .unwrap_err();
    assert!(foreign_link(&e), "{e:?}");
    w.assert_nothing_foreign();
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let w = world().await;
    let port = w.addr.port();
    *w.fake.redirect_to.lock().unwrap() =
        Some(format!("https://127.0.0.2:{port}/api/data/v9.2/accounts"));
    let e = w
        .client()
        .query(&w.accounts(), common::soon())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(307), "{e:?}");
    assert_eq!(w.requests(), 1, "not retried either");
    w.assert_nothing_foreign();
}

#[tokio::test]
async fn an_entity_set_name_from_metadata_that_is_a_url_is_refused() {
    let w = world().await;
    let port = w.addr.port();
    *w.fake.entity_set_name.lock().unwrap() = format!("https://127.0.0.2:{port}/accounts");
    let e = w
        .client()
        .entity_set(&TableName::new("account").unwrap(), common::soon())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DataverseError::Target(TargetError::InvalidName {
                what: "entity set",
                ..
            })
        ),
        "{e:?}"
    );
    assert!(w.client().list_tables(common::soon()).await.is_err());
    w.assert_nothing_foreign();
}

/// Strings that try to be something other than a name.
fn hostile_names(port: u16) -> Vec<String> {
    vec![
        format!("https://127.0.0.2:{port}/x"),
        format!("http://127.0.0.2:{port}"),
        format!("//127.0.0.2:{port}/x"),
        "accounts?x=".into(),
        "accounts#x".into(),
        "../".into(),
        "..".into(),
        "accounts/../../x".into(),
        "accounts(1)".into(),
        "accounts\r\nGET https://127.0.0.2/ HTTP/1.1".into(),
        "accounts%2F..".into(),
        "accounts@127.0.0.2".into(),
        "".into(),
        " accounts".into(),
    ]
}

#[tokio::test]
async fn names_that_are_urls_or_paths_are_refused_in_every_operation() {
    let w = world().await;
    for name in hostile_names(w.addr.port()) {
        let n = name.as_str();
        assert!(EntitySet::new(n).is_err(), "{n:?}");
        assert!(TableName::new(n).is_err(), "{n:?}");
        assert!(ColumnName::new(n).is_err(), "{n:?}");
        assert!(AlternateKey::new([(n, "v")]).is_err(), "{n:?}");
        assert!(w.accounts().select(&[n]).is_err(), "{n:?}");
        assert!(w.accounts().filter(n, Op::Eq, 1).is_err(), "{n:?}");
        assert!(w.accounts().order_by(n, true).is_err(), "{n:?}");
        assert!(w.accounts().expand(n, &[]).is_err(), "{n:?}");
        assert!(
            w.accounts().expand("primarycontactid", &[n]).is_err(),
            "{n:?}"
        );
        assert!(n.parse::<Op>().is_err(), "{n:?}");
    }
    // Configuration URLs: https, or http on loopback only.
    for url in [
        "http://contoso.crm.dynamics.com",
        "https://user@contoso.crm.dynamics.com",
        "https://contoso.crm.dynamics.com?x=1",
        "contoso.crm.dynamics.com",
    ] {
        assert!(Environment::parse(url).is_err(), "{url}");
        assert!(Authority::parse(url).is_err(), "{url}");
    }
    assert_eq!(w.requests(), 0);
    w.assert_nothing_foreign();
}

#[tokio::test]
async fn batch_parts_cannot_smuggle_a_request() {
    let w = world().await;
    let set = EntitySet::new("accounts").unwrap();
    let key = AlternateKey::new([(
        "accountnumber",
        "x') HTTP/1.1\r\n\r\nGET https://127.0.0.2/api/data/v9.2/accounts HTTP/1.1\r\nX: ('",
    )])
    .unwrap();
    let parts = [BatchPart::ChangeSet(vec![
        BatchOperation::update(&set, &key.clone().into(), json!({"name": "a\r\nb"})),
        BatchOperation::delete(&set, &key.into()),
    ])];
    let e = w
        .client()
        .batch(&parts, false, common::soon())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e:?}");
    let bodies = w.fake.batches.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let request_lines: Vec<&str> = bodies[0]
        .split("\r\n")
        .filter(|l| l.contains(" HTTP/1.1"))
        .collect();
    assert_eq!(request_lines.len(), 2, "{}", bodies[0]);
    for line in request_lines {
        let url = line.split(' ').nth(1).unwrap();
        assert!(
            url.starts_with(&format!(
                "https://127.0.0.1:{}/api/data/v9.2/accounts(",
                w.addr.port()
            )),
            "{line}"
        );
        assert_eq!(line.split(' ').count(), 3, "one request per line: {line}");
        assert!(
            url.contains("%0D%0A"),
            "the line breaks stay encoded: {line}"
        );
    }
    w.assert_nothing_foreign();
}

#[tokio::test]
async fn no_secret_in_logs_errors_or_debug_output() {
    let logs_before = log_text().len();
    // A real run against the emulator: successes and failures of every kind.
    let known = common::known_key("sync");
    let emu = common::emulator(&known.cert, "").await;
    let c = common::client(&emu, &known.cert, common::CLIENT);
    let set = EntitySet::new("accounts").unwrap();
    let accountid = ColumnName::new("accountid").unwrap();
    c.who_am_i(common::soon()).await.unwrap();
    let mut seen = vec![format!("{c:?} {:?}", known.cert)];
    let failures = [
        c.retrieve(&set, &uuid::Uuid::new_v4().into(), &[], common::soon())
            .await
            .unwrap_err(),
        c.create(
            &set,
            &accountid,
            &common::rec(json!({"name": 5})),
            None,
            common::soon(),
        )
        .await
        .unwrap_err(),
        common::client(&emu, &known.cert, common::NO_USER_CLIENT)
            .who_am_i(common::soon())
            .await
            .unwrap_err(),
        common::client(&emu, &common::generated("wrong"), common::CLIENT)
            .who_am_i(common::soon())
            .await
            .unwrap_err(),
    ];
    for e in &failures {
        seen.push(format!("{e} {e:?}"));
    }
    // And the fake environment's token, used for a request.
    let w = world().await;
    w.client()
        .query(&w.accounts(), common::soon())
        .await
        .unwrap();

    let logs = log_text();
    assert!(
        logs[logs_before..].contains("Dataverse request") && logs.contains("token acquired"),
        "the run was logged"
    );
    let key_body: String = known
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for haystack in seen.iter().map(String::as_str).chain([logs.as_str()]) {
        assert!(!haystack.contains(&key_body[..64]), "private key leaked");
        assert!(
            !haystack.contains("eyJ"),
            "a JWT (token or assertion) leaked"
        );
        for s in secrets() {
            assert!(!haystack.contains(s), "the fake token leaked");
        }
        let lower = haystack.to_ascii_lowercase();
        assert!(
            !lower.contains("authorization: bearer"),
            "an Authorization header leaked"
        );
        assert!(
            !haystack.contains("client_assertion="),
            "an assertion form leaked"
        );
    }
}

#[tokio::test]
async fn next_links_in_a_circle_end_in_an_error() {
    let w = world().await;
    w.fake.cycle.store(true, Ordering::SeqCst);
    let e = w
        .client()
        .query_all(&w.accounts(), common::soon())
        .await
        .unwrap_err();
    assert!(
        matches!(e, DataverseError::Unexpected(ref m) if m.contains("loop")),
        "{e:?}"
    );
    assert!(w.requests() <= 4, "{}", w.requests());
}

#[tokio::test]
async fn an_oversized_answer_is_refused_not_buffered() {
    let w = world().await;
    w.fake.huge.store(65 * 1024 * 1024, Ordering::SeqCst);
    let e = w
        .client()
        .query(&w.accounts(), common::soon())
        .await
        .unwrap_err();
    assert!(
        matches!(e, DataverseError::Unexpected(ref m) if m.contains("larger than 64 MiB")),
        "{e:?}"
    );
    assert_eq!(w.requests(), 1, "not retried");
}

#[tokio::test]
async fn a_caller_waiting_for_metadata_keeps_its_own_deadline() {
    let w = world().await;
    w.fake.definitions_delay_ms.store(3000, Ordering::SeqCst);
    let patient = {
        let c = w.client().clone();
        tokio::spawn(async move { c.list_tables(common::soon()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let e = w
        .client()
        .list_tables(Instant::now() + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, DataverseError::Deadline(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The first caller's load carries on and serves it.
    assert_eq!(patient.await.unwrap().unwrap().len(), 1);
    assert_eq!(w.requests(), 1, "one load for both callers");
}
