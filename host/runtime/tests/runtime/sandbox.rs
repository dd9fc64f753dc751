//! The hostile-plugin suite: each attack ends its own call with a specific
//! error while the host keeps serving other calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost_runtime::{CallOutcome, Grants, InvokeError, Operation, PluginLimits, Source};
use dvhost_testkit::{HELLO, HOSTILE};

use crate::common::{capabilities, json, plugin, read_accounts};
use crate::fake::Fake;

fn limits(f: impl FnOnce(&mut PluginLimits)) -> PluginLimits {
    let mut l = PluginLimits::default();
    f(&mut l);
    l
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let p = plugin(HOSTILE).await;
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    caps.limits = limits(|l| l.deadline = Duration::from_millis(300));
    let started = Instant::now();
    let report = p.invoke(&caps, "spin", "{}").await;
    assert_eq!(
        report.output,
        Err(InvokeError::Deadline(Duration::from_millis(300)))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_memory_bomb_meets_the_memory_cap() {
    let p = plugin(HOSTILE).await;
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    caps.limits = limits(|l| l.memory_bytes = 32 << 20);
    let report = p.invoke(&caps, "grow-memory", "{}").await;
    match report.output {
        Err(InvokeError::MemoryLimit { wanted, limit }) => {
            assert_eq!(limit, 32 << 20);
            assert!(wanted > limit, "{wanted}");
        }
        other => panic!("expected the memory cap, got {other:?}"),
    }
}

#[tokio::test]
async fn runaway_recursion_overflows_the_stack_cleanly() {
    let p = plugin(HOSTILE).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    let report = p.invoke(&caps, "recurse", "{}").await;
    assert_eq!(report.output, Err(InvokeError::StackOverflow));
}

#[tokio::test]
async fn a_huge_output_is_refused_by_size() {
    let p = plugin(HOSTILE).await;
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    caps.limits = limits(|l| l.output_bytes = 1 << 20);
    let report = p
        .invoke(&caps, "huge-output", r#"{"bytes": 4194304}"#)
        .await;
    match report.output {
        Err(InvokeError::OutputTooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 20);
            assert!(size >= 4 << 20, "{size}");
        }
        other => panic!("expected the output limit, got {other:?}"),
    }
    let report = p.invoke(&caps, "huge-output", r#"{"bytes": 1000}"#).await;
    assert!(report.output.expect("small output passes").len() >= 1000);
}

#[tokio::test]
async fn a_panic_is_a_trap_with_its_message() {
    let p = plugin(HOSTILE).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    let report = p.invoke(&caps, "panic", "{}").await;
    match report.output {
        Err(InvokeError::Trap(message)) => {
            assert!(
                message.contains("hostile guest panicked on purpose"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(
        report
            .log
            .iter()
            .any(|l| l.source == Source::Stderr && l.message.contains("panicked on purpose"))
    );
}

#[tokio::test]
async fn files_and_the_environment_hold_nothing() {
    let p = plugin(HOSTILE).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    let read = json(
        &p.invoke(&caps, "read-file", r#"{"path": "/etc/passwd"}"#)
            .await
            .output
            .unwrap(),
    );
    assert!(read.get("error").is_some(), "{read}");
    assert!(!read.to_string().contains("root:"), "{read}");
    let env = json(&p.invoke(&caps, "env", "{}").await.output.unwrap());
    assert_eq!(env, serde_json::json!({"vars": [], "args": []}));
    let write = json(
        &p.invoke(
            &caps,
            "write-file",
            r#"{"path": "/tmp/dvhost-escape", "content": "x"}"#,
        )
        .await
        .output
        .unwrap(),
    );
    assert!(write.get("error").is_some(), "{write}");
    assert!(!std::path::Path::new("/tmp/dvhost-escape").exists());
}

#[tokio::test]
async fn the_scratch_directory_is_the_only_writable_place() {
    let p = plugin(HOSTILE).await;
    let outside = tempfile::tempdir().unwrap();
    let scratch = outside.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    caps.scratch_dir = Some(scratch.clone());
    let ok = json(
        &p.invoke(
            &caps,
            "write-file",
            r#"{"path": "/scratch/note.txt", "content": "kept"}"#,
        )
        .await
        .output
        .unwrap(),
    );
    assert_eq!(ok, serde_json::json!({"ok": true}));
    assert_eq!(
        std::fs::read_to_string(scratch.join("note.txt")).unwrap(),
        "kept"
    );
    for path in [
        "/scratch/../escape.txt",
        "/escape.txt",
        "/scratch/../../escape.txt",
    ] {
        let input = serde_json::json!({"path": path, "content": "x"}).to_string();
        let out = json(&p.invoke(&caps, "write-file", &input).await.output.unwrap());
        assert!(out.get("error").is_some(), "{path}: {out}");
    }
    assert!(!outside.path().join("escape.txt").exists());
}

#[tokio::test]
async fn sockets_and_name_lookup_are_denied() {
    let p = plugin(HOSTILE).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let input = serde_json::json!({"host": "127.0.0.1", "port": port}).to_string();
    let out = json(&p.invoke(&caps, "connect", &input).await.output.unwrap());
    assert!(out.get("error").is_some(), "{out}");
    assert!(listener.accept().is_err(), "the guest reached the listener");
    let out = json(
        &p.invoke(&caps, "resolve", r#"{"name": "localhost"}"#)
            .await
            .output
            .unwrap(),
    );
    assert!(out.get("error").is_some(), "{out}");
}

#[tokio::test]
async fn an_ungranted_table_or_operation_sends_nothing() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let caps = capabilities(&fake, read_accounts());
    for (table, op) in [
        ("lead", "read"),
        ("account", "delete"),
        ("account", "create"),
        ("contact", "update"),
    ] {
        let input = serde_json::json!({"table": table, "operation": op}).to_string();
        let report = p.invoke(&caps, "use-table", &input).await;
        let out = json(&report.output.unwrap());
        assert_eq!(out["error"]["kind"], "not-granted", "{table}/{op}: {out}");
        assert_eq!(report.calls.len(), 1);
        assert_eq!(report.calls[0].outcome, CallOutcome::NotGranted);
    }
    assert_eq!(fake.requests(), 0, "a refused call reached the backend");
    let input = serde_json::json!({"table": "account", "operation": "read"}).to_string();
    let out = json(&p.invoke(&caps, "use-table", &input).await.output.unwrap());
    assert!(out.get("ok").is_some(), "{out}");
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn forged_and_stale_page_handles_are_refused() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let caps = capabilities(&fake, read_accounts());
    for input in [r#"{"handle": 7}"#, r#"{"handle": 4000000000}"#] {
        match p.invoke(&caps, "forge-page", input).await.output {
            Err(InvokeError::Trap(m)) => assert!(
                m.to_lowercase().contains("handle") || m.contains("resource"),
                "{m}"
            ),
            other => panic!("a forged handle was not refused: {other:?}"),
        }
    }
    match p.invoke(&caps, "stale-page", "{}").await.output {
        Err(InvokeError::Trap(m)) => assert!(
            m.to_lowercase().contains("handle") || m.contains("resource"),
            "{m}"
        ),
        other => panic!("a stale handle was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn the_call_quota_stops_a_chatty_plugin() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let mut caps = capabilities(&fake, read_accounts());
    caps.limits = limits(|l| l.dataverse_calls = 5);
    let id = uuid::Uuid::from_u128(0xa000).to_string();
    let input = serde_json::json!({"table": "account", "id": id, "count": 20}).to_string();
    let report = p.invoke(&caps, "many-calls", &input).await;
    let out = json(&report.output.unwrap());
    assert_eq!(out["succeeded"], 5, "{out}");
    assert_eq!(out["failed"], 15, "{out}");
    assert_eq!(out["error"]["kind"], "quota", "{out}");
    assert_eq!(fake.requests(), 5);
    assert_eq!(
        report
            .calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Quota)
            .count(),
        15
    );
}

#[tokio::test]
async fn floods_of_log_and_stdout_are_bounded_not_fatal() {
    let p = plugin(HOSTILE).await;
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    caps.limits = limits(|l| l.log_bytes = 10_000);
    for action in ["log-flood", "print-flood"] {
        let report = p.invoke(&caps, action, r#"{"bytes": 1000000}"#).await;
        assert!(report.output.is_ok(), "{action}: {:?}", report.output);
        let kept: usize = report.log.iter().map(|l| l.message.len()).sum();
        assert!(kept <= 10_000, "{action} kept {kept}");
        assert!(
            report.log_dropped_bytes >= 980_000,
            "{action} dropped {}",
            report.log_dropped_bytes
        );
    }
}

#[tokio::test]
async fn attacks_do_not_disturb_other_calls_running_beside_them() {
    let hostile = plugin(HOSTILE).await;
    let hello = plugin(HELLO).await;
    let fake = Arc::new(Fake::seeded());
    let mut caps = capabilities(&fake, Grants::none().allow("account", &[Operation::Read]));
    caps.limits = limits(|l| {
        l.deadline = Duration::from_millis(1500);
        l.memory_bytes = 32 << 20;
    });
    let attacks = ["spin", "grow-memory", "recurse", "panic"].map(|action| {
        let (hostile, caps) = (hostile.clone(), caps.clone());
        tokio::spawn(async move { hostile.invoke(&caps, action, "{}").await.output })
    });
    let mut greeted = 0;
    let until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < until {
        let out = hello
            .invoke(&caps, "hello", r#"{"name": "Ada"}"#)
            .await
            .output
            .expect("hello answers during attacks");
        assert_eq!(json(&out)["greeting"], "Hello, Ada!");
        greeted += 1;
    }
    assert!(greeted > 0);
    for attack in attacks {
        assert!(attack.await.unwrap().is_err());
    }
}
