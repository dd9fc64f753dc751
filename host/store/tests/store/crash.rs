//! Crash safety: this test binary re-runs itself as a child that writes in
//! a loop (plugin versions with large components, connection edits with
//! their history, certificate rotations, audit entries) and reports each
//! committed round; the parent SIGKILLs it in the middle of a round,
//! reopens the store and checks it is consistent and kept every reported
//! round. Three kills in a row, each child continuing the previous one's
//! store.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use dvhost_dataverse::MasterKey;
use dvhost_store::{
    AuditOutcome, CertificateState, ConnectionChanges, ContentHash, HistoryEvent, NewAuditEntry,
    NewPluginVersion, Store,
};
use serde_json::json;
use sqlx::Connection as _;

use crate::util::{self, ACTOR, name, raw};

/// Set in the child: the data directory to write to.
const CHILD_DIR: &str = "DVHOST_STORE_CRASH_CHILD_DIR";
const MASTER: [u8; 32] = [9; 32];

/// The child's body. Run normally (without the variable) it does nothing.
#[tokio::test]
async fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let store = Store::open_sqlite(Path::new(&dir)).await.unwrap();
    let master = MasterKey::from_bytes(MASTER);
    let tenant = match store.tenant_by_name(&name("crash")).await.unwrap() {
        Some(tenant) => tenant,
        None => util::tenant(&store, "crash").await,
    };
    let connection = match store
        .connection_by_name(tenant.id, &name("crm"))
        .await
        .unwrap()
    {
        Some(connection) => connection,
        None => util::connection(&store, &tenant, "crm").await,
    };
    let plugin = match store.plugin_by_name(tenant.id, &name("big")).await.unwrap() {
        Some(plugin) => plugin,
        None => store.create_plugin(tenant.id, &name("big")).await.unwrap(),
    };
    // Certificates are slow to generate: a few, reused in turn.
    let certificates: Vec<_> = (0..3)
        .map(|i| util::known_certificate(&format!("crash-{i}")).certificate)
        .collect();
    let mut stdout = std::io::stdout();
    for round in 0u64.. {
        // A component of 256 KiB to 1 MiB, different every round.
        let size = 256 * 1024 + (round as usize * 77_777) % (768 * 1024);
        let component: Vec<u8> = (0..size)
            .map(|i| (i as u64 ^ round.wrapping_mul(0x9e37_79b9)) as u8)
            .collect();
        let new = NewPluginVersion {
            component,
            grants: json!({ "round": round }),
            limits: json!({}),
        };
        let published = store.publish_version(plugin.id, new, true).await.unwrap();
        let changes = ConnectionChanges {
            environment_url: Some(format!(
                "https://round-{}.crm.dynamics.com",
                published.version
            )),
            ..Default::default()
        };
        store
            .edit_connection(connection.id, changes, ACTOR)
            .await
            .unwrap();
        let form = util::stored_form(&certificates[round as usize % 3], &master);
        if let Ok(added) = store.add_certificate(connection.id, form, ACTOR).await {
            store.activate_certificate(added.id, ACTOR).await.unwrap();
            for old in store.certificates(connection.id).await.unwrap() {
                if old.state == CertificateState::Retiring {
                    store.remove_certificate(old.id, ACTOR).await.unwrap();
                }
            }
        }
        store.append_audit(&audit(published.version)).await.unwrap();
        writeln!(stdout, "committed version {}", published.version).unwrap();
        stdout.flush().unwrap();
    }
}

fn audit(version: u32) -> NewAuditEntry {
    NewAuditEntry {
        at: time::OffsetDateTime::now_utc(),
        tenant: None,
        plugin: None,
        actor: "crash-test".into(),
        action: "round".into(),
        outcome: AuditOutcome::Success,
        request_id: None,
        detail: json!({ "version": version }),
    }
}

/// Runs a child writer until it has reported `rounds` more commits, then
/// kills it (SIGKILL) while it is inside the next round. Returns the last
/// version it reported committed.
fn write_and_kill(dir: &Path, rounds: usize) -> u32 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0;
    let mut seen = 0;
    while seen < rounds {
        let line = lines.next().expect("the child stopped writing").unwrap();
        if let Some(version) = line.strip_prefix("committed version ") {
            last = version.parse().unwrap();
            seen += 1;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");
    last
}

async fn check_consistent(dir: &Path, committed: u32) {
    let store = Store::open_sqlite(dir).await.unwrap();
    store.integrity_check().await.unwrap();
    let mut conn = raw(dir).await;
    let violations: Vec<String> =
        sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        violations.is_empty(),
        "foreign keys broken in {violations:?}"
    );
    conn.close().await.unwrap();

    let tenant = store.tenant_by_name(&name("crash")).await.unwrap().unwrap();
    let plugin = store
        .plugin_by_name(tenant.id, &name("big"))
        .await
        .unwrap()
        .unwrap();
    let versions = store.plugin_versions(plugin.id).await.unwrap();
    let newest = versions.last().unwrap().version;
    assert!(
        newest >= committed,
        "version {committed} was reported committed, {newest} found"
    );
    assert_eq!(
        versions.len() as u32,
        newest,
        "versions 1..={newest} without gaps"
    );
    assert_eq!(
        plugin.active_version,
        Some(newest),
        "published and switched together"
    );
    for version in &versions {
        let bytes = store.component(&version.component).await.unwrap().unwrap();
        assert_eq!(bytes.len() as u64, version.component_size);
        assert_eq!(
            ContentHash::of(&bytes),
            version.component,
            "version {}",
            version.version
        );
    }

    // Every edit with its history row: the row says what the last edit said.
    let connection = store
        .connection_by_name(tenant.id, &name("crm"))
        .await
        .unwrap()
        .unwrap();
    let history = store.connection_history(connection.id).await.unwrap();
    let seqs: Vec<i64> = history.iter().map(|h| h.seq).collect();
    assert_eq!(seqs, (1..=history.len() as i64).collect::<Vec<_>>());
    let last_edit = history
        .iter()
        .rev()
        .find(|h| h.event == HistoryEvent::Edited)
        .unwrap();
    assert_eq!(
        last_edit.detail["environment_url"]["to"],
        connection.environment_url
    );
    let certificates = store.certificates(connection.id).await.unwrap();
    let active = certificates
        .iter()
        .filter(|c| c.state == CertificateState::Active)
        .count();
    assert_eq!(active, 1, "{certificates:?}");
    let events = |event| history.iter().filter(|h| h.event == event).count();
    let kept = events(HistoryEvent::CertificateAdded) - events(HistoryEvent::CertificateRemoved);
    assert_eq!(
        kept,
        certificates.len(),
        "certificate rows match their history"
    );
    store.close().await;
}

#[tokio::test]
async fn killed_writers_leave_a_consistent_store_that_kept_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    for (kill, rounds) in [(1, 4), (2, 7), (3, 5)] {
        let committed = write_and_kill(dir.path(), rounds);
        assert!(committed > 0, "kill {kill}");
        check_consistent(dir.path(), committed).await;
    }
}
