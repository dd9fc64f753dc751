//! Single records: create, retrieve, update, delete, the upsert matrix,
//! validation, lookups and associations, and error details.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

/// Creates the account Fabrikam; its id.
async fn fabrikam(w: &World, t: &str) -> String {
    let (s, h, _) = w.send(t, Method::POST, "accounts", json!({"name": "Fabrikam", "creditonhold": false, "revenue": 5000000, "accountcategorycode": 1})).await;
    assert_eq!(s, 204);
    let entity = h["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity.starts_with(&w.api("accounts(")), "{entity}");
    entity_id(&h)
}

#[tokio::test]
async fn create_and_retrieve() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let id = fabrikam(&w, &t).await;

    // return=representation: 201, $select-shaped, etag, no OData-EntityId, Preference-Applied.
    let (s, h, b) = w
        .dv(
            &t,
            Method::POST,
            "accounts?$select=name",
            Some(json!({"name": "Contoso"})),
            &[("Prefer", "return=representation")],
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(!h.contains_key("odata-entityid"));
    assert_eq!(h["preference-applied"], "return=representation");
    assert_eq!(b["name"], "Contoso");
    assert!(b["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert!(b["accountid"].is_string(), "primary key always included");
    assert!(b.get("revenue").is_none());
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#accounts(name)/$entity")
    );

    let (s, h, b) = w
        .get(&t, &format!("accounts({id})?$select=name,revenue"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["name"], "Fabrikam");
    assert_eq!(b["revenue"], 5000000.0);
    assert_eq!(b["accountid"], id.as_str());
    assert_eq!(
        h["etag"].to_str().unwrap(),
        b["@odata.etag"].as_str().unwrap()
    );
    // Full retrieve has nulls and system columns.
    let (_, _, full) = w.get(&t, &format!("accounts({id})")).await;
    assert!(full.as_object().unwrap().contains_key("telephone1") && full["telephone1"].is_null());
    assert_eq!(full["statecode"], 0);
    assert_eq!(full["statuscode"], 1);
    assert!(full["_ownerid_value"].is_string() && full["createdon"].is_string());
}

#[tokio::test]
async fn updates_follow_etags() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let id = fabrikam(&w, &t).await;
    let (_, _, b) = w.get(&t, &format!("accounts({id})?$select=name")).await;
    let etag1 = b["@odata.etag"].as_str().unwrap().to_string();

    // Update bumps the ETag; stale If-Match -> 412; current If-None-Match -> 304.
    let (s, _, _) = w
        .dv(
            &t,
            Method::PATCH,
            &format!("accounts({id})"),
            Some(json!({"telephone1": "555"})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(s, 204);
    let (_, _, b) = w
        .get(&t, &format!("accounts({id})?$select=telephone1"))
        .await;
    assert_eq!(b["telephone1"], "555");
    let etag2 = b["@odata.etag"].as_str().unwrap().to_string();
    assert_ne!(etag1, etag2);
    let (s, _, e) = w
        .dv(
            &t,
            Method::PATCH,
            &format!("accounts({id})"),
            Some(json!({"name": "x"})),
            &[("If-Match", &etag1)],
        )
        .await;
    assert_eq!(s, 412);
    assert_eq!(
        e["error"]["message"],
        "The version of the existing record doesn't match the RowVersion property provided."
    );
    let (s, _, _) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({id})?$select=name"),
            None,
            &[("If-None-Match", &etag2)],
        )
        .await;
    assert_eq!(s, 304);
    let (s, _, _) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({id})?$select=name"),
            None,
            &[
                ("If-None-Match", &etag2),
                ("Prefer", "odata.include-annotations=\"*\""),
            ],
        )
        .await;
    assert_eq!(s, 200, "no 304 when annotations are requested");
    let (s, _, b) = w
        .dv(
            &t,
            Method::PATCH,
            &format!("accounts({id})?$select=name"),
            Some(json!({"name": "Fabrikam 2"})),
            &[("If-Match", &etag2), ("Prefer", "return=representation")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["name"], "Fabrikam 2");
}

#[tokio::test]
async fn single_properties_and_delete() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let id = fabrikam(&w, &t).await;
    // Single-property PUT/DELETE/GET.
    assert_eq!(
        w.send(
            &t,
            Method::PUT,
            &format!("accounts({id})/name"),
            json!({"value": "Renamed"})
        )
        .await
        .0,
        204
    );
    let (s, _, b) = w.get(&t, &format!("accounts({id})/name")).await;
    assert_eq!((s, b["value"].clone()), (200, json!("Renamed")));
    assert_eq!(
        w.delete(&t, &format!("accounts({id})/telephone1")).await.0,
        204
    );
    assert_eq!(
        w.get(&t, &format!("accounts({id})/telephone1")).await.0,
        204
    );

    // Delete, then 404 with Dataverse's code and message.
    assert_eq!(w.delete(&t, &format!("accounts({id})")).await.0, 204);
    let (s, _, e) = w.get(&t, &format!("accounts({id})")).await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "0x80040217");
    assert_eq!(
        e["error"]["message"],
        format!("Entity 'account' With Id = {id} Does Not Exist")
    );
    assert_eq!(w.delete(&t, &format!("accounts({id})")).await.0, 404);
}

/// `fullname` is computed from `firstname` and `lastname` on every write
/// that changes either, as in the Web API basic operations sample; a value
/// sent for it is ignored (the column is read-only).
#[tokio::test]
async fn full_names_follow_first_and_last_names() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let body = json!({"firstname": "Rafel", "lastname": "Shillo", "fullname": "Ignored"});
    let (s, h, _) = w.send(&t, Method::POST, "contacts", body).await;
    assert_eq!(s, 204);
    let id = entity_id(&h);
    let full_name = |b: serde_json::Value| b["fullname"].clone();
    let path = format!("contacts({id})?$select=fullname");
    assert_eq!(full_name(w.get(&t, &path).await.2), json!("Rafel Shillo"));

    // Queries see it too.
    let (s, _, b) = w
        .get(
            &t,
            "contacts?$select=contactid&$filter=fullname eq 'Rafel Shillo'",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"].as_array().unwrap().len(), 1, "{b}");

    // An update of another column keeps it; one of a name part redoes it.
    let row = format!("contacts({id})");
    let first = format!("{row}/firstname");
    let steps = [
        (
            &row,
            Some(json!({"jobtitle": "Junior Developer"})),
            json!("Rafel Shillo"),
        ),
        (
            &first,
            Some(json!({"value": "Rafael"})),
            json!("Rafael Shillo"),
        ),
        (&first, None, json!("Shillo")),
        (&row, Some(json!({"lastname": null})), json!(null)),
    ];
    for (at, body, expected) in steps {
        let status = match body {
            Some(b) if at == &row => w.send(&t, Method::PATCH, at, b).await.0,
            Some(b) => w.send(&t, Method::PUT, at, b).await.0,
            None => w.delete(&t, at).await.0,
        };
        assert_eq!(status, 204, "{at}");
        assert_eq!(full_name(w.get(&t, &path).await.2), expected, "after {at}");
    }

    // Leads the same.
    let lead = json!({"firstname": "Ann", "lastname": "Lee", "subject": "Interested"});
    let (s, h, _) = w.send(&t, Method::POST, "leads", lead).await;
    assert_eq!(s, 204);
    let lead_path = format!("leads({})?$select=fullname", entity_id(&h));
    assert_eq!(full_name(w.get(&t, &lead_path).await.2), json!("Ann Lee"));
}

/// Deep insert: related rows nested in a create body (an object under a
/// single-valued navigation property, an array under a collection-valued
/// one) are created with it, bound to it, in one operation: all or none.
#[tokio::test]
async fn deep_insert_creates_related_rows_all_or_none() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let body = json!({
        "name": "Fourth Coffee",
        "primarycontactid": {"firstname": "Susie", "lastname": "Curtis", "jobtitle": "Coffee Master"},
        "contact_customer_accounts": [
            {"firstname": "Ann", "lastname": "Lee"},
            {"firstname": "Bo", "lastname": "Chen", "lead_customer_contacts": [{"subject": "Beans", "lastname": "Chen"}]}
        ]
    });
    let (s, h, b) = w.send(&t, Method::POST, "accounts", body).await;
    assert_eq!(s, 204, "{b}");
    let id = entity_id(&h);
    assert!(
        h["odata-entityid"]
            .to_str()
            .unwrap()
            .ends_with(&format!("accounts({id})"))
    );

    let (s, _, b) = w
        .get(&t, &format!("accounts({id})?$select=name&$expand=primarycontactid($select=fullname,jobtitle),contact_customer_accounts($select=fullname;$orderby=fullname)"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["primarycontactid"]["fullname"], "Susie Curtis");
    assert_eq!(b["primarycontactid"]["jobtitle"], "Coffee Master");
    let names: Vec<_> = b["contact_customer_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fullname"].clone())
        .collect();
    assert_eq!(names, [json!("Ann Lee"), json!("Bo Chen")]);
    // Nested to any depth: Bo's lead names Bo as its customer.
    let (_, _, leads) = w
        .get(&t, "leads?$select=subject&$expand=customerid_contact($select=fullname)&$filter=subject eq 'Beans'")
        .await;
    assert_eq!(
        leads["value"][0]["customerid_contact"]["fullname"], "Bo Chen",
        "{leads}"
    );

    // One bad nested row (a first name over its 50 characters): nothing
    // is created, neither the account nor the valid contacts.
    let count = |b: serde_json::Value| b["value"].as_array().unwrap().len();
    let (_, _, before) = w.get(&t, "contacts?$select=contactid").await;
    let long = "x".repeat(51);
    let bad = json!({
        "name": "Never Made",
        "primarycontactid": {"lastname": "Valid"},
        "contact_customer_accounts": [{"lastname": "Also valid"}, {"firstname": long, "lastname": "Bad"}]
    });
    let (s, _, e) = w.send(&t, Method::POST, "accounts", bad).await;
    assert_eq!(s, 400, "{e}");
    let (_, _, after) = w.get(&t, "contacts?$select=contactid").await;
    assert_eq!(count(after), count(before));
    let (_, _, none) = w
        .get(
            &t,
            "accounts?$select=accountid&$filter=name eq 'Never Made'",
        )
        .await;
    assert_eq!(count(none), 0);

    // Many-to-many: the nested role is created and associated.
    let (_, _, bus) = w
        .get(
            &t,
            "businessunits?$select=businessunitid&$filter=_parentbusinessunitid_value eq null",
        )
        .await;
    let bu = bus["value"][0]["businessunitid"]
        .as_str()
        .unwrap()
        .to_string();
    let unit = format!("/businessunits({bu})");
    let user = json!({
        "firstname": "Deep", "lastname": "User", "applicationid": "5c8b3f0e-6d0a-4c39-9a53-0d1f6f0b7a11",
        "businessunitid@odata.bind": unit,
        "systemuserroles_association": [{"name": "Deep role", "businessunitid@odata.bind": unit}]
    });
    let (s, h, b) = w.send(&t, Method::POST, "systemusers", user).await;
    assert_eq!(s, 204, "{b}");
    let (s, _, b) = w
        .get(&t, &format!("systemusers({})?$select=fullname&$expand=systemuserroles_association($select=name)", entity_id(&h)))
        .await;
    assert_eq!(s, 200, "{b}");
    // An application user: named after its application (here unknown to
    // the directory, so its id).
    assert_eq!(b["fullname"], "5c8b3f0e-6d0a-4c39-9a53-0d1f6f0b7a11");
    assert_eq!(
        b["systemuserroles_association"][0]["name"], "Deep role",
        "{b}"
    );
    // Created by an upsert too.
    let app = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let upserted = json!({"firstname": "Up", "lastname": "Sert", "applicationid": app, "businessunitid@odata.bind": unit});
    let path = format!("systemusers({})", uuid::Uuid::new_v4());
    assert_eq!(w.send(&t, Method::PATCH, &path, upserted).await.0, 204);
    let (_, _, b) = w.get(&t, &format!("{path}?$select=fullname")).await;
    assert_eq!(b["fullname"], app, "{b}");

    // A collection-valued property takes objects only.
    let (s, _, e) = w
        .send(
            &t,
            Method::POST,
            "accounts",
            json!({"name": "X", "contact_customer_accounts": ["not a row"]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be an object"),
        "{e}"
    );
}

#[tokio::test]
async fn conditional_upserts() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let id = uuid::Uuid::new_v4();
    let url = format!("accounts({id})");
    // If-Match: * on an absent row -> 404; If-None-Match: * creates.
    let (s, _, e) = w
        .dv(
            &t,
            Method::PATCH,
            &url,
            Some(json!({"name": "A"})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (404, json!("0x80040217")));
    let (s, h, _) = w
        .dv(
            &t,
            Method::PATCH,
            &url,
            Some(json!({"name": "A"})),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(s, 204);
    assert!(
        h["odata-entityid"]
            .to_str()
            .unwrap()
            .ends_with(&format!("accounts({id})"))
    );
    // If-None-Match: * on an existing row -> 412.
    let (s, _, e) = w
        .dv(
            &t,
            Method::PATCH,
            &url,
            Some(json!({"name": "B"})),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(s, 412);
    assert_eq!(
        e["error"]["message"],
        "A record with matching key values already exists."
    );
}

#[tokio::test]
async fn unconditional_upserts_and_caller_ids() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let url = format!(
        "accounts({})",
        w.create(&t, "accounts", json!({"name": "B"})).await
    );
    // No header: update when present, create when absent (201/200 with representation).
    assert_eq!(
        w.send(&t, Method::PATCH, &url, json!({"name": "C"}))
            .await
            .0,
        204
    );
    let id2 = uuid::Uuid::new_v4();
    let (s, _, b) = w
        .dv(
            &t,
            Method::PATCH,
            &format!("accounts({id2})"),
            Some(json!({"name": "D"})),
            &[("Prefer", "return=representation")],
        )
        .await;
    assert_eq!((s, b["name"].clone()), (201, json!("D")));
    let (s, _, _) = w
        .dv(
            &t,
            Method::PATCH,
            &format!("accounts({id2})"),
            Some(json!({"name": "E"})),
            &[("Prefer", "return=representation")],
        )
        .await;
    assert_eq!(s, 200);
    // A caller-supplied id on create; the same id again is a duplicate.
    let id3 = uuid::Uuid::new_v4();
    assert_eq!(
        w.send(
            &t,
            Method::POST,
            "accounts",
            json!({"accountid": id3, "name": "F"})
        )
        .await
        .0,
        204
    );
    let (s, _, e) = w
        .send(
            &t,
            Method::POST,
            "accounts",
            json!({"accountid": id3, "name": "G"}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (412, json!("0x80040237")));
}

#[tokio::test]
async fn validation_errors_lose_nothing() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let cases = [
        (json!({"name": "x", "nosuchcolumn": 1}), 400, "0x80060888"),
        (json!({"name": 5}), 400, "0x80048d19"),
        (json!({"name": "x".repeat(161)}), 400, "0x80044331"),
        (json!({"accountcategorycode": 99}), 400, "0x8004431a"),
        (json!({"revenue": "lots"}), 400, "0x80048d19"),
        (
            json!({"primarycontactid": "9a3c5e2b-0000-0000-0000-000000000001"}),
            400,
            "0x80048d19",
        ),
        (
            json!({"primarycontactid@odata.bind": "/contacts(9a3c5e2b-0000-0000-0000-000000000001)"}),
            404,
            "0x80040217",
        ),
        (
            json!({"primarycontactid@odata.bind": "/accounts(9a3c5e2b-0000-0000-0000-000000000001)"}),
            404,
            "0x80040217",
        ),
    ];
    for (body, status, code) in cases {
        let (s, _, e) = w.send(&t, Method::POST, "accounts", body.clone()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str().unwrap_or_default()),
            (status, code),
            "{body} -> {e}"
        );
    }
    let resp = w
        .http
        .post(w.api("accounts"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (_, _, list) = w.get(&t, "accounts?$count=true").await;
    assert_eq!(list["@odata.count"], 0, "nothing was written");
    // Unknown entity set and unknown segment.
    let (s, _, e) = w.get(&t, "account").await;
    assert_eq!((s, e["error"]["code"].clone()), (404, json!("0x80060888")));
    let (s, _, _) = w.get(&t, "accounts(not-a-key").await;
    assert_eq!(s, 400);
}

/// A contact and two accounts whose primary contact it is, bound with and
/// without the leading slash: (contact, account A, account B).
async fn accounts_bound_to_a_contact(w: &World, t: &str) -> (String, String, String) {
    let contact = w
        .create(
            t,
            "contacts",
            json!({"firstname": "Joe", "lastname": "Smith"}),
        )
        .await;
    // With and without the leading slash.
    let (s, h, b) = w
        .send(
            t,
            Method::POST,
            "accounts",
            json!({"name": "A", "primarycontactid@odata.bind": format!("/contacts({contact})")}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let account = entity_id(&h);
    let (_, h, _) = w
        .dv(
            t,
            Method::POST,
            "accounts",
            Some(
                json!({"name": "B", "primarycontactid@odata.bind": format!("contacts({contact})")}),
            ),
            &[],
        )
        .await;
    let account_b = entity_id(&h);

    (contact, account, account_b)
}

#[tokio::test]
async fn binds_set_lookups_that_queries_read() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (contact, account, _) = accounts_bound_to_a_contact(&w, &t).await;
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts({account})?$select=_primarycontactid_value"),
        )
        .await;
    assert_eq!(b["_primarycontactid_value"], contact.as_str());
    assert!(
        b.get("_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname")
            .is_none(),
        "annotations only when asked"
    );
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})?$select=_primarycontactid_value,accountcategorycode"),
            None,
            &[("Prefer", "odata.include-annotations=\"*\"")],
        )
        .await;
    assert_eq!(
        b["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "contact"
    );
    assert_eq!(
        b["_primarycontactid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
        "primarycontactid"
    );
    // Filter by the lookup with an unquoted GUID.
    let (_, _, list) = w
        .dv(
            &t,
            Method::GET,
            &format!(
                "accounts?$select=name&$filter=_primarycontactid_value eq {contact}&$orderby=name"
            ),
            None,
            &[],
        )
        .await;
    let names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B"]);
    // Navigate to the related row, and the reverse collection.
    let (s, _, c) = w
        .get(&t, &format!("accounts({account})/primarycontactid"))
        .await;
    assert_eq!((s, c["firstname"].clone()), (200, json!("Joe")));
}

#[tokio::test]
async fn refs_set_and_clear_lookups_and_associations() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (contact, account, account_b) = accounts_bound_to_a_contact(&w, &t).await;
    // Clear with null bind, set with PUT $ref, clear with DELETE $ref.
    assert_eq!(
        w.send(
            &t,
            Method::PATCH,
            &format!("accounts({account})"),
            json!({"primarycontactid@odata.bind": null})
        )
        .await
        .0,
        204
    );
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts({account})?$select=_primarycontactid_value"),
        )
        .await;
    assert!(b["_primarycontactid_value"].is_null());
    let (s, _, e) = w
        .send(
            &t,
            Method::PUT,
            &format!("accounts({account})/primarycontactid/$ref"),
            json!({"@odata.id": w.api(&format!("contacts({contact})"))}),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts({account})?$select=_primarycontactid_value"),
        )
        .await;
    assert_eq!(b["_primarycontactid_value"], contact.as_str());
    assert_eq!(
        w.delete(&t, &format!("accounts({account})/primarycontactid/$ref"))
            .await
            .0,
        204
    );
    // One-to-many through the collection navigation property of the parent.
    let (s, _, e) = w
        .send(
            &t,
            Method::POST,
            &format!("accounts({account})/account_parent_account/$ref"),
            json!({"@odata.id": w.api(&format!("accounts({account_b})"))}),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts({account_b})?$select=_parentaccountid_value"),
        )
        .await;
    assert_eq!(b["_parentaccountid_value"], account.as_str());
    let (_, _, kids) = w
        .get(&t, &format!("accounts({account})/account_parent_account"))
        .await;
    assert_eq!(kids["value"].as_array().unwrap().len(), 1);
    let (s, _, _) = w
        .delete(
            &t,
            &format!("accounts({account})/account_parent_account({account_b})/$ref"),
        )
        .await;
    assert_eq!(s, 204);
    let (_, _, kids) = w
        .get(&t, &format!("accounts({account})/account_parent_account"))
        .await;
    assert_eq!(kids["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn error_details_only_with_annotations() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let missing = uuid::Uuid::new_v4();
    let (_, _, plain) = w.get(&t, &format!("accounts({missing})")).await;
    assert_eq!(
        plain["error"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["code", "message"],
        "no innererror, no annotations"
    );
    let (s, _, rich) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({missing})"),
            None,
            &[("Prefer", "odata.include-annotations=\"*\"")],
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(rich["error"]["code"], "0x80040217");
    assert!(
        rich["error"]["@Microsoft.PowerApps.CDS.HelpLink"]
            .as_str()
            .unwrap()
            .contains("80040217")
    );
    assert!(
        rich["error"]
            .get("@Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus")
            .is_some()
    );
    assert!(rich["error"].get("innererror").is_none());
}
