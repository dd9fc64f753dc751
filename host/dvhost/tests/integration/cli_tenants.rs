//! The `dvhost` binary over a temporary data directory: tenants and API
//! keys with `--json`, the master key (file created owner-only, a wrong key
//! refused), and, against the in-process emulator with a user signed in
//! through a device code approved on its control API: environments, the
//! several-environments listing error (no terminal) and prompt (on a
//! pseudo-terminal), tables and columns with the user's token, and the
//! connection lifecycle (automatic, test, rotate, edit, manual, complete,
//! delete).

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use serde_json::Value;

const DVHOST: &str = env!("CARGO_BIN_EXE_dvhost");
const TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
const ADMIN: &str = "admin@contoso.onmicrosoft.com";

/// `dvhost` on `dir`, with none of the caller's dvhost settings and no
/// standard input (so it is never interactive).
fn dvhost(dir: &Path) -> Command {
    let mut cmd = Command::new(DVHOST);
    for (key, _) in std::env::vars() {
        if key.starts_with("DVHOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("DVHOST_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    dvhost(dir).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed and returns its JSON output.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory as _;
    dvhost::cli::Cli::command().debug_assert();
}

#[test]
fn tenants_are_created_listed_and_deleted_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(json(d, &["tenant", "list", "--json"]), Value::Array(vec![]));
    let created = json(
        d,
        &[
            "tenant",
            "create",
            "contoso",
            "--display-name",
            "Contoso Ltd",
            "--json",
        ],
    );
    assert_eq!(created["name"], "contoso");
    assert_eq!(created["display_name"], "Contoso Ltd");
    json(d, &["tenant", "create", "fabrikam", "--json"]);

    // The master key file was created at first start, owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let list = json(d, &["tenant", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["contoso", "fabrikam"]);

    // A taken name, an invalid name: clear failures.
    let out = run(d, &["tenant", "create", "contoso"]);
    assert!(!out.status.success());
    let out = run(d, &["tenant", "create", "Not A Name"]);
    assert!(!out.status.success());

    // Deleting needs --yes when nobody can be asked.
    let out = run(d, &["tenant", "delete", "contoso"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let deleted = json(d, &["tenant", "delete", "contoso", "--yes", "--json"]);
    assert_eq!(deleted["deleted"], "contoso");
    let list = json(d, &["tenant", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "fabrikam");
    let out = run(d, &["tenant", "delete", "contoso", "--yes"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no tenant named contoso"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_api_key_is_shown_once_and_only_its_hash_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(d, &["tenant", "create", "contoso", "--json"]);
    let created = json(
        d,
        &[
            "tenant",
            "key",
            "create",
            "contoso",
            "--label",
            "ci",
            "--right",
            "invoke,deploy",
            "--json",
        ],
    );
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("dvk_{id}_")), "{created}");
    assert_eq!(created["rights"], "invoke,deploy");

    // Text output shows a second key once, too.
    let out = run(d, &["tenant", "key", "create", "contoso"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("dvk_").count(), 1, "{text}");

    // The secret is base64url, which may itself hold '_'.
    let secret = &key[format!("dvk_{id}_").len()..];
    assert_eq!(secret.len(), 43, "32 random bytes in base64url");
    for args in [
        &["tenant", "key", "list", "contoso", "--json"][..],
        &["tenant", "key", "list", "contoso"][..],
    ] {
        let out = run(d, args);
        assert!(out.status.success());
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.contains(&id), "{listed}");
        assert!(!listed.contains(secret), "the key is listed: {listed}");
    }
    let listed = json(d, &["tenant", "key", "list", "contoso", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["label"], "ci");
    assert_eq!(listed[0]["live"], true);

    // The database holds no trace of the key.
    for entry in std::fs::read_dir(d).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a file of the data directory holds the key"
        );
    }

    let revoked = json(d, &["tenant", "key", "revoke", "contoso", &id, "--json"]);
    assert_eq!(revoked["revoked"], id.as_str());
    let listed = json(d, &["tenant", "key", "list", "contoso", "--json"]);
    assert_eq!(listed[0]["live"], false);
    let out = run(d, &["tenant", "key", "revoke", "contoso", &id]);
    assert!(!out.status.success());
    let out = run(
        d,
        &["tenant", "key", "create", "contoso", "--right", "root"],
    );
    assert!(!out.status.success());
}

#[test]
fn a_wrong_master_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_a = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 × 'A'
    let key_b = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 × 'B'
    let with = |key: &str, args: &[&str]| {
        dvhost(d)
            .env("DVHOST_MASTER_KEY", key)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        with(key_a, &["tenant", "create", "contoso"])
            .status
            .success()
    );
    assert!(
        !d.join("master.key").exists(),
        "the environment's key needs no file"
    );

    let out = with(key_b, &["tenant", "create", "fabrikam"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("master key does not match"), "{err}");
    assert!(!err.contains(key_b), "{err}");
    // Nor does the key file (another key) open it.
    let out = run(d, &["tenant", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("master key does not match"),
        "{}",
        stderr(&out)
    );

    let out = with("not base64!", &["tenant", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("DVHOST_MASTER_KEY"),
        "{}",
        stderr(&out)
    );

    let out = with(key_a, &["tenant", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing was added: {list}"
    );
}

async fn emulator_with_two_environments() -> RunningEmulator {
    let toml = format!(
        r#"
        [settings]
        device_code_interval_secs = 1
        [[tenants]]
        name = "contoso"
        id = "{TENANT_ID}"
        [[users]]
        tenant = "contoso"
        upn = "{ADMIN}"
        admin = true
        [[apps]]
        tenant = "contoso"
        display_name = "dvhost cli"
        app_id = "{PUBLIC_CLIENT}"
        public_client = true
        [[environments]]
        tenant = "contoso"
        unique_name = "contoso-dev"
        [[environments]]
        tenant = "contoso"
        unique_name = "contoso-test"
        "#
    );
    EmulatorBuilder::new()
        .seed(Seed::from_toml(&toml, None).unwrap())
        .start()
        .await
        .unwrap()
}

/// `dvhost` on `dir`, pointed at the emulator.
fn against(dir: &Path, emu: &RunningEmulator) -> Command {
    let mut cmd = dvhost(dir);
    cmd.env("DVHOST_AUTHORITY", emu.base_url())
        .env("DVHOST_DISCOVERY_URL", emu.base_url())
        .env("DVHOST_GRAPH_URL", emu.base_url())
        .env("DVHOST_ENTRA_TENANT", TENANT_ID)
        .env("DVHOST_CLIENT_ID", PUBLIC_CLIENT);
    cmd
}

/// The user code of the one device code waiting for approval.
async fn pending_code(emu: &RunningEmulator) -> String {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let listed: Value = http
            .get(format!("{}/_emulator/device-codes", emu.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = listed["device_codes"].as_array().and_then(|all| {
            all.iter()
                .find(|c| c["status"] == "pending")
                .and_then(|c| c["user_code"].as_str())
                .map(str::to_string)
        });
        if let Some(code) = found {
            return code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no device code was requested");
}

/// `dvhost login --json`, its code approved as `user` through the
/// emulator's control API; the final JSON document.
async fn login(dir: &Path, emu: &RunningEmulator, user: &str) -> Value {
    let mut child = against(dir, emu)
        .args(["login", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (first, rest.join("\n"))
    });
    let code = pending_code(emu).await;
    crate::support::approve_device_code(&reqwest::Client::new(), emu.base_url(), &code, user).await;
    let (first, rest) = reader.await.unwrap();
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    // The prompt line names the code the user types in.
    let prompt: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(prompt["user_code"], code.as_str(), "{first}");
    assert!(
        prompt["verification_uri"]
            .as_str()
            .unwrap()
            .starts_with(emu.base_url())
    );
    serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest}"))
}

/// Runs `dvhost ARGS` against the emulator.
async fn cli(dir: &Path, emu: &RunningEmulator, args: &[&str]) -> Output {
    let mut cmd = against(dir, emu);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_in_user_lists_environments_and_must_name_one_of_several() {
    let emu = emulator_with_two_environments().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Before anyone signs in: a clear error.
    let out = cli(d, &emu, &["environments"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("dvhost login"), "{}", stderr(&out));

    let signed_in = login(d, &emu, ADMIN).await;
    assert_eq!(signed_in["user"], ADMIN);
    assert_eq!(signed_in["entra_tenant_id"], TENANT_ID);

    let out = cli(d, &emu, &["environments", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["unique_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["contoso-dev", "contoso-test"]);
    let dev_url = emu.environment_url("contoso-dev").unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|i| i["url"].as_str().unwrap() == dev_url.trim_end_matches('/')),
        "{list}"
    );

    // Several environments, none named, no terminal: the listing error.
    let out = cli(d, &emu, &["tables"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--environment"), "{err}");
    assert!(
        err.contains("contoso-dev") && err.contains("contoso-test"),
        "{err}"
    );

    // A name the user cannot reach.
    let out = cli(d, &emu, &["tables", "--environment", "contoso-prod"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("contoso-prod"), "{}", stderr(&out));

    // Metadata with the user's own token, in the environment named.
    let out = cli(
        d,
        &emu,
        &["tables", "--environment", "contoso-dev", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let tables: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        tables
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["logical_name"] == "account"),
        "{tables}"
    );
    let out = cli(
        d,
        &emu,
        &[
            "columns",
            "--environment",
            "contoso-dev",
            "account",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let described: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        described["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["logical_name"] == "accountnumber"),
        "{described}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn connections_are_created_tested_rotated_edited_and_deleted_through_the_cli() {
    let emu = emulator_with_two_environments().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |out: Output| -> Value {
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    ok(cli(d, &emu, &["tenant", "create", "contoso", "--json"]).await);
    login(d, &emu, ADMIN).await;

    // Automatic, with the signed-in administrator, the environment by name.
    let created = ok(cli(
        d,
        &emu,
        &[
            "connection",
            "create",
            "contoso/sales",
            "--environment",
            "contoso-dev",
            "--auto",
            "--json",
        ],
    )
    .await);
    assert_eq!(created["state"], "active", "{created}");
    assert_eq!(created["mode"], "automatic");
    assert_eq!(created["entra_tenant_id"], TENANT_ID);
    let tested = ok(cli(d, &emu, &["connection", "test", "contoso/sales", "--json"]).await);
    assert_eq!(tested["ok"], true);
    let shown = ok(cli(d, &emu, &["connection", "show", "contoso/sales", "--json"]).await);
    let certs = shown["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{shown}");
    let first = certs[0]["sha1_thumbprint"].as_str().unwrap().to_string();

    let rotated = ok(cli(
        d,
        &emu,
        &["connection", "rotate-cert", "contoso/sales", "--json"],
    )
    .await);
    assert_eq!(rotated["old_sha1_thumbprint"], first.as_str());
    assert_ne!(rotated["new_sha1_thumbprint"], first.as_str());
    ok(cli(d, &emu, &["connection", "test", "contoso/sales", "--json"]).await);

    // Edited with the editor's own fresh sign-in.
    let edited = ok(cli(
        d,
        &emu,
        &[
            "connection",
            "edit",
            "contoso/sales",
            "--name",
            "crm",
            "--json",
        ],
    )
    .await);
    assert_eq!(edited["name"], "crm");

    // Manual: the request's files, then a wrong answer leaves it pending.
    let out_dir = d.join("request");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dev_url = emu.environment_url("contoso-dev").unwrap();
    let create = [
        "connection",
        "create",
        "contoso/byhand",
        "--environment",
        &dev_url,
        "--manual",
        "--admin-email",
        "it@contoso.example",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ];
    // A relay user without DVHOST_SMTP_PASSWORD is refused before anything
    // is made (it would have logged in with an empty password).
    let relay = ["--smtp-host", "127.0.0.1", "--smtp-user", "relay"];
    let out = cli(d, &emu, &[&create[..], &relay].concat()).await;
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("--smtp-user is set but DVHOST_SMTP_PASSWORD is not"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0, "no files");
    let manual = ok(cli(d, &emu, &[&create[..], &["--json"]].concat()).await);
    assert_eq!(manual["state"], "pending", "{manual}");
    assert_eq!(manual["mail"]["sent"], false, "no SMTP relay: {manual}");
    assert_eq!(manual["mail"]["reason"], "SMTP is not configured");
    let cer = manual["files"]["cer"].as_str().unwrap();
    assert!(Path::new(cer).exists(), "{manual}");
    let wrong_client = "99999999-0000-4000-8000-000000000000";
    let out = cli(
        d,
        &emu,
        &[
            "connection",
            "complete",
            "contoso/byhand",
            "--tenant-id",
            TENANT_ID,
            "--client-id",
            wrong_client,
        ],
    )
    .await;
    assert!(!out.status.success());
    let listed = ok(cli(d, &emu, &["connection", "list", "contoso", "--json"]).await);
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("byhand", "pending"), ("crm", "active")]);

    let deleted = ok(cli(d, &emu, &["connection", "delete", "contoso/crm", "--json"]).await);
    assert_eq!(deleted["state"], "deleted");
    let listed = ok(cli(d, &emu, &["connection", "list", "contoso", "--json"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    emu.shutdown().await;
}

/// Runs `dvhost tables` on a pseudo-terminal (util-linux `script`), waits
/// for the environment prompt, picks the second entry with the arrow key,
/// and returns everything the terminal showed.
fn tables_on_a_terminal(mut cmd: Command) -> (bool, String) {
    use std::io::{Read as _, Write as _};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = shown.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    let started = std::time::Instant::now();
    while !text().contains("contoso-test") && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\x1b[B").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    stdin.write_all(b"\r").unwrap();
    stdin.flush().unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    (status.success(), text())
}

#[cfg(unix)]
#[tokio::test]
async fn on_a_terminal_the_user_picks_one_of_several_environments() {
    let emu = emulator_with_two_environments().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    login(d, &emu, ADMIN).await;
    // `script` gives dvhost a terminal; its own stdin is the test's pipe.
    let mut script = Command::new("script");
    script.args(["-qec", &format!("{DVHOST} tables"), "/dev/null"]);
    for (k, v) in against(d, &emu).get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let (ok, shown) = tokio::task::spawn_blocking(move || tables_on_a_terminal(script))
        .await
        .unwrap();
    assert!(ok, "{shown}");
    assert!(shown.contains("Which environment?"), "{shown}");
    let test_url = emu.environment_url("contoso-test").unwrap();
    assert!(
        shown.contains("Which environment?: contoso-test"),
        "the second entry was chosen: {shown}"
    );
    assert!(shown.contains(test_url.trim_end_matches('/')), "{shown}");
    assert!(
        shown.contains("accounts"),
        "the tables were listed: {shown}"
    );
    emu.shutdown().await;
}
