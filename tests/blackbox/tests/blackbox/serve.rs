//! `dvhost serve` with a temporary configuration: deploys over HTTP and
//! through the command line, calls, tenant isolation, a version switch
//! under load and a graceful shutdown.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, dvhost, guest, run_ok};

const CONFIG: &str = r#"
[server]
shutdown_grace_ms = 20000
[server.tenants]
concurrency = 8
queue = 512
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_and_calls_through_http_and_the_cli_and_keeps_tenants_apart() {
    let server = Server::start(CONFIG);
    let key_a = server
        .tenant_with_key("alpha", &["invoke", "deploy", "audit"])
        .await;
    let key_b = server.tenant_with_key("beta", &["invoke", "deploy"]).await;

    // Deploy with the command line, a thin client of the HTTP API.
    let hello = dvhost_testkit::rust_guest(dvhost_testkit::HELLO);
    let mut deploy = dvhost(server.dir.path());
    deploy
        .args(["plugin", "deploy", "alpha/hello"])
        .arg(&hello)
        .args(["--url", &server.url, "--key", &key_a]);
    let view: Value = serde_json::from_str(&run_ok(deploy)).unwrap();
    assert_eq!(view["active_version"], 1, "{view}");
    let names: Vec<&str> = view["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hello"), "{names:?}");

    // Call with the command line and over HTTP.
    let mut call = dvhost(server.dir.path());
    call.args([
        "call",
        "alpha/hello",
        "hello",
        "--input",
        r#"{"name":"Ada"}"#,
    ])
    .args(["--url", &server.url, "--key", &key_a]);
    let out: Value = serde_json::from_str(&run_ok(call)).unwrap();
    assert_eq!(out["greeting"], "Hello, Ada!");
    let path = "/v1/tenants/alpha/plugins/hello/actions/hello";
    let (s, b) = server
        .call(Method::POST, path, &key_a, Some(json!({"name": "Grace"})))
        .await;
    assert_eq!(
        (s, b["greeting"].as_str()),
        (200, Some("Hello, Grace!")),
        "{b}"
    );
    let (s, b) = server
        .call(Method::POST, path, &key_a, Some(json!({"nom": 1})))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("schema_mismatch")),
        "{b}"
    );

    // Tenant beta's key on alpha learns nothing: the same 404 as a tenant
    // that does not exist.
    let (s_other, b_other) = server
        .call(Method::POST, path, &key_b, Some(json!({"name": "x"})))
        .await;
    let missing = "/v1/tenants/gamma/plugins/hello/actions/hello";
    let (s_none, b_none) = server
        .call(Method::POST, missing, &key_b, Some(json!({"name": "x"})))
        .await;
    assert_eq!(s_other, 404, "{b_other}");
    assert_eq!(s_none, 404, "{b_none}");
    assert_eq!(b_other["error"]["code"], b_none["error"]["code"]);
    let (s, _) = server
        .call(Method::GET, "/v1/tenants/alpha/plugins", &key_b, None)
        .await;
    assert_eq!(s, 404);
    // Beta may not deploy onto alpha either.
    let (s, _) = server
        .deploy(&key_b, "alpha", "evil", guest(dvhost_testkit::HELLO), None)
        .await;
    assert_eq!(s, 404);
    // No key, a malformed key: 401.
    let (s, _) = server
        .call(Method::GET, "/v1/tenants/alpha/plugins", "nope", None)
        .await;
    assert_eq!(s, 401);

    // A bad component is refused and the served version stays.
    let (s, b) = server
        .deploy(&key_a, "alpha", "hello", b"\0asm\x01\0\0\0".to_vec(), None)
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_component")),
        "{b}"
    );
    let (s, b) = server
        .call(Method::GET, "/v1/tenants/alpha/plugins/hello", &key_a, None)
        .await;
    assert_eq!((s, b["active_version"].as_u64()), (200, Some(1)), "{b}");

    // The audit log has the calls, with their request ids.
    let (s, b) = server
        .call(
            Method::GET,
            "/v1/tenants/alpha/audit?limit=50",
            &key_a,
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let invokes = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "plugin.invoke")
        .count();
    assert!(invokes >= 3, "{b}");
}

/// Calls made while versions switch: each caller notes the phase (how many
/// switches had answered) when it sent a call, and what answered it.
#[derive(Default)]
struct Load {
    phase: std::sync::atomic::AtomicUsize,
    stop: std::sync::atomic::AtomicBool,
    seen: std::sync::Mutex<Vec<Answer>>,
}

/// One call of a [`Load`].
struct Answer {
    /// The phase when it was sent and when its answer came.
    sent: usize,
    answered: usize,
    status: u16,
    /// The version that answered.
    version: Option<String>,
}

impl Load {
    /// Waits until a call sent in the current phase was answered by
    /// `version` (at most 60 s), so every phase really serves calls.
    async fn served_by(&self, version: &str) {
        let phase = self.phase.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .any(|a| a.sent == phase && a.version.as_deref() == Some(version));
            if found {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no call of phase {phase} answered by version {version}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next phase: what is sent from now on went out after the switch.
    fn switched(&self) {
        self.phase.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn call_until_stopped(server_url: String, key: String, load: std::sync::Arc<Load>) {
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::new();
    while !load.stop.load(Ordering::Relaxed) {
        let phase = load.phase.load(Ordering::SeqCst);
        let res = http
            .post(format!(
                "{server_url}/v1/tenants/alpha/plugins/hello/actions/hello"
            ))
            .bearer_auth(&key)
            .json(&json!({"name": "load"}))
            .send()
            .await;
        match res {
            Ok(res) => {
                let version = res
                    .headers()
                    .get("dvhost-plugin-version")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let answer = Answer {
                    sent: phase,
                    answered: load.phase.load(Ordering::SeqCst),
                    status: res.status().as_u16(),
                    version,
                };
                load.seen.lock().unwrap().push(answer);
            }
            Err(e) => panic!("a call failed outright: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_switch_under_load_fails_no_call() {
    let server = Server::start(CONFIG);
    let key = server.tenant_with_key("alpha", &["invoke", "deploy"]).await;
    let bytes = guest(dvhost_testkit::HELLO);
    let (s, b) = server
        .deploy(&key, "alpha", "hello", bytes.clone(), None)
        .await;
    assert_eq!(s, 201, "{b}");

    let load = std::sync::Arc::new(Load::default());
    let callers: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn(call_until_stopped(
                server.url.clone(),
                key.clone(),
                load.clone(),
            ))
        })
        .collect();
    load.served_by("1").await;
    // v2: the same component with other limits, then a different
    // component (v3), then back to v1. A switch is done when its answer
    // comes: every call sent after it is answered by the new version.
    let (s, b) = server
        .deploy(
            &key,
            "alpha",
            "hello",
            bytes.clone(),
            Some(json!({"limits": {"deadline_ms": 3000}})),
        )
        .await;
    assert_eq!((s, b["active_version"].as_u64()), (201, Some(2)), "{b}");
    load.switched();
    load.served_by("2").await;
    let (s, b) = server
        .deploy(&key, "alpha", "hello", guest(dvhost_testkit::HELLO), None)
        .await;
    assert_eq!((s, b["active_version"].as_u64()), (201, Some(3)), "{b}");
    load.switched();
    load.served_by("3").await;
    let (s, b) = server
        .call(
            Method::POST,
            "/v1/tenants/alpha/plugins/hello/rollback",
            &key,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!((s, b["active_version"].as_u64()), (200, Some(1)), "{b}");
    load.switched();
    load.served_by("1").await;
    load.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }

    let all = load.seen.lock().unwrap();
    let failed: Vec<_> = all
        .iter()
        .filter(|a| a.status != 200)
        .map(|a| (a.status, a.version.clone()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        all.len()
    );
    let expected = ["1", "2", "3", "1"];
    // A switch takes effect before its answer reaches the test: a call may
    // also see the version of the switch under way when it was answered.
    for Answer {
        sent,
        answered,
        version,
        ..
    } in all.iter()
    {
        let version = version.as_deref().unwrap_or_default();
        let last = (answered + 1).min(expected.len() - 1);
        assert!(
            expected[*sent..=last].contains(&version),
            "a call sent in phase {sent} and answered in phase {answered} was answered by version {version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_loses_no_in_flight_call() {
    let mut server = Server::start(CONFIG);
    let key = server.tenant_with_key("alpha", &["invoke", "deploy"]).await;
    let (s, b) = server
        .deploy(
            &key,
            "alpha",
            "slow",
            guest(dvhost_testkit::HOSTILE),
            Some(json!({"limits": {"deadline_ms": 10000}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let path = format!("{}/v1/tenants/alpha/plugins/slow/actions/busy", server.url);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (http, path, key) = (server.http.clone(), path.clone(), key.clone());
            tokio::spawn(async move {
                let res = http
                    .post(path)
                    .bearer_auth(key)
                    .json(&json!({"ms": 1500}))
                    .send()
                    .await;
                let res = res.expect("an in-flight call gets its answer");
                (res.status().as_u16(), res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    // Signals once all four run (the instances gauge says so).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = server.call(Method::GET, "/metrics", "", None).await;
        let text = metrics.as_str().unwrap_or_default();
        if text.lines().any(|l| l == "dvhost_instances_running 4") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.terminate();
    // New connections are refused soon after the signal, while the four
    // calls are still running.
    for (status, body) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
    {
        assert_eq!((status, &body["ms"]), (200, &json!(1500)), "{body}");
    }
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", server.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let env = [
        ("DVHOST_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,dvhost_server=debug"),
    ];
    let mut server = Server::start_with_env(CONFIG, &env);
    let key = server.tenant_with_key("alpha", &["invoke", "deploy"]).await;
    let (s, b) = server
        .deploy(&key, "alpha", "hello", guest(dvhost_testkit::HELLO), None)
        .await;
    assert_eq!(s, 201, "{b}");
    let res = server
        .http
        .post(format!(
            "{}/v1/tenants/alpha/plugins/hello/actions/hello",
            server.url
        ))
        .bearer_auth(&key)
        .header("x-request-id", "trace-me-42")
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
    server.terminate();
    assert!(server.wait(Duration::from_secs(30)).success());
    let logs = server.stderr_to_end();
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.to_string().contains("trace-me-42"))
        .unwrap_or_else(|| panic!("no JSON log line names the request id:\n{logs}"));
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    assert_eq!(
        line["span"]["path"],
        "/v1/tenants/alpha/plugins/hello/actions/hello"
    );
}
