//! Starting and stopping the real binary, and an HTTP client for it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The `dvhost` binary built beside this test.
pub fn dvhost_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let bin = dir.join(format!("dvhost{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p dvhost`; `cargo test --workspace` does)",
        bin.display()
    );
    bin
}

/// `dvhost` with a data directory and nothing from the caller's environment
/// that could point it elsewhere.
pub fn dvhost(data_dir: &Path) -> Command {
    let mut cmd = Command::new(dvhost_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("DVHOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("DVHOST_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs a short command; its stdout, or a panic with its output.
pub fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().expect("dvhost runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A running `dvhost serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub admin_key: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    stderr: mpsc::Receiver<String>,
}

/// Waits for a line of the child's stderr containing `marker`, forwarding
/// the rest of stderr to a channel (kept for failure messages).
fn wait_for_line(
    child: &mut Child,
    marker: &str,
    timeout: Duration,
) -> (String, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return (line, rx),
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no line with {marker:?} within {timeout:?}; stderr so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

impl Server {
    /// `dvhost serve` on a free port with `config` (TOML, without
    /// `listen`), a fresh data directory and a minted admin key.
    pub fn start(config: &str) -> Server {
        Server::start_with_env(config, &[])
    }

    /// [`Server::start`] with extra environment variables (e.g.
    /// `DVHOST_AUTHORITY` pointing at an emulator).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let minted: Value = serde_json::from_str(&run_ok({
            let mut c = dvhost(dir.path());
            c.args(["admin-key", "--json"]);
            c
        }))
        .expect("admin-key --json prints JSON");
        let admin_key = minted["key"].as_str().expect("a key").to_string();
        let config_path = dir.path().join("dvhost.toml");
        std::fs::write(&config_path, format!("listen = \"127.0.0.1:0\"\n{config}")).unwrap();
        let mut child = dvhost(dir.path())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("DVHOST_ADMIN_KEY", &admin_key)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dvhost serve starts");
        let (line, stderr) =
            wait_for_line(&mut child, "dvhost is serving on", Duration::from_secs(60));
        let url = line
            .rsplit(' ')
            .next()
            .expect("the line ends with the URL")
            .to_string();
        Server {
            child,
            url,
            admin_key,
            dir,
            http: reqwest::Client::new(),
            stderr,
        }
    }

    /// Sends `method path` with `key` and an optional JSON body: status and
    /// JSON answer (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a tenant and a key for it with `rights`; the key.
    pub async fn tenant_with_key(&self, tenant: &str, rights: &[&str]) -> String {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/v1/admin/tenants",
                &self.admin_key,
                Some(json!({"name": tenant})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/admin/tenants/{tenant}/keys"),
                &self.admin_key,
                Some(json!({"rights": rights})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["key"].as_str().expect("the key is shown").to_string()
    }

    /// Deploys component bytes as `tenant/plugin` with optional settings;
    /// the catalogue view.
    pub async fn deploy(
        &self,
        key: &str,
        tenant: &str,
        plugin: &str,
        bytes: Vec<u8>,
        settings: Option<Value>,
    ) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new().part(
            "component",
            reqwest::multipart::Part::bytes(bytes)
                .mime_str("application/wasm")
                .unwrap(),
        );
        if let Some(settings) = settings {
            form = form.text("settings", settings.to_string());
        }
        let res = self
            .http
            .put(format!("{}/v1/tenants/{tenant}/plugins/{plugin}", self.url))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("the server answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to end; its exit status.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "dvhost did not stop within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server wrote to stderr after the ready line, once it
    /// has exited (waits for the end of the stream).
    pub fn stderr_to_end(&self) -> String {
        self.stderr.iter().collect::<Vec<_>>().join("\n")
    }

    /// What the server wrote to stderr so far (after the ready line).
    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes of a Rust guest built by the testkit.
pub fn guest(name: &str) -> Vec<u8> {
    std::fs::read(dvhost_testkit::rust_guest(name)).expect("the guest was built")
}

/// A running `dvhost emulator` (plain HTTP on loopback).
pub struct Emulator {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Emulator {
    /// Starts `dvhost emulator` on a free port.
    pub fn start(dir: &Path) -> Emulator {
        let mut child = dvhost(dir)
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dvhost emulator starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the emulator prints where it listens")
                .expect("utf-8 output");
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_string();
            }
        };
        // Keep reading so the emulator never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Emulator { child, url }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
