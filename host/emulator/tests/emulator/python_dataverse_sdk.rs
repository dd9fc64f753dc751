//! Microsoft's Python Dataverse SDK (`PowerPlatform-Dataverse-Client`, pinned
//! in tests/requirements.txt), unmodified, against the emulator over HTTPS,
//! configured with the environment URL as the emulator reports it:
//! create, retrieve, update, bulk create, a filtered and ordered list paged
//! to the end, table listing (`IsPrivate eq false`), delete, and the 404 of
//! a deleted row. The scenario is tests/python/dataverse_sdk_scenario.py;
//! the interpreter is `$DVHOST_TEST_PYTHON` (skipped with a reason without it).

use std::process::Command;

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_python_dataverse_sdk_works_unmodified() {
    let Some(python) = program_from_env(
        "DVHOST_TEST_PYTHON",
        "the_python_dataverse_sdk_works_unmodified",
    ) else {
        return;
    };
    let cert = TestCert::generate("python-sdk");
    let emu = tls_emulator_with_app(&cert, true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_certificate_pem().unwrap()).unwrap();
    let pem = dir.path().join("key-and-cert.pem");
    std::fs::write(&pem, format!("{}{}", cert.key_pem, cert.cert_pem)).unwrap();
    let config = json!({
        "env_url": environment_url(&emu, "contoso-dev"),
        "authority_host": emu.base_url(),
        "tenant": TENANT_ID,
        "client_id": APP_ID,
        "pem_path": pem,
    });
    let script = workspace().join("tests/python/dataverse_sdk_scenario.py");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(config.to_string())
            .env("REQUESTS_CA_BUNDLE", ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the SDK scenario failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["retrieved_name"], "SDK 1", "{out}");
    assert_eq!(out["updated_name"], "SDK 1 updated", "{out}");
    assert_eq!(out["created_many"], 6, "{out}");
    assert_eq!(
        out["listed"],
        json!(["SDK 7", "SDK 6", "SDK 5", "SDK 4", "SDK 3", "SDK 2"]),
        "filtered (revenue >= 200), ordered by revenue desc, every page"
    );
    assert_eq!(out["pages"], 3, "six rows in pages of two: {out}");
    let tables: Vec<&str> = out["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in ["account", "contact", "lead", "systemuser"] {
        assert!(tables.contains(&t), "{t} listed: {out}");
    }
    assert_eq!(out["after_delete"], Value::Null, "{out}");
    assert_eq!(out["update_deleted"], 404, "{out}");
}

/// The environment's URL as the emulator reports it (its own origin).
fn environment_url(emu: &dvhost_emulator::RunningEmulator, name: &str) -> String {
    emu.environment_url(name)
        .expect("the environment is seeded")
}
