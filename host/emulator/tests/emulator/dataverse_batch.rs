//! `$batch` and bulk messages.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Sends a raw `$batch` body; returns status, content type and text.
async fn batch(
    w: &World,
    token: &str,
    boundary: &str,
    body: String,
    prefer: Option<&str>,
) -> (u16, String, String) {
    let mut req = w
        .http
        .post(w.api("$batch"))
        .bearer_auth(token)
        .header("OData-Version", "4.0")
        .header(
            "Content-Type",
            format!("multipart/mixed; boundary=\"{boundary}\""),
        );
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (status, ct, resp.text().await.unwrap())
}

fn op(method: &str, url: &str, content_id: Option<u32>, body: Option<Value>) -> String {
    let cid = content_id
        .map(|c| format!("Content-ID: {c}\r\n"))
        .unwrap_or_default();
    let body = body
        .map(|b| format!("Content-Type: application/json; type=entry\r\n\r\n{b}\r\n"))
        .unwrap_or_else(|| "\r\n\r\n".into());
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{cid}\r\n{method} {url} HTTP/1.1\r\n{body}"
    )
}

fn changeset(boundary: &str, ops: &[String]) -> String {
    let mut s = format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n");
    for o in ops {
        s.push_str(&format!("--{boundary}\r\n{o}"));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

fn envelope(boundary: &str, parts: &[String]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push_str(&format!("--{boundary}\r\n{p}"));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

#[tokio::test]
async fn change_sets_with_content_id_references_and_reads() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let path = "/contoso-dev/api/data/v9.2/";
    let cs = changeset(
        "changeset_91aa",
        &[
            op(
                "POST",
                &format!("{path}contacts"),
                Some(1),
                Some(json!({"lastname": "Batch"})),
            ),
            op(
                "POST",
                &format!("{path}accounts"),
                Some(2),
                Some(json!({"name": "Batch Co", "primarycontactid@odata.bind": "$1"})),
            ),
            op("PATCH", "$2", Some(3), Some(json!({"telephone1": "555"}))),
        ],
    );
    let get = op(
        "GET",
        &format!(
            "{}accounts?$select=name,telephone1,_primarycontactid_value",
            w.api("")
        ),
        None,
        None,
    );
    let (s, ct, text) = batch(
        &w,
        &t,
        "batch_7f3c",
        envelope("batch_7f3c", &[cs, get]),
        None,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert!(
        ct.starts_with("multipart/mixed; boundary=batchresponse_"),
        "{ct}"
    );
    assert!(text.contains("changesetresponse_"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 3, "{text}");
    assert!(
        text.contains("Location: ") && text.contains("OData-EntityId: ")
            || text.contains("odata-entityid: "),
        "{text}"
    );
    assert!(text.contains("Content-ID: 1") && text.contains("Content-ID: 2"));
    // The GET part sees the change set's writes, and the references were resolved.
    let json_start = text.find("{\"@odata.context\"").expect("GET body");
    let end = text[json_start..].find("\r\n").unwrap() + json_start;
    let body: Value = serde_json::from_str(&text[json_start..end]).unwrap();
    assert_eq!(body["value"][0]["name"], "Batch Co");
    assert_eq!(body["value"][0]["telephone1"], "555");
    assert!(body["value"][0]["_primarycontactid_value"].is_string());
    assert!(text.contains("odata.streaming=true"));
}

#[tokio::test]
async fn a_failing_change_set_rolls_back_and_stops_the_batch() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let cs = changeset(
        "cs1",
        &[
            op("POST", "accounts", Some(1), Some(json!({"name": "kept?"}))),
            op(
                "POST",
                "accounts",
                Some(2),
                Some(json!({"name": "x".repeat(200)})),
            ),
        ],
    );
    let after = op(
        "POST",
        "contacts",
        Some(3),
        Some(json!({"lastname": "after"})),
    );
    let (s, _, text) = batch(
        &w,
        &t,
        "b1",
        envelope("b1", &[cs.clone(), after.clone()]),
        None,
    )
    .await;
    assert_eq!(s, 400, "top-level status is the failure's: {text}");
    assert!(
        text.contains("HTTP/1.1 400 Bad Request") && text.contains("0x80044331"),
        "{text}"
    );
    assert_eq!(
        w.count(&t, "accounts").await,
        0,
        "the change set was rolled back"
    );
    assert_eq!(
        w.count(&t, "contacts").await,
        0,
        "the batch stopped at the failure"
    );

    // With continue-on-error: 200 and every part answered.
    let (s, _, text) = batch(
        &w,
        &t,
        "b2",
        envelope("b2", &[cs, after]),
        Some("odata.continue-on-error"),
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("HTTP/1.1 400 Bad Request") && text.contains("HTTP/1.1 204 No Content"));
    assert_eq!(w.count(&t, "accounts").await, 0);
    assert_eq!(w.count(&t, "contacts").await, 1);
}

#[tokio::test]
async fn batch_rejections() {
    let w = World::start().await;
    let t = w.dv_token().await;
    // GET inside a change set.
    let cs = changeset("c", &[op("GET", "accounts", Some(1), None)]);
    let (s, ct, text) = batch(&w, &t, "b", envelope("b", &[cs]), None).await;
    assert_eq!(s, 400);
    assert!(
        ct.starts_with("application/json"),
        "a malformed batch gets a plain JSON error: {text}"
    );
    // Over 1000 operations.
    let parts: Vec<String> = (0..1001)
        .map(|_| op("GET", "accounts?$top=1", None, None))
        .collect();
    let (s, _, text) = batch(&w, &t, "b", envelope("b", &parts), None).await;
    assert_eq!(s, 400);
    assert!(text.contains("1000"), "{text}");
    // An undeclared Content-ID reference.
    let cs = changeset(
        "c",
        &[op("PATCH", "$7", Some(1), Some(json!({"name": "x"})))],
    );
    let (s, _, text) = batch(&w, &t, "b", envelope("b", &[cs]), None).await;
    assert_eq!(s, 400);
    assert!(
        text.contains("Content-ID Reference: '$7' does not exist in the batch context."),
        "{text}"
    );
    // Not multipart, garbage, no boundary.
    for (ct, body) in [
        ("application/json", "{}"),
        ("multipart/mixed; boundary=zz", "garbage"),
        ("multipart/mixed", "--x--"),
    ] {
        let resp = w
            .http
            .post(w.api("$batch"))
            .bearer_auth(&t)
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{ct}");
    }
    // 1000 operations are fine; an inner GET may be longer than 32 KB.
    let long_filter = format!(
        "accounts?$select=name&$filter={}",
        vec!["name eq 'x'"; 2500].join(" or ")
    );
    assert!(long_filter.len() > 32_768);
    let mut parts: Vec<String> = (0..999)
        .map(|_| op("GET", "accounts?$top=1", None, None))
        .collect();
    parts.push(op("GET", &long_filter.replace(' ', "%20"), None, None));
    let (s, _, text) = batch(&w, &t, "b", envelope("b", &parts), None).await;
    assert_eq!(
        s,
        200,
        "{}",
        text.split("HTTP/1.1 ")
            .find(|p| !p.starts_with("200"))
            .unwrap_or_default()
    );
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1000);
    // The same GET outside $batch is too long.
    let resp = w
        .http
        .get(format!("{}{}", w.api(""), long_filter.replace(' ', "+")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 414);
}

/// `POST accounts/Microsoft.Dynamics.CRM.<message>` with this body.
async fn bulk_body(
    w: &World,
    t: &str,
    message: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    w.send(
        t,
        Method::POST,
        &format!("accounts/Microsoft.Dynamics.CRM.{message}"),
        body,
    )
    .await
}

/// A bulk message on accounts with these `Targets`.
async fn bulk(
    w: &World,
    t: &str,
    message: &str,
    targets: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    bulk_body(w, t, message, json!({ "Targets": targets })).await
}

/// CreateMultiple of the accounts `Bulk 0` to `Bulk 49`: their ids.
async fn fifty_accounts(w: &World, t: &str) -> Vec<String> {
    let targets: Vec<Value> = (0..50).map(|i| json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": format!("Bulk {i}")})).collect();
    let (s, _, b) = bulk(w, t, "CreateMultiple", json!(targets)).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    );
    let ids: Vec<String> = b["Ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(w.count(t, "accounts").await, 50);

    ids
}

#[tokio::test]
async fn create_multiple_is_all_or_nothing() {
    let w = World::start().await;
    let t = w.dv_token().await;
    fifty_accounts(&w, &t).await;
    // One bad target: nothing is created.
    let mut bad: Vec<Value> = (0..5).map(|i| json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": format!("More {i}")})).collect();
    bad.push(json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "name": 42}));
    let (s, _, _) = bulk(&w, &t, "CreateMultiple", json!(bad)).await;
    assert_eq!(s, 400);
    assert_eq!(w.count(&t, "accounts").await, 50);
    // Missing @odata.type.
    let (s, _, e) = bulk(&w, &t, "CreateMultiple", json!([{"name": "x"}])).await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("@odata.type")
    );
}

#[tokio::test]
async fn update_and_upsert_multiple_are_all_or_nothing() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let ids = fifty_accounts(&w, &t).await;
    // UpdateMultiple, then UpsertMultiple (one update, one create).
    let updates: Vec<Value> = ids.iter().take(3).map(|id| json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id, "telephone1": "1"})).collect();
    assert_eq!(bulk(&w, &t, "UpdateMultiple", json!(updates)).await.0, 204);
    let (_, _, b) = w
        .get(
            &t,
            "accounts?$filter=telephone1 eq '1'&$count=true&$select=name",
        )
        .await;
    assert_eq!(b["@odata.count"], 3);
    let fresh = uuid::Uuid::new_v4();
    let upserts = json!({"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": format!("accounts({})", ids[0]), "name": "Upserted"},
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": fresh, "name": "New"},
    ]});
    assert_eq!(bulk_body(&w, &t, "UpsertMultiple", upserts).await.0, 204);
    assert_eq!(w.count(&t, "accounts").await, 51);
    let (_, _, b) = w
        .get(&t, &format!("accounts({})?$select=name", ids[0]))
        .await;
    assert_eq!(b["name"], "Upserted");
    // An update of a missing row rolls back the others.
    let missing = json!({"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": ids[1], "name": "changed"},
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": uuid::Uuid::new_v4(), "name": "ghost"},
    ]});
    assert_eq!(bulk_body(&w, &t, "UpdateMultiple", missing).await.0, 404);
    let (_, _, b) = w
        .get(&t, &format!("accounts({})?$select=name", ids[1]))
        .await;
    assert_eq!(b["name"], "Bulk 1");
    // DeleteMultiple is not available on standard tables.
    let (s, _, e) = bulk(&w, &t, "DeleteMultiple", json!([])).await;
    assert_eq!(s, 400);
    assert_eq!(
        e["error"]["message"],
        "DeleteMultiple has not yet been implemented."
    );
}

#[tokio::test]
async fn inner_batch_marker_is_internal_state_not_a_header() {
    let w = World::start().await;
    let t = w.dv_token().await;
    // A `$batch` inside a `$batch` is rejected ...
    let inner = op("POST", &w.api("$batch"), None, None);
    let (_, _, text) = batch(&w, &t, "b1", envelope("b1", &[inner]), None).await;
    assert!(
        text.contains("Nested $batch requests are not supported."),
        "{text}"
    );
    // ... but a client cannot trigger that by sending the header the
    // emulator once used to mark inner requests: a top-level `$batch` with
    // `x-dvhost-inner-batch` is served normally.
    let get = op("GET", &w.api("accounts?$select=name"), None, None);
    let resp = w
        .http
        .post(w.api("$batch"))
        .bearer_auth(&t)
        .header("OData-Version", "4.0")
        .header("x-dvhost-inner-batch", "1")
        .header("Content-Type", "multipart/mixed; boundary=\"b2\"")
        .body(envelope("b2", &[get]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("Nested $batch"), "{text}");
}
