//! Bulk create of 10,000 records through the dvhost Dataverse client against
//! the in-process emulator: one by one, bounded-parallel, `$batch` and
//! `CreateMultiple`, as records per second and the ratio to one-by-one.
//!
//! `cargo bench -p dvhost-dataverse --bench bulk` (`DVBULK_ROWS` overrides
//! 10,000; `DVBULK_LATENCY_MS` adds that latency to every Web API answer, as
//! a cloud round trip would). The emulator runs on its own single-threaded
//! runtime (one core); the client on another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost_dataverse::{
    Authority, BatchOperation, BatchPart, Certificate, Client, ColumnName, Connection, EntitySet,
    Environment, HttpClient, Query, SigningAlgorithm, TableName, TokenSource,
};
use dvhost_emulator::{EmulatorBuilder, Seed};
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
    let latency_ms: u64 = std::env::var("DVBULK_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let latency = if latency_ms > 0 {
        format!("[[faults]]\npath = \"*\"\naction = {{ kind = \"latency\", ms = {latency_ms} }}")
    } else {
        String::new()
    };
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
        {latency}
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
            let env = emu.environment_url("bench").unwrap();
            tx.send((emu.base_url().to_string(), env)).unwrap();
            emu.wait().await.unwrap();
        });
    });
    let (base, env) = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let connection = Connection::new(
            Authority::parse(&base).unwrap(),
            TENANT,
            CLIENT,
            Environment::parse(&env).unwrap(),
            cert,
            SigningAlgorithm::Rs256,
        )
        .unwrap();
        let http = HttpClient::new(None).unwrap();
        let client = Client::new(Arc::new(TokenSource::new(connection, http)));
        let accounts = EntitySet::new("accounts").unwrap();
        let accountid = ColumnName::new("accountid").unwrap();
        let deadline = || Instant::now() + Duration::from_secs(3600);
        client.who_am_i(deadline()).await.unwrap();
        let mut results: Vec<(&str, f64)> = Vec::new();

        let t = Instant::now();
        for i in 0..rows {
            client
                .create(&accounts, &accountid, &record(i), None, deadline())
                .await
                .unwrap();
        }
        results.push(("one by one", rows as f64 / t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let parallel = client.parallelism();
        let mut set = tokio::task::JoinSet::new();
        for w in 0..parallel {
            let (c, accounts, accountid) = (client.clone(), accounts.clone(), accountid.clone());
            set.spawn(async move {
                for i in (w..rows).step_by(parallel) {
                    c.create(
                        &accounts,
                        &accountid,
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
                            .map(|r| BatchOperation::create(&accounts, Value::Object(r.clone())))
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
                .create_multiple(
                    &accounts,
                    &TableName::new("account").unwrap(),
                    &accountid,
                    chunk,
                    deadline(),
                )
                .await
                .unwrap();
        }
        results.push((
            "CreateMultiple (500 per request)",
            rows as f64 / t.elapsed().as_secs_f64(),
        ));

        let total = client
            .query_all(
                &Query::new(&accounts)
                    .select(&["accountid"])
                    .unwrap()
                    .page_size(5000),
                deadline(),
            )
            .await
            .unwrap()
            .len();
        assert_eq!(total, rows * 4, "every record was created exactly once");

        let base_rate = results[0].1;
        println!(
            "\nbulk create of {rows} accounts (emulator on one core, client on another, {latency_ms} ms added latency)\n"
        );
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
