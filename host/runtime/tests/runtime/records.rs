//! The records and metadata imports over the counting fake: what the
//! runtime itself refuses (names, ids, grants) never reaches the backend,
//! backend errors reach the guest typed, every call is audited, and
//! metadata tells what is granted on each table.

use std::sync::Arc;

use dvhost_runtime::{CallOutcome, Grants, Interface, Operation};
use dvhost_testkit::{HOSTILE, IMPORTS};

use crate::common::{capabilities, json, plugin};
use crate::fake::Fake;

#[tokio::test]
async fn refusals_are_typed_and_send_nothing() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let caps = capabilities(&fake, Grants::none().allow("account", &[Operation::Read]));
    let report = p.invoke(&caps, "errors", "{}").await;
    let out = json(&report.output.unwrap());
    let kind = |name: &str| out[name]["error"]["kind"].as_str().map(str::to_owned);
    assert_eq!(kind("not_granted").as_deref(), Some("not-granted"), "{out}");
    assert_eq!(
        kind("not_granted_metadata").as_deref(),
        Some("not-granted"),
        "{out}"
    );
    assert_eq!(
        kind("invalid_table").as_deref(),
        Some("invalid-input"),
        "{out}"
    );
    assert_eq!(
        kind("invalid_id").as_deref(),
        Some("invalid-input"),
        "{out}"
    );
    let missing = &out["missing_id"]["error"];
    assert_eq!(missing["kind"], "dataverse", "{out}");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["code"], "0x80040217");
    let audited =
        |outcome: CallOutcome| report.calls.iter().filter(|c| c.outcome == outcome).count();
    assert!(audited(CallOutcome::NotGranted) >= 2);
    assert!(audited(CallOutcome::InvalidInput) >= 2);
    assert!(
        report
            .calls
            .iter()
            .any(|c| c.interface == Interface::Metadata)
    );
    let sent = report
        .calls
        .iter()
        .filter(|c| matches!(c.outcome, CallOutcome::Ok | CallOutcome::Dataverse { .. }))
        .count();
    assert_eq!(
        fake.requests() as usize,
        sent,
        "only admitted calls reach the backend"
    );
}

#[tokio::test]
async fn crud_through_use_table_changes_the_backend() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let all = [
        Operation::Read,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
    ];
    let caps = capabilities(&fake, Grants::none().allow("contact", &all));
    let call = |input: serde_json::Value| {
        let (p, caps) = (p.clone(), caps.clone());
        async move {
            json(
                &p.invoke(&caps, "use-table", &input.to_string())
                    .await
                    .output
                    .unwrap(),
            )
        }
    };
    let created = call(serde_json::json!({"table": "contact", "operation": "create", "row": {"lastname": "Lovelace"}})).await;
    let id = created["ok"].as_str().expect("an id").to_owned();
    let read = call(serde_json::json!({"table": "contact", "operation": "read", "id": id})).await;
    assert_eq!(read["ok"]["lastname"], "Lovelace");
    call(serde_json::json!({"table": "contact", "operation": "update", "id": id, "row": {"firstname": "Ada"}})).await;
    let read = call(serde_json::json!({"table": "contact", "operation": "read", "id": id})).await;
    assert_eq!(read["ok"]["firstname"], "Ada");
    call(serde_json::json!({"table": "contact", "operation": "delete", "id": id})).await;
    let gone = call(serde_json::json!({"table": "contact", "operation": "read", "id": id})).await;
    assert_eq!(gone["error"]["status"], 404, "{gone}");
    assert!(fake.tables.lock()["contact"].is_empty());
}

#[tokio::test]
async fn page_handles_die_with_the_invocation_and_are_capped() {
    let p = plugin(HOSTILE).await;
    let fake = Arc::new(Fake::seeded());
    let mut caps = capabilities(&fake, Grants::none().allow("account", &[Operation::Read]));
    // One-row pages over five accounts: the stale-page probe opens a page,
    // drops it, and traps on the revived handle; the next call starts clean.
    let report = p.invoke(&caps, "stale-page", "{}").await;
    assert!(report.output.is_err());
    caps.limits.open_pages = 1;
    let input = serde_json::json!({"table": "account", "operation": "read"}).to_string();
    let out = json(&p.invoke(&caps, "use-table", &input).await.output.unwrap());
    assert!(
        out.get("ok").is_some(),
        "a fresh invocation has its own page budget: {out}"
    );
}

#[tokio::test]
async fn list_tables_reports_the_granted_operations() {
    let p = plugin(IMPORTS).await;
    let fake = Arc::new(Fake::seeded());
    use Operation::{Create, Delete, Read, Update};
    let grants = Grants::none()
        .allow("account", &[Read])
        .allow("contact", &[Read, Create, Update, Delete]);
    let caps = capabilities(&fake, grants);
    let only_read =
        serde_json::json!({"read": true, "create": false, "update": false, "delete": false});
    let everything =
        serde_json::json!({"read": true, "create": true, "update": true, "delete": true});

    let out = json(&p.invoke(&caps, "list-tables", "{}").await.output.unwrap());
    let granted: Vec<(&str, &serde_json::Value)> = out["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|t| (t["logical_name"].as_str().unwrap(), &t["granted"]))
        .collect();
    assert_eq!(
        granted,
        [("account", &only_read), ("contact", &everything)],
        "lead is not granted"
    );
    let input = serde_json::json!({"table": "account"}).to_string();
    let out = json(
        &p.invoke(&caps, "describe-table", &input)
            .await
            .output
            .unwrap(),
    );
    assert_eq!(out["ok"]["table"]["granted"], only_read, "{out}");
    assert_eq!(fake.requests(), 2, "one list, one description");

    // `*` adds its operations to every table's own.
    let caps = capabilities(
        &fake,
        Grants::none().allow("*", &[Read]).allow("lead", &[Delete]),
    );
    let out = json(&p.invoke(&caps, "list-tables", "{}").await.output.unwrap());
    let tables = out["ok"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(tables.len(), 3, "{out}");
    assert_eq!(tables[0]["granted"], only_read);
    assert_eq!(
        tables[2]["granted"],
        serde_json::json!({"read": true, "create": false, "update": false, "delete": true}),
        "{out}"
    );
}
