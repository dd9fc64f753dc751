//! A version switch under load, over a real listener: while many callers
//! invoke hello, v2 is deployed and then rolled back; no call fails and
//! every answer is version 1 or 2.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, hello};

/// Callers at once.
const CALLERS: usize = 12;

#[derive(Default)]
struct Tally {
    v1: AtomicU64,
    v2: AtomicU64,
    failures: parking_lot::Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, version: &str) -> u64 {
        match version {
            "1" => self.v1.load(Ordering::Acquire),
            _ => self.v2.load(Ordering::Acquire),
        }
    }
}

/// Waits until `more` answers of `version` came in after now.
async fn until_answers(tally: &Tally, version: &str, more: u64) {
    let start = tally.count(version);
    tokio::time::timeout(Duration::from_secs(60), async {
        while tally.count(version) < start + more {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no answers of version {version} came"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_switch_under_load_fails_no_call() {
    let server = Server::start().await;
    let key = server.tenant_with_hello("acme").await;
    let listening = server.listen().await;
    let client = reqwest::Client::new();
    let invoke = listening.url("/v1/tenants/acme/plugins/hello/actions/hello");
    let plugin = listening.url("/v1/tenants/acme/plugins/hello");

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, invoke, key) = (client.clone(), invoke.clone(), key.clone());
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Acquire) {
                    calls += 1;
                    let name = format!("caller {caller} call {calls}");
                    let sent = client
                        .post(&invoke)
                        .bearer_auth(&key)
                        .json(&json!({ "name": name }))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(answer) => answer,
                        Err(e) => {
                            tally.failures.lock().push(format!("{name}: {e}"));
                            continue;
                        }
                    };
                    let status = answer.status().as_u16();
                    let version = answer
                        .headers()
                        .get("dvhost-plugin-version")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body: Value = answer.json().await.unwrap_or(Value::Null);
                    let greeting = format!("Hello, {name}!");
                    match version.as_deref() {
                        Some("1") if status == 200 && body["greeting"] == greeting => {
                            tally.v1.fetch_add(1, Ordering::AcqRel);
                        }
                        Some("2") if status == 200 && body["greeting"] == greeting => {
                            tally.v2.fetch_add(1, Ordering::AcqRel);
                        }
                        _ => tally
                            .failures
                            .lock()
                            .push(format!("{name}: {status} version {version:?}: {body}")),
                    }
                }
                calls
            })
        })
        .collect();

    until_answers(&tally, "1", 50).await;
    let deployed = client
        .put(&plugin)
        .bearer_auth(&key)
        .header("content-type", "application/wasm")
        .body(hello().to_vec())
        .send()
        .await
        .expect("deploy");
    assert_eq!(deployed.status().as_u16(), StatusCode::CREATED.as_u16());
    let view: Value = deployed.json().await.unwrap();
    assert_eq!(view["active_version"], 2);
    until_answers(&tally, "2", 50).await;

    let rolled = client
        .post(format!("{plugin}/rollback"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("rollback");
    assert_eq!(rolled.status().as_u16(), 200);
    let view: Value = rolled.json().await.unwrap();
    assert_eq!(view["active_version"], 1);
    let v2_at_rollback = tally.count("2");
    until_answers(&tally, "1", 50).await;

    stop.store(true, Ordering::Release);
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.unwrap();
    }
    let failures = tally.failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {failures:#?}",
        failures.len()
    );
    assert_eq!(tally.count("1") + tally.count("2"), calls);
    // Calls begun before the rollback answered may still end on v2, but
    // at most one per caller.
    assert!(tally.count("2") <= v2_at_rollback + CALLERS as u64);

    // The server shuts down cleanly once the load is gone.
    listening.shut_down().await;
}
