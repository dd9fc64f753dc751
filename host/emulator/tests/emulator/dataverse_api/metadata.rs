//! Metadata: `EntityDefinitions`, the service document and CSDL, and
//! custom tables and alternate keys from the seed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn entity_definitions_and_attribute_casts() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, b) = w
        .get(
            &t,
            "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute,DisplayName",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let all = b["value"].as_array().unwrap();
    assert_eq!(all.len(), 6, "no paging: every table in one response");
    let account = all.iter().find(|e| e["LogicalName"] == "account").unwrap();
    assert_eq!(account["EntitySetName"], "accounts");
    assert!(
        account["MetadataId"].is_string(),
        "MetadataId always returned"
    );
    assert_eq!(
        account["DisplayName"]["UserLocalizedLabel"]["Label"],
        "Account"
    );
    assert!(account.get("ObjectTypeCode").is_none());

    let (_, _, b) = w.get(&t, "EntityDefinitions?$select=LogicalName&$filter=OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'BusinessOwned'").await;
    let names: Vec<&str> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["LogicalName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"systemuser") && !names.contains(&"account"),
        "{names:?}"
    );

    let (s, _, e) = w.get(&t, "EntityDefinitions(LogicalName='contact')").await;
    assert_eq!(
        (s, e["PrimaryNameAttribute"].clone()),
        (200, json!("fullname"))
    );
    let id = e["MetadataId"].as_str().unwrap().to_string();
    let (s, _, e) = w
        .get(&t, &format!("EntityDefinitions({id})?$select=LogicalName"))
        .await;
    assert_eq!((s, e["LogicalName"].clone()), (200, json!("contact")));
    assert_eq!(
        w.get(&t, "EntityDefinitions(LogicalName='nosuch')").await.0,
        404
    );

    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,AttributeType,AttributeTypeName&$filter=LogicalName eq 'name'").await;
    assert_eq!(b["value"][0]["AttributeType"], "String");
    assert_eq!(b["value"][0]["AttributeTypeName"]["Value"], "StringType");
    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet").await;
    let cat = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["LogicalName"] == "accountcategorycode")
        .unwrap();
    assert_eq!(cat["OptionSet"]["Options"][0]["Value"], 1);
    assert_eq!(
        cat["OptionSet"]["Options"][0]["Label"]["UserLocalizedLabel"]["Label"],
        "Preferred Customer"
    );
    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName,Targets&$filter=LogicalName eq 'primarycontactid'").await;
    assert_eq!(b["value"][0]["Targets"], json!(["contact"]));
    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength&$filter=LogicalName eq 'name'").await;
    assert_eq!(b["value"][0]["MaxLength"], 160);
    // A cast with no match: 200 and an empty value.
    let (s, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$filter=LogicalName eq 'revenue'").await;
    assert_eq!((s, b["value"].clone()), (200, json!([])));
    let (_, _, b) = w.get(&t, "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName&$filter=RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'").await;
    assert_eq!(b["value"][0]["LogicalName"], "name");
}

#[tokio::test]
async fn service_document_and_csdl_agree() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, doc) = w.get(&t, "").await;
    assert_eq!(s, 200);
    let sets: Vec<String> = doc["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "EntitySet")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(sets.contains(&"accounts".to_string()) && sets.contains(&"systemusers".to_string()));
    let resp = w
        .http
        .get(w.api("$metadata"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let xml = resp.text().await.unwrap();
    assert!(
        xml.contains("Namespace=\"Microsoft.Dynamics.CRM\"") && xml.contains("Alias=\"mscrm\"")
    );
    for set in sets.iter().filter(|s| *s != "EntityDefinitions") {
        assert!(
            xml.contains(&format!("<EntitySet Name=\"{set}\"")),
            "{set} missing from $metadata"
        );
    }
    assert!(xml.contains("<PropertyRef Name=\"accountid\"/>"));
    assert!(xml.contains("<Property Name=\"_primarycontactid_value\" Type=\"Edm.Guid\"/>"));
    assert!(xml.contains("<NavigationProperty Name=\"primarycontactid\" Type=\"mscrm.contact\""));
    // Every served entity set is in the CSDL, and nothing else.
    let csdl_sets = xml.matches("<EntitySet Name=").count();
    assert_eq!(csdl_sets, sets.len() - 1);
}

/// The environment `custom`, seeded with the custom table `new_project`
/// (alternate key `new_code`) and an alternate key on `account`, an app
/// token for it, and an account `A-1` with a project `R1`.
pub(crate) struct Custom {
    w: World,
    base: String,
    t: String,
    /// The id of the account `A-1`.
    account: String,
}

impl Custom {
    pub(crate) async fn start() -> Custom {
        let w = World::start().await;
        let seed: dvhost_emulator::Seed = toml::from_str(
        r#"
        [[environments]]
        tenant = "contoso"
        unique_name = "custom"
        app_users = ["aaaaaaaa-0000-0000-0000-000000000001"]
        alternate_keys = { account = [["accountnumber"]] }
        [[environments.tables]]
        logical_name = "new_project"
        display_name = "Project"
        alternate_keys = [["new_code"]]
        columns = [
          { logical_name = "new_code", type = "String", max_length = 10 },
          { logical_name = "new_budget", type = "Money" },
          { logical_name = "new_stage", type = "Picklist", options = [{ value = 1, label = "Plan" }, { value = 2, label = "Build" }] },
          { logical_name = "new_accountid", type = "Lookup", targets = ["account"] },
        ]
        "#,
        )
        .unwrap();
        w.emu.seed(seed).unwrap();
        let base = format!("{}/custom", w.emu.base_url());
        let (_, tok) = w
            .client_credentials_as(
                APP_ID,
                &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
                &format!("{base}/.default"),
            )
            .await;
        let t = tok["access_token"].as_str().unwrap().to_string();
        let mut custom = Custom {
            w,
            base,
            t,
            account: String::new(),
        };
        let (s, h, _) = custom
            .call(
                Method::POST,
                "accounts",
                Some(json!({"name": "Acme", "accountnumber": "A-1"})),
            )
            .await;
        assert_eq!(s, 204);
        let account = entity_id(&h);
        let (s, _, e) = custom.call(Method::POST, "new_projects", Some(json!({"new_name": "Rocket", "new_code": "R1", "new_budget": 10, "new_stage": 2, "new_accountid@odata.bind": format!("/accounts({account})")}))).await;
        assert_eq!(s, 204, "{e}");
        custom.account = account;
        custom
    }

    /// A Web API request to the `custom` environment.
    pub(crate) async fn call(
        &self,
        m: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .w
            .http
            .request(m, format!("{}/api/data/v9.2/{path}", self.base))
            .bearer_auth(&self.t);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let s = resp.status().as_u16();
        let h = resp.headers().clone();
        (s, h, resp.json::<Value>().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn custom_tables_and_alternate_keys_from_the_seed() {
    let c = Custom::start().await;
    let (call, account) = (|m, path, body| c.call(m, path, body), &c.account);
    // Retrieve, update and upsert by alternate key.
    let (s, _, p) = call(
        Method::GET,
        "new_projects(new_code='R1')?$select=new_name,_new_accountid_value,new_stage",
        None,
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["new_name"], "Rocket");
    assert_eq!(p["_new_accountid_value"], account.as_str());
    assert_eq!(
        call(
            Method::PATCH,
            "new_projects(new_code='R1')",
            Some(json!({"new_name": "Rocket 2"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            Method::PATCH,
            "new_projects(new_code='R2')",
            Some(json!({"new_name": "Upserted"}))
        )
        .await
        .0,
        204
    );
    let (_, _, p) = call(
        Method::GET,
        "new_projects(new_code='R2')?$select=new_name,new_code",
        None,
    )
    .await;
    assert_eq!(
        (p["new_name"].clone(), p["new_code"].clone()),
        (json!("Upserted"), json!("R2"))
    );
    let (s, _, e) = call(Method::GET, "new_projects(new_code='nope')", None).await;
    assert_eq!((s, e["error"]["code"].clone()), (404, json!("0x80060891")));
    // A duplicate key value is refused.
    let (s, _, e) = call(
        Method::POST,
        "new_projects",
        Some(json!({"new_name": "Dup", "new_code": "R1"})),
    )
    .await;
    assert_eq!((s, e["error"]["code"].clone()), (412, json!("0x80060892")));
}

#[tokio::test]
async fn alternate_key_filters_and_key_changes() {
    let c = Custom::start().await;
    let call = |m, path, body| c.call(m, path, body);
    let upsert = call(
        Method::PATCH,
        "new_projects(new_code='R2')",
        Some(json!({"new_name": "Second"})),
    );
    assert_eq!(upsert.await.0, 204);
    // Filters on the key use the index and still honour the other conditions.
    let (_, _, l) = call(
        Method::GET,
        "new_projects?$select=new_name&$filter=new_code eq 'r1'",
        None,
    )
    .await;
    assert_eq!(l["value"][0]["new_name"], "Rocket");
    let (_, _, l) = call(
        Method::GET,
        "new_projects?$select=new_name&$filter=new_code eq 'R1' and new_stage eq 1",
        None,
    )
    .await;
    assert_eq!(l["value"].as_array().unwrap().len(), 0);
    // After a key change the old value no longer finds the row.
    assert_eq!(
        call(
            Method::PATCH,
            "new_projects(new_code='R2')",
            Some(json!({"new_code": "R3"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(Method::GET, "new_projects(new_code='R2')", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(Method::GET, "new_projects(new_code='r3')", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn custom_tables_validate_and_describe_themselves() {
    let c = Custom::start().await;
    let (call, account) = (|m, path, body| c.call(m, path, body), &c.account);
    // Alternate key added to a standard table; undeclared keys are refused.
    let (s, _, a) = call(
        Method::GET,
        "accounts(accountnumber='A-1')?$select=name",
        None,
    )
    .await;
    assert_eq!((s, a["name"].clone()), (200, json!("Acme")));
    assert_eq!(
        call(Method::GET, "accounts(name='Acme')", None).await.0,
        400
    );
    // Validation from the column definitions, metadata and the inverse navigation.
    assert_eq!(
        call(
            Method::POST,
            "new_projects",
            Some(json!({"new_code": "TOO-LONG-CODE"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(Method::POST, "new_projects", Some(json!({"new_stage": 9})))
            .await
            .0,
        400
    );
    let (_, _, d) = call(Method::GET, "EntityDefinitions(LogicalName='new_project')?$select=EntitySetName,IsCustomEntity,PrimaryNameAttribute", None).await;
    assert_eq!(
        (
            d["EntitySetName"].clone(),
            d["IsCustomEntity"].clone(),
            d["PrimaryNameAttribute"].clone()
        ),
        (json!("new_projects"), json!(true), json!("new_name"))
    );
    let (_, _, kids) = call(
        Method::GET,
        &format!("accounts({account})/new_project_new_accountid"),
        None,
    )
    .await;
    assert_eq!(kids["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_custom_tables_fail_the_seed() {
    let w = World::start().await;
    // Bad table definitions fail the seed and change nothing.
    let bad: dvhost_emulator::Seed = toml::from_str(
        r#"
        [[environments]]
        tenant = "contoso"
        unique_name = "broken"
        [[environments.tables]]
        logical_name = "nounderscore"
        "#,
    )
    .unwrap();
    assert!(w.emu.seed(bad).is_err());
}
