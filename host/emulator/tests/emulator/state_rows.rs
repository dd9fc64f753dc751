//! Dataverse rows survive a restart with `--state`: written after a change
//! and at shutdown, read at start.

use crate::common::*;
use dvhost_emulator::{EmulatorBuilder, RunningEmulator};
use serde_json::{Value, json};

async fn start(state: &std::path::Path, cert: &TestCert) -> RunningEmulator {
    EmulatorBuilder::new()
        .seed(seed_with_app(cert, true))
        .state_file(state)
        .start()
        .await
        .unwrap()
}

/// An app-only token and the environment URL.
async fn token(emu: &RunningEmulator, cert: &TestCert) -> (String, String) {
    let env_url = emu.environment_url("contoso-dev").unwrap();
    let token_url = format!("{}/{TENANT_ID}/oauth2/v2.0/token", emu.base_url());
    let resp = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("scope", &format!("{env_url}/.default")),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                &rs256(cert, &claims(&token_url, APP_ID)),
            ),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), env_url)
}

async fn accounts(env_url: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{env_url}/api/data/v9.2/accounts?$select=name,versionnumber&$orderby=name"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_survive_a_restart_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let rows_file = dir.path().join("state.rows.json");
    let cert = TestCert::generate("rows");
    let emu = start(&state, &cert).await;
    let (t, env_url) = token(&emu, &cert).await;
    let http = reqwest::Client::new();
    for name in ["Alpha", "Beta"] {
        let resp = http
            .post(format!("{env_url}/api/data/v9.2/accounts"))
            .bearer_auth(&t)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    // A moment after the change, the rows are on disk (no shutdown yet).
    let mut waited = 0;
    while !std::fs::read_to_string(&rows_file).is_ok_and(|s| s.contains("Beta")) {
        assert!(waited < 50, "the rows file was not written after a change");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let before = accounts(&env_url, &t).await;
    // A change just before shutdown is written at shutdown.
    let resp = http
        .post(format!("{env_url}/api/data/v9.2/accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "Gamma"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    emu.shutdown().await;

    let emu = start(&state, &cert).await;
    let (t, env_url2) = token(&emu, &cert).await;
    assert_eq!(env_url2, env_url);
    let after = accounts(&env_url, &t).await;
    let names: Vec<&str> = after["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "Beta", "Gamma"], "{after}");
    assert_eq!(
        after["value"][0], before["value"][0],
        "rows come back as they were"
    );
    // Versions keep growing after the restart: a new ETag is never an old one.
    let old_max = after["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["versionnumber"].as_u64().unwrap())
        .max()
        .unwrap();
    let resp = http
        .post(format!("{env_url}/api/data/v9.2/accounts"))
        .bearer_auth(&t)
        .header("Prefer", "return=representation")
        .json(&json!({"name": "Delta"}))
        .send()
        .await
        .unwrap();
    let created: Value = resp.json().await.unwrap();
    assert!(
        created["versionnumber"].as_u64().unwrap() > old_max,
        "{created}"
    );
    emu.shutdown().await;
}
