//! The Dataverse client against the in-process emulator: every operation,
//! resilience under injected faults, and no secret in logs or errors.

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CLIENT, NO_USER_CLIENT, add_fault, clear_faults, control, rec, soon};
use dvhost_dataverse::{
    AlternateKey, BatchOperation, BatchPart, BulkWrite, Certificate, Client, ColumnName, EntitySet,
    Expand, Op, Query, RecordKey, TableName, TextMatch,
};
use dvhost_emulator::RunningEmulator;
use serde_json::{Map, Value, json};
use uuid::Uuid;

struct Setup {
    emu: RunningEmulator,
    client: Client,
    cert: Arc<Certificate>,
}

async fn setup(extra_settings: &str) -> Setup {
    let cert = common::generated("sync");
    let emu = common::emulator(&cert, extra_settings).await;
    let client = common::client(&emu, &cert, CLIENT);
    Setup { emu, client, cert }
}

fn client_for(emu: &RunningEmulator, cert: &Arc<Certificate>, client_id: &str) -> Client {
    common::client(emu, cert, client_id)
}

fn set(name: &str) -> EntitySet {
    EntitySet::new(name).unwrap()
}

fn col(name: &str) -> ColumnName {
    ColumnName::new(name).unwrap()
}

fn cols(names: &[&str]) -> Vec<ColumnName> {
    names.iter().map(|n| col(n)).collect()
}

fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

/// The `name` of the account at `key`.
async fn name_at(c: &Client, key: &RecordKey) -> Value {
    let row = c
        .retrieve(&set("accounts"), key, &cols(&["name"]), soon())
        .await
        .unwrap();
    row["name"].clone()
}

fn account_number(n: &str) -> RecordKey {
    AlternateKey::new([("accountnumber", n)]).unwrap().into()
}

#[tokio::test]
async fn every_operation() {
    let s = setup("").await;
    let c = &s.client;
    let who = c.who_am_i(soon()).await.unwrap();
    assert!(!who.user_id.is_nil());

    // Create with a generated id and with a caller-supplied one.
    let a = c
        .create(
            &set("accounts"),
            &col("accountid"),
            &rec(json!({"name": "Fabrikam", "revenue": 10})),
            None,
            soon(),
        )
        .await
        .unwrap();
    let mine = Uuid::new_v4();
    assert_eq!(
        c.create(
            &set("contacts"),
            &col("contactid"),
            &rec(json!({"lastname": "O'Brien"})),
            Some(mine),
            soon()
        )
        .await
        .unwrap(),
        mine
    );
    let got = c
        .retrieve(
            &set("accounts"),
            &a.into(),
            &cols(&["name", "revenue"]),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(got["name"], "Fabrikam");

    // Retrieve and upsert by alternate key.
    c.update(
        &set("accounts"),
        a,
        &rec(json!({"accountnumber": "A-1"})),
        None,
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(name_at(c, &account_number("A-1")).await, "Fabrikam");
    c.upsert(
        &set("accounts"),
        &account_number("A-2"),
        &rec(json!({"name": "By key"})),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(name_at(c, &account_number("A-2")).await, "By key");
    let etag = c
        .retrieve(&set("accounts"), &a.into(), &cols(&["name"]), soon())
        .await
        .unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();

    // Update, conditional update conflict (412), upsert, not found.
    c.update(
        &set("accounts"),
        a,
        &rec(json!({"name": "Fabrikam 2"})),
        Some(&etag),
        soon(),
    )
    .await
    .unwrap();
    let err = c
        .update(
            &set("accounts"),
            a,
            &rec(json!({"name": "stale"})),
            Some(&etag),
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(412), Some("0x80060882")));
    let fresh = Uuid::new_v4();
    c.upsert(
        &set("accounts"),
        &fresh.into(),
        &rec(json!({"name": "Upserted"})),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(name_at(c, &fresh.into()).await, "Upserted");
    let missing = c
        .retrieve(&set("accounts"), &Uuid::new_v4().into(), &[], soon())
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(404), Some("0x80040217"))
    );

    // Associate and disassociate (1:N through the parent's collection).
    c.associate(
        &set("accounts"),
        a,
        &col("account_parent_account"),
        &set("accounts"),
        fresh,
        soon(),
    )
    .await
    .unwrap();
    // Every read asks for the lookups' tables.
    let child = c
        .retrieve(
            &set("accounts"),
            &fresh.into(),
            &cols(&["_parentaccountid_value"]),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(child["_parentaccountid_value"], a.to_string());
    assert_eq!(
        child["_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "account"
    );
    let page = c
        .query(
            &Query::new(&set("accounts"))
                .select(&["_parentaccountid_value"])
                .unwrap()
                .filter("accountid", Op::Eq, fresh)
                .unwrap()
                .page_size(5),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(
        page.rows[0]["_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "account",
        "{:?}",
        page.rows
    );
    c.disassociate(
        &set("accounts"),
        a,
        &col("account_parent_account"),
        fresh,
        soon(),
    )
    .await
    .unwrap();
    assert!(
        c.retrieve(
            &set("accounts"),
            &fresh.into(),
            &cols(&["_parentaccountid_value"]),
            soon()
        )
        .await
        .unwrap()["_parentaccountid_value"]
            .is_null()
    );

    // Bulk: CreateMultiple, UpdateMultiple, UpsertMultiple.
    let records: Vec<Map<String, Value>> = (0..25)
        .map(|i| rec(json!({"name": format!("Bulk {i:02}"), "revenue": i})))
        .collect();
    let ids = c
        .create_multiple(
            &set("accounts"),
            &table("account"),
            &col("accountid"),
            &records,
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 25);
    let updates: Vec<Map<String, Value>> = ids
        .iter()
        .take(5)
        .map(|id| rec(json!({"accountid": id, "telephone1": "5"})))
        .collect();
    c.write_multiple(
        BulkWrite::Update,
        &set("accounts"),
        &table("account"),
        &updates,
        soon(),
    )
    .await
    .unwrap();
    c.write_multiple(
        BulkWrite::Upsert,
        &set("accounts"),
        &table("account"),
        &[rec(
            json!({"accountid": Uuid::new_v4(), "name": "Bulk upsert"}),
        )],
        soon(),
    )
    .await
    .unwrap();

    // Query builder: escaping, paging to the end, count.
    let q = Query::new(&set("accounts"))
        .select(&["name"])
        .unwrap()
        .filter_text(TextMatch::StartsWith, "name", "Bulk")
        .unwrap()
        .order_by("name", false)
        .unwrap()
        .page_size(4);
    let first = c.query(&q, soon()).await.unwrap();
    assert_eq!(first.rows.len(), 4);
    assert!(first.has_more());
    let all = c.query_all(&q, soon()).await.unwrap();
    assert_eq!(all.len(), 26);
    assert_eq!(all[0]["name"], "Bulk 00");
    let hostile = Query::new(&set("contacts"))
        .select(&["lastname"])
        .unwrap()
        .filter("lastname", Op::Eq, "O'Brien")
        .unwrap();
    assert_eq!(c.query_all(&hostile, soon()).await.unwrap().len(), 1);
    let injection = Query::new(&set("accounts"))
        .select(&["name"])
        .unwrap()
        .filter("name", Op::Eq, "x' or name ne 'y")
        .unwrap();
    assert_eq!(
        c.query_all(&injection, soon()).await.unwrap().len(),
        0,
        "a quote in a value cannot widen the filter"
    );
    let counted = c
        .query(
            &Query::new(&set("accounts"))
                .select(&["name"])
                .unwrap()
                .filter("telephone1", Op::Eq, "5")
                .unwrap()
                .count(),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(counted.count, Some(5));

    // FetchXML.
    let rows = c.fetch_xml(&set("accounts"), r#"<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="Bulk upsert"/></filter></entity></fetch>"#, soon()).await.unwrap();
    assert_eq!(rows.len(), 1);

    // Delete, then 404; a second delete of the same row is an error again.
    c.delete(&set("accounts"), a, soon()).await.unwrap();
    assert_eq!(
        c.retrieve(&set("accounts"), &a.into(), &[], soon())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        c.delete(&set("accounts"), a, soon())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );

    // An app without an application user: privilege denied.
    let denied = client_for(&s.emu, &s.cert, NO_USER_CLIENT)
        .who_am_i(soon())
        .await
        .unwrap_err();
    assert_eq!(
        (denied.status(), denied.code()),
        (Some(403), Some("0x80040220"))
    );
    // The client follows the server's degree-of-parallelism hint.
    assert_eq!(c.parallelism(), 4);
}

#[tokio::test]
async fn ten_thousand_creates_under_faults_end_with_exactly_ten_thousand_rows() {
    // Service protection is raised: this test is about faults, not limits.
    let s = setup("service_protection = { requests = 1000000, window_secs = 300, execution_ms = 100000000, concurrent = 1000 }").await;
    let faults = [
        json!({"method": "POST", "path": "accounts", "action": {"kind": "throttle", "retry_after_secs": 0}, "probability": 0.07, "seed": 1}),
        json!({"method": "POST", "path": "accounts", "action": {"kind": "status", "status": 503}, "probability": 0.07, "seed": 2}),
        json!({"method": "POST", "path": "accounts", "action": {"kind": "drop_after"}, "probability": 0.07, "seed": 3}),
    ];
    let control = control(&s.emu);
    for f in faults {
        add_fault(&s.emu, f).await;
    }
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    let expected: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    for worker in 0..16 {
        let (c, expected) = (s.client.clone(), expected.clone());
        tasks.spawn(async move {
            for i in (worker..10_000).step_by(16) {
                let id = c
                    .create(
                        &set("accounts"),
                        &col("accountid"),
                        &rec(json!({"name": format!("row {i}")})),
                        None,
                        deadline,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("create {i}: {e}"));
                expected.lock().unwrap().insert(id);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let elapsed = started.elapsed();
    let stats: Value = control
        .get(format!("{}/_emulator/faults", s.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let applied: u64 = stats["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["applied"].as_u64().unwrap())
        .sum();
    clear_faults(&s.emu).await;

    let rows = s
        .client
        .query_all(
            &Query::new(&set("accounts"))
                .select(&["accountid", "name"])
                .unwrap()
                .page_size(5000),
            deadline,
        )
        .await
        .unwrap();
    let ids: HashSet<Uuid> = rows
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().parse().unwrap())
        .collect();
    let names: HashSet<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let retries = s
        .client
        .stats()
        .retries
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "10,000 creates: {applied} faults injected, {retries} retries, {:.1} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(rows.len(), 10_000, "none duplicated, none lost");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(names.len(), 10_000);
    assert_eq!(ids, *expected.lock().unwrap());
    let requests = s
        .client
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let ratio = applied as f64 / requests as f64;
    assert!(
        (0.15..=0.25).contains(&ratio),
        "about 20% of requests were faulted: {applied}/{requests}"
    );
}

#[tokio::test]
async fn batch_with_change_sets_and_rollback() {
    let s = setup("").await;
    let c = &s.client;
    let parts = vec![
        BatchPart::ChangeSet(vec![
            BatchOperation::create(&set("contacts"), json!({"lastname": "Batch"})).content_id(1),
            BatchOperation::create(
                &set("accounts"),
                json!({"name": "Batch Co", "primarycontactid@odata.bind": "$1"}),
            )
            .content_id(2),
        ]),
        BatchPart::Request(BatchOperation::query(
            &Query::new(&set("accounts"))
                .select(&["name", "_primarycontactid_value"])
                .unwrap(),
        )),
    ];
    let answers = c.batch(&parts, false, soon()).await.unwrap();
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [204, 204, 200]
    );
    assert_eq!(
        (answers[0].content_id, answers[1].content_id),
        (Some(1), Some(2))
    );
    assert!(
        answers[1]
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("OData-EntityId"))
    );
    assert_eq!(answers[2].body["value"][0]["name"], "Batch Co");
    assert!(answers[2].body["value"][0]["_primarycontactid_value"].is_string());

    // A failing change set rolls back; without continue-on-error the batch stops there.
    let failing = vec![
        BatchPart::ChangeSet(vec![
            BatchOperation::create(&set("accounts"), json!({"name": "rolled back"})).content_id(1),
            BatchOperation::create(&set("accounts"), json!({"name": 5})).content_id(2),
        ]),
        BatchPart::Request(BatchOperation::create(
            &set("accounts"),
            json!({"name": "after"}),
        )),
    ];
    let answers = c.batch(&failing, false, soon()).await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 400);
    let answers = c.batch(&failing, true, soon()).await.unwrap();
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [400, 204]
    );
    let names: Vec<String> = c
        .query_all(
            &Query::new(&set("accounts"))
                .select(&["name"])
                .unwrap()
                .order_by("name", false)
                .unwrap(),
            soon(),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["after", "Batch Co"],
        "the failed change sets left nothing behind"
    );
}

#[tokio::test]
async fn metadata_is_described_and_cached() {
    let s = setup("").await;
    let c = &s.client;
    let tables = c.list_tables(soon()).await.unwrap();
    let account = tables
        .iter()
        .find(|t| t.logical_name.as_str() == "account")
        .unwrap();
    assert_eq!(
        (
            account.entity_set.as_str(),
            account.primary_id.as_str(),
            account.display_name.as_deref()
        ),
        ("accounts", "accountid", Some("Account"))
    );
    assert_eq!(
        c.entity_set(&table("systemuser"), soon()).await.unwrap(),
        set("systemusers")
    );
    assert_eq!(
        c.entity_set(&table("nosuch"), soon())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // Every listed table is found by name (a search of the sorted list).
    let tables = c.list_tables(soon()).await.unwrap();
    assert!(tables.len() > 3, "{} tables", tables.len());
    for listed in tables.iter() {
        assert_eq!(
            &c.table(&listed.logical_name, soon()).await.unwrap(),
            listed
        );
    }
    let d = c.describe_table(&table("account"), soon()).await.unwrap();
    let col = |n: &str| d.columns.iter().find(|c| c.logical_name == n).unwrap();
    assert_eq!(
        (
            col("name").kind.as_str(),
            col("name").max_length,
            col("name").required.as_deref()
        ),
        ("String", Some(160), Some("ApplicationRequired"))
    );
    assert_eq!(col("primarycontactid").targets, ["contact"]);
    assert_eq!(
        col("accountcategorycode").options[0].label.as_deref(),
        Some("Preferred Customer")
    );
    assert_eq!(col("statuscode").options.len(), 2);
    // Cached: no further requests until invalidated.
    let before = c
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    c.describe_table(&table("account"), soon()).await.unwrap();
    c.list_tables(soon()).await.unwrap();
    assert_eq!(
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    c.invalidate_metadata();
    c.list_tables(soon()).await.unwrap();
    assert_eq!(
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
    assert!(TableName::new("account'); drop").is_err());
    // A table that does not exist is Dataverse's 404, and is not cached.
    let missing = c
        .describe_table(&table("nosuch"), soon())
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
}

#[tokio::test]
async fn fifty_concurrent_cold_metadata_lookups_make_one_request() {
    let s = setup("").await;
    let c = &s.client;
    c.who_am_i(soon()).await.unwrap();
    let before = c
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let requests = || {
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // The table list first: a description of a table with lookups reads it
    // too (each lookup target's entity set), so it would be warm after.
    let lists = (0..50).map(|_| c.list_tables(soon()));
    futures_util::future::join_all(lists).await;
    let after_lists = requests();
    assert_eq!(
        after_lists - before,
        1,
        "one loader listed the tables for all 50 callers"
    );
    let contact = table("contact");
    let lookups = (0..50).map(|_| c.describe_table(&contact, soon()));
    let described = futures_util::future::join_all(lookups).await;
    assert!(described.iter().all(|d| d.is_ok()));
    // One description is 5 requests (the entity with its many-to-one
    // relationships, the attributes, three option-set casts).
    assert_eq!(
        requests() - after_lists,
        5,
        "one loader ran for all 50 callers"
    );
}

#[tokio::test]
async fn metadata_expires_after_its_time_to_live() {
    let s = setup("").await;
    let tokens = common::token_source(
        &s.emu,
        s.cert.clone(),
        CLIENT,
        dvhost_dataverse::SigningAlgorithm::Rs256,
    );
    let c = Client::with_metadata_cache(
        tokens,
        dvhost_dataverse::MetadataCacheConfig {
            // Long enough that a loaded machine's stall between the first
            // two calls does not expire it.
            time_to_live: Duration::from_secs(2),
            max_entries: 10,
        },
    );
    let requests = || {
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    c.list_tables(soon()).await.unwrap();
    c.list_tables(soon()).await.unwrap();
    assert_eq!(requests(), 1, "served from the cache");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.list_tables(soon()).await.unwrap();
    assert_eq!(requests(), 2, "fetched again after the time to live");
}

#[tokio::test]
async fn text_filters_match_wildcard_characters_literally() {
    let s = setup("").await;
    let c = &s.client;
    for name in ["50% off", "50 x off", "A_B", "AxB", "[x] box"] {
        c.create(
            &set("accounts"),
            &col("accountid"),
            &rec(json!({ "name": name })),
            None,
            soon(),
        )
        .await
        .unwrap();
    }
    let names = |text: &'static str, how: TextMatch| {
        let q = Query::new(&set("accounts"))
            .select(&["name"])
            .unwrap()
            .filter_text(how, "name", text)
            .unwrap()
            .order_by("name", false)
            .unwrap();
        async move {
            c.query_all(&q, soon())
                .await
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // Dataverse reads `%`, `_` and `[` as LIKE wildcards; the builder escapes
    // them, so each matches only itself.
    assert_eq!(names("50%", TextMatch::StartsWith).await, ["50% off"]);
    assert_eq!(names("_", TextMatch::Contains).await, ["A_B"]);
    assert_eq!(names("[x]", TextMatch::StartsWith).await, ["[x] box"]);
    assert_eq!(names("% off", TextMatch::EndsWith).await, ["50% off"]);
}

#[tokio::test]
async fn retrieve_expands_single_and_collection_navigation() {
    let s = setup("").await;
    let c = &s.client;
    let ann = c
        .create(
            &set("contacts"),
            &col("contactid"),
            &rec(json!({"firstname": "Ann", "lastname": "Lee"})),
            None,
            soon(),
        )
        .await
        .unwrap();
    let parent = c
        .create(
            &set("accounts"),
            &col("accountid"),
            &rec(json!({"name": "Parent", "primarycontactid@odata.bind": format!("/contacts({ann})")})),
            None,
            soon(),
        )
        .await
        .unwrap();
    for kid in ["Kid A", "Kid B"] {
        c.create(
            &set("accounts"),
            &col("accountid"),
            &rec(
                json!({"name": kid, "parentaccountid@odata.bind": format!("/accounts({parent})")}),
            ),
            None,
            soon(),
        )
        .await
        .unwrap();
    }
    let expand = [
        Expand::new("primarycontactid", &["firstname"]).unwrap(),
        Expand::new("account_parent_account", &["name"]).unwrap(),
    ];
    let row = c
        .retrieve_expanded(
            &set("accounts"),
            &parent.into(),
            &cols(&["name"]),
            &expand,
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(row["name"], "Parent");
    assert_eq!(row["primarycontactid"]["firstname"], "Ann");
    assert!(row["primarycontactid"].get("lastname").is_none(), "{row:?}");
    let mut kids: Vec<&str> = row["account_parent_account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    kids.sort();
    assert_eq!(kids, ["Kid A", "Kid B"]);
    // Read as text: the same row, unparsed, members in Dataverse's order
    // (the context annotation first).
    let text = c
        .retrieve_text(
            &set("accounts"),
            &parent.into(),
            &cols(&["name"]),
            &expand,
            soon(),
        )
        .await
        .unwrap();
    assert!(text.get().starts_with(r#"{"@odata.context":"#), "{text}");
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text.get()).unwrap();
    assert_eq!(parsed, row);
    let missing = c
        .retrieve_text(&set("accounts"), &Uuid::new_v4().into(), &[], &[], soon())
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(404), Some("0x80040217"))
    );
    // An unknown navigation property is Dataverse's error, typed.
    let e = c
        .retrieve_expanded(
            &set("accounts"),
            &parent.into(),
            &[],
            &[Expand::new("nosuchnav", &[]).unwrap()],
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some("0x80060888")));
    // Names are checked before anything is sent.
    assert!(Expand::new("primarycontactid($select=x)", &[]).is_err());
    assert!(Expand::new("primarycontactid", &["a,b"]).is_err());
    // The query builder renders the same expansion.
    let q = Query::new(&set("accounts"))
        .filter("accountid", Op::Eq, parent)
        .unwrap()
        .expand_with(&expand[0]);
    let rows = c.query_all(&q, soon()).await.unwrap();
    assert_eq!(rows[0]["primarycontactid"]["firstname"], "Ann");
}
