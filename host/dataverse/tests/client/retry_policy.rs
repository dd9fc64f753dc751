//! The one retry policy, end to end: against the emulator's injected faults
//! (a write repeated after a 429 or a 4xx is never reported as done; after a
//! dropped connection, a repeat that finds its work done is), and against
//! the fake environment for what the emulator will not send (a 401 renewed
//! once, absurd `Retry-After` and `expires_in` values).

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{CLIENT, add_fault, rec, soon};
use dvhost_dataverse::{
    Client, ColumnName, DataverseError, EntitySet, Op, Query, counting_retries,
};
use serde_json::json;
use uuid::Uuid;

fn accounts() -> EntitySet {
    EntitySet::new("accounts").unwrap()
}

fn accountid() -> ColumnName {
    ColumnName::new("accountid").unwrap()
}

async fn emulator_client() -> (dvhost_emulator::RunningEmulator, Client) {
    let cert = common::generated("retry");
    let emu = common::emulator(&cert, "").await;
    let client = common::client(&emu, &cert, CLIENT);
    client.who_am_i(soon()).await.unwrap();
    (emu, client)
}

/// Creates an account named `name` (with the caller's `id`, if given).
async fn create(c: &Client, name: &str, id: Option<Uuid>) -> Result<Uuid, DataverseError> {
    c.create(
        &accounts(),
        &accountid(),
        &rec(json!({ "name": name })),
        id,
        soon(),
    )
    .await
}

/// Injects one fault of `kind` (with its fields) on `method` to `path`.
async fn fault_once(
    emu: &dvhost_emulator::RunningEmulator,
    method: &str,
    path: &str,
    action: serde_json::Value,
) {
    add_fault(
        emu,
        json!({"method": method, "path": path, "action": action, "times": 1}),
    )
    .await;
}

/// A 429 with `Retry-After: 0`.
fn throttle() -> serde_json::Value {
    json!({"kind": "throttle", "retry_after_secs": 0})
}

/// One 503 for the next PATCH of an account.
async fn unavailable_once(emu: &dvhost_emulator::RunningEmulator) {
    let action = json!({"kind": "status", "status": 503});
    fault_once(emu, "PATCH", "accounts*", action).await;
}

fn retries(c: &Client) -> u64 {
    c.stats().retries.load(Ordering::Relaxed)
}

async fn count_named(c: &Client, name: &str) -> usize {
    let q = Query::new(&accounts())
        .select(&["name"])
        .unwrap()
        .filter("name", Op::Eq, name)
        .unwrap();
    c.query_all(&q, soon()).await.unwrap().len()
}

#[tokio::test]
async fn a_delete_throttled_then_not_found_is_reported_as_not_found() {
    let (emu, c) = emulator_client().await;
    fault_once(&emu, "DELETE", "accounts*", throttle()).await;
    // The 429 proves the first attempt did nothing: the 404 is the answer.
    let e = c
        .delete(&accounts(), Uuid::new_v4(), soon())
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("0x80040217")),
        "{e}"
    );
    assert_eq!(retries(&c), 1);
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_done_when_the_repeat_finds_nothing() {
    let (emu, c) = emulator_client().await;
    let id = create(&c, "gone", None).await.unwrap();
    fault_once(&emu, "DELETE", "accounts*", json!({"kind": "drop_after"})).await;
    c.delete(&accounts(), id, soon()).await.unwrap();
    assert_eq!(retries(&c), 1);
    assert_eq!(count_named(&c, "gone").await, 0);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_done_once() {
    let (emu, c) = emulator_client().await;
    fault_once(&emu, "POST", "accounts", json!({"kind": "drop_after"})).await;
    create(&c, "once", None).await.unwrap();
    assert_eq!(retries(&c), 1);
    assert_eq!(count_named(&c, "once").await, 1);
}

#[tokio::test]
async fn a_create_throttled_then_duplicate_is_reported_as_duplicate() {
    let (emu, c) = emulator_client().await;
    let id = create(&c, "first", None).await.unwrap();
    fault_once(&emu, "POST", "accounts", throttle()).await;
    // The caller reuses an id that exists: after a 429 that is the caller's
    // mistake, not proof that the throttled attempt landed.
    let e = create(&c, "second", Some(id)).await.unwrap_err();
    assert_eq!(e.status(), Some(412), "{e}");
    assert_eq!(count_named(&c, "second").await, 0);
}

#[tokio::test]
async fn a_conditional_update_is_not_repeated_after_an_ambiguous_failure() {
    let (emu, c) = emulator_client().await;
    let id = create(&c, "v1", None).await.unwrap();
    let etag = c
        .retrieve(&accounts(), &id.into(), &[], soon())
        .await
        .unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    unavailable_once(&emu).await;
    let before = retries(&c);
    let e = c
        .update(
            &accounts(),
            id,
            &rec(json!({"name": "v2"})),
            Some(&etag),
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(retries(&c), before, "not repeated");
    // Without If-Match the same failure is repeated.
    unavailable_once(&emu).await;
    c.update(&accounts(), id, &rec(json!({"name": "v2"})), None, soon())
        .await
        .unwrap();
    assert_eq!(retries(&c), before + 1);
}

#[tokio::test]
async fn a_401_renews_the_token_once() {
    let w = common::fake::world().await;
    w.fake.unauthorized.store(1, Ordering::SeqCst);
    w.client().query(&w.accounts(), soon()).await.unwrap();
    assert_eq!(
        w.fake.token_requests.load(Ordering::SeqCst),
        2,
        "renewed after the 401"
    );
    assert_eq!(w.requests(), 2);
    // Two in a row: renewed once, then the 401 is the answer.
    w.fake.unauthorized.store(2, Ordering::SeqCst);
    let e = w.client().query(&w.accounts(), soon()).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(w.requests(), 4);
}

#[tokio::test]
async fn an_absurd_retry_after_is_clamped_and_ends_at_the_deadline() {
    let w = common::fake::world().await;
    *w.fake.throttle.lock().unwrap() = Some("99999999999".into());
    let started = Instant::now();
    let e = w
        .client()
        .query(&w.accounts(), started + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DataverseError::Deadline(ref m) if m.contains("429")),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up without waiting"
    );
    // A reasonable one is honoured.
    *w.fake.throttle.lock().unwrap() = Some("1".into());
    let started = Instant::now();
    w.client().query(&w.accounts(), soon()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn an_absurd_expires_in_is_clamped() {
    let w = common::fake::world().await;
    for value in [json!(1e30), json!("99999999999999999999"), json!(u64::MAX)] {
        *w.fake.expires_in.lock().unwrap() = value.clone();
        let tokens = common::fake::token_source(&w);
        let info = tokens.warm(soon()).await.unwrap();
        let lifetime = info.expires_at - Instant::now();
        assert!(
            lifetime <= Duration::from_secs(366 * 24 * 3600),
            "{value}: {lifetime:?}"
        );
        assert!(
            lifetime > Duration::from_secs(300 * 24 * 3600),
            "{value}: {lifetime:?}"
        );
    }
    *w.fake.expires_in.lock().unwrap() = json!("soon");
    let e = common::fake::token_source(&w)
        .warm(soon())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expires_in"), "{e}");
}

#[tokio::test]
async fn a_callers_id_taken_by_another_row_is_a_duplicate_even_after_a_503() {
    let (emu, c) = emulator_client().await;
    let id = create(&c, "someone else's", None).await.unwrap();
    // A 503 before anything is processed, then the repeat meets the other row.
    let action = json!({"kind": "status", "status": 503});
    fault_once(&emu, "POST", "accounts", action).await;
    let e = create(&c, "mine", Some(id)).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(412), Some("0x80040237")),
        "{e}"
    );
    assert_eq!(count_named(&c, "mine").await, 0);
}

#[tokio::test]
async fn a_callers_id_whose_create_answer_was_lost_is_done_once() {
    let (emu, c) = emulator_client().await;
    fault_once(&emu, "POST", "accounts", json!({"kind": "drop_after"})).await;
    let id = Uuid::new_v4();
    assert_eq!(create(&c, "mine", Some(id)).await.unwrap(), id);
    assert_eq!(retries(&c), 1);
    assert_eq!(count_named(&c, "mine").await, 1);
}

#[tokio::test]
async fn repeats_are_counted_for_the_call_that_made_them() {
    let (emu, c) = emulator_client().await;
    let id = create(&c, "counted", None).await.unwrap();
    fault_once(&emu, "GET", "accounts*", throttle()).await;
    let (row, repeats) = counting_retries(c.retrieve(
        &accounts(),
        &id.into(),
        &[ColumnName::new("name").unwrap()],
        soon(),
    ))
    .await;
    assert_eq!(row.unwrap()["name"], "counted");
    assert_eq!(repeats, 1, "a 429 then success is one repeat");
    // The next call starts from zero, and its failure is counted too: two
    // 503s before a success are two repeats.
    let (row, repeats) = counting_retries(c.retrieve(&accounts(), &id.into(), &[], soon())).await;
    assert!(row.is_ok());
    assert_eq!(repeats, 0);
    let unavailable = json!({"kind": "status", "status": 503});
    add_fault(
        &emu,
        json!({"method": "GET", "path": "accounts*", "action": unavailable, "times": 2}),
    )
    .await;
    let (row, repeats) = counting_retries(c.retrieve(&accounts(), &id.into(), &[], soon())).await;
    assert!(row.is_ok());
    assert_eq!(repeats, 2);
}
