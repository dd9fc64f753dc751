//! Joins: nested `$expand`, and FetchXML `link-entity` compared with the
//! equivalent `$expand`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// Accounts A1 (primary contact Lee), A2 (primary contact Ray) and A3
/// (none); both contacts' parent customer is A2. Returns A2's id.
async fn people(w: &World, t: &str) -> String {
    w.create(t, "accounts", json!({"name": "A3"})).await;
    let a2 = w.create(t, "accounts", json!({"name": "A2"})).await;
    let mut contacts = Vec::new();
    for last in ["Lee", "Ray"] {
        let c = w
            .create(
                t,
                "contacts",
                json!({"lastname": last, "parentcustomerid_account@odata.bind": format!("/accounts({a2})")}),
            )
            .await;
        contacts.push(c);
    }
    w.create(
        t,
        "accounts",
        json!({"name": "A1", "primarycontactid@odata.bind": format!("/contacts({})", contacts[0])}),
    )
    .await;
    let (s, _, b) = w
        .send(
            t,
            Method::PATCH,
            &format!("accounts({a2})"),
            json!({"primarycontactid@odata.bind": format!("/contacts({})", contacts[1])}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    a2
}

/// `accounts?fetchXml=<xml, encoded>`.
fn fetch_path(xml: &str) -> String {
    format!(
        "accounts?fetchXml={}",
        url::form_urlencoded::byte_serialize(xml.as_bytes()).collect::<String>()
    )
}

/// `GET accounts?fetchXml=...` with every annotation.
async fn fetch(w: &World, t: &str, xml: &str) -> Value {
    let path = fetch_path(xml);
    let (s, _, b) = w
        .dv(
            t,
            Method::GET,
            &path,
            None,
            &[("Prefer", "odata.include-annotations=\"*\"")],
        )
        .await;
    assert_eq!(s, 200, "{xml}: {b}");
    b
}

/// (account name, primary contact's last name) of each row, from a
/// link-entity result (`pc.lastname`) or an `$expand` result.
fn pairs(
    rows: &Value,
    linked: impl Fn(&Value) -> Option<String>,
) -> BTreeSet<(String, Option<String>)> {
    rows["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), linked(r)))
        .collect()
}

#[tokio::test]
async fn nested_expand_two_levels() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let a2 = people(&w, &t).await;
    let (s, _, b) = w
        .get(&t, "accounts?$select=name&$filter=name eq 'A1'&$expand=primarycontactid($select=lastname;$expand=parentcustomerid_account($select=name))")
        .await;
    assert_eq!(s, 200, "{b}");
    let pc = &b["value"][0]["primarycontactid"];
    assert_eq!(pc["lastname"], "Lee");
    assert!(pc.get("firstname").is_none());
    assert_eq!(pc["parentcustomerid_account"]["name"], "A2");
    assert!(pc["parentcustomerid_account"].get("revenue").is_none());
    // Collection-valued, then single-valued, on a record: nested options apply.
    let (s, _, b) = w
        .get(&t, &format!("accounts({a2})?$select=name&$expand=contact_customer_accounts($select=lastname;$filter=lastname ne 'Lee';$expand=parentcustomerid_account($select=name))"))
        .await;
    assert_eq!(s, 200, "{b}");
    let kids = b["contact_customer_accounts"].as_array().unwrap();
    assert_eq!(kids.len(), 1, "{b}");
    assert_eq!(kids[0]["lastname"], "Ray");
    assert_eq!(kids[0]["parentcustomerid_account"]["name"], "A2");
    // Single-valued, then collection-valued with $filter/$orderby/$top.
    let (s, _, b) = w
        .get(&t, "accounts?$select=name&$filter=name eq 'A1'&$expand=primarycontactid($select=lastname;$expand=parentcustomerid_account($select=name;$expand=contact_customer_accounts($select=lastname;$orderby=lastname desc;$top=1)))")
        .await;
    assert_eq!(s, 200, "{b}");
    let inner =
        &b["value"][0]["primarycontactid"]["parentcustomerid_account"]["contact_customer_accounts"];
    assert_eq!(inner.as_array().unwrap().len(), 1, "{b}");
    assert_eq!(inner[0]["lastname"], "Ray");
    // Unknown columns in a nested expansion are refused, related row or not.
    for path in [
        "accounts?$filter=name eq 'A3'&$expand=primarycontactid($expand=parentcustomerid_account($select=nosuch))",
        "accounts?$expand=primarycontactid($select=nosuch)",
        "accounts?$filter=name eq 'none'&$expand=contact_customer_accounts($expand=parentcustomerid_account($select=nosuch))",
    ] {
        let (s, _, b) = w.get(&t, path).await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (400, json!("0x80060888")),
            "{path}: {b}"
        );
    }
    // $top next to a nested $expand is not supported.
    let (s, _, _) = w
        .get(&t, &format!("accounts({a2})?$expand=contact_customer_accounts($top=1;$expand=parentcustomerid_account)"))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn link_entity_joins_match_expand() {
    let w = World::start().await;
    let t = w.dv_token().await;
    people(&w, &t).await;
    let (_, _, expanded) = w
        .get(
            &t,
            "accounts?$select=name&$expand=primarycontactid($select=lastname)",
        )
        .await;
    let via_expand = pairs(&expanded, |r| {
        r["primarycontactid"]["lastname"].as_str().map(String::from)
    });
    let link = |kind: &str| {
        format!(
            r#"<fetch><entity name="account"><attribute name="name"/><link-entity name="contact" from="contactid" to="primarycontactid" link-type="{kind}" alias="pc"><attribute name="lastname"/></link-entity></entity></fetch>"#
        )
    };
    let aliased = |r: &Value| r["pc.lastname"].as_str().map(String::from);
    // Outer: every account, as $expand gives them.
    let outer = fetch(&w, &t, &link("outer")).await;
    assert_eq!(pairs(&outer, aliased), via_expand);
    // Inner: only the accounts with a primary contact.
    let inner = fetch(&w, &t, &link("inner")).await;
    let with_contact: BTreeSet<_> = via_expand
        .iter()
        .filter(|(_, c)| c.is_some())
        .cloned()
        .collect();
    assert_eq!(pairs(&inner, aliased), with_contact);
    assert_eq!(with_contact.len(), 2);
    let row = &inner["value"][0];
    assert_eq!(
        row["pc.lastname@OData.Community.Display.V1.AttributeName"],
        "lastname"
    );
    // A condition on the linked table equals a filter through the navigation property.
    let (_, _, filtered) = w
        .get(&t, "accounts?$select=name&$filter=primarycontactid/lastname eq 'Ray'&$expand=primarycontactid($select=lastname)")
        .await;
    let linked_filter = fetch(&w, &t, r#"<fetch><entity name="account"><attribute name="name"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname"/><filter><condition attribute="lastname" operator="eq" value="Ray"/></filter></link-entity></entity></fetch>"#).await;
    assert_eq!(
        pairs(&linked_filter, aliased),
        pairs(&filtered, |r| r["primarycontactid"]["lastname"]
            .as_str()
            .map(String::from))
    );
    // entityname: accounts without a primary contact, through an outer join.
    let orphans = fetch(&w, &t, r#"<fetch><entity name="account"><attribute name="name"/><filter><condition entityname="pc" attribute="contactid" operator="null"/></filter><link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer" alias="pc"/></entity></fetch>"#).await;
    assert_eq!(
        pairs(&orphans, aliased),
        BTreeSet::from([("A3".to_string(), None)])
    );
}

#[tokio::test]
async fn link_entity_one_to_many_and_nested() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let a2 = people(&w, &t).await;
    // One-to-many: a row per child, like the collection $expand on the record.
    let (_, _, record) = w
        .get(
            &t,
            &format!(
                "accounts({a2})?$select=name&$expand=contact_customer_accounts($select=lastname)"
            ),
        )
        .await;
    let mut expected: Vec<String> = record["contact_customer_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastname"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let b = fetch(&w, &t, r#"<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="A2"/></filter><link-entity name="contact" from="parentcustomerid" to="accountid" alias="c"><attribute name="lastname"/><order attribute="lastname"/></link-entity></entity></fetch>"#).await;
    let got: Vec<&str> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["c.lastname"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    // Nested links, unaliased: generated alias <name>1; lookups with their table.
    let b = fetch(&w, &t, r#"<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="A1"/></filter><link-entity name="contact" from="contactid" to="primarycontactid"><attribute name="parentcustomerid"/><link-entity name="account" from="accountid" to="parentcustomerid" alias="parent"><attribute name="name"/></link-entity></link-entity></entity></fetch>"#).await;
    let row = &b["value"][0];
    assert_eq!(row["parent.name"], "A2", "{b}");
    assert_eq!(row["contact1.parentcustomerid"], a2.as_str(), "{b}");
    assert_eq!(
        row["contact1.parentcustomerid@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "account"
    );
    // Unknown linked tables and columns are FetchXML errors.
    for xml in [
        r#"<fetch><entity name="account"><link-entity name="nosuch" from="a" to="accountid"/></entity></fetch>"#,
        r#"<fetch><entity name="account"><link-entity name="contact" from="nosuch" to="accountid"/></entity></fetch>"#,
        r#"<fetch><entity name="account"><filter><condition entityname="zz" attribute="name" operator="null"/></filter></entity></fetch>"#,
    ] {
        let (s, _, b) = w.get(&t, &fetch_path(xml)).await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (400, json!("0x80041103")),
            "{xml}: {b}"
        );
    }
}

#[tokio::test]
async fn link_entity_through_an_intersect_table() {
    let w = World::start().await;
    let t = w.dv_token().await;
    // Every user's roles, through $expand on each user.
    let (_, _, users) = w.get(&t, "systemusers?$select=systemuserid").await;
    let mut expected = BTreeSet::new();
    for u in users["value"].as_array().unwrap() {
        let id = u["systemuserid"].as_str().unwrap();
        let (s, _, b) = w
            .get(&t, &format!("systemusers({id})?$select=systemuserid&$expand=systemuserroles_association($select=name)"))
            .await;
        assert_eq!(s, 200, "{b}");
        for r in b["systemuserroles_association"].as_array().unwrap() {
            expected.insert((id.to_string(), r["name"].as_str().unwrap().to_string()));
        }
    }
    assert!(!expected.is_empty());
    let path = "systemusers?fetchXml=".to_string()
        + &url::form_urlencoded::byte_serialize(r#"<fetch><entity name="systemuser"><attribute name="systemuserid"/><link-entity name="systemuserroles" from="systemuserid" to="systemuserid" intersect="true"><link-entity name="role" from="roleid" to="roleid" alias="r"><attribute name="name"/></link-entity></link-entity></entity></fetch>"#.as_bytes()).collect::<String>();
    let (s, _, b) = w.get(&t, &path).await;
    assert_eq!(s, 200, "{b}");
    let got: BTreeSet<(String, String)> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["systemuserid"].as_str().unwrap().to_string(),
                r["r.name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}
