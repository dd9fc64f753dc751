//! The generated table actions (`plugins/tables`) over the counting fake:
//! `Plugin::describe_with` runs `describe` under a connection's
//! capabilities, so the action list and its schemas come from the granted
//! tables' metadata; each action reaches the backend in the Web API's
//! shape; bad input is refused before any records call.

use std::sync::Arc;

use dvhost_runtime::backend::{
    ColumnInfo, Condition, FilterValue, LookupTarget, RequiredLevel, TableDescription, TableInfo,
};
use dvhost_runtime::{Capabilities, Grants, Interface, InvokeError, LoadError, Operation, Plugin};
use dvhost_testkit::TABLES;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{capabilities, json, plugin};
use crate::fake::Fake;

const ALL: &[Operation] = &[
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Delete,
];

fn column(name: &str, kind: &str) -> ColumnInfo {
    ColumnInfo {
        logical_name: name.into(),
        kind: kind.into(),
        valid_for_create: true,
        valid_for_update: true,
        ..ColumnInfo::default()
    }
}

fn read_only(mut c: ColumnInfo) -> ColumnInfo {
    c.valid_for_create = false;
    c.valid_for_update = false;
    c
}

fn lookup(name: &str, kind: &str, targets: &[(&str, &str, &str)]) -> ColumnInfo {
    ColumnInfo {
        targets: targets.iter().map(|t| t.0.to_owned()).collect(),
        lookup_targets: targets
            .iter()
            .map(|(table, navigation, entity_set)| LookupTarget {
                table: (*table).into(),
                navigation: (*navigation).into(),
                entity_set: (*entity_set).into(),
            })
            .collect(),
        ..column(name, kind)
    }
}

fn table(name: &str, primary_name: &str) -> TableInfo {
    TableInfo {
        logical_name: name.into(),
        display_name: Some(name.to_uppercase()),
        primary_id: format!("{name}id"),
        primary_name: Some(primary_name.into()),
        is_custom: false,
    }
}

/// A fake with account and contact described after the standard tables.
fn fake() -> Arc<Fake> {
    let fake = Fake::seeded();
    let account = TableDescription {
        table: table("account", "name"),
        columns: vec![
            ColumnInfo {
                required: RequiredLevel::SystemRequired,
                valid_for_update: false,
                ..column("accountid", "Uniqueidentifier")
            },
            ColumnInfo {
                required: RequiredLevel::ApplicationRequired,
                max_length: Some(160),
                display_name: Some("Account Name".into()),
                ..column("name", "String")
            },
            ColumnInfo {
                options: vec![
                    (1, Some("Preferred Customer".into())),
                    (2, Some("Standard".into())),
                ],
                ..column("accountcategorycode", "Picklist")
            },
            ColumnInfo {
                min_value: Some(0.0),
                max_value: Some(1_000_000_000.0),
                ..column("numberofemployees", "Integer")
            },
            ColumnInfo {
                min_value: Some(0.0),
                max_value: Some(1e14),
                precision: Some(2),
                ..column("revenue", "Money")
            },
            column("creditonhold", "Boolean"),
            lookup(
                "primarycontactid",
                "Lookup",
                &[("contact", "primarycontactid", "contacts")],
            ),
            ColumnInfo {
                required: RequiredLevel::SystemRequired,
                ..lookup(
                    "ownerid",
                    "Owner",
                    &[
                        ("systemuser", "ownerid", "systemusers"),
                        ("team", "ownerid", "teams"),
                    ],
                )
            },
            ColumnInfo {
                required: RequiredLevel::SystemRequired,
                ..column("owneridtype", "EntityName")
            },
            read_only(column("createdon", "DateTime")),
            ColumnInfo {
                required: RequiredLevel::SystemRequired,
                valid_for_create: false,
                options: vec![(0, Some("Active".into())), (1, Some("Inactive".into()))],
                ..column("statecode", "State")
            },
        ],
    };
    let contact = TableDescription {
        table: table("contact", "fullname"),
        columns: vec![
            ColumnInfo {
                required: RequiredLevel::SystemRequired,
                valid_for_update: false,
                ..column("contactid", "Uniqueidentifier")
            },
            ColumnInfo {
                max_length: Some(50),
                required: RequiredLevel::Recommended,
                ..column("firstname", "String")
            },
            ColumnInfo {
                max_length: Some(50),
                required: RequiredLevel::ApplicationRequired,
                ..column("lastname", "String")
            },
            ColumnInfo {
                date_only: true,
                ..column("birthdate", "DateTime")
            },
            lookup(
                "parentcustomerid",
                "Customer",
                &[
                    ("account", "parentcustomerid_account", "accounts"),
                    ("contact", "parentcustomerid_contact", "contacts"),
                ],
            ),
        ],
    };
    fake.descriptions.lock().insert("account".into(), account);
    fake.descriptions.lock().insert("contact".into(), contact);
    Arc::new(fake)
}

fn granted(fake: &Arc<Fake>) -> Capabilities {
    capabilities(
        fake,
        Grants::none().allow("account", ALL).allow("contact", ALL),
    )
}

/// The tables plugin described under `caps`.
async fn described(caps: &Capabilities) -> Plugin {
    plugin(TABLES)
        .await
        .describe_with(caps)
        .await
        .expect("describe under the connection")
}

async fn invoke(p: &Plugin, caps: &Capabilities, action: &str, input: Value) -> Value {
    let report = p.invoke(caps, action, &input.to_string()).await;
    match report.output {
        Ok(text) => json(&text),
        Err(e) => panic!("{action}: {e}"),
    }
}

async fn refused(p: &Plugin, caps: &Capabilities, action: &str, input: Value) -> String {
    let report = p.invoke(caps, action, &input.to_string()).await;
    assert!(
        report
            .calls
            .iter()
            .all(|c| c.interface == Interface::Metadata),
        "{action} {input}: a records call was made: {:?}",
        report.calls
    );
    match report.output {
        Err(InvokeError::InvalidInput(m)) => m,
        other => panic!("{action} {input}: expected invalid input, got {other:?}"),
    }
}

fn schema<'p>(p: &'p Plugin, action: &str) -> (&'p Value, &'p Value) {
    let a = p
        .action(action)
        .unwrap_or_else(|| panic!("no action {action}"));
    (&a.input_schema, &a.output_schema)
}

#[tokio::test]
async fn describe_with_builds_schemas_of_the_granted_tables_only() {
    // Loaded with no connection: no actions, and nothing asked.
    let unconnected = plugin(TABLES).await;
    assert!(unconnected.actions().is_empty());
    let fake = fake();
    let nothing = unconnected
        .describe_with(&capabilities(&fake, Grants::none()))
        .await
        .unwrap();
    assert!(nothing.actions().is_empty());
    assert_eq!(fake.requests(), 0, "no grants: the backend is not asked");

    let p = described(&granted(&fake)).await;
    let names: Vec<&str> = p.actions().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "account.create",
            "account.retrieve",
            "account.update",
            "account.delete",
            "account.list",
            "contact.create",
            "contact.retrieve",
            "contact.update",
            "contact.delete",
            "contact.list",
        ],
        "lead is in the environment but not granted"
    );
    assert_eq!(p.content_hash(), unconnected.content_hash());
    assert!(
        unconnected.actions().is_empty(),
        "the original is unchanged"
    );

    let (create, _) = schema(&p, "account.create");
    assert_eq!(create["required"], json!(["name"]), "{create}");
    assert_eq!(create["additionalProperties"], false);
    let props = &create["properties"];
    assert_eq!(
        props["name"],
        json!({"type": "string", "maxLength": 160, "title": "Account Name"})
    );
    assert_eq!(props["accountcategorycode"]["enum"], json!([1, 2, null]));
    assert!(
        props["accountcategorycode"]["description"]
            .as_str()
            .unwrap()
            .contains("1 = Preferred Customer")
    );
    assert_eq!(props["numberofemployees"]["minimum"], 0);
    assert_eq!(props["numberofemployees"]["maximum"], 1_000_000_000);
    assert_eq!(
        props["numberofemployees"]["type"],
        json!(["integer", "null"])
    );
    assert_eq!(props["revenue"]["type"], json!(["number", "null"]));
    assert_eq!(props["creditonhold"]["type"], json!(["boolean", "null"]));
    assert_eq!(props["primarycontactid"]["format"], "uuid");
    assert_eq!(props["accountid"]["format"], "uuid");
    for absent in ["createdon", "statecode", "owneridtype"] {
        assert!(props.get(absent).is_none(), "{absent} in {props}");
    }
    assert_eq!(
        props["ownerid"]["properties"]["table"]["enum"],
        json!(["systemuser", "team"])
    );

    let (update, _) = schema(&p, "account.update");
    let row = &update["properties"]["row"]["properties"];
    assert!(
        row.get("statecode").is_some() && row.get("accountid").is_none(),
        "{row}"
    );
    assert_eq!(
        row["statecode"]["enum"],
        json!([0, 1]),
        "system-required: never null"
    );

    let (retrieve_in, row_out) = schema(&p, "account.retrieve");
    assert_eq!(retrieve_in["required"], json!(["id"]));
    assert!(row_out["properties"].get("createdon").is_some());
    assert_eq!(row_out["properties"]["createdon"]["format"], "date-time");
    assert!(row_out["properties"].get("owneridtype").is_none());

    let (create, _) = schema(&p, "contact.create");
    assert_eq!(create["required"], json!(["lastname"]));
    let customer = &create["properties"]["parentcustomerid"];
    assert_eq!(
        customer["properties"]["table"]["enum"],
        json!(["account", "contact"])
    );
    assert_eq!(customer["required"], json!(["table", "id"]));
    assert_eq!(create["properties"]["birthdate"]["format"], "date");

    let (list, list_out) = schema(&p, "account.list");
    assert_eq!(list["properties"]["top"]["maximum"], 5000);
    assert_eq!(list["properties"]["top"]["default"], 50);
    assert!(list_out["properties"]["rows"]["items"]["properties"]["name"].is_object());
}

#[tokio::test]
async fn describe_fails_loudly_when_metadata_cannot_be_read() {
    let p = plugin(TABLES).await;
    let caps = Capabilities {
        grants: Arc::new(Grants::none().allow("account", ALL)),
        ..Capabilities::unconnected()
    };
    match p.describe_with(&caps).await {
        Err(LoadError::Describe(m)) => assert!(m.contains("describe failed"), "{m}"),
        other => panic!("expected a describe error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_action_reaches_the_backend_in_the_web_apis_shape() {
    let fake = fake();
    let caps = granted(&fake);
    let p = described(&caps).await;
    let contact = Uuid::from_u128(0xc001).to_string();
    let created = invoke(
        &p,
        &caps,
        "account.create",
        json!({"name": "Fabrikam", "accountcategorycode": 1, "revenue": 5000.5,
               "primarycontactid": contact, "creditonhold": false}),
    )
    .await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let stored = fake.tables.lock()["account"][&id].clone();
    assert_eq!(stored["name"], "Fabrikam");
    assert_eq!(
        stored["primarycontactid@odata.bind"],
        format!("/contacts({contact})")
    );
    assert!(!stored.contains_key("primarycontactid"));

    // A chosen id is the new row's id.
    let chosen = Uuid::from_u128(0xabc).to_string();
    let created = invoke(
        &p,
        &caps,
        "account.create",
        json!({"accountid": chosen, "name": "Chosen"}),
    )
    .await;
    assert_eq!(created["id"], chosen);

    // Retrieve: readable columns only, lookups as ids under their own name.
    fake.tables
        .lock()
        .get_mut("account")
        .unwrap()
        .get_mut(&id)
        .unwrap()
        .extend(
            json!({"@odata.etag": "W/\"1\"", "_primarycontactid_value": contact,
                   "name@OData.Community.Display.V1.FormattedValue": "x"})
            .as_object()
            .unwrap()
            .clone(),
        );
    let row = invoke(&p, &caps, "account.retrieve", json!({"id": id})).await;
    assert_eq!(row["name"], "Fabrikam");
    assert_eq!(row["primarycontactid"], contact);
    assert!(row.get("@odata.etag").is_none() && row.get("primarycontactid@odata.bind").is_none());

    let out = invoke(
        &p,
        &caps,
        "account.update",
        json!({"id": id, "row": {"name": "Fabrikam 2", "primarycontactid": null}}),
    )
    .await;
    assert_eq!(out, json!({}));
    let stored = fake.tables.lock()["account"][&id].clone();
    assert_eq!(stored["name"], "Fabrikam 2");
    assert_eq!(stored["primarycontactid@odata.bind"], Value::Null);

    // A customer lookup names its table.
    let account = id.to_string();
    let created = invoke(
        &p,
        &caps,
        "contact.create",
        json!({"lastname": "Lee", "birthdate": "1990-05-17",
               "parentcustomerid": {"table": "account", "id": account}}),
    )
    .await;
    let contact_id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let stored = fake.tables.lock()["contact"][&contact_id].clone();
    assert_eq!(
        stored["parentcustomerid_account@odata.bind"],
        format!("/accounts({account})")
    );

    // List: the query is written in Web API terms; pages are followed up
    // to `top` (the fake holds 7 accounts now).
    let listed = invoke(
        &p,
        &caps,
        "account.list",
        json!({
            "select": ["name", "primarycontactid"],
            "filter": [
                {"column": "name", "operator": "starts_with", "value": "Fab"},
                {"column": "primarycontactid", "operator": "eq", "value": contact},
                {"column": "numberofemployees", "operator": "ge", "value": 10},
                {"column": "creditonhold", "operator": "ne", "value": null},
            ],
            "order_by": [{"column": "name", "descending": true}],
            "top": 3,
        }),
    )
    .await;
    assert_eq!(listed["rows"].as_array().unwrap().len(), 3);
    assert_eq!(listed["more"], true);
    let (t, spec) = fake.queries.lock().last().cloned().unwrap();
    assert_eq!(t, "account");
    assert_eq!(spec.select, ["name", "_primarycontactid_value"]);
    assert_eq!(spec.page_size, Some(3));
    assert_eq!(spec.order_by[0].column, "name");
    assert!(spec.order_by[0].descending);
    assert!(matches!(&spec.filter[1],
        Condition::Compare { column, value: FilterValue::Guid(g), .. }
            if column == "_primarycontactid_value" && g.to_string() == contact));
    assert!(matches!(
        &spec.filter[2],
        Condition::Compare {
            value: FilterValue::Integer(10),
            ..
        }
    ));
    assert!(matches!(
        &spec.filter[3],
        Condition::Compare {
            value: FilterValue::Null,
            ..
        }
    ));
    let all = invoke(&p, &caps, "account.list", json!({"top": 100})).await;
    assert_eq!(all["rows"].as_array().unwrap().len(), 7);
    assert_eq!(all["more"], false);
    let paged = {
        let before = fake.requests();
        let listed = invoke(&p, &caps, "account.list", json!({"top": 6})).await;
        assert_eq!(listed["rows"].as_array().unwrap().len(), 6);
        fake.requests() - before
    };
    assert!(paged >= 2, "describe-table and one page at least");

    let out = invoke(&p, &caps, "account.delete", json!({"id": id})).await;
    assert_eq!(out, json!({}));
    assert!(!fake.tables.lock()["account"].contains_key(&id));
    let report = p
        .invoke(&caps, "account.retrieve", &json!({"id": id}).to_string())
        .await;
    assert!(
        matches!(&report.output, Err(InvokeError::InvalidInput(m)) if m.contains("404")),
        "{:?}",
        report.output
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_any_records_call() {
    let fake = fake();
    let caps = granted(&fake);
    let p = described(&caps).await;
    let id = Uuid::from_u128(0xa001).to_string();
    let cases = [
        (
            "account.create",
            json!({"name": "A", "colour": "red"}),
            "no column 'colour'",
        ),
        ("account.create", json!({"name": 7}), "expected text"),
        (
            "account.create",
            json!({"name": "x".repeat(161)}),
            "longer than 160",
        ),
        (
            "account.create",
            json!({"name": "A", "accountcategorycode": 3}),
            "not one of",
        ),
        (
            "account.create",
            json!({"name": "A", "numberofemployees": -1}),
            "outside",
        ),
        (
            "account.create",
            json!({"name": "A", "numberofemployees": 1.5}),
            "whole number",
        ),
        (
            "account.create",
            json!({"name": "A", "creditonhold": "no"}),
            "true or false",
        ),
        (
            "account.create",
            json!({"name": "A", "primarycontactid": "nope"}),
            "GUID",
        ),
        (
            "account.create",
            json!({"name": "A", "createdon": "2024-01-01T00:00:00Z"}),
            "cannot be set",
        ),
        (
            "account.create",
            json!({"name": "A", "statecode": 0}),
            "cannot be set",
        ),
        (
            "account.create",
            json!({"accountcategorycode": 1}),
            "needs name",
        ),
        ("account.create", json!({"name": null}), "required"),
        ("account.create", json!([1]), "JSON object"),
        (
            "contact.create",
            json!({"lastname": "L", "birthdate": "1990-02-30"}),
            "not a date",
        ),
        (
            "contact.create",
            json!({"lastname": "L", "parentcustomerid": id}),
            "table",
        ),
        (
            "contact.create",
            json!({"lastname": "L", "parentcustomerid": {"table": "lead", "id": id}}),
            "cannot point to lead",
        ),
        ("account.update", json!({"id": id, "row": {}}), "no column"),
        (
            "account.update",
            json!({"id": id, "row": {"accountid": id}}),
            "cannot be set",
        ),
        (
            "account.update",
            json!({"id": id, "row": {"statecode": null}}),
            "required",
        ),
        (
            "account.update",
            json!({"id": "x", "row": {"name": "A"}}),
            "GUID",
        ),
        (
            "account.retrieve",
            json!({"id": id, "select": ["colour"]}),
            "no readable column",
        ),
        (
            "account.retrieve",
            json!({"id": id, "extra": 1}),
            "unknown property",
        ),
        ("account.delete", json!({}), "`id` is missing"),
        ("account.list", json!({"top": 0}), "`top`"),
        ("account.list", json!({"top": 5001}), "`top`"),
        (
            "account.list",
            json!({"filter": [{"column": "creditonhold", "operator": "gt", "value": true}]}),
            "takes the operators",
        ),
        (
            "account.list",
            json!({"filter": [{"column": "name", "operator": "lt", "value": null}]}),
            "eq or ne",
        ),
        (
            "account.list",
            json!({"filter": [{"column": "numberofemployees", "operator": "eq", "value": "ten"}]}),
            "whole number",
        ),
        (
            "account.list",
            json!({"order_by": [{"column": "owneridtype"}]}),
            "no readable column",
        ),
    ];
    for (action, input, expected) in cases {
        let message = refused(&p, &caps, action, input.clone()).await;
        assert!(
            message.contains(expected),
            "{action} {input}: '{message}' does not say '{expected}'"
        );
    }
    assert!(fake.queries.lock().is_empty());

    // An action of a table the plugin is not granted is unknown to it.
    let report = p.invoke(&caps, "lead.create", "{}").await;
    assert!(matches!(report.output, Err(InvokeError::UnknownAction(_))));
    let report = p.invoke(&caps, "account.merge", "{}").await;
    assert!(matches!(report.output, Err(InvokeError::UnknownAction(_))));
}
