//! Service protection limits and fault injection.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn request_limit_gives_429_with_retry_after() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _) = w
        .control(Method::PATCH, "settings", Some(json!({"service_protection": {"requests": 3, "window_secs": 300, "execution_ms": 1_200_000, "concurrent": 52}})))
        .await;
    assert_eq!(s, 200);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (s, h, _) = w.get(&t, "WhoAmI").await;
        assert_eq!(s, 200);
        remaining.push(
            h["x-ms-ratelimit-burst-remaining-xrm-requests"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
        let time = h["x-ms-ratelimit-time-remaining-xrm-requests"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            time.contains(',') && time.ends_with(char::is_numeric) && time.contains('.'),
            "{time}"
        );
        assert_eq!(h["x-ms-dop-hint"], "4");
    }
    assert_eq!(remaining, [2, 1, 0]);
    let (s, h, e) = w.get(&t, "WhoAmI").await;
    assert_eq!(s, 429);
    let retry: u64 = h["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("integer Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(e["error"]["code"], "0x80072322");
    assert_eq!(
        e["error"]["message"],
        "Number of requests exceeded the limit of 3 over time window of 300 seconds."
    );
    // Limits are per user: a delegated admin is not throttled.
    let admin = w
        .sign_in(ADMIN, &format!("{}/user_impersonation", w.env_url))
        .await;
    assert_eq!(
        w.dv(
            admin["access_token"].as_str().unwrap(),
            Method::GET,
            "WhoAmI",
            None,
            &[]
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn concurrency_limit_triggers_at_once() {
    let w = World::start().await;
    let t = w.dv_token().await;
    w.control(Method::PATCH, "settings", Some(json!({"service_protection": {"requests": 6000, "window_secs": 300, "execution_ms": 1_200_000, "concurrent": 1}}))).await;
    // A slow request holds the only slot (long enough that a loaded
    // machine still sends WhoAmI while it is held).
    w.control(Method::POST, "faults", Some(json!({"method": "GET", "path": "accounts", "action": {"kind": "latency", "ms": 3000}, "times": 1}))).await;
    let slow = {
        let (http, url, t) = (w.http.clone(), w.api("accounts"), t.clone());
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (s, h, e) = w.get(&t, "WhoAmI").await;
    assert_eq!(s, 429, "{e}");
    assert_eq!(e["error"]["code"], "0x80072326");
    assert_eq!(h["retry-after"], "1");
    assert_eq!(slow.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(w.get(&t, "WhoAmI").await.0, 200);
}

#[tokio::test]
async fn injected_throttle_status_and_latency_are_deterministic() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let rule = json!({"environment": "contoso-dev", "method": "POST", "path": "accounts", "action": {"kind": "throttle", "retry_after_secs": 2}, "times": 1});
    assert_eq!(w.control(Method::POST, "faults", Some(rule)).await.0, 201);
    let (s, h, e) = w
        .send(&t, Method::POST, "accounts", json!({"name": "a"}))
        .await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "2"));
    assert_eq!(e["error"]["code"], "0x80072322");
    assert_eq!(
        w.send(&t, Method::POST, "accounts", json!({"name": "a"}))
            .await
            .0,
        204
    );
    assert_eq!(
        w.count(&t, "accounts").await,
        1,
        "the throttled create wrote nothing"
    );

    // After one request let through, every second matching request gets a 503.
    w.control(Method::DELETE, "faults", None).await;
    w.control(Method::POST, "faults", Some(json!({"path": "accounts*", "method": "POST", "action": {"kind": "status", "status": 503}, "skip": 1, "every": 2}))).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        statuses.push(
            w.send(
                &t,
                Method::POST,
                "accounts",
                json!({"name": format!("s{i}")}),
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses, [204, 204, 503, 204, 503, 204, 503]);
    let (_, faults) = w.control(Method::GET, "faults", None).await;
    assert_eq!(faults["faults"][0]["matched"], 7);
    assert_eq!(faults["faults"][0]["applied"], 3);
    assert_eq!(w.count(&t, "accounts").await, 5, "503s wrote nothing");
    w.control(Method::DELETE, "faults", None).await;

    w.control(
        Method::POST,
        "faults",
        Some(json!({"path": "WhoAmI", "action": {"kind": "latency", "ms": 300}})),
    )
    .await;
    let start = std::time::Instant::now();
    assert_eq!(w.get(&t, "WhoAmI").await.0, 200);
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));

    // Bad rules are refused.
    for bad in [
        json!({"action": {"kind": "status", "status": 404}}),
        json!({"action": {"kind": "nope"}}),
        json!({"action": {"kind": "throttle", "retry_after_secs": 1}, "every": 0}),
    ] {
        assert_eq!(
            w.control(Method::POST, "faults", Some(bad.clone())).await.0,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn dropped_connections_before_and_after_the_write() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let post = |name: &str| {
        w.http
            .post(w.api("accounts"))
            .bearer_auth(&t)
            .json(&json!({"name": name}))
            .send()
    };

    w.control(Method::POST, "faults", Some(json!({"method": "POST", "path": "accounts", "action": {"kind": "drop_before"}, "times": 1}))).await;
    assert!(
        post("before").await.is_err(),
        "the client sees a dropped connection"
    );
    assert_eq!(w.count(&t, "accounts").await, 0, "nothing was written");

    w.control(Method::DELETE, "faults", None).await;
    w.control(Method::POST, "faults", Some(json!({"method": "POST", "path": "accounts", "action": {"kind": "drop_after"}, "times": 1}))).await;
    assert!(post("after").await.is_err());
    assert_eq!(
        w.count(&t, "accounts").await,
        1,
        "the write was applied before the drop"
    );
    assert_eq!(
        post("next").await.unwrap().status(),
        204,
        "the emulator serves on"
    );
}

#[tokio::test]
async fn seeded_random_faults_repeat_exactly() {
    let outcomes = |seed: u64| async move {
        let w = World::start().await;
        let t = w.dv_token().await;
        w.control(Method::POST, "faults", Some(json!({"path": "WhoAmI", "action": {"kind": "status", "status": 502}, "probability": 0.3, "seed": seed}))).await;
        let mut v = Vec::new();
        for _ in 0..40 {
            v.push(w.get(&t, "WhoAmI").await.0);
        }
        v
    };
    let a = outcomes(42).await;
    assert_eq!(a, outcomes(42).await);
    let failures = a.iter().filter(|s| **s == 502).count();
    assert!((4..=20).contains(&failures), "{failures}");
}

#[tokio::test]
async fn faults_can_come_from_the_seed() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let seed: dvhost_emulator::Seed = toml::from_str(
        r#"
        [[faults]]
        environment = "contoso-dev"
        method = "GET"
        path = "WhoAmI"
        times = 2
        action = { kind = "status", status = 502 }
        "#,
    )
    .unwrap();
    w.emu.seed(seed).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(w.get(&t, "WhoAmI").await.0);
    }
    assert_eq!(statuses, [502, 502, 200]);
    let bad: Result<dvhost_emulator::Seed, _> =
        toml::from_str("[[faults]]\naction = { kind = \"status\", status = 200 }");
    assert!(
        w.emu.seed(bad.unwrap()).is_err(),
        "a non-5xx status is refused"
    );
}
