//! Queries: `$filter`, `$orderby`, `$top`, `$count`, paging, annotations,
//! `$expand`, `$apply` and FetchXML.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// The accounts Alpha, beta, Gamma and O'Brien with revenues and cities.
async fn four_accounts(w: &World, t: &str) {
    for (name, rev, city) in [
        ("Alpha", 100, "Seattle"),
        ("beta", 300, "Redmond"),
        ("Gamma", 200, "Seattle"),
        ("O'Brien", 50, "Paris"),
    ] {
        let (s, _, _) = w
            .send(
                t,
                Method::POST,
                "accounts",
                json!({"name": name, "revenue": rev, "address1_city": city}),
            )
            .await;
        assert_eq!(s, 204);
    }
}

/// The `name`s of a collection's rows, in order.
fn names(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn queries_filter_order_top_and_count() {
    let w = World::start().await;
    let t = w.dv_token().await;
    four_accounts(&w, &t).await;
    let q = |query: &'static str| w.get(&t, query);
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
    // Aliases in $orderby stand for a column ("Use parameter aliases with
    // system query options"); one without a value is null and orders
    // nothing.
    let (_, _, b) =
        q("accounts?$select=name&$filter=@p2 gt 90&$orderby=@p1 desc&@p1=revenue&@p2=revenue")
            .await;
    assert_eq!(names(&b), ["beta", "Gamma", "Alpha"]);
    let (s, _, b) = q("accounts?$select=name&$orderby=@p9,revenue").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(names(&b), ["O'Brien", "Alpha", "Gamma", "beta"]);
    // A leading wildcard is rejected, as Dataverse rejects it.
    let (s, _, e) = q("accounts?$filter=startswith(name,'%a')").await;
    assert_eq!(s, 400, "{e}");
}

#[tokio::test]
async fn queries_decode_plus_and_count_as_text() {
    let w = World::start().await;
    let t = w.dv_token().await;
    four_accounts(&w, &t).await;
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
}

#[tokio::test]
async fn unsupported_and_invalid_query_options_are_rejected() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let q = |query: &'static str| w.get(&t, query);
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
            w.send(
                &t,
                Method::POST,
                "contacts",
                json!({"lastname": format!("L{i:02}")})
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

/// A contact Ann, the account Parent whose primary contact she is, and
/// its children Kid B, Kid A, Kid C: the parent's id.
async fn family(w: &World, t: &str) -> String {
    let ann = w
        .create(
            t,
            "contacts",
            json!({"firstname": "Ann", "lastname": "Lee"}),
        )
        .await;
    let parent = w
        .create(
            t,
            "accounts",
            json!({"name": "Parent", "primarycontactid@odata.bind": format!("/contacts({ann})")}),
        )
        .await;
    for (i, name) in ["Kid B", "Kid A", "Kid C"].iter().enumerate() {
        let (s, _, _) = w.send(t, Method::POST, "accounts", json!({"name": name, "numberofemployees": i, "parentaccountid@odata.bind": format!("/accounts({parent})")})).await;
        assert_eq!(s, 204);
    }
    parent
}

#[tokio::test]
async fn expand_single_and_collection_navigation() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let parent = family(&w, &t).await;
    // Single-valued with nested $select.
    let (s, _, b) = w
        .get(
            &t,
            &format!("accounts({parent})?$select=name&$expand=primarycontactid($select=firstname)"),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["primarycontactid"]["firstname"], "Ann");
    assert!(b["primarycontactid"].get("lastname").is_none());
    assert!(b["primarycontactid"]["contactid"].is_string());
    // Collection-valued with nested $select/$filter/$orderby/$top on a single record.
    let (s, _, b) = w
        .get(&t, &format!("accounts({parent})?$select=name&$expand=account_parent_account($select=name;$filter=numberofemployees ge 1;$orderby=name desc;$top=1)"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["account_parent_account"],
        json!([{"@odata.etag": b["account_parent_account"][0]["@odata.etag"], "name": "Kid C", "accountid": b["account_parent_account"][0]["accountid"]}])
    );
    // On an entity set query the collection comes as a nested next link.
    let (_, _, b) = w.get(&t, &format!("accounts?$select=name&$filter=accountid eq {parent}&$expand=account_parent_account($select=name)")).await;
    let row = &b["value"][0];
    assert_eq!(row["account_parent_account"], json!([]));
    let next = row["account_parent_account@odata.nextLink"]
        .as_str()
        .unwrap();
    let resp = w.http.get(next).bearer_auth(&t).send().await.unwrap();
    let kids: Value = resp.json().await.unwrap();
    assert_eq!(kids["value"].as_array().unwrap().len(), 3);
    // ETag conditional GET is never 304 with $expand.
    let (_, _, b) = w.get(&t, &format!("accounts({parent})?$select=name")).await;
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
}

/// `GET <record>/<navigation property>` is queried like a set: the options
/// apply, pages follow `odata.maxpagesize`, and the nested next link a
/// collection `$expand` leaves returns what the expansion asked for; its
/// `$ref` lists the related rows' URLs and its `$count` counts them.
#[tokio::test]
async fn navigation_properties_take_query_options() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let parent = family(&w, &t).await;
    let kids = format!("accounts({parent})/account_parent_account");

    let (s, _, b) = w
        .get(
            &t,
            &format!(
                "{kids}?$select=name&$filter=numberofemployees ge 1&$orderby=name desc&$count=true"
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<_> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("Kid C"), json!("Kid A")]);
    assert_eq!(b["@odata.count"], 2);
    assert!(b["value"][0].get("numberofemployees").is_none(), "{b}");
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#accounts(name)"),
        "{b}"
    );

    // Pages of one, each next link below the navigation property.
    let page = [("Prefer", "odata.maxpagesize=1")];
    let first = format!("{kids}?$select=name&$orderby=name");
    let (s, _, mut b) = w.dv(&t, Method::GET, &first, None, &page).await;
    assert_eq!(s, 200, "{b}");
    let mut seen = Vec::new();
    // Bounded: a next link that never ends fails instead of hanging.
    for _ in 0..5 {
        seen.extend(
            b["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].clone()),
        );
        let Some(next) = b["@odata.nextLink"].as_str() else {
            break;
        };
        assert!(next.starts_with(&w.api(&kids)), "{next}");
        let path = next.replace(&w.api(""), "");
        b = w.dv(&t, Method::GET, &path, None, &page).await.2;
    }
    assert_eq!(seen, [json!("Kid A"), json!("Kid B"), json!("Kid C")]);

    // Unknown columns are refused as on a set.
    assert_eq!(
        w.get(&t, &format!("{kids}?$select=nosuchcolumn")).await.0,
        400
    );

    // The nested next link of a set query keeps the expansion's options.
    let (_, _, b) = w.get(&t, &format!("accounts?$select=name&$filter=accountid eq {parent}&$expand=account_parent_account($select=name;$filter=numberofemployees le 1;$orderby=name)")).await;
    let next = b["value"][0]["account_parent_account@odata.nextLink"]
        .as_str()
        .unwrap();
    let resp = w.http.get(next).bearer_auth(&t).send().await.unwrap();
    let linked: Value = resp.json().await.unwrap();
    assert_eq!(
        linked["value"],
        json!([
            {"@odata.etag": linked["value"][0]["@odata.etag"], "name": "Kid A", "accountid": linked["value"][0]["accountid"]},
            {"@odata.etag": linked["value"][1]["@odata.etag"], "name": "Kid B", "accountid": linked["value"][1]["accountid"]}
        ])
    );

    // Their references and their count.
    let (s, _, refs) = w.get(&t, &format!("{kids}/$ref")).await;
    assert_eq!(s, 200, "{refs}");
    assert!(
        refs["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Collection($ref)"),
        "{refs}"
    );
    let ids: Vec<&str> = refs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["@odata.id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{refs}");
    assert!(
        ids.iter().all(|i| i.starts_with(&w.api("accounts("))),
        "{refs}"
    );
    let (s, _, one) = w
        .get(&t, &format!("accounts({parent})/primarycontactid/$ref"))
        .await;
    assert_eq!(s, 200, "{one}");
    assert!(
        one["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#$ref"),
        "{one}"
    );
    assert!(
        one["@odata.id"]
            .as_str()
            .unwrap()
            .starts_with(&w.api("contacts(")),
        "{one}"
    );
    let resp = w
        .http
        .get(w.api(&format!("{kids}/$count")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), "\u{feff}3".as_bytes());

    // A single-valued one takes $select.
    let (s, _, b) = w
        .get(
            &t,
            &format!("accounts({parent})/primarycontactid?$select=firstname"),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["firstname"], "Ann");
    assert!(b.get("lastname").is_none(), "{b}");
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#contacts(firstname)/$entity"),
        "{b}"
    );
}

#[tokio::test]
async fn filters_through_navigation_lambdas_and_keys() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let parent = family(&w, &t).await;
    // Filters through navigation paths and lambdas.
    let (_, _, b) = w
        .get(
            &t,
            "accounts?$select=name&$filter=primarycontactid/firstname eq 'ann'",
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
        .get(
            &t,
            "accounts?$select=name&$filter=account_parent_account/any(k:k/name eq 'Kid A')",
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    assert_eq!(b["value"][0]["name"], "Parent");
    // Primary key filter, alone and with another condition.
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts?$select=name&$filter=accountid eq {parent}"),
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    let (_, _, b) = w
        .get(
            &t,
            &format!("accounts?$select=name&$filter=accountid eq {parent} and name eq 'other'"),
        )
        .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_expansions_are_refused() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let parent = family(&w, &t).await;
    // Bad expansions.
    assert_eq!(
        w.get(&t, &format!("accounts({parent})?$expand=nosuchnav"))
            .await
            .0,
        400
    );
    assert_eq!(
        w.get(
            &t,
            &format!("accounts({parent})?$expand=primarycontactid($select=nosuch)")
        )
        .await
        .0,
        400
    );
    assert_eq!(
        w.get(
            &t,
            &format!("accounts({parent})?$expand=primarycontactid($skip=1)")
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
        w.send(
            &t,
            Method::POST,
            "accounts",
            json!({"name": name, "revenue": rev, "accountcategorycode": cat}),
        )
        .await;
    }
    let (s, _, b) = w.get(&t, "accounts?$apply=groupby((accountcategorycode),aggregate($count as count,revenue with sum as total,revenue with max as top))").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["value"],
        json!([
            {"accountcategorycode": 1, "count": 2, "total": 300.0, "top": 200.0},
            {"accountcategorycode": 2, "count": 3, "total": 1060.0, "top": 1000.0},
        ])
    );
    // Groups follow an $orderby on their groupby columns.
    let (s, _, b) = w.get(&t, "accounts?$apply=groupby((accountcategorycode),aggregate($count as count))&$orderby=accountcategorycode desc").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["value"],
        json!([{"accountcategorycode": 2, "count": 3}, {"accountcategorycode": 1, "count": 2}])
    );
    let (_, _, b) = w.get(&t, "accounts?$apply=filter(revenue gt 60)/aggregate(revenue with average as avg,$count as n)").await;
    assert_eq!(b["value"], json!([{"avg": 433.3333333333333, "n": 3}]));
    for bad in [
        "accounts?$apply=groupby((createdon))",
        "accounts?$apply=aggregate(revenue with median as m)",
        "accounts?$apply=topcount(2,revenue)",
        "accounts?$apply=groupby((nosuch))",
        // $orderby only on groupby columns.
        "accounts?$apply=groupby((accountcategorycode),aggregate($count as count))&$orderby=name",
    ] {
        assert_eq!(w.get(&t, bad).await.0, 400, "{bad}");
    }
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
        w.send(
            &t,
            Method::POST,
            "accounts",
            json!({"name": name, "revenue": rev}),
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
async fn ordered_queries_follow_writes() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let mut ids = Vec::new();
    for (name, rev) in [("x", 3), ("y", 1), ("z", 2)] {
        let (_, h, _) = w
            .send(
                &t,
                Method::POST,
                "accounts",
                json!({"name": name, "revenue": rev}),
            )
            .await;
        ids.push(entity_id(&h));
    }
    let q = "accounts?$select=name&$orderby=revenue desc";
    assert_eq!(names(&w.get(&t, q).await.2), ["x", "z", "y"]);
    // A write changes the order the next query sees; so do creates and deletes.
    w.send(
        &t,
        Method::PATCH,
        &format!("accounts({})", ids[1]),
        json!({"revenue": 10}),
    )
    .await;
    assert_eq!(names(&w.get(&t, q).await.2), ["y", "x", "z"]);
    w.send(
        &t,
        Method::POST,
        "accounts",
        json!({"name": "w", "revenue": 5}),
    )
    .await;
    w.delete(&t, &format!("accounts({})", ids[0])).await;
    assert_eq!(names(&w.get(&t, q).await.2), ["y", "w", "z"]);
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
