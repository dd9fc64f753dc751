//! The Dataverse Web API emulator: authentication, CRUD, upsert matrix,
//! ETags, associations, queries and paging.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn authentication_and_application_users() {
    let w = World::start().await;
    // No token: 401 with the authority in the challenge.
    let resp = w.http.get(w.api("WhoAmI")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!(
            "Bearer authorization_uri={}/{TENANT_ID}/oauth2/authorize",
            w.emu.base_url()
        )),
        "{challenge}"
    );
    assert_eq!(resp.headers()["odata-version"], "4.0");
    // A token for another environment: 401.
    let (_, other) = w
        .client_credentials_as(
            APP_ID,
            &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
            &format!("{}/.default", w.env2_url),
        )
        .await;
    let (s, _, _) = w
        .dv(
            other["access_token"].as_str().unwrap(),
            Method::GET,
            "WhoAmI",
            None,
            &[],
        )
        .await;
    assert_eq!(s, 401);
    // Expired: move the clock past the token's lifetime.
    let token = w.dv_token().await;
    w.control(
        Method::PATCH,
        "settings",
        Some(json!({"clock_offset_secs": 6 * 3600})),
    )
    .await;
    assert_eq!(w.dv(&token, Method::GET, "WhoAmI", None, &[]).await.0, 401);
    w.control(
        Method::PATCH,
        "settings",
        Some(json!({"clock_offset_secs": 0})),
    )
    .await;

    // The seeded application user answers WhoAmI.
    let (s, h, who) = w.dv(&token, Method::GET, "WhoAmI", None, &[]).await;
    assert_eq!(s, 200, "{who}");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json; odata.metadata=minimal")
    );
    assert!(
        who["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    );
    for f in ["UserId", "BusinessUnitId", "OrganizationId"] {
        assert!(
            uuid::Uuid::parse_str(who[f].as_str().unwrap()).is_ok(),
            "{f}"
        );
    }
    assert!(
        h.contains_key("x-ms-dop-hint")
            && h.contains_key("x-ms-ratelimit-burst-remaining-xrm-requests")
    );

    // An app without an application user: 403 0x80040220.
    let cert = TestCert::generate("no-app-user");
    let (_, app) = w.control(Method::POST, "apps", Some(json!({"tenant": "contoso", "display_name": "later", "certificates": [cert.cert_pem]}))).await;
    let client = app["app_id"].as_str().unwrap().to_string();
    let (s, t) = w.cert_token(&client, &cert).await;
    assert_eq!(s, 200);
    let later = t["access_token"].as_str().unwrap().to_string();
    let (s, _, e) = w.dv(&later, Method::GET, "WhoAmI", None, &[]).await;
    assert_eq!(s, 403);
    assert_eq!(e["error"]["code"], "0x80040220");

    // A delegated admin creates its application user and gives it a role.
    let admin = w
        .sign_in(ADMIN, &format!("{}/user_impersonation", w.env_url))
        .await;
    let at = admin["access_token"].as_str().unwrap();
    let (_, _, bus) = w
        .dv(
            at,
            Method::GET,
            "businessunits?$select=businessunitid,name&$filter=_parentbusinessunitid_value eq null",
            None,
            &[],
        )
        .await;
    let bu = bus["value"][0]["businessunitid"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, h, _) = w
        .dv(at, Method::POST, "systemusers", Some(json!({"applicationid": client, "businessunitid@odata.bind": format!("/businessunits({bu})"), "firstname": "Sync", "lastname": "Service"})), &[])
        .await;
    assert_eq!(s, 204);
    let user_url = h["odata-entityid"].to_str().unwrap().to_string();
    // Without a role: still 403.
    assert_eq!(w.dv(&later, Method::GET, "WhoAmI", None, &[]).await.0, 403);
    let (_, _, roles) = w.dv(at, Method::GET, &format!("roles?$select=roleid,name&$filter=name eq 'System Administrator' and _businessunitid_value eq {bu}"), None, &[]).await;
    let role = roles["value"][0]["roleid"].as_str().unwrap();
    let uid = user_url.rsplit('(').next().unwrap().trim_end_matches(')');
    let (s, _, b) = w
        .dv(
            at,
            Method::POST,
            &format!("systemusers({uid})/systemuserroles_association/$ref"),
            Some(json!({"@odata.id": w.api(&format!("roles({role})"))})),
            &[],
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _, who) = w.dv(&later, Method::GET, "WhoAmI", None, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(who["UserId"], uid);
    // A user of the tenant who is not on the environment's list: 403.
    let (_, _, lookup) = w
        .dv(
            at,
            Method::GET,
            &format!("systemusers?$filter=applicationid eq {client}&$select=systemuserid"),
            None,
            &[],
        )
        .await;
    assert_eq!(lookup["value"][0]["systemuserid"], uid);
}

#[tokio::test]
async fn create_retrieve_update_delete() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, h, _) = w.dv(&t, Method::POST, "accounts", Some(json!({"name": "Fabrikam", "creditonhold": false, "revenue": 5000000, "accountcategorycode": 1})), &[]).await;
    assert_eq!(s, 204);
    let entity = h["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity.starts_with(&w.api("accounts(")), "{entity}");
    let id = entity
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();

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
        .dv(
            &t,
            Method::GET,
            &format!("accounts({id})?$select=name,revenue"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["name"], "Fabrikam");
    assert_eq!(b["revenue"], 5000000.0);
    assert_eq!(b["accountid"], id.as_str());
    assert_eq!(
        h["etag"].to_str().unwrap(),
        b["@odata.etag"].as_str().unwrap()
    );
    let etag1 = b["@odata.etag"].as_str().unwrap().to_string();
    // Full retrieve has nulls and system columns.
    let (_, _, full) = w
        .dv(&t, Method::GET, &format!("accounts({id})"), None, &[])
        .await;
    assert!(full.as_object().unwrap().contains_key("telephone1") && full["telephone1"].is_null());
    assert_eq!(full["statecode"], 0);
    assert_eq!(full["statuscode"], 1);
    assert!(full["_ownerid_value"].is_string() && full["createdon"].is_string());

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
        .dv(
            &t,
            Method::GET,
            &format!("accounts({id})?$select=telephone1"),
            None,
            &[],
        )
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

    // Single-property PUT/DELETE/GET.
    assert_eq!(
        w.dv(
            &t,
            Method::PUT,
            &format!("accounts({id})/name"),
            Some(json!({"value": "Renamed"})),
            &[]
        )
        .await
        .0,
        204
    );
    let (s, _, b) = w
        .dv(&t, Method::GET, &format!("accounts({id})/name"), None, &[])
        .await;
    assert_eq!((s, b["value"].clone()), (200, json!("Renamed")));
    assert_eq!(
        w.dv(
            &t,
            Method::DELETE,
            &format!("accounts({id})/telephone1"),
            None,
            &[]
        )
        .await
        .0,
        204
    );
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            &format!("accounts({id})/telephone1"),
            None,
            &[]
        )
        .await
        .0,
        204
    );

    // Delete, then 404 with Dataverse's code and message.
    assert_eq!(
        w.dv(&t, Method::DELETE, &format!("accounts({id})"), None, &[])
            .await
            .0,
        204
    );
    let (s, _, e) = w
        .dv(&t, Method::GET, &format!("accounts({id})"), None, &[])
        .await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "0x80040217");
    assert_eq!(
        e["error"]["message"],
        format!("Entity 'account' With Id = {id} Does Not Exist")
    );
    assert_eq!(
        w.dv(&t, Method::DELETE, &format!("accounts({id})"), None, &[])
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn upsert_matrix() {
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
    // No header: update when present, create when absent (201/200 with representation).
    assert_eq!(
        w.dv(&t, Method::PATCH, &url, Some(json!({"name": "C"})), &[])
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
        w.dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"accountid": id3, "name": "F"})),
            &[]
        )
        .await
        .0,
        204
    );
    let (s, _, e) = w
        .dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"accountid": id3, "name": "G"})),
            &[],
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
        let (s, _, e) = w
            .dv(&t, Method::POST, "accounts", Some(body.clone()), &[])
            .await;
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
    let (_, _, list) = w
        .dv(&t, Method::GET, "accounts?$count=true", None, &[])
        .await;
    assert_eq!(list["@odata.count"], 0, "nothing was written");
    // Unknown entity set and unknown segment.
    let (s, _, e) = w.dv(&t, Method::GET, "account", None, &[]).await;
    assert_eq!((s, e["error"]["code"].clone()), (404, json!("0x80060888")));
    let (s, _, _) = w.dv(&t, Method::GET, "accounts(not-a-key", None, &[]).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn binds_lookups_and_associations() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let created = |h: &reqwest::header::HeaderMap| {
        h["odata-entityid"]
            .to_str()
            .unwrap()
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_string()
    };
    let (_, h, _) = w
        .dv(
            &t,
            Method::POST,
            "contacts",
            Some(json!({"firstname": "Joe", "lastname": "Smith"})),
            &[],
        )
        .await;
    let contact = created(&h);
    // With and without the leading slash.
    let (s, h, b) = w.dv(&t, Method::POST, "accounts", Some(json!({"name": "A", "primarycontactid@odata.bind": format!("/contacts({contact})")})), &[]).await;
    assert_eq!(s, 204, "{b}");
    let account = created(&h);
    let (_, h, _) = w
        .dv(
            &t,
            Method::POST,
            "accounts",
            Some(
                json!({"name": "B", "primarycontactid@odata.bind": format!("contacts({contact})")}),
            ),
            &[],
        )
        .await;
    let account_b = created(&h);

    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})?$select=_primarycontactid_value"),
            None,
            &[],
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
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})/primarycontactid"),
            None,
            &[],
        )
        .await;
    assert_eq!((s, c["firstname"].clone()), (200, json!("Joe")));

    // Clear with null bind, set with PUT $ref, clear with DELETE $ref.
    assert_eq!(
        w.dv(
            &t,
            Method::PATCH,
            &format!("accounts({account})"),
            Some(json!({"primarycontactid@odata.bind": null})),
            &[]
        )
        .await
        .0,
        204
    );
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})?$select=_primarycontactid_value"),
            None,
            &[],
        )
        .await;
    assert!(b["_primarycontactid_value"].is_null());
    let (s, _, e) = w
        .dv(
            &t,
            Method::PUT,
            &format!("accounts({account})/primarycontactid/$ref"),
            Some(json!({"@odata.id": w.api(&format!("contacts({contact})"))})),
            &[],
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})?$select=_primarycontactid_value"),
            None,
            &[],
        )
        .await;
    assert_eq!(b["_primarycontactid_value"], contact.as_str());
    assert_eq!(
        w.dv(
            &t,
            Method::DELETE,
            &format!("accounts({account})/primarycontactid/$ref"),
            None,
            &[]
        )
        .await
        .0,
        204
    );
    // One-to-many through the collection navigation property of the parent.
    let (s, _, e) = w
        .dv(
            &t,
            Method::POST,
            &format!("accounts({account})/account_parent_account/$ref"),
            Some(json!({"@odata.id": w.api(&format!("accounts({account_b})"))})),
            &[],
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account_b})?$select=_parentaccountid_value"),
            None,
            &[],
        )
        .await;
    assert_eq!(b["_parentaccountid_value"], account.as_str());
    let (_, _, kids) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})/account_parent_account"),
            None,
            &[],
        )
        .await;
    assert_eq!(kids["value"].as_array().unwrap().len(), 1);
    let (s, _, _) = w
        .dv(
            &t,
            Method::DELETE,
            &format!("accounts({account})/account_parent_account({account_b})/$ref"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    let (_, _, kids) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({account})/account_parent_account"),
            None,
            &[],
        )
        .await;
    assert_eq!(kids["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn queries_filter_order_top_count_and_rejections() {
    let w = World::start().await;
    let t = w.dv_token().await;
    for (name, rev, city) in [
        ("Alpha", 100, "Seattle"),
        ("beta", 300, "Redmond"),
        ("Gamma", 200, "Seattle"),
        ("O'Brien", 50, "Paris"),
    ] {
        let (s, _, _) = w
            .dv(
                &t,
                Method::POST,
                "accounts",
                Some(json!({"name": name, "revenue": rev, "address1_city": city})),
                &[],
            )
            .await;
        assert_eq!(s, 204);
    }
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |query: &'static str| w.dv(&t, Method::GET, query, None, &[]);
    let (_, _, b) = q("accounts?$select=name&$filter=revenue gt 90 and address1_city eq 'seattle'&$orderby=revenue desc").await;
    assert_eq!(names(&b), ["Gamma", "Alpha"]);
    let (_, _, b) = q("accounts?$select=name&$filter=contains(name,'ET') or startswith(name,'o''b')&$orderby=name asc").await;
    assert_eq!(names(&b), ["beta", "O'Brien"]);
    let (_, _, b) =
        q("accounts?$select=name&$filter=not (address1_city eq 'Seattle')&$orderby=revenue").await;
    assert_eq!(names(&b), ["O'Brien", "beta"]);
    let (_, _, b) = q("accounts?$select=name&$orderby=address1_city,name desc&$top=3").await;
    assert_eq!(names(&b), ["O'Brien", "beta", "Gamma"]);
    let (_, _, b) = q("accounts?$select=name&$filter=telephone1 eq null&$count=true&$top=1").await;
    assert_eq!(b["@odata.count"], 4);
    assert_eq!(names(&b).len(), 1);
    // Dataverse query functions and parameter aliases.
    let (_, _, b) = q("accounts?$select=name&$filter=Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)&$orderby=name&@p1='address1_city'&@p2=[\"Paris\",\"Redmond\"]").await;
    assert_eq!(names(&b), ["beta", "O'Brien"]);
    let (_, _, b) = q("accounts?$select=name&$filter=Microsoft.Dynamics.CRM.Between(PropertyName='revenue',PropertyValues=[\"100\",\"250\"])&$orderby=revenue").await;
    assert_eq!(names(&b), ["Alpha", "Gamma"]);
    // A leading wildcard is rejected, as Dataverse rejects it.
    let (s, _, e) = q("accounts?$filter=startswith(name,'%a')").await;
    assert_eq!(s, 400, "{e}");
    // `+` and `%20` both decode to spaces.
    let resp = w
        .http
        .get(format!(
            "{}?$select=name&$filter=name+eq+'Alpha'",
            w.api("accounts")
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(names(&b), ["Alpha"]);
    // /$count is text/plain with a BOM.
    let resp = w
        .http
        .get(w.api("accounts/$count"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), "\u{feff}4".as_bytes());

    for bad in [
        "accounts?$skip=1",
        "accounts?$search=x",
        "accounts?$format=json",
        "accounts?$Select=name",
        "accounts?$select=nosuch",
        "accounts?$filter=name eq",
        "accounts?$filter=nosuch eq 1",
        "accounts?$orderby=name sideways",
        "accounts?$top=-1",
    ] {
        let (s, h, e) = q(bad).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(
            e["error"]["code"].is_string() && e["error"]["message"].is_string(),
            "{bad}"
        );
        assert_eq!(h["odata-version"], "4.0");
    }
}

#[tokio::test]
async fn paging_with_maxpagesize_follows_next_links_deterministically() {
    let w = World::start().await;
    let t = w.dv_token().await;
    for i in 0..23 {
        assert_eq!(
            w.dv(
                &t,
                Method::POST,
                "contacts",
                Some(json!({"lastname": format!("L{i:02}")})),
                &[]
            )
            .await
            .0,
            204
        );
    }
    let mut url = format!(
        "{}?$select=lastname&$orderby=lastname desc&$top=2",
        w.api("contacts")
    );
    let mut seen = Vec::new();
    let mut first_next = None;
    loop {
        let resp = w
            .http
            .get(&url)
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=5")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["preference-applied"], "odata.maxpagesize=5");
        let b: Value = resp.json().await.unwrap();
        let page = b["value"].as_array().unwrap();
        assert!(page.len() <= 5);
        seen.extend(
            page.iter()
                .map(|r| r["lastname"].as_str().unwrap().to_string()),
        );
        match b["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&w.api("contacts?")), "{next}");
                assert!(next.contains("$skiptoken="));
                first_next.get_or_insert(next.to_string());
                url = next.to_string();
            }
            None => break,
        }
    }
    // $top is ignored with maxpagesize; every row once, in order.
    let mut want: Vec<String> = (0..23).map(|i| format!("L{i:02}")).collect();
    want.reverse();
    assert_eq!(seen, want);
    // Replaying a next link gives the same page.
    let replay = |u: String| {
        let (http, t) = (w.http.clone(), t.clone());
        async move {
            http.get(u)
                .bearer_auth(t)
                .header("Prefer", "odata.maxpagesize=5")
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let a = replay(first_next.clone().unwrap()).await;
    let b = replay(first_next.unwrap()).await;
    assert_eq!(a["value"], b["value"]);
    assert_eq!(a["value"][0]["lastname"], "L17");
}

#[tokio::test]
async fn annotations_and_formatted_values_only_when_asked() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (_, _, b) = w
        .dv(&t, Method::POST, "accounts?$select=accountcategorycode,revenue,creditonhold", Some(json!({"name": "F", "accountcategorycode": 1, "revenue": 20000, "creditonhold": true})), &[("Prefer", "return=representation")])
        .await;
    assert!(
        b.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("FormattedValue"))
    );
    let (_, h, b) = w
        .dv(
            &t,
            Method::GET,
            &format!(
                "accounts({})?$select=accountcategorycode,revenue,creditonhold",
                b["accountid"].as_str().unwrap()
            ),
            None,
            &[(
                "Prefer",
                "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\"",
            )],
        )
        .await;
    assert_eq!(
        b["accountcategorycode@OData.Community.Display.V1.FormattedValue"],
        "Preferred Customer"
    );
    assert_eq!(
        b["revenue@OData.Community.Display.V1.FormattedValue"],
        "$20,000.00"
    );
    assert_eq!(
        b["creditonhold@OData.Community.Display.V1.FormattedValue"],
        "Yes"
    );
    assert_eq!(
        h["preference-applied"],
        "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\""
    );
}

#[tokio::test]
async fn entity_definitions_and_attribute_casts() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, b) = w
        .dv(
            &t,
            Method::GET,
            "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute,DisplayName",
            None,
            &[],
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

    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions?$select=LogicalName&$filter=OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'BusinessOwned'", None, &[]).await;
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

    let (s, _, e) = w
        .dv(
            &t,
            Method::GET,
            "EntityDefinitions(LogicalName='contact')",
            None,
            &[],
        )
        .await;
    assert_eq!(
        (s, e["PrimaryNameAttribute"].clone()),
        (200, json!("fullname"))
    );
    let id = e["MetadataId"].as_str().unwrap().to_string();
    let (s, _, e) = w
        .dv(
            &t,
            Method::GET,
            &format!("EntityDefinitions({id})?$select=LogicalName"),
            None,
            &[],
        )
        .await;
    assert_eq!((s, e["LogicalName"].clone()), (200, json!("contact")));
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            "EntityDefinitions(LogicalName='nosuch')",
            None,
            &[]
        )
        .await
        .0,
        404
    );

    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,AttributeType,AttributeTypeName&$filter=LogicalName eq 'name'", None, &[]).await;
    assert_eq!(b["value"][0]["AttributeType"], "String");
    assert_eq!(b["value"][0]["AttributeTypeName"]["Value"], "StringType");
    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet", None, &[]).await;
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
    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName,Targets&$filter=LogicalName eq 'primarycontactid'", None, &[]).await;
    assert_eq!(b["value"][0]["Targets"], json!(["contact"]));
    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength&$filter=LogicalName eq 'name'", None, &[]).await;
    assert_eq!(b["value"][0]["MaxLength"], 160);
    // A cast with no match: 200 and an empty value.
    let (s, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$filter=LogicalName eq 'revenue'", None, &[]).await;
    assert_eq!((s, b["value"].clone()), (200, json!([])));
    let (_, _, b) = w.dv(&t, Method::GET, "EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName&$filter=RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'", None, &[]).await;
    assert_eq!(b["value"][0]["LogicalName"], "name");
}

#[tokio::test]
async fn expand_and_navigation_filters() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let id_of = |h: &reqwest::header::HeaderMap| {
        h["odata-entityid"]
            .to_str()
            .unwrap()
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_string()
    };
    let (_, h, _) = w
        .dv(
            &t,
            Method::POST,
            "contacts",
            Some(json!({"firstname": "Ann", "lastname": "Lee"})),
            &[],
        )
        .await;
    let ann = id_of(&h);
    let (_, h, _) = w.dv(&t, Method::POST, "accounts", Some(json!({"name": "Parent", "primarycontactid@odata.bind": format!("/contacts({ann})")})), &[]).await;
    let parent = id_of(&h);
    for (i, name) in ["Kid B", "Kid A", "Kid C"].iter().enumerate() {
        let (s, _, _) = w.dv(&t, Method::POST, "accounts", Some(json!({"name": name, "numberofemployees": i, "parentaccountid@odata.bind": format!("/accounts({parent})")})), &[]).await;
        assert_eq!(s, 204);
    }
    // Single-valued with nested $select.
    let (s, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$select=name&$expand=primarycontactid($select=firstname)"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["primarycontactid"]["firstname"], "Ann");
    assert!(b["primarycontactid"].get("lastname").is_none());
    assert!(b["primarycontactid"]["contactid"].is_string());
    // Collection-valued with nested $select/$filter/$orderby/$top on a single record.
    let (s, _, b) = w
        .dv(&t, Method::GET, &format!("accounts({parent})?$select=name&$expand=account_parent_account($select=name;$filter=numberofemployees ge 1;$orderby=name desc;$top=1)"), None, &[])
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["account_parent_account"],
        json!([{"@odata.etag": b["account_parent_account"][0]["@odata.etag"], "name": "Kid C", "accountid": b["account_parent_account"][0]["accountid"]}])
    );
    // On an entity set query the collection comes as a nested next link.
    let (_, _, b) = w.dv(&t, Method::GET, &format!("accounts?$select=name&$filter=accountid eq {parent}&$expand=account_parent_account($select=name)"), None, &[]).await;
    let row = &b["value"][0];
    assert_eq!(row["account_parent_account"], json!([]));
    let next = row["account_parent_account@odata.nextLink"]
        .as_str()
        .unwrap();
    let resp = w.http.get(next).bearer_auth(&t).send().await.unwrap();
    let kids: Value = resp.json().await.unwrap();
    assert_eq!(kids["value"].as_array().unwrap().len(), 3);
    // ETag conditional GET is never 304 with $expand.
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$select=name"),
            None,
            &[],
        )
        .await;
    let etag = b["@odata.etag"].as_str().unwrap().to_string();
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$select=name&$expand=primarycontactid"),
            None,
            &[("If-None-Match", &etag)]
        )
        .await
        .0,
        200
    );
    // Filters through navigation paths and lambdas.
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            "accounts?$select=name&$filter=primarycontactid/firstname eq 'ann'",
            None,
            &[],
        )
        .await;
    assert_eq!(
        b["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Parent"]
    );
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            "accounts?$select=name&$filter=account_parent_account/any(k:k/name eq 'Kid A')",
            None,
            &[],
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    assert_eq!(b["value"][0]["name"], "Parent");
    // Primary key filter, alone and with another condition.
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts?$select=name&$filter=accountid eq {parent}"),
            None,
            &[],
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            &format!("accounts?$select=name&$filter=accountid eq {parent} and name eq 'other'"),
            None,
            &[],
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 0);
    // Bad expansions.
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$expand=nosuchnav"),
            None,
            &[]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$expand=primarycontactid($select=nosuch)"),
            None,
            &[]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        w.dv(
            &t,
            Method::GET,
            &format!("accounts({parent})?$expand=primarycontactid($skip=1)"),
            None,
            &[]
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn apply_groupby_and_aggregate() {
    let w = World::start().await;
    let t = w.dv_token().await;
    for (name, rev, cat) in [
        ("a", 100, 1),
        ("b", 200, 1),
        ("c", 50, 2),
        ("d", 1000, 2),
        ("e", 10, 2),
    ] {
        w.dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": name, "revenue": rev, "accountcategorycode": cat})),
            &[],
        )
        .await;
    }
    let (s, _, b) = w.dv(&t, Method::GET, "accounts?$apply=groupby((accountcategorycode),aggregate($count as count,revenue with sum as total,revenue with max as top))", None, &[]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["value"],
        json!([
            {"accountcategorycode": 1, "count": 2, "total": 300.0, "top": 200.0},
            {"accountcategorycode": 2, "count": 3, "total": 1060.0, "top": 1000.0},
        ])
    );
    let (_, _, b) = w.dv(&t, Method::GET, "accounts?$apply=filter(revenue gt 60)/aggregate(revenue with average as avg,$count as n)", None, &[]).await;
    assert_eq!(b["value"], json!([{"avg": 433.3333333333333, "n": 3}]));
    for bad in [
        "accounts?$apply=groupby((createdon))",
        "accounts?$apply=aggregate(revenue with median as m)",
        "accounts?$apply=topcount(2,revenue)",
        "accounts?$apply=groupby((nosuch))",
    ] {
        assert_eq!(w.dv(&t, Method::GET, bad, None, &[]).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn service_document_and_csdl_agree() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (s, _, doc) = w.dv(&t, Method::GET, "", None, &[]).await;
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

#[tokio::test]
async fn fetchxml_queries_page_and_omit_nulls() {
    let w = World::start().await;
    let t = w.dv_token().await;
    for (name, rev) in [
        ("Fa", Some(10)),
        ("Fb", Some(30)),
        ("Fc", None),
        ("Fd", Some(20)),
        ("Other", Some(99)),
    ] {
        w.dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": name, "revenue": rev})),
            &[],
        )
        .await;
    }
    let fetch = |xml: &str| {
        let url = format!(
            "{}?fetchXml={}",
            w.api("accounts"),
            url::form_urlencoded::byte_serialize(xml.as_bytes()).collect::<String>()
        );
        let (http, t) = (w.http.clone(), t.clone());
        async move {
            let resp = http
                .get(url)
                .bearer_auth(t)
                .header("Prefer", "odata.include-annotations=\"*\"")
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let xml = r#"<fetch count="2" page="1"><entity name="account"><attribute name="name"/><attribute name="revenue"/><order attribute="name"/><filter><condition attribute="name" operator="like" value="F%"/></filter></entity></fetch>"#;
    let (s, b) = fetch(xml).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Fa", "Fb"]);
    assert_eq!(b["@Microsoft.Dynamics.CRM.morerecords"], true);
    let cookie = b["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
        .as_str()
        .unwrap();
    assert!(
        cookie.to_lowercase().starts_with(
            "<cookie pagenumber=\"2\" pagingcookie=\"%253ccookie%2520page%253d%25221%2522"
        ),
        "{cookie}"
    );
    let (_, b) = fetch(&xml.replace("page=\"1\"", "page=\"2\"")).await;
    let page2 = b["value"].as_array().unwrap();
    assert_eq!(page2.len(), 2);
    // Nulls are omitted in FetchXML results.
    let fc = page2.iter().find(|r| r["name"] == "Fc").unwrap();
    assert!(fc.get("revenue").is_none(), "{fc}");
    assert!(
        b.get("@Microsoft.Dynamics.CRM.morerecords").is_none(),
        "last page"
    );
    // Wrong entity, bad XML.
    assert_eq!(
        fetch("<fetch><entity name=\"contact\"/></fetch>").await.0,
        400
    );
    assert_eq!(fetch("<fetch><entity name=").await.0, 400);
}

#[tokio::test]
async fn impersonation_and_plugin_bypass_need_privileges() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let alice = w
        .sign_in(USER, &format!("{}/user_impersonation", w.env_url))
        .await;
    let at = alice["access_token"].as_str().unwrap().to_string();
    let alice_oid = w.verify_with_jwks(&at).await["oid"]
        .as_str()
        .unwrap()
        .to_string();
    // A Basic User works with records but may not impersonate or bypass plug-ins.
    let (s, _, who) = w.dv(&at, Method::GET, "WhoAmI", None, &[]).await;
    assert_eq!(s, 200, "{who}");
    let alice_id = who["UserId"].as_str().unwrap().to_string();
    assert_eq!(
        w.dv(
            &at,
            Method::POST,
            "accounts",
            Some(json!({"name": "by alice"})),
            &[]
        )
        .await
        .0,
        204
    );
    let (s, _, e) = w
        .dv(
            &at,
            Method::GET,
            "WhoAmI",
            None,
            &[("CallerObjectId", &alice_oid)],
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (403, json!("0x80040220")));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prvActOnBehalfOfAnotherUser")
    );
    let (s, _, e) = w
        .dv(
            &at,
            Method::POST,
            "accounts",
            Some(json!({"name": "x"})),
            &[("MSCRM.BypassCustomPluginExecution", "true")],
        )
        .await;
    assert_eq!(s, 403);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prvBypassCustomPlugins")
    );

    // The application user (System Administrator) impersonates Alice both ways.
    let (s, _, who) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("CallerObjectId", &alice_oid)],
        )
        .await;
    assert_eq!((s, who["UserId"].clone()), (200, json!(alice_id)));
    let (s, _, who) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("MSCRMCallerID", &alice_id)],
        )
        .await;
    assert_eq!((s, who["UserId"].clone()), (200, json!(alice_id)));
    let (_, _, b) = w
        .dv(
            &t,
            Method::POST,
            "accounts?$select=_createdby_value",
            Some(json!({"name": "for alice"})),
            &[
                ("CallerObjectId", &alice_oid),
                ("Prefer", "return=representation"),
            ],
        )
        .await;
    assert_eq!(b["_createdby_value"], alice_id.as_str());
    // Impersonating a Basic User drops the bypass privilege.
    let (s, _, _) = w
        .dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": "y"})),
            &[
                ("MSCRMCallerID", &alice_id),
                ("MSCRM.BypassCustomPluginExecution", "true"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        w.dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": "z"})),
            &[("MSCRM.BypassCustomPluginExecution", "true")]
        )
        .await
        .0,
        204
    );
    let (s, _, _) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("MSCRMCallerID", "not-a-guid")],
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn custom_tables_and_alternate_keys_from_the_seed() {
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
    let call = |m: Method, path: &str, body: Option<Value>| {
        let mut req = w
            .http
            .request(m, format!("{base}/api/data/v9.2/{path}"))
            .bearer_auth(&t);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            let s = resp.status().as_u16();
            let h = resp.headers().clone();
            (s, h, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, h, _) = call(
        Method::POST,
        "accounts",
        Some(json!({"name": "Acme", "accountnumber": "A-1"})),
    )
    .await;
    assert_eq!(s, 204);
    let account = h["odata-entityid"]
        .to_str()
        .unwrap()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let (s, _, e) = call(Method::POST, "new_projects", Some(json!({"new_name": "Rocket", "new_code": "R1", "new_budget": 10, "new_stage": 2, "new_accountid@odata.bind": format!("/accounts({account})")}))).await;
    assert_eq!(s, 204, "{e}");
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
    // Filters on the key use the index and still honour the other conditions.
    let (_, _, l) = call(
        Method::GET,
        "new_projects?$select=new_name&$filter=new_code eq 'r1'",
        None,
    )
    .await;
    assert_eq!(l["value"][0]["new_name"], "Rocket 2");
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

#[tokio::test]
async fn error_details_only_with_annotations() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let missing = uuid::Uuid::new_v4();
    let (_, _, plain) = w
        .dv(&t, Method::GET, &format!("accounts({missing})"), None, &[])
        .await;
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

#[tokio::test]
async fn ordered_queries_follow_writes() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let mut ids = Vec::new();
    for (name, rev) in [("x", 3), ("y", 1), ("z", 2)] {
        let (_, h, _) = w
            .dv(
                &t,
                Method::POST,
                "accounts",
                Some(json!({"name": name, "revenue": rev})),
                &[],
            )
            .await;
        ids.push(
            h["odata-entityid"]
                .to_str()
                .unwrap()
                .rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_string(),
        );
    }
    let names = |v: &Value| {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let q = "accounts?$select=name&$orderby=revenue desc";
    assert_eq!(
        names(&w.dv(&t, Method::GET, q, None, &[]).await.2),
        ["x", "z", "y"]
    );
    // A write changes the order the next query sees; so do creates and deletes.
    w.dv(
        &t,
        Method::PATCH,
        &format!("accounts({})", ids[1]),
        Some(json!({"revenue": 10})),
        &[],
    )
    .await;
    assert_eq!(
        names(&w.dv(&t, Method::GET, q, None, &[]).await.2),
        ["y", "x", "z"]
    );
    w.dv(
        &t,
        Method::POST,
        "accounts",
        Some(json!({"name": "w", "revenue": 5})),
        &[],
    )
    .await;
    w.dv(
        &t,
        Method::DELETE,
        &format!("accounts({})", ids[0]),
        None,
        &[],
    )
    .await;
    assert_eq!(
        names(&w.dv(&t, Method::GET, q, None, &[]).await.2),
        ["y", "w", "z"]
    );
    // $count counts every match even when the page stops early.
    let (_, _, b) = w
        .dv(
            &t,
            Method::GET,
            "accounts?$select=name&$orderby=revenue&$count=true",
            None,
            &[("Prefer", "odata.maxpagesize=1")],
        )
        .await;
    assert_eq!(
        (b["@odata.count"].clone(), names(&b)),
        (json!(3), vec!["z".to_string()])
    );
}
