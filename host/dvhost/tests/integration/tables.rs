//! The generated table actions (`plugins/tables`) end to end: described
//! under a real connection to the emulator (`Plugin::describe_with`), their
//! schemas come from the environment's live metadata of account and
//! contact, and each action creates, reads, changes, lists and deletes real
//! rows through the transport, lookups bound by id. The actions follow the
//! granted operations: a table granted only read offers retrieve and list.

use dvhost_runtime::{Grants, Interface, InvokeError, Operation, Plugin};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support;
use crate::support::{World, soon};

/// Every operation on the integration's tables, account and contact (lead
/// is in the environment too, and stays ungranted).
fn granted() -> Grants {
    use Operation::{Create, Delete, Read, Update};
    ["account", "contact"]
        .into_iter()
        .fold(Grants::none(), |g, t| {
            g.allow(t, &[Read, Create, Update, Delete])
        })
}

async fn setup() -> (World, Plugin) {
    let world = World::start().await;
    let loaded = support::load(&support::engine(), dvhost_testkit::TABLES).await;
    assert!(
        loaded.actions().is_empty(),
        "no connection at load: no actions"
    );
    let plugin = loaded
        .describe_with(&world.capabilities(granted()))
        .await
        .expect("described under the connection");
    (world, plugin)
}

async fn run(w: &World, p: &Plugin, action: &str, input: Value) -> Result<Value, InvokeError> {
    let report = p
        .invoke(&w.capabilities(granted()), action, &input.to_string())
        .await;
    report
        .output
        .map(|text| serde_json::from_str(&text).unwrap())
}

async fn ok(w: &World, p: &Plugin, action: &str, input: Value) -> Value {
    run(w, p, action, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{action} {input}: {e}"))
}

fn input_properties<'p>(p: &'p Plugin, action: &str) -> &'p Value {
    &p.action(action).unwrap().input_schema["properties"]
}

#[tokio::test]
async fn schemas_come_from_the_environments_metadata_of_granted_tables() {
    let (_w, p) = setup().await;
    let names: Vec<&str> = p.actions().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    for table in ["account", "contact"] {
        for op in ["create", "retrieve", "update", "delete", "list"] {
            assert!(
                names.contains(&format!("{table}.{op}").as_str()),
                "{names:?}"
            );
        }
    }
    assert!(
        !names.iter().any(|n| n.starts_with("lead.")),
        "lead is not granted"
    );
    let account = &p.action("account.create").unwrap().input_schema;
    assert_eq!(account["required"], json!(["name"]));
    let props = &account["properties"];
    assert_eq!(props["name"]["type"], "string");
    assert_eq!(props["name"]["maxLength"], 160);
    let category = props["accountcategorycode"]["enum"].as_array().unwrap();
    assert!(category.contains(&json!(1)) && category.contains(&json!(2)));
    assert_eq!(props["primarycontactid"]["format"], "uuid");
    assert_eq!(props["numberofemployees"]["minimum"], 0);
    assert!(props.get("createdon").is_none(), "read-only");
    assert!(props.get("statecode").is_none(), "not valid for create");
    assert!(props.get("owneridtype").is_none());
    let contact = input_properties(&p, "contact.create");
    assert_eq!(
        p.action("contact.create").unwrap().input_schema["required"],
        json!(["lastname"])
    );
    assert_eq!(contact["birthdate"]["format"], "date");
    assert_eq!(
        contact["parentcustomerid"]["properties"]["table"]["enum"],
        json!(["account", "contact"])
    );
    let row = &p.action("contact.retrieve").unwrap().output_schema["properties"];
    assert_eq!(row["createdon"]["format"], "date-time");
    // Read back, a customer lookup names its table too; a filter on it
    // compares ids.
    assert_eq!(
        row["parentcustomerid"]["properties"]["table"]["enum"],
        json!(["account", "contact"])
    );
    assert_eq!(row["parentcustomerid"]["type"], json!(["object", "null"]));
    assert_eq!(row["parentcustomerid"]["required"], json!(["table", "id"]));
    let list = &p.action("contact.list").unwrap().input_schema;
    let conditions = list["properties"]["filter"]["items"]["oneOf"]
        .as_array()
        .expect("one schema per filterable column");
    let on_customer = conditions
        .iter()
        .find(|c| c["properties"]["column"]["const"] == "parentcustomerid")
        .unwrap();
    assert_eq!(on_customer["properties"]["value"]["format"], "uuid");
}

#[tokio::test]
async fn crud_and_list_work_on_real_rows_with_lookups_bound_by_id() {
    let (w, p) = setup().await;
    let created = ok(
        &w,
        &p,
        "account.create",
        json!({"name": "Fabrikam", "accountcategorycode": 1, "numberofemployees": 40,
               "creditonhold": false, "revenue": 5000.5}),
    )
    .await;
    let account = created["id"].as_str().unwrap().to_owned();
    let id: Uuid = account.parse().unwrap();
    let stored = w
        .client
        .retrieve(
            &dvhost_dataverse::EntitySet::new("accounts").unwrap(),
            &id.into(),
            &[],
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(stored["name"], "Fabrikam");
    assert_eq!(stored["accountcategorycode"], 1);

    // A customer lookup names its table; it is bound by id.
    let created = ok(
        &w,
        &p,
        "contact.create",
        json!({"firstname": "Ann", "lastname": "Lee", "birthdate": "1990-05-17",
               "parentcustomerid": {"table": "account", "id": account}}),
    )
    .await;
    let contact = created["id"].as_str().unwrap().to_owned();
    let row = ok(&w, &p, "contact.retrieve", json!({"id": contact})).await;
    assert_eq!(row["lastname"], "Lee");
    assert_eq!(
        row["parentcustomerid"],
        json!({"table": "account", "id": account})
    );
    assert_eq!(row["contactid"], contact);
    assert!(row.as_object().unwrap().keys().all(|k| !k.contains('@')));

    // A single-target lookup takes the id alone.
    let out = ok(
        &w,
        &p,
        "account.update",
        json!({"id": account, "row": {"primarycontactid": contact, "name": "Fabrikam Ltd"}}),
    )
    .await;
    assert_eq!(out, json!({}));
    let row = ok(
        &w,
        &p,
        "account.retrieve",
        json!({"id": account, "select": ["name", "primarycontactid", "accountcategorycode"]}),
    )
    .await;
    assert_eq!(row["name"], "Fabrikam Ltd");
    assert_eq!(row["primarycontactid"], contact);
    assert_eq!(row["accountcategorycode"], 1);

    // List: a filter on a lookup, and `top` with `more`.
    for n in 0..3 {
        ok(
            &w,
            &p,
            "account.create",
            json!({"name": format!("Other {n}")}),
        )
        .await;
    }
    let listed = ok(
        &w,
        &p,
        "contact.list",
        json!({"filter": [{"column": "parentcustomerid", "operator": "eq", "value": account}],
               "select": ["lastname", "parentcustomerid"]}),
    )
    .await;
    assert_eq!(listed["rows"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["rows"][0]["lastname"], "Lee");
    assert_eq!(
        listed["rows"][0]["parentcustomerid"],
        json!({"table": "account", "id": account})
    );
    assert_eq!(listed["more"], false);
    let listed = ok(
        &w,
        &p,
        "account.list",
        json!({"filter": [{"column": "name", "operator": "starts_with", "value": "Other"}],
               "order_by": [{"column": "name", "descending": true}], "top": 2}),
    )
    .await;
    let names: Vec<&str> = listed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Other 2", "Other 1"]);
    assert_eq!(listed["more"], true);

    // Clearing a lookup, then deleting.
    ok(
        &w,
        &p,
        "account.update",
        json!({"id": account, "row": {"primarycontactid": null}}),
    )
    .await;
    let row = ok(&w, &p, "account.retrieve", json!({"id": account})).await;
    assert_eq!(row["primarycontactid"], Value::Null);
    ok(&w, &p, "contact.delete", json!({"id": contact})).await;
    ok(&w, &p, "account.delete", json!({"id": account})).await;
    match run(&w, &p, "account.retrieve", json!({"id": account})).await {
        Err(InvokeError::InvalidInput(m)) => assert!(m.contains("404"), "{m}"),
        other => panic!("expected not found, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_and_ungranted_tables_are_refused() {
    let (w, p) = setup().await;
    let cases = [
        (
            "contact.create",
            json!({"firstname": "No"}),
            "needs lastname",
        ),
        (
            "account.create",
            json!({"name": "A", "accountcategorycode": 99}),
            "not one of",
        ),
        (
            "account.create",
            json!({"name": "A", "colour": "red"}),
            "no column 'colour'",
        ),
        (
            "account.create",
            json!({"name": "A", "numberofemployees": "many"}),
            "whole number",
        ),
    ];
    for (action, input, expected) in cases {
        match run(&w, &p, action, input.clone()).await {
            Err(InvokeError::InvalidInput(m)) => {
                assert!(m.contains(expected), "{action} {input}: {m}")
            }
            other => panic!("{action} {input}: expected invalid input, got {other:?}"),
        }
    }
    // The lead table exists in the environment but is not granted.
    assert!(p.action("lead.create").is_none());
    assert!(matches!(
        run(&w, &p, "lead.create", json!({"lastname": "L"})).await,
        Err(InvokeError::UnknownAction(_))
    ));
}

#[tokio::test]
async fn a_table_granted_only_read_offers_retrieve_and_list() {
    let w = World::start().await;
    let caps = w.capabilities(Grants::none().allow("account", &[Operation::Read]));
    let loaded = support::load(&support::engine(), dvhost_testkit::TABLES).await;
    let p = loaded
        .describe_with(&caps)
        .await
        .expect("described under the connection");
    let names: Vec<&str> = p.actions().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["account.retrieve", "account.list"]);

    let listed = p.invoke(&caps, "account.list", r#"{"top": 1}"#).await;
    assert!(listed.output.is_ok(), "{:?}", listed.output);
    // Not in the catalogue (the server answers 404 `unknown_action` before
    // invoking), and unknown to the plugin too, before any records call.
    for (action, input) in [
        ("account.create", json!({"name": "No"})),
        (
            "account.update",
            json!({"id": Uuid::nil(), "row": {"name": "No"}}),
        ),
        ("account.delete", json!({"id": Uuid::nil()})),
    ] {
        assert!(p.action(action).is_none(), "{action}");
        let report = p.invoke(&caps, action, &input.to_string()).await;
        assert!(
            matches!(report.output, Err(InvokeError::UnknownAction(_))),
            "{action}: {:?}",
            report.output
        );
        assert!(
            report
                .calls
                .iter()
                .all(|c| c.interface == Interface::Metadata),
            "{action}: {:?}",
            report.calls
        );
    }
}
