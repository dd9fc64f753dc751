//! `dvhost connection`: list, show, test (WhoAmI with the connection's own
//! certificate) and delete connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dvhost_dataverse::{
    Certificate, Client, Environment, SealedKey, SigningAlgorithm, TokenSource,
};
use dvhost_store::{Connection, HistoryEntry, Name, StoredCertificate};
use serde_json::{Value, json};

use super::context::{Context, Globals, actor, rfc3339};

/// How long `connection test` waits for Entra and Dataverse.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `dvhost connection ...`
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    #[command(subcommand)]
    action: ConnectionAction,
}

#[derive(Debug, Subcommand)]
enum ConnectionAction {
    /// List a tenant's connections.
    List {
        /// The tenant's name.
        tenant: String,
        /// Include deleted connections.
        #[arg(long)]
        all: bool,
    },
    /// Show a connection, its certificates and its history.
    Show {
        /// TENANT/NAME.
        connection: String,
    },
    /// Prove a connection: a token with its certificate, then WhoAmI.
    Test {
        /// TENANT/NAME.
        connection: String,
    },
    /// Delete a connection and its sealed keys (the Entra app stays).
    Delete {
        /// TENANT/NAME.
        connection: String,
    },
    /// Create a connection: --auto as the signed-in administrator, or
    /// --manual --admin-email ADDR through an administrator.
    Create(super::connection_flows::CreateArgs),
    /// Store a manual connection's answer (tenant and client id), test it
    /// with WhoAmI and mark it active.
    Complete(super::connection_flows::CompleteArgs),
    /// Edit a connection (needs your own fresh sign-in in its Entra tenant).
    Edit(super::connection_flows::EditArgs),
    /// Rotate an automatic connection's certificate (as the signed-in administrator).
    RotateCert(super::connection_flows::RotateArgs),
}

/// Runs `dvhost connection ...`.
pub async fn run(args: ConnectionArgs, globals: &Globals) -> anyhow::Result<()> {
    let cx = Context::open(globals).await?;
    match args.action {
        ConnectionAction::List { tenant, all } => {
            let tenant = cx.tenant(&tenant).await?;
            let list = cx.store.connections(tenant.id, all).await?;
            let text = list
                .iter()
                .map(|c| format!("{}\t{}\t{}\t{}", c.name, c.state, c.mode, c.environment_url))
                .collect::<Vec<_>>()
                .join("\n");
            let text = if list.is_empty() {
                "no connections".to_string()
            } else {
                text
            };
            globals.emit(
                &Value::Array(list.iter().map(connection_json).collect()),
                &text,
            )
        }
        ConnectionAction::Show { connection } => {
            let c = find(&cx, &connection).await?;
            let certs = cx.store.certificates(c.id).await?;
            let history = cx.store.connection_history(c.id).await?;
            let mut value = connection_json(&c);
            value["certificates"] = certs.iter().map(certificate_json).collect();
            value["history"] = history.iter().map(history_json).collect();
            let text = show_text(&c, &certs, &history);
            globals.emit(&value, &text)
        }
        ConnectionAction::Test { connection } => test(&cx, &connection).await,
        ConnectionAction::Create(args) => super::connection_flows::create(&cx, args).await,
        ConnectionAction::Complete(args) => super::connection_flows::complete(&cx, args).await,
        ConnectionAction::Edit(args) => super::connection_flows::edit(&cx, args).await,
        ConnectionAction::RotateCert(args) => super::connection_flows::rotate_cert(&cx, args).await,
        ConnectionAction::Delete { connection } => {
            let c = find(&cx, &connection).await?;
            let deleted = cx.store.delete_connection(c.id, &actor()).await?;
            cx.audit(
                Some(c.tenant),
                "connection.delete",
                json!({ "name": c.name.as_str() }),
            )
            .await?;
            globals.emit(
                &connection_json(&deleted),
                &format!("deleted connection {connection}"),
            )
        }
    }
}

/// The live connection named `TENANT/NAME`.
pub async fn find(cx: &Context, spec: &str) -> anyhow::Result<Connection> {
    let (tenant, name) = spec
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("name the connection as TENANT/NAME, not {spec:?}"))?;
    let tenant = cx.tenant(tenant).await?;
    let name = Name::parse(name)?;
    cx.store
        .connection_by_name(tenant.id, &name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {} has no connection named {name}", tenant.name))
}

async fn test(cx: &Context, spec: &str) -> anyhow::Result<()> {
    let c = find(cx, spec).await?;
    let (Some(entra_tenant), Some(client_id)) = (c.entra_tenant_id, c.client_id) else {
        anyhow::bail!("connection {spec} is not registered yet (no Entra tenant or client id)");
    };
    let stored = cx
        .store
        .active_certificate(c.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("connection {spec} has no active certificate"))?;
    let sealed = SealedKey::from_bytes(stored.sealed_private_key.as_bytes().to_vec());
    let cert = Certificate::unseal(&stored.certificate_pem, &sealed, &cx.master)
        .context("opening the connection's private key")?;
    let environment = Environment::parse(&c.environment_url)?;
    let connection = dvhost_dataverse::Connection::new(
        cx.globals.authority()?,
        &entra_tenant.to_string(),
        &client_id.to_string(),
        environment,
        Arc::new(cert),
        SigningAlgorithm::Rs256,
    )?;
    let client = Client::new(Arc::new(TokenSource::new(connection, cx.globals.http()?)));
    let bar = cx.globals.progress(&format!("testing {spec}"));
    let who = client.who_am_i(Instant::now() + TEST_TIMEOUT).await;
    bar.finish_and_clear();
    let who = who.with_context(|| format!("connection {spec} failed its test"))?;
    cx.store
        .mark_certificate_used(stored.id, time::OffsetDateTime::now_utc())
        .await?;
    cx.audit(
        Some(c.tenant),
        "connection.test",
        json!({ "name": c.name.as_str() }),
    )
    .await?;
    cx.globals.emit(
        &json!({
            "connection": spec,
            "ok": true,
            "user_id": who.user_id,
            "business_unit_id": who.business_unit_id,
            "organization_id": who.organization_id,
        }),
        &format!("{spec} works: acts as systemuser {}", who.user_id),
    )
}

pub(super) fn connection_json(c: &Connection) -> Value {
    json!({
        "id": c.id.as_uuid(),
        "name": c.name.as_str(),
        "environment_url": c.environment_url,
        "entra_tenant_id": c.entra_tenant_id,
        "client_id": c.client_id,
        "security_role": c.security_role,
        "mode": c.mode.as_str(),
        "state": c.state.as_str(),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

fn certificate_json(c: &StoredCertificate) -> Value {
    json!({
        "id": c.id.as_uuid(),
        "state": c.state.as_str(),
        "sha1_thumbprint": c.sha1_thumbprint,
        "sha256_thumbprint": c.sha256_thumbprint,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "last_used_at": c.last_used_at.map(rfc3339),
    })
}

fn history_json(h: &HistoryEntry) -> Value {
    json!({
        "seq": h.seq,
        "at": rfc3339(h.at),
        "actor": h.actor,
        "event": h.event.as_str(),
        "state": h.state.as_str(),
        "detail": h.detail,
    })
}

fn show_text(c: &Connection, certs: &[StoredCertificate], history: &[HistoryEntry]) -> String {
    let unknown = || "-".to_string();
    let mut lines = vec![
        format!("connection {} ({})", c.name, c.state),
        format!("  environment:  {}", c.environment_url),
        format!("  mode:         {}", c.mode),
        format!(
            "  entra tenant: {}",
            c.entra_tenant_id.map_or_else(unknown, |u| u.to_string())
        ),
        format!(
            "  client id:    {}",
            c.client_id.map_or_else(unknown, |u| u.to_string())
        ),
        format!(
            "  role:         {}",
            c.security_role.clone().unwrap_or_else(unknown)
        ),
        "certificates:".to_string(),
    ];
    lines.extend(certs.iter().map(|k| {
        format!(
            "  {} {} until {}",
            k.state,
            k.sha1_thumbprint,
            rfc3339(k.not_after)
        )
    }));
    lines.push("history:".to_string());
    lines.extend(
        history
            .iter()
            .map(|h| format!("  {} {} {} -> {}", rfc3339(h.at), h.actor, h.event, h.state)),
    );
    lines.join("\n")
}
