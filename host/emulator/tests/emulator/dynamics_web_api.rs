//! The community client library DynamicsWebApi (npm `dynamics-web-api`, v2,
//! pinned in tests/package.json) runs a scenario against the emulator's
//! Dataverse Web API over HTTPS, unmodified: CRUD, filtered and ordered
//! queries, server-driven paging, a 404 after delete, and metadata. The
//! scenario is tests/node/dwa_scenario.mjs. Node is `$DVHOST_TEST_NODE`
//! (without it the test is skipped); tests/node_modules is installed by the
//! README's test command (bash tests/run.sh).

use std::process::Command;

use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn dynamics_web_api_runs_a_scenario_over_https() {
    let Some(node) = program_from_env(
        "DVHOST_TEST_NODE",
        "dynamics_web_api_runs_a_scenario_over_https",
    ) else {
        return;
    };
    let modules = workspace().join("tests/node_modules/dynamics-web-api");
    assert!(
        modules.exists(),
        "{} is missing: run the README's test command (bash tests/run.sh), which installs tests/package-lock.json into tests/node_modules",
        modules.display()
    );

    let cert = TestCert::generate("dynamics-web-api");
    let emu = tls_emulator_with_app(&cert, true).await;
    let ca_pem = emu.ca_certificate_pem().unwrap().to_string();
    let base = emu.base_url().to_string();
    assert!(base.starts_with("https://"), "{base}");
    // The environment URL exactly as the emulator prints it.
    let env_url = emu.environment_url("contoso-dev").unwrap();
    assert!(env_url.starts_with("https://127.0.0.1:"), "{env_url}");

    // An app-only token for the environment, as the application user.
    let client = https_client(&ca_pem);
    let token_url = format!("{base}/{TENANT_ID}/oauth2/v2.0/token");
    let assertion = rs256(&cert, &claims(&token_url, APP_ID));
    let scope = format!("{env_url}/.default");
    let resp = client
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("scope", scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    // As printed, and with a trailing slash: both must work.
    for (url, prefix) in [
        (env_url.clone(), "DWA"),
        (format!("{env_url}/"), "DWA slash"),
    ] {
        run_scenario(&node, &url, prefix, &token, &ca).await;
    }
    emu.shutdown().await;
}

/// Runs tests/node/dwa_scenario.mjs against `url`; its rows are named
/// `prefix ...`.
async fn run_scenario(
    node: &std::path::Path,
    url: &str,
    prefix: &str,
    token: &str,
    ca: &std::path::Path,
) {
    let script = workspace().join("tests/node/dwa_scenario.mjs");
    let (node, url, prefix, token, ca) = (
        node.to_path_buf(),
        url.to_string(),
        prefix.to_string(),
        token.to_string(),
        ca.to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&node)
            .arg(&script)
            .env("DV_URL", &url)
            .env("DV_TOKEN", &token)
            .env("DWA_PREFIX", &prefix)
            .env("NODE_EXTRA_CA_CERTS", &ca)
            // The library routes through `$https_proxy` when it is set;
            // the emulator is local.
            .env_remove("https_proxy")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dwa_scenario.mjs failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprint!("{stderr}");
    let last: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON last line in stdout:\n{stdout}"));
    assert_eq!(last["ok"], true, "{last}");
    assert!(last["steps"].as_u64().unwrap_or(0) >= 12, "{last}");
}
