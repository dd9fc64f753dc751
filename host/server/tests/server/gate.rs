//! The tenant gate: a full tenant answers 429 with `Retry-After` at once
//! while other tenants are served, and the rate limit answers 429.

use axum::http::StatusCode;
use dvhost_server::{ServerConfig, TenantLimits};
use serde_json::json;

use crate::common::{HELLO, Server, hostile};

/// A server whose tenants each get `limits`.
async fn server_with(limits: TenantLimits) -> Server {
    Server::with_config(ServerConfig {
        tenants: limits,
        ..ServerConfig::default()
    })
    .await
}

// Guest code runs without yielding to Tokio (the engine traps at the
// epoch deadline, it does not yield), so a working guest holds its worker
// thread and can starve tasks queued behind it on that worker (see
// `a_working_guest_leaves_other_calls_alone`). The slow calls therefore run
// on threads of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tenant_gets_429_while_another_is_served() {
    let server = server_with(TenantLimits {
        concurrency: 1,
        queue: 0,
        ..TenantLimits::default()
    })
    .await;
    let server = std::sync::Arc::new(server);
    let key_a = server.tenant_with_hello("tenant-a").await;
    let key_b = server.tenant_with_hello("tenant-b").await;
    server
        .deploy("tenant-a", "hostile", &hostile())
        .await
        .expect(StatusCode::CREATED);

    // Slow but successful calls: `busy` works for 3 s, then answers.
    let slow = |server: std::sync::Arc<Server>, key: String| {
        tokio::task::spawn_blocking(move || {
            let input = json!({"ms": 3000});
            let call = server.invoke(&key, "tenant-a", "hostile", "busy", &input);
            tokio::runtime::Handle::current().block_on(call)
        })
    };
    let mut first = slow(server.clone(), key_a.clone());
    let mut second = slow(server.clone(), key_a.clone());
    // One is admitted and works; the other is refused at once.
    let (refused, mut running) = tokio::select! {
        biased;
        answer = &mut first => (answer.unwrap(), second),
        answer = &mut second => (answer.unwrap(), first),
    };
    let error = refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "tenant_busy");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(error["retry_after"], 1);

    // While it works: the same tenant is refused, another tenant is served.
    let hello_a = server
        .invoke(&key_a, "tenant-a", HELLO, "hello", &json!({"name": "A"}))
        .await;
    hello_a.expect_error(StatusCode::TOO_MANY_REQUESTS, "tenant_busy");
    assert!(hello_a.header("retry-after").is_some());
    let hello_b = server
        .invoke(&key_b, "tenant-b", HELLO, "hello", &json!({"name": "B"}))
        .await;
    assert_eq!(
        hello_b.expect(StatusCode::OK),
        json!({"greeting": "Hello, B!"})
    );
    assert!(
        !running.is_finished(),
        "the slow call ended before the other tenant was served"
    );

    let worked = (&mut running).await.unwrap();
    assert_eq!(worked.expect(StatusCode::OK), json!({"ms": 3000}));
    // Its slot is free again.
    let hello_a = server
        .invoke(&key_a, "tenant-a", HELLO, "hello", &json!({"name": "A"}))
        .await;
    hello_a.expect(StatusCode::OK);
}

#[tokio::test]
async fn the_rate_limit_answers_429() {
    let server = server_with(TenantLimits {
        rate_per_second: 1,
        burst: 1,
        ..TenantLimits::default()
    })
    .await;
    let key_a = server.tenant_with_hello("tenant-a").await;
    let key_b = server.tenant_with_hello("tenant-b").await;
    let input = json!({"name": "Ada"});
    server
        .invoke(&key_a, "tenant-a", HELLO, "hello", &input)
        .await
        .expect(StatusCode::OK);
    let limited = server
        .invoke(&key_a, "tenant-a", HELLO, "hello", &input)
        .await;
    limited.expect_error_saying(StatusCode::TOO_MANY_REQUESTS, "tenant_busy", "rate");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    // Another tenant has its own rate.
    server
        .invoke(&key_b, "tenant-b", HELLO, "hello", &input)
        .await
        .expect(StatusCode::OK);
}

/// A guest working for seconds must not hold up another tenant's call on
/// the same runtime: the guest yields to Tokio at every epoch tick. On one
/// thread (this test's runtime) a guest that did not yield would make the
/// other call wait for all of its 3 seconds.
#[tokio::test]
async fn a_working_guest_leaves_other_calls_alone() {
    let server = std::sync::Arc::new(Server::start().await);
    let key_a = server.tenant_with_hello("tenant-a").await;
    let key_b = server.tenant_with_hello("tenant-b").await;
    server
        .deploy("tenant-a", "hostile", &hostile())
        .await
        .expect(StatusCode::CREATED);
    let started = std::time::Instant::now();
    let busy = {
        let server = server.clone();
        tokio::spawn(async move {
            let input = json!({"ms": 3000});
            server
                .invoke(&key_a, "tenant-a", "hostile", "busy", &input)
                .await
        })
    };
    // Let the busy call start.
    tokio::task::yield_now().await;
    let hello_b = server
        .invoke(&key_b, "tenant-b", HELLO, "hello", &json!({"name": "B"}))
        .await;
    let waited = started.elapsed();
    hello_b.expect(StatusCode::OK);
    busy.await.unwrap().expect(StatusCode::OK);
    assert!(
        waited < std::time::Duration::from_secs(2),
        "another tenant's call waited {waited:?} for a working guest"
    );
}
