//! What `dvhost dev` prints once it is ready: where it serves, the keys,
//! and `curl` commands to paste; with `--json`, one line for scripts.

use std::io::Write as _;
use std::path::Path;

use dvhost_store::{Connection, Tenant};
use serde_json::json;

use super::api::DEV_KEY_RIGHTS;
use super::emulator::{DevEmulator, ENVIRONMENT};
use super::guests::INTEGRATION_TABLES;
use super::sample;
use crate::cli::context::Globals;

/// The facts printed.
pub struct Banner<'a> {
    pub url: &'a str,
    pub api_key: &'a str,
    pub admin_key: &'a str,
    pub tenant: &'a Tenant,
    pub connection: &'a Connection,
    pub emulator: Option<&'a DevEmulator>,
    pub deployed: &'a [&'a str],
    pub data_dir: &'a Path,
    pub workspace: Option<&'a Path>,
    pub watching: bool,
}

/// Prints the banner on stdout: text, or one JSON line with `--json`.
pub fn print(globals: &Globals, banner: &Banner<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if globals.json {
        writeln!(out, "{}", serde_json::to_string(&as_json(banner))?)?;
    } else {
        out.write_all(text(banner).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn as_json(b: &Banner<'_>) -> serde_json::Value {
    let emulator = b.emulator.map(|dev| {
        json!({
            "url": dev.emulator.base_url(),
            "environment": ENVIRONMENT,
            "environment_url": dev.environment_url,
            "control_url": format!("{}/_emulator/", dev.emulator.base_url()),
        })
    });
    json!({
        "url": b.url,
        "api_key": b.api_key,
        "admin_key": b.admin_key,
        "tenant": b.tenant.name.as_str(),
        "connection": b.connection.name.as_str(),
        "environment_url": b.connection.environment_url,
        "plugins": b.deployed,
        "integration_tables": INTEGRATION_TABLES,
        "emulator": emulator,
        "ca_file": b.emulator.map(|dev| dev.ca_file.display().to_string()),
        "data_dir": b.data_dir.display().to_string(),
        "workspace": b.workspace.map(|w| w.display().to_string()),
        "watching": b.watching,
    })
}

fn text(b: &Banner<'_>) -> String {
    let tenant = b.tenant.name.as_str();
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("\ndvhost dev is serving on {}", b.url));
    line(format!(
        "  tenant      {tenant}, connection {} to {}",
        b.connection.name, b.connection.environment_url
    ));
    line(format!(
        "  API key     {} ({}; minted for this run, the previous run's key is revoked)",
        b.api_key,
        DEV_KEY_RIGHTS.join(", ")
    ));
    line(format!("  admin key   {} (this run only)", b.admin_key));
    if let Some(dev) = b.emulator {
        line(format!(
            "  emulator    {} (environment {ENVIRONMENT}; CA {})",
            dev.emulator.base_url(),
            dev.ca_file.display()
        ));
    }
    let plugins = if b.deployed.is_empty() {
        "none".to_string()
    } else {
        b.deployed.join(", ")
    };
    line(format!("  plugins     {plugins}"));
    line(format!("  data        {}", b.data_dir.display()));
    if b.watching {
        line("  watching    examples/, plugins/ and wit/: a change rebuilds and redeploys its plugin".into());
    }
    line(String::new());
    line("Try:".into());
    line(format!("  export DVHOST_API_KEY={}", b.api_key));
    let call = |plugin: &str, action: &str, input: &str| {
        format!(
            "  curl -s {}/v1/tenants/{tenant}/plugins/{plugin}/actions/{action} \\\n    -H \"Authorization: Bearer $DVHOST_API_KEY\" -H 'Content-Type: application/json' \\\n    -d '{input}'",
            b.url
        )
    };
    if b.deployed.contains(&"hello") {
        line(call("hello", "hello", r#"{"name":"Ada"}"#));
    }
    if b.deployed.contains(&"tables") {
        line(call(
            "tables",
            "account.list",
            r#"{"select":["name","address1_city"],"top":5}"#,
        ));
    }
    if b.emulator.is_some() {
        if let (true, Some(account)) = (b.deployed.contains(&"contacts"), sample::first_account()) {
            line(call(
                "contacts",
                "list-contacts",
                &format!(r#"{{"account_id":"{account}"}}"#),
            ));
        }
        if b.deployed.contains(&"lead-scoring") {
            line(call("lead-scoring", "score-leads", r#"{"limit":3}"#));
        }
    }
    line(format!(
        "  curl -s {}/v1/tenants/{tenant}/plugins -H \"Authorization: Bearer $DVHOST_API_KEY\"",
        b.url
    ));
    line(format!(
        "  curl -s '{}/v1/tenants/{tenant}/audit?limit=10' -H \"Authorization: Bearer $DVHOST_API_KEY\"",
        b.url
    ));
    s
}
