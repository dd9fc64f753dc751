//! The emulator, seeded once per property, and the comparison of its
//! answer with the reference.

use super::*;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// `PROPTEST_RNG_SEED`, or a fresh seed; it drives the rows and the cases.
pub(crate) fn seed() -> u64 {
    match Config::default().rng_seed {
        RngSeed::Fixed(s) => s,
        RngSeed::Random => uuid::Uuid::new_v4().as_u64_pair().0,
    }
}

pub(crate) fn runner(seed: u64, cases: u32) -> TestRunner {
    let default = Config::default();
    TestRunner::new(Config {
        // `PROPTEST_CASES` overrides the count.
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        rng_seed: RngSeed::Fixed(seed),
        // The rows differ from run to run, so a persisted case would not
        // replay; the seed in the failure message does.
        failure_persistence: None,
        ..default
    })
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) struct Fixture {
    pub(crate) w: World,
    pub(crate) token: String,
    pub(crate) rows: Vec<Account>,
}

/// Starts an emulator and inserts `count` random accounts (one
/// CreateMultiple), keeping their ids; checks that the emulator stored
/// what was sent.
pub(crate) async fn setup(
    runner: &mut TestRunner,
    count: std::ops::RangeInclusive<usize>,
) -> Fixture {
    let mut rows = prop::collection::vec(account(), count)
        .new_tree(runner)
        .unwrap()
        .current();
    // No service protection 429s, whatever PROPTEST_CASES asks for.
    let w = World::start_with(Settings {
        service_protection: ServiceProtection {
            requests: 1_000_000,
            execution_ms: 1_000_000_000,
            ..ServiceProtection::default()
        },
        ..Settings::default()
    })
    .await;
    let token = w.dv_token().await;
    let targets: Vec<Value> = rows.iter().map(Account::body).collect();
    let (s, _, b) = w
        .dv(
            &token,
            Method::POST,
            "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
            Some(json!({ "Targets": targets })),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let ids = b["Ids"].as_array().expect("Ids");
    assert_eq!(ids.len(), rows.len(), "{b}");
    for (row, id) in rows.iter_mut().zip(ids) {
        row.id = id.as_str().unwrap().to_lowercase();
    }

    let (s, _, b) = w
        .dv(
            &token,
            Method::GET,
            "accounts?$select=name,address1_city,revenue,numberofemployees,creditonhold,accountcategorycode",
            None,
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let stored = b["value"].as_array().unwrap();
    assert_eq!(stored.len(), rows.len(), "only the inserted accounts exist");
    for got in stored {
        let id = got["accountid"].as_str().unwrap().to_lowercase();
        let row = rows.iter().find(|r| r.id == id).expect("a known id");
        let mut want = row.body();
        want.as_object_mut().unwrap().remove("@odata.type");
        for (k, v) in want.as_object().unwrap() {
            let same = match (v.as_f64(), got[k].as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => *v == got[k],
            };
            assert!(same, "{k} of {id}: sent {v}, stored {}", got[k]);
        }
    }
    Fixture { w, token, rows }
}

pub(crate) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn show_row(a: &Account) -> String {
    format!(
        "{} name={:?} address1_city={:?} revenue={:?} numberofemployees={:?} creditonhold={} accountcategorycode={:?}",
        a.id, a.name, a.city, a.revenue, a.employees, a.credit, a.category
    )
}

pub(crate) fn show_truth(t: Truth) -> &'static str {
    match t {
        Some(true) => "TRUE",
        Some(false) => "FALSE",
        None => "UNKNOWN",
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Runs `f` on the emulator and compares the ids it returns with the
/// reference; describes the rows they disagree on.
pub(crate) async fn check(fx: &Fixture, f: &Filter) -> Result<(), String> {
    let text = filter_text(f, &fx.rows);
    let path = format!("accounts?$select=accountid&$filter={}", encode(&text));
    let (s, _, b) = fx.w.dv(&fx.token, Method::GET, &path, None, &[]).await;
    if s != 200 {
        return Err(format!("$filter={text}\nstatus {s}: {b}"));
    }
    if b.get("@odata.nextLink").is_some() {
        return Err(format!("$filter={text}\nmore than one page: {b}"));
    }
    let got: BTreeSet<String> = b["value"]
        .as_array()
        .ok_or_else(|| format!("$filter={text}\nno value array: {b}"))?
        .iter()
        .map(|r| r["accountid"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    // The first few rows in disagreement, and how many there are.
    const SHOWN: usize = 6;
    let mut diff = String::new();
    let mut count = 0;
    for a in &fx.rows {
        let want = eval(f, a, &fx.rows);
        let returned = got.contains(&a.id);
        if (want == Some(true)) == returned {
            continue;
        }
        count += 1;
        if count <= SHOWN {
            writeln!(
                diff,
                "  reference {}, emulator {}: {}",
                show_truth(want),
                if returned {
                    "returned it"
                } else {
                    "left it out"
                },
                show_row(a)
            )
            .expect("writing to a String cannot fail");
        }
    }
    if count > SHOWN {
        writeln!(diff, "  and {} more", count - SHOWN).expect("writing to a String cannot fail");
    }
    for id in got
        .iter()
        .filter(|id| !fx.rows.iter().any(|a| &a.id == *id))
    {
        writeln!(diff, "  emulator returned an id never inserted: {id}")
            .expect("writing to a String cannot fail");
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "$filter={text}\nrows on which the emulator and the reference disagree:\n{diff}"
        ))
    }
}

/// The sub-filters of `f` (itself included), smallest first.
pub(crate) fn parts(f: &Filter) -> Vec<&Filter> {
    pub(crate) fn walk<'f>(f: &'f Filter, out: &mut Vec<&'f Filter>) {
        out.push(f);
        match f {
            Filter::Not(e) | Filter::Group(e) => walk(e, out),
            Filter::And(a, b) | Filter::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(f, &mut out);
    out.reverse();
    out.sort_by_key(|p| size(p));
    out
}

pub(crate) fn size(f: &Filter) -> usize {
    match f {
        Filter::Not(e) | Filter::Group(e) => 1 + size(e),
        Filter::And(a, b) | Filter::Or(a, b) => 1 + size(a) + size(b),
        _ => 1,
    }
}
