//! Plugins from other languages run under the runtime: the Python
//! (componentize-py) and JavaScript (`jco componentize`) examples are built
//! from `wit/plugin.wit` by tools that know nothing of dvhost, load like a
//! Rust guest, and reach the host only through its imports and grants.

use std::path::Path;
use std::sync::Arc;

use crate::fake::Fake;
use dvhost_runtime::{Capabilities, Grants, InvokeError, Level, Operation, Plugin, Source};
use dvhost_testkit::polyglot::{js_guest, python_guest};
use serde_json::{Value, json};

fn capabilities(fake: &Arc<Fake>, grants: Grants) -> Capabilities {
    Capabilities {
        records: fake.clone(),
        metadata: fake.clone(),
        grants: Arc::new(grants),
        ..Capabilities::unconnected()
    }
}

/// Loads the component at `path` and runs both actions, granted and not.
async fn exercise(path: &Path) {
    let bytes = std::fs::read(path).expect("the built component");
    let engine = crate::common::engine();
    let started = std::time::Instant::now();
    let plugin = engine
        .load(&bytes)
        .await
        .unwrap_or_else(|error| panic!("{} does not load: {error}", path.display()));
    eprintln!("{} loaded in {:?}", path.display(), started.elapsed());
    let names: Vec<&str> = plugin.actions().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["hello", "count-accounts"]);
    hello(&plugin).await;
    count_accounts(&plugin).await;
}

/// `hello` needs no connection: its answers, errors and log line.
async fn hello(plugin: &Plugin) {
    let hello = plugin.action("hello").expect("hello is described");
    assert_eq!(hello.input_schema["required"], json!(["name"]));
    assert_eq!(
        hello.output_schema["properties"]["greeting"]["type"],
        "string"
    );

    let unconnected = Capabilities::unconnected();
    let report = plugin
        .invoke(&unconnected, "hello", r#"{"name":"Ada"}"#)
        .await;
    assert_eq!(
        report.output.as_deref(),
        Ok(r#"{"greeting":"Hello, Ada!"}"#)
    );
    assert!(
        report.log.iter().any(|line| line.source == Source::Log
            && line.level == Level::Info
            && line.message == "greeting Ada"),
        "{:?}",
        report.log
    );
    assert!(report.calls.is_empty());

    match plugin.invoke(&unconnected, "hello", "{}").await.output {
        Err(InvokeError::InvalidInput(message)) => assert!(message.contains("name"), "{message}"),
        other => panic!("hello without a name answered {other:?}"),
    }
    match plugin
        .invoke(&unconnected, "hello", "not json")
        .await
        .output
    {
        Err(InvokeError::InvalidInput(message)) => assert!(message.contains("JSON"), "{message}"),
        other => panic!("hello with text answered {other:?}"),
    }
    let unknown = plugin.invoke(&unconnected, "goodbye", "{}").await.output;
    assert!(
        matches!(unknown, Err(InvokeError::UnknownAction(_))),
        "{unknown:?}"
    );
}

/// `count-accounts` queries through the grant check to the backend.
async fn count_accounts(plugin: &Plugin) {
    // Granted: one query, answered with the count of the fake's accounts.
    let fake = Arc::new(Fake::seeded());
    let granted = capabilities(&fake, Grants::none().allow("account", &[Operation::Read]));
    let report = plugin.invoke(&granted, "count-accounts", "{}").await;
    let output: Value =
        serde_json::from_str(report.output.as_deref().expect("a count")).expect("JSON output");
    assert_eq!(output, json!({"count": 5}));
    assert_eq!(fake.requests(), 1);
    let [call] = &report.calls[..] else {
        panic!("one call expected: {:?}", report.calls)
    };
    assert_eq!(
        (call.operation, call.table.as_deref()),
        ("query", Some("account"))
    );
    assert!(
        report
            .log
            .iter()
            .any(|line| line.message == "counted 5 accounts")
    );

    // Not granted: the guest's query is refused before the backend is
    // reached, and the guest reports it as a failure.
    let fake = Arc::new(Fake::seeded());
    let report = plugin
        .invoke(&capabilities(&fake, Grants::none()), "count-accounts", "{}")
        .await;
    match report.output {
        Err(InvokeError::Failed(message)) => {
            assert!(message.starts_with("records.query failed"), "{message}")
        }
        other => panic!("an ungranted count answered {other:?}"),
    }
    assert_eq!(fake.requests(), 0);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_runs_both_actions() {
    exercise(&python_guest()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugin_runs_both_actions() {
    exercise(&js_guest()).await;
}
