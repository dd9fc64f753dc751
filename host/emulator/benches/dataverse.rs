//! Throughput and latency of the emulated Dataverse Web API.
//!
//! `cargo bench -p dvhost-emulator --bench dataverse`
//!
//! The emulator runs on a tokio `current_thread` runtime on its own OS thread
//! (one core); the load generator runs on another. Measured:
//! - retrieve by id (`GET accounts(<id>)?$select=name`), requests per second
//!   with `DVBENCH_CONCURRENCY` keep-alive connections for `DVBENCH_SECS`;
//! - a filtered, ordered page of 50 over `DVBENCH_ROWS` accounts, and
//!   following its `@odata.nextLink` once, sequentially (median, p95, min);
//! - a breakdown of that query (without `$orderby`, without `$filter`, ...).
//!
//! Besides wall time, the emulator thread's CPU time (Linux
//! `/proc/.../schedstat`) is sampled, so a figure limited by the load
//! generator rather than the emulator shows as an emulator CPU below 100%.
//!
//! Absolute rates differ from machine to machine, so the run also reports
//! ratios measured in the same run: retrieve-by-id throughput against a
//! minimal axum handler returning the same JSON over the same TLS and HTTP
//! stack ([`baseline`]), and the filtered page's latency against a
//! retrieve by id. The emulator serves HTTPS (`DVBENCH_TLS=0`: plain HTTP,
//! the baseline then runs without TLS too).

#[path = "dataverse/baseline.rs"]
mod baseline;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dvhost_emulator::{EmulatorBuilder, Seed};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha1::Digest as _;

const TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
const APP_ID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const ENV: &str = "bench";
const GOAL_RETRIEVES_PER_SEC: f64 = 20_000.0;
const GOAL_PAGE_MEDIAN_MS: f64 = 5.0;
/// Emulator retrieves per second over the baseline's (issue 8).
const GOAL_BASELINE_RATIO: f64 = 0.5;
const PAGE: usize = 50;
const BATCH: usize = 1000;
const FILTER: &str = "revenue gt 1000 and statecode eq 0";

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a small deterministic generator for ids and revenues.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// CPU time (ns) a thread has run, from its `schedstat` file.
fn cpu_ns(schedstat: &Option<String>) -> Option<u64> {
    let text = std::fs::read_to_string(schedstat.as_ref()?).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `/proc/<pid>/task/<tid>/schedstat` of the calling thread.
fn this_thread_schedstat() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(format!("/proc/{}/schedstat", link.display()))
}

/// Pins the calling thread to one CPU with `taskset` (no dependency; Linux
/// only). Without pinning, loopback wake-ups tend to put the emulator and
/// the load generator on the same core. Returns whether it worked.
fn pin_this_thread(cpu: usize) -> bool {
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
    else {
        return false;
    };
    std::process::Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the emulator on its own thread and current-thread runtime;
/// returns its base URL and that thread's `schedstat` path.
/// `Started`: base URL, CA PEM (with TLS), `schedstat` path, pinned.
type Started = (String, Option<String>, Option<String>, bool);

fn start_emulator(seed: Seed, pin: Option<usize>, tls: bool) -> Started {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("emulator".into())
        .spawn(move || {
            let pinned = pin.is_some_and(pin_this_thread);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("emulator runtime");
            rt.block_on(async move {
                let emu = EmulatorBuilder::new()
                    .seed(seed)
                    .tls(tls)
                    .start()
                    .await
                    .expect("emulator starts");
                let ca = emu.ca_certificate_pem().map(String::from);
                tx.send((
                    emu.base_url().to_string(),
                    ca,
                    this_thread_schedstat(),
                    pinned,
                ))
                .expect("bench is waiting");
                emu.wait().await
            })
        })
        .expect("spawn emulator thread");
    rx.recv().expect("emulator started")
}

/// The world: one tenant, an app with the certificate, and an environment
/// where the app has an application user. Built from JSON so fields added to
/// the seed later take their defaults. Service protection limits are raised
/// so they never throttle the load (window 1 s keeps the tracker small).
fn seed(cert_pem: String) -> Seed {
    let window: u64 = env_num("DVBENCH_LIMIT_WINDOW_SECS", 1);
    let mut seed = json!({
        "settings": {
            "token_lifetime_secs": 24 * 3600,
            "service_protection": {
                "requests": u64::MAX / 2, "window_secs": window,
                "execution_ms": u64::MAX / 4, "concurrent": u64::MAX / 2,
            },
        },
        "tenants": [{"name": "contoso", "id": TENANT_ID}],
        "apps": [{"tenant": "contoso", "display_name": "bench", "app_id": APP_ID, "certificates": [cert_pem]}],
        "environments": [{"tenant": "contoso", "unique_name": ENV, "app_users": [APP_ID]}],
    });
    serde_json::from_value(seed.clone()).unwrap_or_else(|e| {
        eprintln!("note: seed without service_protection settings ({e})");
        seed["settings"]
            .as_object_mut()
            .unwrap()
            .remove("service_protection");
        serde_json::from_value(seed).expect("seed")
    })
}

/// An app-only token for the environment, through a client-credentials
/// request with an RS256 certificate assertion.
async fn app_token(
    http: &reqwest::Client,
    base: &str,
    cert_der: &[u8],
    key: &EncodingKey,
) -> String {
    let token_url = format!("{base}/{TENANT_ID}/oauth2/v2.0/token");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert_der))});
    let claims = json!({"aud": token_url, "iss": APP_ID, "sub": APP_ID, "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "nbf": now, "exp": now + 600});
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, Algorithm::RS256).unwrap();
    let scope = format!("{base}/{ENV}/.default");
    let resp = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("scope", &scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &format!("{msg}.{sig}")),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "token request failed: {status} {body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A client trusting the CAs `roots` (PEM).
fn client_with(roots: &[&str]) -> reqwest::ClientBuilder {
    roots.iter().fold(
        reqwest::Client::builder().pool_max_idle_per_host(1024),
        |b, pem| {
            b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM"))
        },
    )
}

/// A client whose every request carries the token and OData headers.
fn api_client(token: &str, roots: &[&str]) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h.insert("OData-Version", "4.0".parse().unwrap());
    h.insert("OData-MaxVersion", "4.0".parse().unwrap());
    h.insert(reqwest::header::ACCEPT, "application/json".parse().unwrap());
    client_with(roots).default_headers(h).build().unwrap()
}

/// Creates `rows` accounts with `CreateMultiple`; returns their ids and the
/// first and last batch durations.
async fn load(http: &reqwest::Client, api: &str, rows: usize) -> (Vec<String>, Duration, Duration) {
    let mut rng = Rng(42);
    let mut ids = Vec::with_capacity(rows);
    let (mut first, mut last) = (Duration::ZERO, Duration::ZERO);
    let url = format!("{api}accounts/Microsoft.Dynamics.CRM.CreateMultiple");
    while ids.len() < rows {
        let n = BATCH.min(rows - ids.len());
        let targets: Vec<Value> = (0..n)
            .map(|i| {
                // Revenue uniform in [0, 1,000,000): ~99.9% pass `revenue gt 1000`.
                let cents = rng.below(100_000_000) as f64;
                json!({
                    "@odata.type": "Microsoft.Dynamics.CRM.account",
                    "name": format!("Account {:06}", ids.len() + i),
                    "revenue": cents / 100.0,
                })
            })
            .collect();
        let t = Instant::now();
        let resp = http
            .post(&url)
            .json(&json!({ "Targets": targets }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let took = t.elapsed();
        assert_eq!(status, 200, "CreateMultiple failed: {body}");
        let created = body["Ids"].as_array().expect("Ids");
        assert_eq!(created.len(), n);
        ids.extend(created.iter().map(|v| v.as_str().unwrap().to_string()));
        if first.is_zero() {
            first = took;
        }
        last = took;
    }
    (ids, first, last)
}

struct RetrieveRun {
    ok: u64,
    wall: Duration,
    emulator_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    latencies_us: Vec<u32>,
}

/// `concurrency` tasks retrieving random accounts by id until `dur` is over.
async fn retrieve_load(
    http: &reqwest::Client,
    api: &str,
    ids: &Arc<Vec<String>>,
    concurrency: usize,
    dur: Duration,
    stats: (&Option<String>, &Option<String>),
) -> RetrieveRun {
    let (emu0, me0) = (cpu_ns(stats.0), cpu_ns(stats.1));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let (http, ids) = (http.clone(), ids.clone());
            let api = api.to_string();
            tokio::spawn(async move {
                let mut rng = Rng(1000 + c as u64);
                let mut lat = Vec::with_capacity(1 << 16);
                while Instant::now() < deadline {
                    let id = &ids[rng.below(ids.len())];
                    let t = Instant::now();
                    let resp = http
                        .get(format!("{api}accounts({id})?$select=name"))
                        .send()
                        .await
                        .expect("request");
                    let status = resp.status();
                    let body = resp.bytes().await.expect("body");
                    if status != 200 {
                        eprintln!(
                            "retrieve {id}: HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                        std::process::exit(1);
                    }
                    // Only requests completed within the window count.
                    if Instant::now() <= deadline {
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    let wall = start.elapsed();
    let (emu1, me1) = (cpu_ns(stats.0), cpu_ns(stats.1));
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("retrieve task"));
    }
    latencies_us.sort_unstable();
    let delta = |a: Option<u64>, b: Option<u64>| Some(Duration::from_nanos(b? - a?));
    RetrieveRun {
        ok: latencies_us.len() as u64,
        wall,
        emulator_cpu: delta(emu0, emu1),
        client_cpu: delta(me0, me1),
        latencies_us,
    }
}

/// One GET, timed until the whole body is read; returns the elapsed time and the JSON.
async fn timed_get(http: &reqwest::Client, url: &str, page: Option<usize>) -> (Duration, Value) {
    let mut req = http.get(url);
    if let Some(n) = page {
        req = req.header("Prefer", format!("odata.maxpagesize={n}"));
    }
    let t = Instant::now();
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    let took = t.elapsed();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "GET {url}: {json}");
    (took, json)
}

fn collection_url(api: &str, params: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(&format!("{api}accounts"), params)
        .unwrap()
        .to_string()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p95 and min of samples, in ms.
fn summary(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.95), ms(samples[0]))
}

fn pass(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// The retrieve-by-id figures.
struct RetrieveResult {
    run: RetrieveRun,
    /// One connection, sequential: median and min.
    sequential: (f64, f64),
}

async fn retrieve_phase(
    http: &reqwest::Client,
    api: &str,
    ids: &Arc<Vec<String>>,
    cfg: &Config,
    stats: (&Option<String>, &Option<String>),
) -> RetrieveResult {
    // Warm up: opens the connections.
    let warm = Duration::from_millis(500);
    retrieve_load(http, api, ids, cfg.concurrency, warm, stats).await;
    let dur = Duration::from_secs_f64(cfg.secs);
    let run = retrieve_load(http, api, ids, cfg.concurrency, dur, stats).await;
    let mut seq = Vec::new();
    for i in 0..500 {
        let url = format!("{api}accounts({})?$select=name", ids[i * 7 % ids.len()]);
        seq.push(timed_get(http, &url, None).await.0);
    }
    let (median, _, min) = summary(&mut seq);
    RetrieveResult {
        run,
        sequential: (median, min),
    }
}

/// The paged-query figures: (median, p95, min) in ms.
struct QueryResult {
    first: (f64, f64, f64),
    next: (f64, f64, f64),
    /// Emulator CPU per first page, and per first page + next link, in ms.
    cpu: Option<(f64, f64)>,
    breakdown: Vec<(&'static str, f64)>,
}

async fn query_phase(
    http: &reqwest::Client,
    api: &str,
    cfg: &Config,
    emu_stat: &Option<String>,
) -> QueryResult {
    // DVBENCH_QUERY replaces the query string (URL-encoded), to profile a variant.
    let custom = std::env::var("DVBENCH_QUERY").unwrap_or_default();
    let full = match custom.as_str() {
        "" => collection_url(
            api,
            &[
                ("$select", "name,revenue"),
                ("$filter", FILTER),
                ("$orderby", "revenue desc"),
            ],
        ),
        q => format!("{api}accounts?{q}"),
    };
    for _ in 0..5 {
        timed_get(http, &full, Some(PAGE)).await;
    }
    let (mut firsts, mut nexts) = (Vec::new(), Vec::new());
    let (mut first_cpu, mut pair_cpu) = (0u64, 0u64);
    for _ in 0..cfg.iters {
        let c0 = cpu_ns(emu_stat);
        let (d, page) = timed_get(http, &full, Some(PAGE)).await;
        let c1 = cpu_ns(emu_stat);
        assert_eq!(
            page["value"].as_array().map_or(0, Vec::len),
            PAGE,
            "first page rows"
        );
        let next = page["@odata.nextLink"]
            .as_str()
            .expect("@odata.nextLink on the first page");
        let (d2, page2) = timed_get(http, next, Some(PAGE)).await;
        let c2 = cpu_ns(emu_stat);
        assert_eq!(
            page2["value"].as_array().map_or(0, Vec::len),
            PAGE,
            "next page rows"
        );
        assert!(
            page2["@odata.nextLink"].is_string(),
            "next link on the second page"
        );
        if let (Some(last), Some(next_first)) = (
            page["value"][PAGE - 1]["revenue"].as_f64(),
            page2["value"][0]["revenue"].as_f64(),
        ) && custom.is_empty()
        {
            assert!(next_first <= last, "the next page continues the order");
        }
        if let (Some(c0), Some(c1), Some(c2)) = (c0, c1, c2) {
            first_cpu += c1 - c0;
            pair_cpu += c2 - c0;
        }
        firsts.push(d);
        nexts.push(d2);
    }
    let per = |ns: u64| ns as f64 / 1e6 / cfg.iters as f64;
    let cpu = emu_stat.is_some().then(|| (per(first_cpu), per(pair_cpu)));

    let breakdown = clause_breakdown(http, api).await;
    QueryResult {
        first: summary(&mut firsts),
        next: summary(&mut nexts),
        cpu,
        breakdown,
    }
}

/// Which clause costs what: the median of 20 first pages per variant.
async fn clause_breakdown(http: &reqwest::Client, api: &str) -> Vec<(&'static str, f64)> {
    let select = ("$select", "name,revenue");
    let variants: [(&'static str, Vec<(&str, &str)>); 5] = [
        (
            "$filter + $orderby (as above)",
            vec![select, ("$filter", FILTER), ("$orderby", "revenue desc")],
        ),
        ("$filter only", vec![select, ("$filter", FILTER)]),
        ("$orderby only", vec![select, ("$orderby", "revenue desc")]),
        (
            "$filter name eq 'none' (0 rows)",
            vec![select, ("$filter", "name eq 'none'")],
        ),
        ("no $filter, no $orderby", vec![select]),
    ];
    let mut breakdown = Vec::new();
    for (label, params) in variants {
        let url = collection_url(api, &params);
        let mut s = Vec::new();
        for _ in 0..20 {
            s.push(timed_get(http, &url, Some(PAGE)).await.0);
        }
        breakdown.push((label, summary(&mut s).0));
    }
    breakdown
}

struct Config {
    rows: usize,
    secs: f64,
    concurrency: usize,
    iters: usize,
    /// `retrieve`, `query` or empty (both): to profile one phase alone.
    only: String,
    /// HTTPS for the emulator and the baseline (`DVBENCH_TLS`, default 1).
    tls: bool,
    /// Pin the servers to CPU 0 and the load generator to CPU 1.
    pin: bool,
}

/// The retrieve load against the baseline, same client settings, paths,
/// concurrency and duration as against the emulator.
async fn baseline_phase(
    emulator: (&reqwest::Client, &str),
    token: &str,
    ids: &Arc<Vec<String>>,
    cfg: &Config,
    my_stat: &Option<String>,
) -> RetrieveResult {
    let canned = baseline::canned_retrieve(emulator.0, emulator.1, &ids[0]).await;
    let (url, ca, stat) = baseline::start(canned, cfg.pin.then_some(0), cfg.tls);
    let http = api_client(token, &[&ca]);
    let api = format!("{url}/{ENV}/api/data/v9.2/");
    retrieve_phase(&http, &api, ids, cfg, (&stat, my_stat)).await
}

fn main() {
    // `cargo bench` passes `--bench`; arguments are ignored.
    let cfg = Config {
        rows: env_num("DVBENCH_ROWS", 100_000),
        secs: env_num("DVBENCH_SECS", 5.0),
        concurrency: env_num("DVBENCH_CONCURRENCY", 32),
        iters: env_num("DVBENCH_ITERS", 100),
        only: std::env::var("DVBENCH_ONLY").unwrap_or_default(),
        tls: env_num("DVBENCH_TLS", 1) == 1,
        pin: false,
    };
    assert!(
        cfg.rows >= 4 * PAGE,
        "DVBENCH_ROWS must be at least {}",
        4 * PAGE
    );
    assert!(cfg.iters > 0 && cfg.concurrency > 0 && cfg.secs > 0.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // With two or more cores and DVBENCH_PIN unset or 1: emulator (and
    // baseline) on CPU 0, load generator on CPU 1.
    let cfg = Config {
        pin: cores >= 2 && env_num("DVBENCH_PIN", 1) == 1,
        ..cfg
    };

    let (cert, signing_key) = client_certificate();

    let (base, ca, emu_stat, emu_pinned) =
        start_emulator(seed(cert.pem()), cfg.pin.then_some(0), cfg.tls);
    let pinned = emu_pinned && pin_this_thread(1);
    let my_stat = this_thread_schedstat();
    let api = format!("{base}/{ENV}/api/data/v9.2/");
    println!(
        "dvhost-emulator Dataverse benchmark over {}: emulator on one current_thread runtime thread, load generator (reqwest, current_thread) on another; {}",
        if cfg.tls { "HTTPS" } else { "HTTP" },
        if pinned {
            "pinned to CPUs 0 and 1"
        } else {
            "threads not pinned"
        }
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let roots: Vec<&str> = ca.iter().map(String::as_str).collect();
        let token = app_token(&client_with(&roots).build().unwrap(), &base, cert.der(), &signing_key).await;
        let http = api_client(&token, &roots);

        let t = Instant::now();
        let (ids, first_batch, last_batch) = load(&http, &api, cfg.rows).await;
        let load_time = t.elapsed();
        println!(
            "loaded {} accounts in {:.1} s with CreateMultiple x{BATCH} (first batch {:.0} ms, last {:.0} ms)",
            cfg.rows,
            load_time.as_secs_f64(),
            ms(first_batch),
            ms(last_batch)
        );
        let ids = Arc::new(ids);

        let (retrieve, base_line) = if cfg.only.is_empty() || cfg.only == "retrieve" {
            let r = retrieve_phase(&http, &api, &ids, &cfg, (&emu_stat, &my_stat)).await;
            let b = baseline_phase((&http, &api), &token, &ids, &cfg, &my_stat).await;
            (Some(r), Some(b))
        } else {
            (None, None)
        };
        let query = if cfg.only.is_empty() || cfg.only == "query" {
            Some(query_phase(&http, &api, &cfg, &emu_stat).await)
        } else {
            None
        };
        report(&cfg, load_time, retrieve.as_ref(), query.as_ref());
        ratios(retrieve.as_ref(), base_line.as_ref(), query.as_ref());
    });
    println!(
        "machine: {cores} cores (available_parallelism); load average at start {}; the goals assume the emulator on ONE core",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The benchmark app's certificate and the key that signs its assertions.
fn client_certificate() -> (rcgen::Certificate, EncodingKey) {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench");
    let cert = params.self_signed(&key).unwrap();
    let signing_key = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap();
    (cert, signing_key)
}

fn report(
    cfg: &Config,
    load_time: Duration,
    retrieve: Option<&RetrieveResult>,
    query: Option<&QueryResult>,
) {
    let rows = cfg.rows;
    println!();
    println!("| measure | result | goal | |");
    println!("|---|---|---|---|");
    if let Some(r) = retrieve {
        let rps = r.run.ok as f64 / r.run.wall.as_secs_f64();
        println!(
            "| retrieve by id, req/s (C={}, {} s) | {rps:.0} | >= {GOAL_RETRIEVES_PER_SEC:.0} | {} |",
            cfg.concurrency,
            cfg.secs,
            pass(rps >= GOAL_RETRIEVES_PER_SEC)
        );
    }
    if let Some(q) = query {
        let (m, p95, min) = q.first;
        println!(
            "| filtered page of {PAGE} over {rows} rows, median (p95, min) | {m:.2} ms ({p95:.2}, {min:.2}) | < {GOAL_PAGE_MEDIAN_MS} ms median | {} |",
            pass(m < GOAL_PAGE_MEDIAN_MS)
        );
        let (m, p95, min) = q.next;
        println!("| its @odata.nextLink, median (p95, min) | {m:.2} ms ({p95:.2}, {min:.2}) | | |");
    }
    println!(
        "| load {rows} rows (CreateMultiple x{BATCH}) | {:.1} s ({:.0} rows/s) | | |",
        load_time.as_secs_f64(),
        rows as f64 / load_time.as_secs_f64()
    );
    println!();
    let pct = |c: Option<Duration>, wall: Duration| {
        c.map_or("n/a".to_string(), |c| {
            format!("{:.0}%", 100.0 * c.as_secs_f64() / wall.as_secs_f64())
        })
    };
    if let Some(r) = retrieve {
        let run = &r.run;
        let lat = |q: f64| {
            let i = ((run.latencies_us.len() - 1) as f64 * q).round() as usize;
            run.latencies_us[i] as f64 / 1000.0
        };
        println!(
            "retrieve: {} x 200 in {:.2} s; latency p50 {:.2} ms, p99 {:.2} ms; CPU busy: emulator thread {}, load generator {}",
            run.ok,
            run.wall.as_secs_f64(),
            lat(0.5),
            lat(0.99),
            pct(run.emulator_cpu, run.wall),
            pct(run.client_cpu, run.wall)
        );
        if let Some(c) = run.emulator_cpu {
            let per = c.as_secs_f64() / run.ok as f64;
            println!(
                "  emulator CPU per retrieve {:.1} us, i.e. {:.0} req/s with its core saturated",
                per * 1e6,
                1.0 / per
            );
        }
        println!(
            "  one connection, sequential: median {:.3} ms, min {:.3} ms",
            r.sequential.0, r.sequential.1
        );
    }
    if let Some(q) = query {
        if let Some((first, pair)) = q.cpu {
            println!(
                "page: emulator CPU {first:.2} ms per first page, {pair:.2} ms per first page + next link"
            );
        }
        println!("page breakdown (median of 20, page of {PAGE}, {rows} rows):");
        for (label, m) in &q.breakdown {
            println!("  {label:<34} {m:>9.2} ms");
        }
    }
}

/// Requests per second of a retrieve run.
fn rate(r: &RetrieveResult) -> f64 {
    r.run.ok as f64 / r.run.wall.as_secs_f64()
}

/// Server CPU per request, in microseconds.
fn cpu_per_request(r: &RetrieveResult) -> Option<f64> {
    r.run
        .emulator_cpu
        .map(|c| c.as_secs_f64() * 1e6 / r.run.ok as f64)
}

/// The figures as ratios measured in this run, which carry from machine
/// to machine better than absolute rates.
fn ratios(
    retrieve: Option<&RetrieveResult>,
    baseline: Option<&RetrieveResult>,
    query: Option<&QueryResult>,
) {
    println!();
    println!("ratios measured in this run:");
    if let (Some(r), Some(b)) = (retrieve, baseline) {
        let ratio = rate(r) / rate(b);
        println!(
            "  retrieve by id vs minimal axum handler (same JSON, TLS and HTTP stack): {:.0} vs {:.0} req/s = {ratio:.2}x (goal >= {GOAL_BASELINE_RATIO}x: {})",
            rate(r),
            rate(b),
            pass(ratio >= GOAL_BASELINE_RATIO)
        );
        if let (Some(e), Some(h)) = (cpu_per_request(r), cpu_per_request(b)) {
            println!(
                "  server CPU per request: emulator {e:.1} us, baseline {h:.1} us ({:.2}x)",
                e / h
            );
        }
        println!(
            "  one connection, sequential median: emulator {:.3} ms, baseline {:.3} ms",
            r.sequential.0, b.sequential.0
        );
    }
    if let (Some(r), Some(q)) = (retrieve, query) {
        println!(
            "  filtered page of {PAGE} (median {:.2} ms) vs retrieve by id (sequential median {:.3} ms): {:.1}x",
            q.first.0,
            r.sequential.0,
            q.first.0 / r.sequential.0
        );
    }
}
