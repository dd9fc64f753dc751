//! Microsoft's own Python libraries (MSAL for Python, azure-identity) get
//! tokens from the emulator over HTTPS, unmodified; the tokens verify
//! against the emulator's JWKS. The interpreter is `$DVHOST_TEST_PYTHON`
//! (tests/run.sh points it at tests/.venv/bin/python, where it installs
//! tests/requirements.txt); without it the test is skipped.

use std::process::Command;

use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn msal_and_azure_identity_get_tokens_that_verify() {
    let Some(python) = program_from_env(
        "DVHOST_TEST_PYTHON",
        "msal_and_azure_identity_get_tokens_that_verify",
    ) else {
        return;
    };
    let cert = TestCert::generate("python-clients");
    let emu = tls_emulator_with_app(&cert, false).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_certificate_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    let env_url = emu.environment_url("contoso-dev").unwrap();

    let base = emu.base_url().to_string();
    let scope = format!("{env_url}/.default");
    let mut outputs = Vec::new();
    for via in ["pem", "pfx"] {
        outputs.push(get_tokens(&python, via, &base, &scope, dir.path()).await);
    }

    let client = https_client(emu.ca_certificate_pem().unwrap());
    let jwks: jsonwebtoken::jwk::JwkSet = client
        .get(format!("{base}/{TENANT_ID}/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for out in &outputs {
        for which in ["msal_ps256", "msal_rs256", "azure_identity"] {
            let token = out[which]
                .as_str()
                .unwrap_or_else(|| panic!("{which} missing in {out}"));
            let claims = verify_token(&jwks, token, Some(&env_url));
            assert_eq!(
                claims["iss"],
                format!("https://sts.windows.net/{TENANT_ID}/"),
                "{which}"
            );
            assert_eq!(claims["appid"], APP_ID, "{which}");
            assert_eq!(claims["tid"], TENANT_ID, "{which}");
        }
    }
    // Three clients, two runs: six token requests, all issued.
    let stats = emu.token_stats();
    assert_eq!(stats.by_client.get(APP_ID), Some(&6), "{stats:?}");
    assert_eq!(stats.issued, 6);
    emu.shutdown().await;
}

/// Runs tests/python/get_tokens.py (MSAL with PS256 via `via`, MSAL with
/// RS256, azure-identity) with the certificate and CA in `dir`: its JSON
/// output, the three tokens.
async fn get_tokens(
    python: &std::path::Path,
    via: &'static str,
    base: &str,
    scope: &str,
    dir: &std::path::Path,
) -> Value {
    let script = workspace().join("tests/python/get_tokens.py");
    let ca = dir.join("ca.pem");
    let (python, base, scope, dir) = (
        python.to_path_buf(),
        base.to_string(),
        scope.to_string(),
        dir.to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(&script)
            .args([
                "--authority-host",
                &base,
                "--tenant",
                TENANT_ID,
                "--client-id",
                APP_ID,
                "--scope",
                &scope,
                "--ps256-via",
                via,
            ])
            .arg("--cert-pem")
            .arg(dir.join("cert.pem"))
            .arg("--key-pem")
            .arg(dir.join("key.pem"))
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "get_tokens.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()
}
