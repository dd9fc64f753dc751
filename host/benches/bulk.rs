//! Bulk create of 10,000 records through the dvhost Dataverse client against
//! the in-process emulator: one by one, bounded-parallel, `$batch` and
//! `CreateMultiple`, as records per second and the ratio to one-by-one.
//!
//! `cargo bench -p dvhost --bench bulk` (`DVBULK_ROWS` overrides 10,000).
//! The emulator runs on its own single-threaded runtime (one core); the
//! client on another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost::dataverse::{BatchOperation, BatchPart, Client, Query};
use dvhost::emulator::{EmulatorBuilder, Seed};
use dvhost::identity::{Certificate, Connection, SigningAlgorithm, TokenSource, http_client};
use serde_json::{Map, Value, json};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";

fn record(i: usize) -> Map<String, Value> {
    json!({"name": format!("bench {i}"), "revenue": i})
        .as_object()
        .cloned()
        .unwrap()
}

fn main() {
    let rows: usize = std::env::var("DVBULK_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cert = Arc::new(Certificate::generate("bench", Certificate::default_validity()).unwrap());
    let toml = format!(
        r#"
        [settings]
        token_lifetime_secs = 86400
        service_protection = {{ requests = 100000000, window_secs = 300, execution_ms = 100000000000, concurrent = 10000 }}
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[apps]]
        tenant = "contoso"
        display_name = "bench"
        app_id = "{CLIENT}"
        certificates = [{pem:?}]
        [[environments]]
        tenant = "contoso"
        unique_name = "bench"
        app_users = ["{CLIENT}"]
        "#,
        pem = cert.pem()
    );
    let seed = Seed::from_toml(&toml, None).unwrap();

    // The emulator on one core.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let emu = EmulatorBuilder::new().seed(seed).start().await.unwrap();
            tx.send(emu.base_url().to_string()).unwrap();
            emu.wait().await.unwrap();
        });
    });
    let base = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = http_client(None).unwrap();
        let env = format!("{base}/bench");
        let tokens = Arc::new(TokenSource::new(
            Connection {
                tenant: TENANT.into(),
                client_id: CLIENT.into(),
                authority_host: base.clone(),
                resource: env.clone(),
                certificate: cert,
                algorithm: SigningAlgorithm::Rs256,
            },
            http.clone(),
        ));
        let client = Client::new(&env, tokens, http);
        let deadline = || Instant::now() + Duration::from_secs(3600);
        client.who_am_i(deadline()).await.unwrap();
        let mut results: Vec<(&str, f64)> = Vec::new();

        let t = Instant::now();
        for i in 0..rows {
            client
                .create("accounts", "accountid", &record(i), None, deadline())
                .await
                .unwrap();
        }
        results.push(("one by one", rows as f64 / t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let parallel = client.parallelism();
        let mut set = tokio::task::JoinSet::new();
        for w in 0..parallel {
            let c = client.clone();
            set.spawn(async move {
                for i in (w..rows).step_by(parallel) {
                    c.create(
                        "accounts",
                        "accountid",
                        &record(i),
                        None,
                        Instant::now() + Duration::from_secs(3600),
                    )
                    .await
                    .unwrap();
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        results.push((
            "bounded parallel (x-ms-dop-hint)",
            rows as f64 / t.elapsed().as_secs_f64(),
        ));

        let t = Instant::now();
        let records: Vec<Map<String, Value>> = (0..rows).map(record).collect();
        for chunk in records.chunks(1000) {
            let parts: Vec<BatchPart> = chunk
                .chunks(100)
                .map(|cs| {
                    BatchPart::ChangeSet(
                        cs.iter()
                            .map(|r| BatchOperation {
                                method: reqwest::Method::POST,
                                path: "accounts".into(),
                                body: Some(Value::Object(r.clone())),
                                content_id: None,
                            })
                            .collect(),
                    )
                })
                .collect();
            let answers = client.batch(&parts, false, deadline()).await.unwrap();
            assert!(answers.iter().all(|a| a.status == 204));
        }
        results.push((
            "$batch (1000 per request)",
            rows as f64 / t.elapsed().as_secs_f64(),
        ));

        let t = Instant::now();
        for chunk in records.chunks(500) {
            client
                .create_multiple("accounts", "account", "accountid", chunk, deadline())
                .await
                .unwrap();
        }
        results.push((
            "CreateMultiple (500 per request)",
            rows as f64 / t.elapsed().as_secs_f64(),
        ));

        let total = client
            .query_all(
                &Query::new("accounts")
                    .select(&["accountid"])
                    .page_size(5000),
                deadline(),
            )
            .await
            .unwrap()
            .len();
        assert_eq!(total, rows * 4, "every record was created exactly once");

        let base_rate = results[0].1;
        println!("\nbulk create of {rows} accounts (emulator on one core, client on another)\n");
        println!("| path | records/s | ratio to one by one |");
        println!("|---|---|---|");
        for (name, rate) in &results {
            println!("| {name} | {rate:.0} | {:.1}x |", rate / base_rate);
        }
        let best_bulk = results[2].1.max(results[3].1);
        println!(
            "\ngoal: bulk at least 5x one-by-one: {}",
            if best_bulk / base_rate >= 5.0 {
                "MET"
            } else {
                "MISSED"
            }
        );
    });
}
