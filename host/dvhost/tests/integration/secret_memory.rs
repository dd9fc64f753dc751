//! The secret test of the plugin path: after plugin calls that met errors
//! (a 404, a refused grant, invalid names) and successes, no byte of the
//! connection's private key, no access token and no environment URL is in
//! the guest's linear memory (read from the host after each call) or in
//! anything the guest returned.

use dvhost_dataverse::{Certificate, ColumnName, EntitySet};
use dvhost_runtime::{Engine, EngineConfig, Grants, Operation};
use dvhost_testkit::{HELLO, HOSTILE};
use serde_json::json;

use crate::support;
use crate::support::{ENVIRONMENT, World, soon};

/// A certificate whose private key the test knows (from outside the
/// transport crate, which never returns one).
fn known_certificate() -> (Certificate, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["dvhost-secret-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let certificate = Certificate::from_pem(&cert.pem(), &key.serialize_pem()).unwrap();
    (certificate, key.serialize_der())
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_key_token_or_url_reaches_guest_memory_or_output() {
    let (certificate, key_der) = known_certificate();
    let world = World::start_with(certificate).await;
    let origin = world.emu.environment_url(ENVIRONMENT).unwrap();
    let host_port = origin
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let id = world
        .client
        .create(
            &EntitySet::new("accounts").unwrap(),
            &ColumnName::new("accountid").unwrap(),
            json!({"name": "Secretless Ltd"}).as_object().unwrap(),
            None,
            soon(),
        )
        .await
        .unwrap();

    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dvhost-inspect-cache");
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(cache),
        max_instances: 4,
        inspectable: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let hostile = support::load(&engine, HOSTILE).await;
    let hello = support::load(&engine, HELLO).await;
    let caps = world.capabilities(Grants::none().allow("account", &[Operation::Read]));

    let calls = [
        (&hostile, "errors", json!({})),
        (
            &hostile,
            "use-table",
            json!({"table": "account", "operation": "read"}),
        ),
        (
            &hostile,
            "use-table",
            json!({"table": "account", "operation": "read", "id": id}),
        ),
        (
            &hostile,
            "use-table",
            json!({"table": "contact", "operation": "create"}),
        ),
        (&hello, "retrieve-account", json!({"id": id})),
    ];
    // The private key in 16-byte pieces: any piece found is a leak.
    let key_pieces: Vec<&[u8]> = key_der.chunks(16).filter(|c| c.len() == 16).collect();
    let mut scanned = 0usize;
    for (plugin, action, input) in calls {
        let mut memory = Vec::new();
        let report = plugin
            .invoke_inspecting(&caps, action, &input.to_string(), |m| {
                memory.extend_from_slice(m)
            })
            .await;
        let output = report.output.unwrap_or_else(|e| panic!("{action}: {e}"));
        assert!(
            output.contains("Secretless Ltd") || action == "errors" || action == "use-table",
            "{action}: {output}"
        );
        assert!(!memory.is_empty(), "{action}: no memory was read");
        scanned += memory.len();
        if action == "retrieve-account" {
            // The scan reads the right memory: the row the guest handled is there.
            assert!(
                find(&memory, b"Secretless Ltd"),
                "the retrieved row is not in the memory read"
            );
        }
        for (what, bytes) in [
            ("the guest's memory", memory.as_slice()),
            ("the output", output.as_bytes()),
        ] {
            for needle in [
                "eyJ",
                "Bearer",
                "BEGIN",
                "api/data",
                host_port.as_str(),
                "client_assertion",
            ] {
                assert!(
                    !find(bytes, needle.as_bytes()),
                    "{action}: {what} holds {needle:?}"
                );
            }
            for piece in &key_pieces {
                assert!(
                    !find(bytes, piece),
                    "{action}: {what} holds a piece of the private key"
                );
            }
        }
    }
    // The scan is real: the memory read holds what the guest handled.
    assert!(scanned > 1 << 20, "scanned only {scanned} bytes");
}
