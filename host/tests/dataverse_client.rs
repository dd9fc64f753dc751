//! The Dataverse client against the in-process emulator: every operation,
//! resilience under injected faults, and no secret in logs or errors.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dvhost::dataverse::{BatchOperation, BatchPart, BulkWrite, Client, Query};
use dvhost::emulator::{RunningEmulator, Seed};
use dvhost::identity::{Certificate, Connection, SigningAlgorithm, TokenSource, http_client};
use serde_json::{Map, Value, json};
use uuid::Uuid;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const NO_USER_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000002";

struct Setup {
    emu: RunningEmulator,
    client: Client,
    cert: Arc<Certificate>,
}

async fn setup(extra_settings: &str) -> Setup {
    let cert = Arc::new(Certificate::generate("sync", Certificate::default_validity()).unwrap());
    let toml = format!(
        r#"
        [settings]
        {extra_settings}
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[apps]]
        tenant = "contoso"
        display_name = "sync"
        app_id = "{CLIENT}"
        certificates = [{pem:?}]
        [[apps]]
        tenant = "contoso"
        display_name = "no app user"
        app_id = "{NO_USER_CLIENT}"
        certificates = [{pem:?}]
        [[environments]]
        tenant = "contoso"
        unique_name = "contoso-dev"
        app_users = ["{CLIENT}"]
        alternate_keys = {{ account = [["accountnumber"]] }}
        "#,
        pem = cert.pem()
    );
    let seed = Seed::from_toml(&toml, None).unwrap();
    let emu = dvhost::emulator::EmulatorBuilder::new()
        .tls(true)
        .seed(seed)
        .start()
        .await
        .unwrap();
    let client = client_for(&emu, &cert, CLIENT);
    Setup { emu, client, cert }
}

fn client_for(emu: &RunningEmulator, cert: &Arc<Certificate>, client_id: &str) -> Client {
    let http = http_client(emu.ca_certificate_pem()).unwrap();
    let env = format!("{}/contoso-dev", emu.base_url());
    let tokens = Arc::new(TokenSource::new(
        Connection {
            tenant: TENANT.into(),
            client_id: client_id.into(),
            authority_host: emu.base_url().into(),
            resource: env.clone(),
            certificate: cert.clone(),
            algorithm: SigningAlgorithm::Rs256,
        },
        http.clone(),
    ));
    Client::new(&env, tokens, http)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn rec(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn every_operation() {
    let s = setup("").await;
    let c = &s.client;
    let who = c.who_am_i(soon()).await.unwrap();
    assert!(!who.user_id.is_nil());

    // Create with a generated id and with a caller-supplied one.
    let a = c
        .create(
            "accounts",
            "accountid",
            &rec(json!({"name": "Fabrikam", "revenue": 10})),
            None,
            soon(),
        )
        .await
        .unwrap();
    let mine = Uuid::new_v4();
    assert_eq!(
        c.create(
            "contacts",
            "contactid",
            &rec(json!({"lastname": "O'Brien"})),
            Some(mine),
            soon()
        )
        .await
        .unwrap(),
        mine
    );
    let got = c
        .retrieve("accounts", &a.to_string(), &["name", "revenue"], soon())
        .await
        .unwrap();
    assert_eq!(got["name"], "Fabrikam");

    // Retrieve and upsert by alternate key.
    c.update(
        "accounts",
        a,
        &rec(json!({"accountnumber": "A-1"})),
        None,
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.retrieve("accounts", "accountnumber='A-1'", &["name"], soon())
            .await
            .unwrap()["name"],
        "Fabrikam"
    );
    c.upsert(
        "accounts",
        "accountnumber='A-2'",
        &rec(json!({"name": "By key"})),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.retrieve("accounts", "accountnumber='A-2'", &["name"], soon())
            .await
            .unwrap()["name"],
        "By key"
    );
    let etag = c
        .retrieve("accounts", &a.to_string(), &["name"], soon())
        .await
        .unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();

    // Update, conditional update conflict (412), upsert, not found.
    c.update(
        "accounts",
        a,
        &rec(json!({"name": "Fabrikam 2"})),
        Some(&etag),
        soon(),
    )
    .await
    .unwrap();
    let err = c
        .update(
            "accounts",
            a,
            &rec(json!({"name": "stale"})),
            Some(&etag),
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(412), Some("0x80060882")));
    let fresh = Uuid::new_v4();
    c.upsert(
        "accounts",
        &fresh.to_string(),
        &rec(json!({"name": "Upserted"})),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.retrieve("accounts", &fresh.to_string(), &["name"], soon())
            .await
            .unwrap()["name"],
        "Upserted"
    );
    let missing = c
        .retrieve("accounts", &Uuid::new_v4().to_string(), &[], soon())
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(404), Some("0x80040217"))
    );

    // Associate and disassociate (1:N through the parent's collection).
    c.associate(
        "accounts",
        a,
        "account_parent_account",
        "accounts",
        fresh,
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.retrieve(
            "accounts",
            &fresh.to_string(),
            &["_parentaccountid_value"],
            soon()
        )
        .await
        .unwrap()["_parentaccountid_value"],
        a.to_string()
    );
    c.disassociate("accounts", a, "account_parent_account", fresh, soon())
        .await
        .unwrap();
    assert!(
        c.retrieve(
            "accounts",
            &fresh.to_string(),
            &["_parentaccountid_value"],
            soon()
        )
        .await
        .unwrap()["_parentaccountid_value"]
            .is_null()
    );

    // Bulk: CreateMultiple, UpdateMultiple, UpsertMultiple.
    let records: Vec<Map<String, Value>> = (0..25)
        .map(|i| rec(json!({"name": format!("Bulk {i:02}"), "revenue": i})))
        .collect();
    let ids = c
        .create_multiple("accounts", "account", "accountid", &records, soon())
        .await
        .unwrap();
    assert_eq!(ids.len(), 25);
    let updates: Vec<Map<String, Value>> = ids
        .iter()
        .take(5)
        .map(|id| rec(json!({"accountid": id, "telephone1": "5"})))
        .collect();
    c.write_multiple(BulkWrite::Update, "accounts", "account", &updates, soon())
        .await
        .unwrap();
    c.write_multiple(
        BulkWrite::Upsert,
        "accounts",
        "account",
        &[rec(
            json!({"accountid": Uuid::new_v4(), "name": "Bulk upsert"}),
        )],
        soon(),
    )
    .await
    .unwrap();

    // Query builder: escaping, paging to the end, count.
    let q = Query::new("accounts")
        .select(&["name"])
        .filter_text("startswith", "name", "Bulk")
        .order_by("name", false)
        .page_size(4);
    let first = c.query(&q, soon()).await.unwrap();
    assert_eq!(first.rows.len(), 4);
    assert!(first.next_link.is_some());
    let all = c.query_all(&q, soon()).await.unwrap();
    assert_eq!(all.len(), 26);
    assert_eq!(all[0]["name"], "Bulk 00");
    let hostile = Query::new("contacts")
        .select(&["lastname"])
        .filter("lastname", "eq", "O'Brien");
    assert_eq!(c.query_all(&hostile, soon()).await.unwrap().len(), 1);
    let injection =
        Query::new("accounts")
            .select(&["name"])
            .filter("name", "eq", "x' or name ne 'y");
    assert_eq!(
        c.query_all(&injection, soon()).await.unwrap().len(),
        0,
        "a quote in a value cannot widen the filter"
    );
    let counted = c
        .query(
            &Query::new("accounts")
                .select(&["name"])
                .filter("telephone1", "eq", "5")
                .count(),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(counted.count, Some(5));

    // FetchXML.
    let rows = c.fetch_xml("accounts", r#"<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="Bulk upsert"/></filter></entity></fetch>"#, soon()).await.unwrap();
    assert_eq!(rows.len(), 1);

    // Delete, then 404; a second delete of the same row is an error again.
    c.delete("accounts", a, soon()).await.unwrap();
    assert_eq!(
        c.retrieve("accounts", &a.to_string(), &[], soon())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        c.delete("accounts", a, soon()).await.unwrap_err().status(),
        Some(404)
    );

    // An app without an application user: privilege denied.
    let denied = client_for(&s.emu, &s.cert, NO_USER_CLIENT)
        .who_am_i(soon())
        .await
        .unwrap_err();
    assert_eq!(
        (denied.status(), denied.code()),
        (Some(403), Some("0x80040220"))
    );
    // The client follows the server's degree-of-parallelism hint.
    assert_eq!(c.parallelism(), 4);
}

#[tokio::test]
async fn ten_thousand_creates_under_faults_end_with_exactly_ten_thousand_rows() {
    // Service protection is raised: this test is about faults, not limits.
    let s = setup("service_protection = { requests = 1000000, window_secs = 300, execution_ms = 100000000, concurrent = 1000 }").await;
    let faults = [
        json!({"method": "POST", "path": "accounts", "action": {"kind": "throttle", "retry_after_secs": 0}, "probability": 0.07, "seed": 1}),
        json!({"method": "POST", "path": "accounts", "action": {"kind": "status", "status": 503}, "probability": 0.07, "seed": 2}),
        json!({"method": "POST", "path": "accounts", "action": {"kind": "drop_after"}, "probability": 0.07, "seed": 3}),
    ];
    let control = http_client(s.emu.ca_certificate_pem()).unwrap();
    for f in &faults {
        let resp = control
            .post(format!("{}/_emulator/faults", s.emu.base_url()))
            .json(f)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    let expected: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    for worker in 0..16 {
        let (c, expected) = (s.client.clone(), expected.clone());
        tasks.spawn(async move {
            for i in (worker..10_000).step_by(16) {
                let id = c
                    .create(
                        "accounts",
                        "accountid",
                        &rec(json!({"name": format!("row {i}")})),
                        None,
                        deadline,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("create {i}: {e}"));
                expected.lock().unwrap().insert(id);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let elapsed = started.elapsed();
    let stats: Value = control
        .get(format!("{}/_emulator/faults", s.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let applied: u64 = stats["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["applied"].as_u64().unwrap())
        .sum();
    control
        .delete(format!("{}/_emulator/faults", s.emu.base_url()))
        .send()
        .await
        .unwrap();

    let rows = s
        .client
        .query_all(
            &Query::new("accounts")
                .select(&["accountid", "name"])
                .page_size(5000),
            deadline,
        )
        .await
        .unwrap();
    let ids: HashSet<Uuid> = rows
        .iter()
        .map(|r| r["accountid"].as_str().unwrap().parse().unwrap())
        .collect();
    let names: HashSet<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let retries = s
        .client
        .stats()
        .retries
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "10,000 creates: {applied} faults injected, {retries} retries, {:.1} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(rows.len(), 10_000, "none duplicated, none lost");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(names.len(), 10_000);
    assert_eq!(ids, *expected.lock().unwrap());
    let requests = s
        .client
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let ratio = applied as f64 / requests as f64;
    assert!(
        (0.15..=0.25).contains(&ratio),
        "about 20% of requests were faulted: {applied}/{requests}"
    );
}

/// A writer that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_in_logs_or_errors() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup("").await;
    let mut errors = Vec::new();
    // A run with successes and failures of every kind.
    s.client.who_am_i(soon()).await.unwrap();
    errors.push(
        s.client
            .retrieve("accounts", &Uuid::new_v4().to_string(), &[], soon())
            .await
            .unwrap_err()
            .to_string(),
    );
    errors.push(
        s.client
            .create(
                "accounts",
                "accountid",
                &rec(json!({"name": 5})),
                None,
                soon(),
            )
            .await
            .unwrap_err()
            .to_string(),
    );
    errors.push(
        client_for(&s.emu, &s.cert, NO_USER_CLIENT)
            .who_am_i(soon())
            .await
            .unwrap_err()
            .to_string(),
    );
    let wrong = Arc::new(Certificate::generate("wrong", time::Duration::days(1)).unwrap());
    let e = client_for(&s.emu, &wrong, CLIENT)
        .who_am_i(soon())
        .await
        .unwrap_err();
    errors.push(e.to_string());
    errors.push(format!("{e:?}"));

    // The secrets of this run.
    let key = s.cert.export_private_key_pem();
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let http = http_client(s.emu.ca_certificate_pem()).unwrap();
    let tokens = TokenSource::new(
        Connection {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            authority_host: s.emu.base_url().into(),
            resource: format!("{}/contoso-dev", s.emu.base_url()),
            certificate: s.cert.clone(),
            algorithm: SigningAlgorithm::Rs256,
        },
        http,
    );
    let token = tokens.token(soon()).await.unwrap();
    errors.push(format!("{token:?} {tokens:?} {:?}", s.cert));

    let _ = std::io::stdout().flush();
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(log_text.len() > 1000, "the run was logged");
    for haystack in errors.iter().map(String::as_str).chain([log_text.as_str()]) {
        assert!(
            !haystack.contains(&key_body[..64]),
            "private key leaked: {haystack}"
        );
        assert!(
            !haystack.contains("eyJ"),
            "a JWT (token or assertion) leaked: {haystack}"
        );
        assert!(
            !haystack
                .to_ascii_lowercase()
                .contains("authorization: bearer"),
            "an Authorization header leaked"
        );
        assert!(
            !haystack.contains("client_assertion="),
            "an assertion form leaked"
        );
    }
}

fn op(
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    content_id: Option<u32>,
) -> BatchOperation {
    BatchOperation {
        method,
        path: path.into(),
        body,
        content_id,
    }
}

#[tokio::test]
async fn batch_with_change_sets_and_rollback() {
    let s = setup("").await;
    let c = &s.client;
    use reqwest::Method;
    let parts = vec![
        BatchPart::ChangeSet(vec![
            op(
                Method::POST,
                "contacts",
                Some(json!({"lastname": "Batch"})),
                Some(1),
            ),
            op(
                Method::POST,
                "accounts",
                Some(json!({"name": "Batch Co", "primarycontactid@odata.bind": "$1"})),
                Some(2),
            ),
        ]),
        BatchPart::Request(op(
            Method::GET,
            "accounts?$select=name,_primarycontactid_value",
            None,
            None,
        )),
    ];
    let answers = c.batch(&parts, false, soon()).await.unwrap();
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [204, 204, 200]
    );
    assert_eq!(
        (answers[0].content_id, answers[1].content_id),
        (Some(1), Some(2))
    );
    assert!(
        answers[1]
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("OData-EntityId"))
    );
    assert_eq!(answers[2].body["value"][0]["name"], "Batch Co");
    assert!(answers[2].body["value"][0]["_primarycontactid_value"].is_string());

    // A failing change set rolls back; without continue-on-error the batch stops there.
    let failing = vec![
        BatchPart::ChangeSet(vec![
            op(
                Method::POST,
                "accounts",
                Some(json!({"name": "rolled back"})),
                Some(1),
            ),
            op(Method::POST, "accounts", Some(json!({"name": 5})), Some(2)),
        ]),
        BatchPart::Request(op(
            Method::POST,
            "accounts",
            Some(json!({"name": "after"})),
            None,
        )),
    ];
    let answers = c.batch(&failing, false, soon()).await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 400);
    let answers = c.batch(&failing, true, soon()).await.unwrap();
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [400, 204]
    );
    let names: Vec<String> = c
        .query_all(
            &Query::new("accounts")
                .select(&["name"])
                .order_by("name", false),
            soon(),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["after", "Batch Co"],
        "the failed change sets left nothing behind"
    );
}

#[tokio::test]
async fn metadata_is_described_and_cached() {
    let s = setup("").await;
    let c = &s.client;
    let tables = c.list_tables(soon()).await.unwrap();
    let account = tables.iter().find(|t| t.logical_name == "account").unwrap();
    assert_eq!(
        (
            account.entity_set.as_str(),
            account.primary_id.as_str(),
            account.display_name.as_deref()
        ),
        ("accounts", "accountid", Some("Account"))
    );
    assert_eq!(
        c.entity_set("systemuser", soon()).await.unwrap(),
        "systemusers"
    );
    assert_eq!(
        c.entity_set("nosuch", soon()).await.unwrap_err().status(),
        Some(404)
    );
    let d = c.describe_table("account", soon()).await.unwrap();
    let col = |n: &str| d.columns.iter().find(|c| c.logical_name == n).unwrap();
    assert_eq!(
        (
            col("name").kind.as_str(),
            col("name").max_length,
            col("name").required.as_deref()
        ),
        ("String", Some(160), Some("ApplicationRequired"))
    );
    assert_eq!(col("primarycontactid").targets, ["contact"]);
    assert_eq!(
        col("accountcategorycode").options[0].label.as_deref(),
        Some("Preferred Customer")
    );
    assert_eq!(col("statuscode").options.len(), 2);
    // Cached: no further requests until invalidated.
    let before = c
        .stats()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    c.describe_table("account", soon()).await.unwrap();
    c.list_tables(soon()).await.unwrap();
    assert_eq!(
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    c.invalidate_metadata();
    c.list_tables(soon()).await.unwrap();
    assert_eq!(
        c.stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
    assert_eq!(
        c.describe_table("account'); drop", soon())
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );
}
