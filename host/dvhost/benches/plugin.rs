//! What running a plugin costs (`cargo bench -p dvhost --bench plugin`):
//!
//! - a fresh store, instantiation and a no-op action (`hello`'s `noop`),
//!   timed with `Instant` around `Plugin::invoke`, as the runtime runs every
//!   call;
//! - a reused instance: a runtime `Session` (one store and instance kept
//!   for several calls of one caller), timed around `Session::invoke`;
//! - `hello`'s `retrieve-account` against the in-process emulator against
//!   the same retrieve made directly through the transport's `Client`,
//!   interleaved in one run so both see the same machine, with the same
//!   retrieve through `DataverseBackend` alone (no guest) between them, to
//!   split the difference into the runtime's share and the glue's.
//!
//! Prints a table of medians and 99th percentiles. Goals (issue 9, on a
//! 2-core machine): instantiate + no-op at most 25 µs median and 60 µs p99;
//! the retrieve through a plugin within 10% of the direct call.
//! `DVHOST_BENCH_SCALE` multiplies the iteration counts (default 1).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use dvhost_dataverse::{ColumnName, EntitySet};
use dvhost_runtime::backend::{CallContext, RowKey};
use dvhost_runtime::{Capabilities, Grants, Operation, Plugin, Records as _};
use serde_json::json;

/// Median and 99th percentile of `samples`.
fn stats(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn scale() -> usize {
    std::env::var("DVHOST_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn main() {
    // Two workers: the machine's cores, shared by the emulator and the host.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Fresh store + instantiate + `noop`, timed around `Plugin::invoke`.
async fn noop_samples(hello: &Plugin, runs: usize) -> Vec<Duration> {
    let unconnected = Capabilities::unconnected();
    for _ in 0..1000 {
        assert!(
            hello
                .invoke(&unconnected, "noop", "{}")
                .await
                .output
                .is_ok()
        );
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let report = hello.invoke(&unconnected, "noop", "{}").await;
        samples.push(started.elapsed());
        assert!(report.output.is_ok());
    }
    samples
}

/// `noop` on one instance kept in a `Session`, timed around each call.
async fn reused_samples(hello: &Plugin, runs: usize) -> Vec<Duration> {
    let mut caps = Capabilities::unconnected();
    caps.limits.deadline = Duration::from_secs(60);
    let mut session = hello.session(&caps).await.expect("a session");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let out = session.invoke("noop", "{}").await;
        samples.push(started.elapsed());
        assert!(out.is_ok());
    }
    samples
}

/// One account read three ways, interleaved: through the plugin, through
/// the backend alone, and through the transport's client.
struct RetrieveSamples {
    plugin: Vec<Duration>,
    backend: Vec<Duration>,
    direct: Vec<Duration>,
}

async fn retrieve_samples(hello: &Plugin, runs: usize) -> RetrieveSamples {
    let world = support::World::start().await;
    let accounts = EntitySet::new("accounts").unwrap();
    let row = json!({"name": "Contoso", "revenue": 5, "telephone1": "555"});
    let primary_id = ColumnName::new("accountid").unwrap();
    let id = world
        .client
        .create(
            &accounts,
            &primary_id,
            row.as_object().unwrap(),
            None,
            support::soon(),
        )
        .await
        .unwrap();
    let caps = world.capabilities(Grants::none().allow("account", &[Operation::Read]));
    let input = json!({ "id": id }).to_string();
    let (key, row_key) = (id.into(), RowKey::Id(id));
    let mut samples = RetrieveSamples {
        plugin: Vec::new(),
        backend: Vec::new(),
        direct: Vec::new(),
    };
    // The first 200 rounds warm connections, caches and the allocator.
    for round in 0..(200 + runs) {
        let started = Instant::now();
        let report = hello.invoke(&caps, "retrieve-account", &input).await;
        let plugin = started.elapsed();
        assert!(report.output.is_ok(), "{:?}", report.output);
        let started = Instant::now();
        let call = CallContext::new(support::soon());
        let read = world
            .backend
            .retrieve(&call, "account", &row_key, &[], &[])
            .await;
        let backend = started.elapsed();
        assert!(read.is_ok());
        let started = Instant::now();
        let read = world
            .client
            .retrieve(&accounts, &key, &[], support::soon())
            .await;
        let direct = started.elapsed();
        assert!(read.is_ok());
        if round >= 200 {
            samples.plugin.push(plugin);
            samples.backend.push(backend);
            samples.direct.push(direct);
        }
    }
    samples
}

fn row(what: &str, samples: &mut [Duration], goal: &str) -> Duration {
    let (median, p99) = stats(samples);
    println!(
        "| {what} | {} | {} | {} | {goal} |",
        samples.len(),
        micros(median),
        micros(p99)
    );
    median
}

async fn run() {
    let scale = scale();
    let engine = support::engine();
    let hello = support::load(&engine, dvhost_testkit::HELLO).await;
    println!(
        "hello loaded (compiled artifact from the cache: {})",
        hello.from_cache()
    );
    let mut noop = noop_samples(&hello, 20_000 * scale).await;
    let mut reused = reused_samples(&hello, 20_000 * scale).await;
    let mut retrieve = retrieve_samples(&hello, 2000 * scale).await;

    println!();
    println!("| measurement | runs | median | p99 | goal |");
    println!("|---|---|---|---|---|");
    row(
        "fresh store + instantiate + no-op invoke (`noop`)",
        &mut noop,
        "≤ 25 µs median, ≤ 60 µs p99",
    );
    row(
        "reused-instance invoke (`Session`, `noop`)",
        &mut reused,
        "",
    );
    let plugin = row(
        "`retrieve-account` through the plugin",
        &mut retrieve.plugin,
        "",
    );
    let backend = row(
        "the same retrieve through `DataverseBackend` (no guest)",
        &mut retrieve.backend,
        "",
    );
    let direct = row(
        "the same retrieve, transport direct",
        &mut retrieve.direct,
        "",
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let extra = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e6;
    println!(
        "| plugin / direct (medians) | | {:.3} ({:+.1} µs) | | ≤ 1.10 |",
        ratio(plugin, direct),
        extra(plugin, direct)
    );
    println!(
        "| backend / direct (medians) | | {:.3} ({:+.1} µs) | | |",
        ratio(backend, direct),
        extra(backend, direct)
    );
}
