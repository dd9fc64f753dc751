//! Plugins end to end: a guest action calls an import, the runtime checks
//! grants and quotas, [`DataverseBackend`](dvhost::DataverseBackend) sends
//! it through the transport to the in-process emulator, and the result (or
//! Dataverse's typed error) comes back to the guest. The `imports` fixture
//! has one action per import; the example plugins `hello` and `contacts`
//! run as their users would run them.

use dvhost_dataverse::{AlternateKey, ColumnName, EntitySet};
use dvhost_runtime::{
    CallOutcome, CallRecord, Grants, Interface, Level, Operation, Plugin, Report, Source,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support;
use crate::support::{World, soon};

const ALL: &[Operation] = &[
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Delete,
];

fn granted() -> Grants {
    Grants::none().allow("account", ALL).allow("contact", ALL)
}

fn accounts() -> EntitySet {
    EntitySet::new("accounts").unwrap()
}

/// Runs `action` with `input`; returns the guest's `{"ok"}`/`{"error"}`
/// answer and the report.
async fn call(
    world: &World,
    plugin: &Plugin,
    grants: Grants,
    action: &str,
    input: Value,
) -> (Value, Report) {
    let caps = world.capabilities(grants);
    let report = plugin.invoke(&caps, action, &input.to_string()).await;
    let output = match &report.output {
        Ok(text) => serde_json::from_str(text).unwrap(),
        Err(e) => panic!("{action} failed: {e} ({:?})", report.log),
    };
    (output, report)
}

/// The `ok` of a granted call; panics with the guest's error otherwise.
async fn ok(world: &World, plugin: &Plugin, action: &str, input: Value) -> (Value, Report) {
    let (output, report) = call(world, plugin, granted(), action, input).await;
    match output.get("ok") {
        Some(v) => (v.clone(), report),
        None => panic!("{action}: {output}"),
    }
}

/// The one audit record of a report.
fn only_call(report: &Report) -> &CallRecord {
    assert_eq!(report.calls.len(), 1, "{:?}", report.calls);
    &report.calls[0]
}

fn assert_audited(report: &Report, operation: &str, table: &str, outcome: CallOutcome) {
    let call = report
        .calls
        .iter()
        .find(|c| c.operation == operation)
        .unwrap_or_else(|| panic!("no {operation} in {:?}", report.calls));
    assert_eq!(call.table.as_deref(), Some(table));
    assert_eq!(call.outcome, outcome);
    assert_eq!(call.retries, 0);
}

/// The account `id` as the transport reads it (not through a plugin).
async fn account(world: &World, id: &str) -> Option<serde_json::Map<String, Value>> {
    let id: Uuid = id.parse().unwrap();
    match world
        .client
        .retrieve(&accounts(), &id.into(), &[], soon())
        .await
    {
        Ok(row) => Some(row),
        Err(e) if e.status() == Some(404) => None,
        Err(e) => panic!("{e}"),
    }
}

/// Creates the contact Ann Lee through the plugin and makes her the primary
/// contact of account `id`.
async fn give_primary_contact(w: &World, p: &Plugin, id: &str) {
    let ann = json!({"table": "contact", "row": {"firstname": "Ann", "lastname": "Lee"}});
    let (ann, _) = ok(w, p, "create", ann).await;
    let bind = format!("/contacts({})", ann.as_str().unwrap());
    let changes = json!({"primarycontactid@odata.bind": bind});
    ok(
        w,
        p,
        "update",
        json!({"table": "account", "id": id, "changes": changes}),
    )
    .await;
}

async fn setup() -> (World, Plugin) {
    let world = World::start().await;
    let engine = support::engine();
    let plugin = support::load(&engine, dvhost_testkit::IMPORTS).await;
    (world, plugin)
}

#[tokio::test]
async fn create_retrieve_update_upsert_and_delete_reach_the_emulator() {
    let (w, p) = setup().await;
    // create, with a generated id and with the guest's own.
    let (id, report) = ok(
        &w,
        &p,
        "create",
        json!({"table": "account", "row": {"name": "Fabrikam"}}),
    )
    .await;
    let id = id.as_str().unwrap().to_string();
    assert_eq!(account(&w, &id).await.unwrap()["name"], "Fabrikam");
    let audit = only_call(&report);
    assert_eq!(
        (audit.interface, audit.operation, audit.table.as_deref()),
        (Interface::Records, "create", Some("account"))
    );
    assert_eq!((audit.outcome.clone(), audit.retries), (CallOutcome::Ok, 0));
    let mine = Uuid::new_v4().to_string();
    let (given, _) = ok(
        &w,
        &p,
        "create",
        json!({"table": "account", "row": {"name": "Mine"}, "id": mine}),
    )
    .await;
    assert_eq!(given, json!(mine));
    assert_eq!(account(&w, &mine).await.unwrap()["name"], "Mine");

    // retrieve with select and expand (the related contact is granted).
    give_primary_contact(&w, &p, &id).await;
    let (row, report) = ok(
        &w,
        &p,
        "retrieve",
        json!({"table": "account", "id": id, "select": ["name"], "expand": [{"navigation": "primarycontactid", "select": ["firstname"]}]}),
    )
    .await;
    assert_eq!(row["name"], "Fabrikam");
    assert_eq!(row["primarycontactid"]["firstname"], "Ann");
    assert!(
        row.get("revenue").is_none() && row["primarycontactid"].get("lastname").is_none(),
        "{row}"
    );
    assert_audited(&report, "retrieve", "account", CallOutcome::Ok);

    // update without and with if-match; a stale ETag is Dataverse's 412.
    ok(
        &w,
        &p,
        "update",
        json!({"table": "account", "id": id, "changes": {"name": "Fabrikam 2"}}),
    )
    .await;
    assert_eq!(account(&w, &id).await.unwrap()["name"], "Fabrikam 2");
    let etag = account(&w, &id).await.unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, report) = ok(
        &w,
        &p,
        "update",
        json!({"table": "account", "id": id, "changes": {"name": "Fabrikam 3"}, "if_match": etag}),
    )
    .await;
    assert_audited(&report, "update", "account", CallOutcome::Ok);
    assert_eq!(account(&w, &id).await.unwrap()["name"], "Fabrikam 3");
    let (stale, report) = call(
        &w,
        &p,
        granted(),
        "update",
        json!({"table": "account", "id": id, "changes": {"name": "lost"}, "if_match": etag}),
    )
    .await;
    assert_eq!(
        (
            stale["error"]["kind"].as_str(),
            stale["error"]["status"].as_u64()
        ),
        (Some("dataverse"), Some(412)),
        "{stale}"
    );
    assert!(matches!(
        only_call(&report).outcome,
        CallOutcome::Dataverse { status: 412, .. }
    ));
    assert_eq!(account(&w, &id).await.unwrap()["name"], "Fabrikam 3");

    // upsert by id (creates, then changes) and by alternate key.
    let fresh = Uuid::new_v4().to_string();
    ok(
        &w,
        &p,
        "upsert",
        json!({"table": "account", "id": fresh, "row": {"name": "Upserted"}}),
    )
    .await;
    assert_eq!(account(&w, &fresh).await.unwrap()["name"], "Upserted");
    ok(
        &w,
        &p,
        "upsert",
        json!({"table": "account", "id": fresh, "row": {"name": "Upserted 2"}}),
    )
    .await;
    assert_eq!(account(&w, &fresh).await.unwrap()["name"], "Upserted 2");
    let key = json!([["accountnumber", "AK-1"]]);
    let (_, report) = ok(
        &w,
        &p,
        "upsert",
        json!({"table": "account", "alternate_key": key, "row": {"name": "Keyed"}}),
    )
    .await;
    assert_audited(&report, "upsert", "account", CallOutcome::Ok);
    let by_key = AlternateKey::new([("accountnumber", "AK-1")]).unwrap();
    let keyed = w
        .client
        .retrieve(
            &accounts(),
            &by_key.clone().into(),
            &[ColumnName::new("name").unwrap()],
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(keyed["name"], "Keyed");
    ok(
        &w,
        &p,
        "upsert",
        json!({"table": "account", "alternate_key": key, "row": {"name": "Keyed 2"}}),
    )
    .await;
    let (row, _) = ok(
        &w,
        &p,
        "retrieve",
        json!({"table": "account", "alternate_key": key, "select": ["name"]}),
    )
    .await;
    assert_eq!(row["name"], "Keyed 2");

    // delete.
    let (_, report) = ok(&w, &p, "delete", json!({"table": "account", "id": mine})).await;
    assert_audited(&report, "delete", "account", CallOutcome::Ok);
    assert!(account(&w, &mine).await.is_none());
}

#[tokio::test]
async fn queries_follow_every_page_and_bulk_writes_land() {
    let (w, p) = setup().await;
    let rows: Vec<Value> = (0..7)
        .map(|i| json!({"name": format!("Q-{i}"), "numberofemployees": i}))
        .collect();
    let (ids, report) = ok(
        &w,
        &p,
        "create-many",
        json!({"table": "account", "rows": rows}),
    )
    .await;
    assert_audited(&report, "create-many", "account", CallOutcome::Ok);
    let ids: Vec<String> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 7);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(account(&w, id).await.unwrap()["name"], format!("Q-{i}"));
    }
    give_primary_contact(&w, &p, &ids[6]).await;

    // Every option at once, paged two rows at a time to the end.
    let query = json!({
        "table": "account",
        "select": ["name", "numberofemployees"],
        "filter": [
            {"match": "starts-with", "column": "name", "text": "Q-"},
            {"column": "numberofemployees", "op": "ge", "value": 2},
        ],
        "order_by": [{"column": "numberofemployees", "descending": true}],
        "page_size": 2,
        "count": true,
        "expand": [{"navigation": "primarycontactid", "select": ["firstname"]}],
    });
    let (out, report) = ok(&w, &p, "query", query).await;
    let names: Vec<&str> = out["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Q-6", "Q-5", "Q-4", "Q-3", "Q-2"]);
    assert_eq!(out["pages"], json!([2, 2, 1]));
    assert_eq!(out["count"], 5);
    assert_eq!(out["rows"][0]["primarycontactid"]["firstname"], "Ann");
    assert!(
        out["rows"][1]["primarycontactid"].is_null(),
        "{}",
        out["rows"][1]
    );
    let operations: Vec<&str> = report.calls.iter().map(|c| c.operation).collect();
    assert_eq!(operations, ["query", "next", "next"]);
    assert!(
        report
            .calls
            .iter()
            .all(|c| c.outcome == CallOutcome::Ok && c.table.as_deref() == Some("account"))
    );

    // $top, and filters on guids, nulls and dates.
    let top = json!({"table": "account", "select": ["name"], "filter": [{"match": "starts-with", "column": "name", "text": "Q-"}], "order_by": [{"column": "name"}], "top": 3});
    let (out, _) = ok(&w, &p, "query", top).await;
    assert_eq!(out["rows"].as_array().unwrap().len(), 3);
    assert_eq!(out["rows"][0]["name"], "Q-0");
    let typed = json!({"table": "account", "select": ["name"], "filter": [
        {"column": "accountid", "op": "eq", "value": {"guid": ids[3]}},
        {"column": "telephone1", "op": "eq", "value": null},
        {"column": "createdon", "op": "gt", "value": {"date_time": "2000-01-01"}},
    ]});
    let (out, _) = ok(&w, &p, "query", typed).await;
    assert_eq!(out["rows"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["rows"][0]["name"], "Q-3");

    // update-many: each row carries its id.
    let changes: Vec<Value> = ids[..3]
        .iter()
        .map(|id| json!({"accountid": id, "name": format!("U-{id}")}))
        .collect();
    let (_, report) = ok(
        &w,
        &p,
        "update-many",
        json!({"table": "account", "rows": changes}),
    )
    .await;
    assert_audited(&report, "update-many", "account", CallOutcome::Ok);
    for id in &ids[..3] {
        assert_eq!(account(&w, id).await.unwrap()["name"], format!("U-{id}"));
    }
    assert_eq!(account(&w, &ids[3]).await.unwrap()["name"], "Q-3");
}

#[tokio::test]
async fn metadata_and_log_imports() {
    let (w, p) = setup().await;
    let shown = format!("{:?}", w.backend);
    assert!(
        shown.contains("127.0.0.1") && !shown.contains("http"),
        "{shown}"
    );
    let (tables, report) = ok(&w, &p, "list-tables", json!({})).await;
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["logical_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["account", "contact"], "only granted tables, sorted");
    assert_eq!(tables[0]["primary_id"], "accountid");
    let audit = only_call(&report);
    assert_eq!(
        (audit.interface, audit.operation, audit.table.as_deref()),
        (Interface::Metadata, "list-tables", None)
    );

    let (described, report) = ok(&w, &p, "describe-table", json!({"table": "account"})).await;
    assert_eq!(described["table"]["logical_name"], "account");
    let column = |name: &str| {
        described["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["logical_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(column("name")["kind"], "String");
    assert!(column("name")["max_length"].as_u64().unwrap() > 0);
    assert_eq!(column("primarycontactid")["targets"], json!(["contact"]));
    assert_audited(&report, "describe-table", "account", CallOutcome::Ok);

    let (_, report) = ok(
        &w,
        &p,
        "log",
        json!({"level": "warn", "message": "hello from the guest"}),
    )
    .await;
    assert!(
        report.log.iter().any(|l| l.source == Source::Log
            && l.level == Level::Warn
            && l.message == "hello from the guest"),
        "{:?}",
        report.log
    );
    assert!(report.calls.is_empty());
}

#[tokio::test]
async fn without_grants_nothing_reaches_the_emulator() {
    let (w, p) = setup().await;
    let id = Uuid::new_v4().to_string();
    // Only `contact`, read: every account call below is refused.
    let grants = || Grants::none().allow("contact", &[Operation::Read]);
    let calls = [
        ("create", json!({"table": "account", "row": {"name": "x"}})),
        ("retrieve", json!({"table": "account", "id": id})),
        (
            "update",
            json!({"table": "account", "id": id, "changes": {"name": "x"}}),
        ),
        (
            "update",
            json!({"table": "account", "id": id, "changes": {"name": "x"}, "if_match": "W/\"1\""}),
        ),
        (
            "upsert",
            json!({"table": "account", "id": id, "row": {"name": "x"}}),
        ),
        (
            "upsert",
            json!({"table": "account", "alternate_key": [["accountnumber", "A"]], "row": {"name": "x"}}),
        ),
        ("delete", json!({"table": "account", "id": id})),
        ("query", json!({"table": "account", "select": ["name"]})),
        (
            "create-many",
            json!({"table": "account", "rows": [{"name": "x"}]}),
        ),
        (
            "update-many",
            json!({"table": "account", "rows": [{"accountid": id, "name": "x"}]}),
        ),
        ("describe-table", json!({"table": "account"})),
        (
            "create",
            json!({"table": "contact", "row": {"lastname": "x"}}),
        ),
        ("delete", json!({"table": "contact", "id": id})),
    ];
    w.count_requests().await;
    for (action, input) in calls {
        let (out, report) = call(&w, &p, grants(), action, input.clone()).await;
        assert_eq!(
            out["error"]["kind"], "not-granted",
            "{action} {input}: {out}"
        );
        assert!(
            out["error"]["status"].is_null() && out["error"]["code"].is_null(),
            "{out}"
        );
        let audit = only_call(&report);
        assert_eq!(audit.outcome, CallOutcome::NotGranted, "{action}");
        assert_eq!(w.requests().await, 0, "{action} {input} sent a request");
    }
    // An expansion into a table not granted read is refused too (after
    // reading the granted table's metadata, never its rows).
    let grants = Grants::none().allow("account", &[Operation::Read]);
    let expand =
        json!({"table": "account", "id": id, "expand": [{"navigation": "primarycontactid"}]});
    let (out, _) = call(&w, &p, grants.clone(), "retrieve", expand).await;
    assert_eq!(out["error"]["kind"], "not-granted", "{out}");
    // list-tables shows only granted tables: none at all without grants.
    let (out, _) = call(&w, &p, Grants::none(), "list-tables", json!({})).await;
    assert_eq!(out["ok"], json!([]));
    let before = w.requests().await;
    let rows = || async {
        let query = dvhost_dataverse::Query::new(&accounts());
        w.client.query_all(&query, soon()).await.unwrap().len()
    };
    assert_eq!(rows().await, 0, "no account was created");
    assert_eq!(w.requests().await, before + 1, "the counter counts");
}

#[tokio::test]
async fn dataverse_errors_reach_the_guest_typed_and_retries_are_audited() {
    let (w, p) = setup().await;
    let missing = Uuid::new_v4().to_string();
    let (out, report) = call(
        &w,
        &p,
        granted(),
        "retrieve",
        json!({"table": "account", "id": missing}),
    )
    .await;
    let error = &out["error"];
    assert_eq!(error["kind"], "dataverse", "{out}");
    assert_eq!(error["status"], 404);
    assert_eq!(error["code"], "0x80040217");
    assert!(
        error["message"].as_str().unwrap().contains(&missing),
        "{out}"
    );
    let text = out.to_string();
    assert!(
        !text.contains("http") && !text.contains("/api/data"),
        "{text}"
    );
    assert_eq!(
        only_call(&report).outcome,
        CallOutcome::Dataverse {
            status: 404,
            code: Some("0x80040217".into()),
            retry_after: None,
        }
    );
    let (out, _) = call(
        &w,
        &p,
        granted(),
        "delete",
        json!({"table": "account", "id": missing}),
    )
    .await;
    assert_eq!(
        (
            out["error"]["status"].as_u64(),
            out["error"]["code"].as_str()
        ),
        (Some(404), Some("0x80040217"))
    );

    // Names the transport refuses are invalid input, and nothing is sent.
    w.count_requests().await;
    for (action, input) in [
        (
            "retrieve",
            json!({"table": "account", "id": missing, "select": ["name,revenue"]}),
        ),
        (
            "retrieve",
            json!({"table": "account", "id": missing, "expand": [{"navigation": "x($top=1)"}]}),
        ),
        (
            "query",
            json!({"table": "account", "filter": [{"column": "name) or (1 eq 1", "op": "eq", "value": 1}]}),
        ),
        (
            "query",
            json!({"table": "account", "filter": [{"column": "createdon", "op": "gt", "value": {"date_time": "yesterday"}}]}),
        ),
        (
            "retrieve",
            json!({"table": "account", "alternate_key": [["a b", "x"]]}),
        ),
    ] {
        let (out, _) = call(
            &w,
            &p,
            Grants::none().allow("*", ALL),
            action,
            input.clone(),
        )
        .await;
        assert_eq!(out["error"]["kind"], "invalid-input", "{input}: {out}");
    }
    // The table's metadata was cached by the calls above: nothing was sent.
    assert_eq!(w.requests().await, 0);

    // A throttled call is repeated by the transport and audited with it.
    let (id, _) = ok(
        &w,
        &p,
        "create",
        json!({"table": "account", "row": {"name": "Throttled"}}),
    )
    .await;
    w.add_fault(json!({"method": "GET", "path": "accounts*", "action": {"kind": "throttle", "retry_after_secs": 0}, "times": 1})).await;
    let (row, report) = ok(
        &w,
        &p,
        "retrieve",
        json!({"table": "account", "id": id, "select": ["name"]}),
    )
    .await;
    assert_eq!(row["name"], "Throttled");
    let audit = only_call(&report);
    assert_eq!(
        (audit.operation, audit.outcome.clone(), audit.retries),
        ("retrieve", CallOutcome::Ok, 1)
    );
}

#[tokio::test]
async fn the_hello_example_greets_and_reads_an_account() {
    let w = World::start().await;
    let engine = support::engine();
    let hello = support::load(&engine, dvhost_testkit::HELLO).await;
    let caps = w.capabilities(Grants::none().allow("account", &[Operation::Read]));
    let report = hello.invoke(&caps, "hello", r#"{"name":"Ada"}"#).await;
    assert_eq!(
        report.output.as_deref(),
        Ok(r#"{"greeting":"Hello, Ada!"}"#)
    );

    let id = w
        .client
        .create(
            &accounts(),
            &ColumnName::new("accountid").unwrap(),
            &json!({"name": "Contoso", "revenue": 5})
                .as_object()
                .unwrap()
                .clone(),
            None,
            soon(),
        )
        .await
        .unwrap();
    // Passed through unparsed (`RawRecord`) or parsed into a `Record`: the
    // same row.
    let mut rows = Vec::new();
    for action in ["retrieve-account", "retrieve-account-record"] {
        let report = hello
            .invoke(&caps, action, &json!({"id": id}).to_string())
            .await;
        let row: Value = serde_json::from_str(report.output.as_ref().expect(action)).unwrap();
        assert_eq!(
            (row["name"].as_str(), row["accountid"].as_str()),
            (Some("Contoso"), Some(id.to_string().as_str())),
            "{action}"
        );
        assert_audited(&report, "retrieve", "account", CallOutcome::Ok);
        rows.push(row);
    }
    assert_eq!(rows[0], rows[1]);

    // Not granted: the action fails with the host's reason.
    let report = hello
        .invoke(
            &w.capabilities(Grants::none()),
            "retrieve-account",
            &json!({"id": id}).to_string(),
        )
        .await;
    let failed = report.output.expect_err("not granted").to_string();
    assert!(failed.contains("not-granted"), "{failed}");
}

#[tokio::test]
async fn the_contacts_example_creates_and_pages_an_accounts_contacts() {
    let w = World::start().await;
    let engine = support::engine();
    let contacts = support::load(&engine, dvhost_testkit::CONTACTS).await;
    let row = json!({"name": "Northwind"});
    let account = w
        .client
        .create(
            &accounts(),
            &ColumnName::new("accountid").unwrap(),
            row.as_object().unwrap(),
            None,
            soon(),
        )
        .await
        .unwrap();
    let caps =
        w.capabilities(Grants::none().allow("contact", &[Operation::Read, Operation::Create]));
    let mut created = Vec::new();
    for last in ["Baker", "Adams", "Evans", "Clark", "Davis"] {
        let input = json!({"account_id": account, "first_name": "Sam", "last_name": last});
        let report = contacts
            .invoke(&caps, "create-contact", &input.to_string())
            .await;
        let out: Value =
            serde_json::from_str(report.output.as_ref().expect("create-contact")).unwrap();
        created.push(out["id"].as_str().unwrap().to_string());
        assert_audited(&report, "create", "contact", CallOutcome::Ok);
    }
    let input = json!({"account_id": account, "page_size": 2});
    let report = contacts
        .invoke(&caps, "list-contacts", &input.to_string())
        .await;
    let out: Value = serde_json::from_str(report.output.as_ref().expect("list-contacts")).unwrap();
    let names: Vec<&str> = out["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Adams", "Baker", "Clark", "Davis", "Evans"]);
    assert_eq!(
        (out["pages"].as_u64(), out["total"].as_u64()),
        (Some(3), Some(5))
    );
    let mut ids: Vec<&str> = out["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    created.sort();
    assert_eq!(ids, created);
    let operations: Vec<&str> = report.calls.iter().map(|c| c.operation).collect();
    assert_eq!(operations, ["query", "next", "next"]);
}
