//! Thin clients of a running server's HTTP API: `dvhost call`,
//! `dvhost plugin deploy|list|show|rollback` and `dvhost integration
//! create`. They print the server's JSON answers; errors show the server's
//! error code and message.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::context::Globals;

/// Where the server is and which key to use.
#[derive(Debug, Clone, Args)]
pub struct Endpoint {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "DVHOST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The API key (a tenant key, or the admin key for admin commands).
    #[arg(long, global = true, env = "DVHOST_API_KEY", hide_env_values = true)]
    key: Option<String>,
}

impl Endpoint {
    fn request(&self, method: Method, path: &str) -> anyhow::Result<RequestBuilder> {
        let key = self
            .key
            .as_deref()
            .context("give an API key with --key or DVHOST_API_KEY")?;
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        Ok(reqwest::Client::new().request(method, url).bearer_auth(key))
    }
}

/// Sends a request; the JSON answer, or the server's error as an error.
pub(crate) async fn send(request: RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("reaching the dvhost server")?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["code"].as_str().unwrap_or("error");
    let message = body["error"]["message"].as_str().unwrap_or("");
    anyhow::bail!("the server answered {status}: {code}: {message}")
}

fn split(spec: &str) -> anyhow::Result<(&str, &str)> {
    spec.split_once('/')
        .with_context(|| format!("name it as TENANT/NAME, not {spec:?}"))
}

fn print(globals: &Globals, value: &Value) -> anyhow::Result<()> {
    let _ = globals;
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `dvhost call`
#[derive(Debug, Args)]
pub struct CallArgs {
    /// TENANT/PLUGIN
    plugin: String,
    /// The action's name.
    action: String,
    /// The input, as JSON.
    #[arg(long, default_value = "{}")]
    input: String,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// Calls an action and prints its output.
pub async fn call(args: CallArgs, globals: &Globals) -> anyhow::Result<()> {
    let (tenant, plugin) = split(&args.plugin)?;
    let input: Value = serde_json::from_str(&args.input).context("--input is not JSON")?;
    let path = format!(
        "/v1/tenants/{tenant}/plugins/{plugin}/actions/{}",
        args.action
    );
    let output = send(args.endpoint.request(Method::POST, &path)?.json(&input)).await?;
    print(globals, &output)
}

/// `dvhost plugin`
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    action: PluginAction,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, Subcommand)]
enum PluginAction {
    /// Deploy a component as the plugin's next version and serve it.
    Deploy {
        /// TENANT/PLUGIN
        plugin: String,
        /// The component (.wasm).
        component: PathBuf,
        /// A grant, TABLE=OPERATIONS (e.g. `contact=read,create`); repeatable.
        /// Without any, the previous version's grants are kept.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// The tenant's connection the plugin uses.
        #[arg(long)]
        connection: Option<String>,
        /// Limits as JSON, e.g. `{"deadline_ms": 2000}`.
        #[arg(long)]
        limits: Option<String>,
    },
    /// List a tenant's plugins.
    List {
        /// The tenant.
        tenant: String,
    },
    /// Show a plugin with its versions and actions.
    Show {
        /// TENANT/PLUGIN
        plugin: String,
    },
    /// Serve an earlier version again (the previous one by default).
    Rollback {
        /// TENANT/PLUGIN
        plugin: String,
        /// The version to serve (`--to 3`); the previous one when absent.
        #[arg(long)]
        to: Option<u32>,
    },
}

/// Parses `table=read,create` grants into the API's JSON.
fn grants_json(grants: &[String]) -> anyhow::Result<Option<Value>> {
    if grants.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for grant in grants {
        let (table, ops) = grant
            .split_once('=')
            .with_context(|| format!("a grant is TABLE=OPERATIONS, not {grant:?}"))?;
        let ops: Vec<&str> = ops.split(',').filter(|o| !o.is_empty()).collect();
        map.insert(table.to_string(), json!(ops));
    }
    Ok(Some(Value::Object(map)))
}

/// Runs a plugin command.
pub async fn plugin(args: PluginArgs, globals: &Globals) -> anyhow::Result<()> {
    let e = &args.endpoint;
    let answer = match args.action {
        PluginAction::Deploy {
            plugin,
            component,
            grants,
            connection,
            limits,
        } => {
            let (tenant, name) = split(&plugin)?;
            let bytes = std::fs::read(&component)
                .with_context(|| format!("reading {}", component.display()))?;
            let mut settings = serde_json::Map::new();
            if let Some(grants) = grants_json(&grants)? {
                settings.insert("grants".into(), grants);
            }
            if let Some(connection) = connection {
                settings.insert("connection".into(), json!(connection));
            }
            if let Some(limits) = limits {
                let limits: Value =
                    serde_json::from_str(&limits).context("--limits is not JSON")?;
                settings.insert("limits".into(), limits);
            }
            let form = reqwest::multipart::Form::new()
                .part(
                    "component",
                    reqwest::multipart::Part::bytes(bytes).mime_str("application/wasm")?,
                )
                .text("settings", Value::Object(settings).to_string());
            let path = format!("/v1/tenants/{tenant}/plugins/{name}");
            send(e.request(Method::PUT, &path)?.multipart(form)).await?
        }
        PluginAction::List { tenant } => {
            send(e.request(Method::GET, &format!("/v1/tenants/{tenant}/plugins"))?).await?
        }
        PluginAction::Show { plugin } => {
            let (tenant, name) = split(&plugin)?;
            send(e.request(Method::GET, &format!("/v1/tenants/{tenant}/plugins/{name}"))?).await?
        }
        PluginAction::Rollback { plugin, to } => {
            let (tenant, name) = split(&plugin)?;
            let path = format!("/v1/tenants/{tenant}/plugins/{name}/rollback");
            send(
                e.request(Method::POST, &path)?
                    .json(&json!({ "version": to })),
            )
            .await?
        }
    };
    print(globals, &answer)
}

/// `dvhost integration`
#[derive(Debug, Args)]
pub struct IntegrationArgs {
    #[command(subcommand)]
    action: IntegrationAction,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, Subcommand)]
enum IntegrationAction {
    /// Generate create/retrieve/update/delete/list actions for tables of a
    /// connection (needs the admin key).
    Create {
        /// TENANT/NAME
        integration: String,
        /// The tenant's connection.
        #[arg(long)]
        connection: String,
        /// Table logical names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
        /// Operations granted on those tables, comma-separated (`read`
        /// gives `<table>.retrieve` and `<table>.list`; `create`, `update`
        /// and `delete` their own action); all four when absent.
        #[arg(
            long,
            value_delimiter = ',',
            value_parser = ["read", "create", "update", "delete"],
        )]
        operations: Option<Vec<String>>,
    },
}

/// Runs an integration command.
pub async fn integration(args: IntegrationArgs, globals: &Globals) -> anyhow::Result<()> {
    let IntegrationAction::Create {
        integration,
        connection,
        tables,
        operations,
    } = args.action;
    let (tenant, name) = split(&integration)?;
    let path = format!("/v1/admin/tenants/{tenant}/integrations");
    let mut body = json!({ "name": name, "connection": connection, "tables": tables });
    if let Some(operations) = operations {
        body["operations"] = json!(operations);
    }
    let answer = send(args.endpoint.request(Method::POST, &path)?.json(&body)).await?;
    print(globals, &answer)
}
