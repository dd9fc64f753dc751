//! Instances prepared ahead of calls: each still serves exactly one call,
//! takes that call's grants, backends and limits, and stays within the
//! engine's budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dvhost_runtime::{Capabilities, Engine, EngineConfig, Grants, Plugin, Report};
use dvhost_testkit::HOSTILE;

use crate::common::{cache_dir, capabilities, engine, guest_bytes, json, read_accounts};
use crate::fake::Fake;

/// `HOSTILE` loaded anew on `engine`: its own place among the prepared
/// instances, shared with no other test.
async fn own_hostile(engine: &Engine) -> Plugin {
    engine.load(&guest_bytes(HOSTILE)).await.expect("loads")
}

/// Waits (at most 10 s) until `p` has an instance prepared.
async fn until_prepared(p: &Plugin) {
    let until = Instant::now() + Duration::from_secs(10);
    while !p.prepared() {
        assert!(Instant::now() < until, "no instance was prepared");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Time for a background preparation that should not happen to happen.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Calls `leftovers` and checks the instance was fresh.
async fn leftovers(p: &Plugin, caps: &Capabilities) -> Report {
    let report = p.invoke(caps, "leftovers", "{}").await;
    let out = json(report.output.as_ref().expect("leftovers answers"));
    assert_eq!(out["calls_before"], 0, "an instance served a second call");
    assert_eq!(out["trail_bytes"], 0, "an earlier call's heap was visible");
    report
}

fn engine_preparing(prepared: u32) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(cache_dir()),
        max_instances: 8,
        prepared_instances: prepared,
        ..EngineConfig::default()
    })
    .expect("engine")
}

#[tokio::test]
async fn every_call_runs_in_a_fresh_instance_prepared_or_not() {
    let p = own_hostile(&engine()).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    assert!(!p.prepared());
    let first = leftovers(&p, &caps).await;
    assert!(
        !first.prepared,
        "nothing was prepared before the first call"
    );
    for _ in 0..20 {
        until_prepared(&p).await;
        assert!(leftovers(&p, &caps).await.prepared);
    }
    // Calls back to back: prepared or not, each in a fresh instance.
    for _ in 0..20 {
        leftovers(&p, &caps).await;
    }
}

#[tokio::test]
async fn a_call_right_after_another_finds_the_second_prepared_instance() {
    let p = own_hostile(&engine()).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    leftovers(&p, &caps).await;
    for round in 0..5 {
        let until = Instant::now() + Duration::from_secs(10);
        while p.prepared_instances() < 2 {
            assert!(
                Instant::now() < until,
                "round {round}: two were not prepared"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The first call's replacement is still being made when the second
        // comes: the second takes the other prepared instance.
        assert!(leftovers(&p, &caps).await.prepared, "round {round}");
        assert!(leftovers(&p, &caps).await.prepared, "round {round}");
    }
    settle().await;
    assert_eq!(p.prepared_instances(), 2, "never more than two");
}

#[tokio::test]
async fn a_prepared_instance_runs_under_its_calls_grants_and_backend() {
    let p = own_hostile(&engine()).await;
    let read = serde_json::json!({"table": "account", "operation": "read"}).to_string();
    let denied_fake = Arc::new(Fake::seeded());
    let denied = capabilities(&denied_fake, Grants::none());
    let granted_fake = Arc::new(Fake::seeded());
    let granted = capabilities(&granted_fake, read_accounts());
    for round in 0..3 {
        if round > 0 {
            until_prepared(&p).await;
        }
        let report = p.invoke(&granted, "use-table", &read).await;
        let out = json(&report.output.unwrap());
        assert!(out.get("ok").is_some(), "round {round}: {out}");
        assert_eq!(round > 0, report.prepared, "round {round}");
        until_prepared(&p).await;
        let report = p.invoke(&denied, "use-table", &read).await;
        assert!(report.prepared, "round {round}");
        let out = json(&report.output.unwrap());
        assert_eq!(out["error"]["kind"], "not-granted", "round {round}: {out}");
    }
    assert_eq!(granted_fake.requests(), 3);
    assert_eq!(denied_fake.requests(), 0);
}

#[tokio::test]
async fn new_limits_are_not_served_by_an_instance_prepared_under_the_old() {
    let p = own_hostile(&engine()).await;
    let mut caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    leftovers(&p, &caps).await;
    until_prepared(&p).await;
    // A deadline and quotas are the call's own: the instance still fits.
    caps.limits.deadline = Duration::from_secs(2);
    caps.limits.dataverse_calls = 3;
    assert!(leftovers(&p, &caps).await.prepared);
    until_prepared(&p).await;
    // A memory cap was built into the store at instantiation: it does not.
    caps.limits.memory_bytes /= 2;
    assert!(!leftovers(&p, &caps).await.prepared, "old limits served");
    until_prepared(&p).await;
    assert!(
        leftovers(&p, &caps).await.prepared,
        "new limits not prepared"
    );
}

#[tokio::test]
async fn an_engine_preparing_none_instantiates_every_call() {
    let engine = engine_preparing(0);
    let p = own_hostile(&engine).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    for _ in 0..5 {
        assert!(!leftovers(&p, &caps).await.prepared);
        settle().await;
        assert!(!p.prepared());
    }
}

#[tokio::test]
async fn the_budget_bounds_prepared_instances_and_an_unloaded_plugin_gives_its_place_back() {
    let engine = engine_preparing(1);
    let a = own_hostile(&engine).await;
    let b = own_hostile(&engine).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    leftovers(&a, &caps).await;
    until_prepared(&a).await;
    assert!(leftovers(&a, &caps).await.prepared);
    until_prepared(&a).await;
    // `a` holds the one place (it would take two): `b` is never prepared.
    settle().await;
    assert_eq!(a.prepared_instances(), 1);
    for _ in 0..3 {
        assert!(!leftovers(&b, &caps).await.prepared);
        settle().await;
        assert!(!b.prepared());
    }
    drop(a);
    leftovers(&b, &caps).await;
    until_prepared(&b).await;
    assert!(
        leftovers(&b, &caps).await.prepared,
        "a's place was not given back"
    );
}

#[tokio::test]
async fn an_idle_prepared_instance_is_dropped_and_its_place_given_back() {
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(cache_dir()),
        max_instances: 8,
        prepared_instances: 1,
        prepared_idle: Duration::from_millis(200),
        ..EngineConfig::default()
    })
    .expect("engine");
    let a = own_hostile(&engine).await;
    let b = own_hostile(&engine).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    leftovers(&a, &caps).await;
    until_prepared(&a).await;
    assert!(!leftovers(&b, &caps).await.prepared);
    settle().await;
    assert!(!b.prepared(), "a holds the one place");
    // No call comes: the engine's upkeep (about once a second) drops it.
    let until = Instant::now() + Duration::from_secs(10);
    while a.prepared() {
        assert!(Instant::now() < until, "the idle instance was kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    leftovers(&b, &caps).await;
    until_prepared(&b).await;
    assert!(
        leftovers(&b, &caps).await.prepared,
        "a's place was not given back"
    );
}

#[tokio::test]
async fn a_plugin_whose_calls_trap_is_still_prepared_fresh() {
    let p = own_hostile(&engine()).await;
    let caps = capabilities(&Arc::new(Fake::seeded()), Grants::none());
    for _ in 0..3 {
        assert!(p.invoke(&caps, "panic", "{}").await.output.is_err());
        until_prepared(&p).await;
    }
    assert!(leftovers(&p, &caps).await.prepared);
}
