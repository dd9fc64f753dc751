//! The `dvhost` command line: help, and approving a device code in a
//! running emulator without a browser.

use std::process::Command;

use dvhost::emulator::{AppSeed, EmulatorBuilder, Seed, TenantSeed, UserSeed};
use serde_json::Value;

const DVHOST: &str = env!("CARGO_BIN_EXE_dvhost");

#[test]
fn help_lists_the_emulator_subcommand() {
    let out = Command::new(DVHOST).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("emulator"), "{text}");
    let out = Command::new(DVHOST)
        .args(["emulator", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

#[tokio::test]
async fn approve_and_decline_through_the_cli() {
    let seed = Seed {
        tenants: vec![TenantSeed {
            name: "contoso".into(),
            id: None,
            domains: vec![],
            display_name: None,
        }],
        users: vec![UserSeed {
            tenant: "contoso".into(),
            upn: "alice@contoso.onmicrosoft.com".into(),
            id: None,
            display_name: None,
            admin: false,
        }],
        apps: vec![AppSeed {
            tenant: "contoso".into(),
            display_name: "cli".into(),
            app_id: Some("d7a1b0c2-0000-4000-8000-00000000d0c5".parse().unwrap()),
            public_client: true,
            certificates: vec![],
            certificate_files: vec![],
            service_principal: true,
        }],
        ..Seed::default()
    };
    let emu = EmulatorBuilder::new().seed(seed).start().await.unwrap();
    let http = reqwest::Client::new();
    let base = emu.base_url().to_string();
    let start = || async {
        let v: Value = http
            .post(format!("{base}/contoso/oauth2/v2.0/devicecode"))
            .form(&[
                ("client_id", "d7a1b0c2-0000-4000-8000-00000000d0c5"),
                ("scope", "openid offline_access"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    let poll = |device_code: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let resp = http
                .post(format!("{base}/contoso/oauth2/v2.0/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", "d7a1b0c2-0000-4000-8000-00000000d0c5"),
                    ("device_code", &device_code),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(DVHOST).args(args).output().unwrap())
    };

    let dc = start().await;
    let code = dc["user_code"].as_str().unwrap().to_string();
    let out = cli(vec![
        "emulator".into(),
        "approve".into(),
        code.clone(),
        "--user".into(),
        "alice@contoso.onmicrosoft.com".into(),
        "--url".into(),
        base.clone(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, tokens) = poll(dc["device_code"].as_str().unwrap().to_string()).await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());

    let dc = start().await;
    let code = dc["user_code"].as_str().unwrap().to_string();
    let out = cli(vec![
        "emulator".into(),
        "decline".into(),
        code,
        "--url".into(),
        base.clone(),
    ])
    .await
    .unwrap();
    assert!(out.status.success());
    let (s, b) = poll(dc["device_code"].as_str().unwrap().to_string()).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "authorization_declined");

    // Unknown code or user: a clear failure, non-zero exit.
    let out = cli(vec![
        "emulator".into(),
        "approve".into(),
        "NOPE".into(),
        "--user".into(),
        "alice@contoso.onmicrosoft.com".into(),
        "--url".into(),
        base.clone(),
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    emu.shutdown().await;
}

#[tokio::test]
async fn the_cli_sends_the_control_token() {
    let emu = EmulatorBuilder::new()
        .control_token(Some("s3cret".into()))
        .start()
        .await
        .unwrap();
    let base = emu.base_url().to_string();
    let pending = move |token: Option<&str>| {
        let mut args = vec!["emulator", "pending", "--url", &base]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if let Some(t) = token {
            args.extend(["--control-token".to_string(), t.to_string()]);
        }
        tokio::task::spawn_blocking(move || {
            Command::new(DVHOST)
                .args(args)
                .env_remove("DVHOST_EMULATOR_CONTROL_TOKEN")
                .output()
                .unwrap()
        })
    };
    let out = pending.clone()(None).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    let out = pending(Some("s3cret")).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.is_array() || listed.is_object(), "{listed}");
    emu.shutdown().await;
}

#[test]
fn the_ca_file_exists_before_the_listening_line() {
    use std::io::BufRead as _;
    let ca = std::env::temp_dir().join(format!("dvhost-cli-ca-{}.pem", std::process::id()));
    let mut child = Command::new(DVHOST)
        .args(["emulator", "--tls", "--listen", "127.0.0.1:0", "--ca-out"])
        .arg(&ca)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut url = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("dvhost emulator listening on ") {
            // The moment the line appears, the CA file is complete.
            let pem = std::fs::read_to_string(&ca).unwrap();
            assert!(pem.contains("END CERTIFICATE"), "{pem}");
            url = Some(u.to_string());
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&ca).unwrap();
    let url = url.expect("a listening line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(
        !url.ends_with(":0"),
        "port 0 is replaced by the chosen port: {url}"
    );
}

#[cfg(unix)]
#[test]
fn environment_urls_are_printed_before_the_listening_line_and_rows_survive_sigterm() {
    use std::io::BufRead as _;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let seed = dir.join("seed.toml");
    std::fs::write(
        &seed,
        "[[tenants]]\nname = \"contoso\"\n\n[[environments]]\ntenant = \"contoso\"\nunique_name = \"contoso-dev\"\n",
    )
    .unwrap();
    let mut child = Command::new(DVHOST)
        .args(["emulator", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .arg("--state")
        .arg(dir.join("state.json"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in reader.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("dvhost emulator listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    // SIGTERM: a clean shutdown writes the rows file.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Read to the end, so the emulator's stdout stays open until it exits.
    lines.extend(reader.map_while(Result::ok));
    assert!(child.wait().unwrap().success(), "{lines:?}");
    let env_line = lines
        .iter()
        .find(|l| l.starts_with("environment contoso-dev: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(!env_line.ends_with(":0"), "{env_line}");
    assert!(dir.join("state.rows.json").exists(), "{lines:?}");
}
