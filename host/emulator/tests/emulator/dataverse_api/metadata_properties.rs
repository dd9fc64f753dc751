//! Metadata complete enough for real tools: the `EntityMetadata` and
//! `AttributeMetadata` properties SDKs and maker tools select and filter
//! on, and 400s for properties a type does not define, with or without
//! matching rows.

use reqwest::Method;
use serde_json::{Value, json};

use super::metadata::Custom;
use crate::common::*;

/// `EntityDefinitions(LogicalName='<table>')` with `$select`.
async fn table(w: &World, t: &str, logical: &str, select: &str) -> Value {
    let (s, _, b) = w
        .get(
            t,
            &format!("EntityDefinitions(LogicalName='{logical}')?$select={select}"),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

#[tokio::test]
async fn entity_metadata_has_the_properties_tools_read() {
    let w = World::start().await;
    let t = w.dv_token().await;
    // How Microsoft's Python Dataverse SDK lists tables.
    let (s, _, b) = w
        .get(
            &t,
            "EntityDefinitions?$filter=IsPrivate eq false&$select=LogicalName,EntitySetName",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"].as_array().unwrap().len(), 6, "{b}");
    let a = table(&w, &t, "account", "IsPrivate,IsManaged,IsCustomEntity,IsActivity,IsIntersect,IsValidForAdvancedFind,IsCustomizable,OwnershipType,ObjectTypeCode,PrimaryIdAttribute,PrimaryNameAttribute,EntitySetName,LogicalCollectionName,SchemaName,DisplayName,DisplayCollectionName,Description,HasNotes,HasActivities,ChangeTrackingEnabled").await;
    for (k, v) in [
        ("IsPrivate", json!(false)),
        ("IsManaged", json!(true)),
        ("IsCustomEntity", json!(false)),
        ("IsActivity", json!(false)),
        ("IsIntersect", json!(false)),
        ("IsValidForAdvancedFind", json!(true)),
        ("OwnershipType", json!("UserOwned")),
        ("ObjectTypeCode", json!(1)),
        ("PrimaryIdAttribute", json!("accountid")),
        ("PrimaryNameAttribute", json!("name")),
        ("LogicalCollectionName", json!("accounts")),
        ("SchemaName", json!("Account")),
        ("HasNotes", json!(true)),
        ("HasActivities", json!(true)),
        ("ChangeTrackingEnabled", json!(true)),
    ] {
        assert_eq!(a[k], v, "{k}: {a}");
    }
    assert_eq!(
        a["IsCustomizable"],
        json!({"Value": true, "CanBeChanged": false, "ManagedPropertyLogicalName": "iscustomizable"})
    );
    assert_eq!(
        a["DisplayCollectionName"]["UserLocalizedLabel"]["Label"],
        "Accounts"
    );
    assert!(
        a["Description"]["UserLocalizedLabel"]["Label"]
            .as_str()
            .unwrap()
            .starts_with("Business that represents a customer")
    );
    assert!(a.get("Attributes").is_none());
    let role = table(&w, &t, "role", "HasNotes,HasActivities,OwnershipType").await;
    assert_eq!(
        (role["HasNotes"].clone(), role["OwnershipType"].clone()),
        (json!(false), json!("BusinessOwned"))
    );
    // Managed properties filter on their Value.
    let (s, _, b) = w
        .get(
            &t,
            "EntityDefinitions?$select=LogicalName&$filter=IsCustomizable/Value eq true and HasNotes eq true",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"].as_array().unwrap().len(), 3, "{b}");
}

#[tokio::test]
async fn attribute_metadata_has_the_properties_tools_read() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let path = "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')?$select=SchemaName,IsValidForCreate,IsValidForUpdate,IsValidForRead,IsPrimaryId,IsPrimaryName,IsCustomAttribute,IsValidODataAttribute,AttributeOf,RequiredLevel,DisplayName,Description";
    let (s, _, a) = w.get(&t, path).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["SchemaName"], "Name");
    for k in [
        "IsValidForCreate",
        "IsValidForUpdate",
        "IsValidForRead",
        "IsPrimaryName",
        "IsValidODataAttribute",
    ] {
        assert_eq!(a[k], true, "{k}: {a}");
    }
    assert_eq!(
        (a["IsPrimaryId"].clone(), a["IsCustomAttribute"].clone()),
        (json!(false), json!(false))
    );
    assert!(a["AttributeOf"].is_null());
    assert_eq!(a["RequiredLevel"]["Value"], "ApplicationRequired");
    assert_eq!(
        a["RequiredLevel"]["ManagedPropertyLogicalName"],
        "canmodifyrequirementlevelsettings"
    );
    assert_eq!(
        a["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Account Name"
    );
    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName&$filter=IsPrimaryId eq true").await;
    assert_eq!(b["value"], json!([b["value"][0].clone()]));
    assert_eq!(b["value"][0]["LogicalName"], "accountid");
}

#[tokio::test]
async fn custom_tables_are_unmanaged_and_custom() {
    let c = Custom::start().await;
    let (s, _, e) = c
        .call(
            Method::GET,
            "EntityDefinitions(LogicalName='new_project')?$select=IsCustomEntity,IsManaged,IsPrivate,ObjectTypeCode,IsCustomizable,HasNotes",
            None,
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        (
            e["IsCustomEntity"].clone(),
            e["IsManaged"].clone(),
            e["IsPrivate"].clone(),
            e["ObjectTypeCode"].clone(),
            e["IsCustomizable"]["Value"].clone(),
            e["HasNotes"].clone()
        ),
        (
            json!(true),
            json!(false),
            json!(false),
            json!(10000),
            json!(true),
            json!(false)
        )
    );
    let (_, _, b) = c.call(Method::GET, "EntityDefinitions(LogicalName='new_project')/Attributes?$select=LogicalName,IsCustomAttribute&$filter=IsCustomAttribute eq true", None).await;
    let mut names: Vec<&str> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["LogicalName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "new_accountid",
            "new_budget",
            "new_code",
            "new_name",
            "new_stage"
        ]
    );
}

/// A request that must fail with 400 and Dataverse's 0x80060888, naming `property`.
async fn assert_unknown(w: &World, t: &str, path: &str, property: &str) {
    let (s, _, b) = w.get(t, path).await;
    assert_eq!(s, 400, "{path}: {b}");
    assert_eq!(b["error"]["code"], "0x80060888", "{path}: {b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("'{property}'")),
        "{path}: {message}"
    );
}

#[tokio::test]
async fn unknown_properties_are_400_with_no_matching_rows() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let none = "LogicalName eq 'nosuch'";
    for (path, property) in [
        ("EntityDefinitions?$filter=Foo eq false".to_string(), "Foo"),
        (
            format!("EntityDefinitions?$filter={none}&$select=Foo"),
            "Foo",
        ),
        (
            format!("EntityDefinitions?$filter={none}&$orderby=Foo"),
            "Foo",
        ),
        (
            format!(
                "EntityDefinitions(LogicalName='account')/Attributes?$filter={none}&$select=Foo"
            ),
            "Foo",
        ),
        (
            "EntityDefinitions(LogicalName='account')/Attributes?$filter=Foo/Value eq 1".into(),
            "Foo",
        ),
        (
            format!(
                "EntityDefinitions(LogicalName='account')/Attributes?$filter={none}&$select=MaxLength"
            ),
            "MaxLength",
        ),
        (
            "accounts?$filter=name eq 'nosuch'&$select=foo".into(),
            "foo",
        ),
        ("accounts?$filter=foo eq 1".into(), "foo"),
        (
            "accounts?$filter=name eq 'nosuch'&$orderby=foo desc".into(),
            "foo",
        ),
    ] {
        assert_unknown(&w, &t, &path, property).await;
    }
    // Derived properties are known once the path casts to the derived type.
    let (s, _, b) = w.get(&t, &format!("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$filter={none}&$select=MaxLength")).await;
    assert_eq!((s, b["value"].clone()), (200, json!([])));
}

#[tokio::test]
async fn expanded_attributes_take_their_own_options() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, e) = w
        .get(&t, "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=LogicalName,IsPrimaryId;$filter=IsPrimaryId eq true)")
        .await;
    assert_eq!(s, 200, "{e}");
    let attrs = e["Attributes"].as_array().unwrap();
    assert_eq!(attrs.len(), 1, "{e}");
    assert_eq!(
        (
            attrs[0]["LogicalName"].clone(),
            attrs[0]["IsPrimaryId"].clone()
        ),
        (json!("accountid"), json!(true))
    );
    assert!(attrs[0].get("SchemaName").is_none());
    let (s, _, b) = w
        .get(&t, "EntityDefinitions?$select=LogicalName&$filter=LogicalName eq 'role'&$expand=Attributes($select=LogicalName;$filter=IsPrimaryName eq true)")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"][0]["Attributes"][0]["LogicalName"], "name", "{b}");
    assert_unknown(
        &w,
        &t,
        "EntityDefinitions(LogicalName='account')?$expand=Attributes($select=Foo)",
        "Foo",
    )
    .await;
}

#[tokio::test]
async fn relationships_expand_from_entity_definitions() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, e) = w
        .get(&t, "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=ManyToOneRelationships($select=SchemaName,ReferencedEntity,ReferencedAttribute,ReferencingEntityNavigationPropertyName;$filter=ReferencingAttribute eq 'primarycontactid'),OneToManyRelationships($select=SchemaName,ReferencingAttribute;$filter=ReferencingEntity eq 'contact')")
        .await;
    assert_eq!(s, 200, "{e}");
    let m2o = &e["ManyToOneRelationships"];
    assert_eq!(m2o.as_array().unwrap().len(), 1, "{e}");
    assert_eq!(m2o[0]["SchemaName"], "account_primary_contact");
    assert_eq!(
        (
            m2o[0]["ReferencedEntity"].clone(),
            m2o[0]["ReferencedAttribute"].clone()
        ),
        (json!("contact"), json!("contactid"))
    );
    assert_eq!(
        m2o[0]["ReferencingEntityNavigationPropertyName"],
        "primarycontactid"
    );
    let o2m: Vec<&str> = e["OneToManyRelationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SchemaName"].as_str().unwrap())
        .collect();
    assert!(o2m.contains(&"contact_customer_accounts"), "{o2m:?}");
    let (_, _, u) = w
        .get(&t, "EntityDefinitions(LogicalName='systemuser')?$select=LogicalName&$expand=ManyToManyRelationships($select=SchemaName,Entity2LogicalName)")
        .await;
    assert!(
        u["ManyToManyRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["SchemaName"] == "systemuserroles_association"
                && r["Entity2LogicalName"] == "role"),
        "{u}"
    );
    assert_unknown(
        &w,
        &t,
        "EntityDefinitions(LogicalName='account')?$expand=Foo",
        "Foo",
    )
    .await;
}
