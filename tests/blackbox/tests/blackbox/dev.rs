//! `dvhost dev` with nothing set up, in an empty directory: the JSON line
//! names the server and its keys, the example plugin answers, the table
//! integration lists the emulator's seeded accounts, the bound `contacts`
//! plugin reads their contacts, and a second start on the same directory
//! reuses the tenant, connection and emulator state, revokes the first
//! run's key and publishes no new versions.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::dvhost;

/// How long a start may take: the guests are built before (by the
/// testkit, into the same target directory), so this is the emulator, the
/// automatic connection flow and the compilation of four components.
const START_TIMEOUT: Duration = Duration::from_secs(240);

/// A running `dvhost dev`.
struct Dev {
    child: Child,
    /// Its JSON line.
    ready: Value,
    stderr: mpsc::Receiver<String>,
    http: reqwest::Client,
}

impl Dev {
    /// `dvhost dev --json --listen 127.0.0.1:0` with `dir` as the current
    /// directory (so its data directory is `dir/.dvhost-dev`), building
    /// the plugins of this workspace into the testkit's target directory.
    fn start(dir: &Path) -> Dev {
        let mut cmd: Command = dvhost(dir);
        cmd.env_remove("DVHOST_DATA_DIR")
            .env("DVHOST_WORKSPACE", workspace())
            .env(
                "DVHOST_GUEST_TARGET_DIR",
                dvhost_testkit::guest_target_dir(),
            )
            .current_dir(dir)
            .args(["dev", "--json", "--listen", "127.0.0.1:0", "--no-watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("dvhost dev starts");
        let stderr = lines(child.stderr.take().expect("stderr is piped"));
        let stdout = lines(child.stdout.take().expect("stdout is piped"));
        let line = match stdout.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no JSON line within {START_TIMEOUT:?}; stderr:\n{}",
                    stderr.try_iter().collect::<Vec<_>>().join("\n")
                );
            }
        };
        let ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the first line is not JSON ({e}): {line}"));
        Dev {
            child,
            ready,
            stderr,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self) -> &str {
        self.ready["url"].as_str().expect("the JSON names the URL")
    }

    fn api_key(&self) -> &str {
        self.ready["api_key"]
            .as_str()
            .expect("the JSON shows the key")
    }

    /// Calls an action of the `dev` tenant with `key`: status and answer.
    async fn call(&self, key: &str, plugin: &str, action: &str, input: Value) -> (u16, Value) {
        let url = format!(
            "{}/v1/tenants/dev/plugins/{plugin}/actions/{action}",
            self.url()
        );
        let res = self
            .http
            .post(url)
            .bearer_auth(key)
            .json(&input)
            .send()
            .await
            .expect("the server answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The catalogue view of a plugin.
    async fn plugin(&self, name: &str) -> Value {
        self.get(&format!("/v1/tenants/dev/plugins/{name}")).await
    }

    /// A tenant route's JSON answer, which must be 200.
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url());
        let res = self
            .http
            .get(url)
            .bearer_auth(self.api_key())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.json().await.unwrap()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("the child can be waited for") {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "dvhost dev did not stop within 30 s; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            exit.success(),
            "dvhost dev ended with {exit}; stderr:\n{}",
            self.stderr_text()
        );
    }

    fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a child's output, read on a thread.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// This workspace, whose plugins `dvhost dev` builds.
fn workspace() -> &'static Path {
    dvhost_testkit::workspace_root()
}

/// The accounts `account.list` returns, by name.
async fn account_names(dev: &Dev) -> Vec<String> {
    let (s, b) = dev
        .call(
            dev.api_key(),
            "tables",
            "account.list",
            json!({"select": ["name"], "top": 50}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_the_examples_and_the_seeded_tables_and_restarts_on_the_same_directory() {
    // Build the guests the way every test does, so `dvhost dev`'s own
    // build of the same packages into the same directory has nothing to do.
    tokio::task::spawn_blocking(|| dvhost_testkit::rust_guest(dvhost_testkit::HELLO))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let first = Dev::start(dir.path());
    let ready = &first.ready;
    assert!(
        ready["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{ready}"
    );
    assert!(
        ready["admin_key"].as_str().unwrap().starts_with("dvk_"),
        "{ready}"
    );
    assert!(first.api_key().starts_with("dvk_"), "{ready}");
    assert!(
        ready["emulator"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{ready}"
    );
    let ca_file = ready["ca_file"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(ca_file)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(dir.path().join(".dvhost-dev").join("master.key").is_file());
    let plugins: Vec<&str> = ready["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in ["hello", "contacts", "lead-scoring", "tables"] {
        assert!(plugins.contains(&name), "{name} is not deployed: {ready}");
    }

    let (s, b) = first
        .call(first.api_key(), "hello", "hello", json!({"name": "Ada"}))
        .await;
    assert_eq!(
        (s, b["greeting"].as_str()),
        (200, Some("Hello, Ada!")),
        "{b}"
    );

    // The generated table actions read the emulator's seeded rows.
    let names = account_names(&first).await;
    for name in ["Contoso Ltd", "Fabrikam Inc", "Litware Inc"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    let (s, b) = first
        .call(
            first.api_key(),
            "tables",
            "account.list",
            json!({"select": ["name"], "filter": [{"column": "name", "operator": "eq", "value": "Contoso Ltd"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let contoso = b["rows"][0]["accountid"]
        .as_str()
        .expect("Contoso's id")
        .to_string();

    // The tables plugin's description read the environment's metadata:
    // those calls are in the audit log like an action's.
    let audit = first.get("/v1/tenants/dev/audit?limit=500").await;
    let described = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plugin.describe" && e["detail"]["plugin"] == "tables")
        .unwrap_or_else(|| panic!("no plugin.describe entry for tables: {audit}"));
    assert_eq!(described["outcome"], "success", "{described}");
    let operations: Vec<&str> = described["detail"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interface"] == "metadata" && c["outcome"] == "ok")
        .filter_map(|c| c["operation"].as_str())
        .collect();
    assert!(
        operations.contains(&"list-tables") && operations.contains(&"describe-table"),
        "{described}"
    );

    // The contacts plugin, bound to the dev connection, reads its contacts.
    let (s, b) = first
        .call(
            first.api_key(),
            "contacts",
            "list-contacts",
            json!({"account_id": contoso}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut last_names: Vec<&str> = b["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["last_name"].as_str())
        .collect();
    last_names.sort();
    assert_eq!(last_names, ["Hopper", "Lovelace"], "{b}");

    // An integration granted only `read` offers only the reading actions;
    // `dvhost integration create` is a thin client of the admin API.
    let mut create = dvhost(dir.path());
    create
        .args([
            "integration",
            "create",
            "dev/readonly",
            "--connection",
            "dev",
        ])
        .args(["--tables", "account", "--operations", "read"])
        .args(["--url", first.url()])
        .args(["--key", ready["admin_key"].as_str().unwrap()]);
    crate::support::run_ok(create);
    let mut actions: Vec<String> = first.plugin("readonly").await["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    actions.sort();
    assert_eq!(actions, ["account.list", "account.retrieve"]);
    let (s, b) = first
        .call(
            first.api_key(),
            "readonly",
            "account.create",
            json!({"name": "No"}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("unknown_action")),
        "{b}"
    );
    let (s, b) = first
        .call(
            first.api_key(),
            "readonly",
            "account.retrieve",
            json!({"id": contoso}),
        )
        .await;
    assert_eq!((s, b["name"].as_str()), (200, Some("Contoso Ltd")), "{b}");

    let first_key = first.api_key().to_string();
    let hello_version = first.plugin("hello").await["active_version"].clone();
    first.stop();

    // Again, on the same directory: the same world, a new key.
    let second = Dev::start(dir.path());
    assert_ne!(second.api_key(), first_key);
    let (s, b) = second
        .call(&first_key, "hello", "hello", json!({"name": "Ada"}))
        .await;
    assert_eq!(s, 401, "the first run's key is revoked: {b}");
    let (s, b) = second
        .call(second.api_key(), "hello", "hello", json!({"name": "Bo"}))
        .await;
    assert_eq!(
        (s, b["greeting"].as_str()),
        (200, Some("Hello, Bo!")),
        "{b}"
    );
    assert_eq!(
        account_names(&second).await.len(),
        names.len(),
        "the seeded rows are kept, not written twice"
    );
    assert_eq!(
        second.plugin("hello").await["active_version"],
        hello_version,
        "an unchanged plugin is not published again"
    );
    second.stop();
}
