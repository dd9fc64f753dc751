//! The API fuzzed from its own OpenAPI document: schemathesis (pinned in
//! tests/requirements.txt) reads `/openapi.json` of a real `dvhost serve`
//! and sends generated requests, valid and invalid, to every operation
//! with the admin key (which reaches every route). Every answer must be a
//! documented status with the documented content type and schema, never a
//! 5xx; schema-violating requests must be refused, and afterwards the
//! server still answers.
//!
//! The tenant `alpha` with the hello plugin is prepared first, and the
//! tenant's plugin, action and audit routes are pinned to it so the fuzzer
//! reaches past the 404 of an unknown name; the admin routes (create and
//! delete tenants, keys, integrations) and deploys get generated names.
//!
//! Every check runs, with two exceptions. `positive_data_acceptance` is
//! off on three operations whose valid inputs the document cannot
//! describe: an action's input must match the plugin's own schema (served
//! by the catalogue, not by `/openapi.json`), a deploy's bytes must be a
//! WebAssembly component, and a plugin's limits have engine-dependent
//! ranges; those answer such requests with a documented 400.
//! `ensure_resource_availability` is off on creating an integration: its
//! 404 there names the connection in the body (the fuzzer's connections do
//! not exist), not the tenant the fuzzer just created. Completing a manual
//! connection is checked against Entra, so made-up ids are refused (422):
//! `positive_data_acceptance` is off there too. Entra, Graph and Global
//! Discovery are a `dvhost emulator` started beside the server, so the
//! connection routes meet a real identity service that refuses.
//!
//! The interpreter is `$DVHOST_TEST_PYTHON` (tests/run.sh installs
//! tests/requirements.txt into tests/.venv and sets it).

use std::process::Command;
use std::time::Instant;

use reqwest::Method;

use crate::support::{Emulator, Server, guest};

/// The fuzzer's configuration (schemathesis.toml): per-operation
/// parameters and the one check that is off on three operations.
const SCHEMATHESIS_TOML: &str = r#"
# Every check is on unless a block turns it off (the first block that
# matches an operation applies); `--checks` would override these blocks.
[[operations]]
include-name = [
  "POST /v1/tenants/{tenant}/plugins/{plugin}/actions/{action}",
  "PUT /v1/tenants/{tenant}/plugins/{plugin}",
  "PATCH /v1/tenants/{tenant}/plugins/{plugin}",
]
parameters = { "path.tenant" = "alpha", "path.plugin" = "hello", "path.action" = "hello" }
checks.positive_data_acceptance.enabled = false

# Deleting gets generated plugin names, so hello stays for the others.
[[operations]]
include-name = "DELETE /v1/tenants/{tenant}/plugins/{plugin}"
parameters = { "path.tenant" = "alpha" }

[[operations]]
include-path-regex = "^/v1/tenants/\\{tenant\\}/"
parameters = { "path.tenant" = "alpha", "path.plugin" = "hello" }

[[operations]]
include-name = "POST /v1/admin/tenants/{tenant}/integrations"
checks.ensure_resource_availability.enabled = false

# An administrator's answer is checked against Entra (the emulator here):
# made-up tenant and client ids are refused with a documented 422.
[[operations]]
include-name = "POST /v1/admin/tenants/{tenant}/connections/{connection}/complete"
checks.positive_data_acceptance.enabled = false
"#;

/// Generated cases per operation and phase: enough to find the classic
/// bugs (odd path segments, huge numbers, wrong bodies), small enough
/// that the run takes about a minute on two cores.
const MAX_EXAMPLES: &str = "150";

/// The fuzzer's seed, so a failure can be replayed.
const SEED: &str = "20261130";

const CONFIG: &str = r#"
[server.tenants]
concurrency = 4
queue = 64
"#;

fn python() -> std::path::PathBuf {
    match std::env::var_os("DVHOST_TEST_PYTHON") {
        Some(p) if !p.is_empty() => p.into(),
        _ => panic!(
            "$DVHOST_TEST_PYTHON is not set: run `bash tests/run.sh`, which installs \
             schemathesis (tests/requirements.txt) into tests/.venv and sets it"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_survives_fuzzing_from_its_own_openapi_document() {
    let python = python();
    let tables = dvhost_testkit::rust_guest(dvhost_testkit::TABLES);
    let config = format!(
        "{CONFIG}\n[integrations]\ncomponent = {:?}\n",
        tables.display().to_string()
    );
    // Entra and Graph are the emulator's, so the connection routes reach
    // a real (refusing) identity service instead of an unreachable one.
    let emulator_dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(emulator_dir.path());
    let services = [
        ("DVHOST_AUTHORITY", emulator.url.as_str()),
        ("DVHOST_GRAPH_URL", emulator.url.as_str()),
        ("DVHOST_DISCOVERY_URL", emulator.url.as_str()),
    ];
    let server = Server::start_with_env(&config, &services);
    server
        .tenant_with_key("alpha", &["invoke", "deploy", "audit"])
        .await;
    let (status, view) = server
        .deploy(
            &server.admin_key,
            "alpha",
            "hello",
            guest(dvhost_testkit::HELLO),
            None,
        )
        .await;
    assert_eq!(status, 201, "{view}");

    let config_file = server.dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, SCHEMATHESIS_TOML).unwrap();
    let started = Instant::now();
    let output = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config_file)
        .args(["--no-color", "run"])
        .arg(format!("{}/openapi.json", server.url))
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "2", "--request-timeout", "30"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.admin_key),
        ])
        // Reports and the example database stay in the temporary directory.
        .arg("--generation-database=none")
        .current_dir(server.dir.path())
        .output()
        .expect("schemathesis runs (is tests/requirements.txt installed?)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found failures ({}), after {:?}:\n{text}\n-- the server's log:\n{}",
        output.status,
        started.elapsed(),
        server.stderr_text()
    );
    eprintln!("schemathesis passed in {:?}:\n{text}", started.elapsed());

    // No crash: the server still answers.
    let (status, body) = server.call(Method::GET, "/healthz", "", None).await;
    assert_eq!(status, 200, "{body}");
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
