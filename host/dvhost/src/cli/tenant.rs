//! `dvhost tenant`: tenants and their API keys. A key is minted by the
//! secret-owning crate and shown once; the store keeps its hash.

use std::io::Write as _;

use clap::{Args, Subcommand};
use dvhost_dataverse::NewApiKey;
use dvhost_store::{
    ApiKeyId, ApiKeyRecord, ApiKeyRight, ApiKeyRights, Name, NewApiKeyRecord, Tenant,
};
use serde_json::{Value, json};

use super::context::{Context, Globals, interactive, rfc3339};

/// `dvhost tenant ...`
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Create a tenant.
    Create {
        /// Its unique name (lowercase letters, digits and dashes).
        name: String,
        /// A human-readable name (default: the name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List the tenants.
    List,
    /// Delete a tenant with its connections, plugins and API keys.
    Delete {
        /// The tenant's name.
        name: String,
        /// Do not ask for confirmation (required when not interactive).
        #[arg(long)]
        yes: bool,
    },
    /// A tenant's API keys.
    Key(KeyArgs),
}

#[derive(Debug, Args)]
struct KeyArgs {
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Mint an API key; it is shown once, only its hash is kept.
    Create {
        /// The tenant's name.
        tenant: String,
        /// A note saying who or what uses the key.
        #[arg(long, default_value = "")]
        label: String,
        /// What the key allows (repeatable or comma-separated): invoke, deploy, audit.
        #[arg(long = "right", value_delimiter = ',', default_value = "invoke")]
        rights: Vec<String>,
    },
    /// List a tenant's keys (never the keys themselves).
    List {
        /// The tenant's name.
        tenant: String,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The tenant's name.
        tenant: String,
        /// The key's public id (the part after `dvk_`, before the next `_`).
        id: String,
    },
}

/// Runs `dvhost tenant ...`.
pub async fn run(args: TenantArgs, globals: &Globals) -> anyhow::Result<()> {
    let cx = Context::open(globals).await?;
    match args.action {
        TenantAction::Create { name, display_name } => {
            let name = Name::parse(&name)?;
            let display = display_name.unwrap_or_else(|| name.as_str().to_string());
            let tenant = cx.store.create_tenant(&name, &display).await?;
            cx.audit(
                Some(tenant.id),
                "tenant.create",
                json!({ "name": name.as_str() }),
            )
            .await?;
            globals.emit(
                &tenant_json(&tenant),
                &format!("created tenant {} ({})", tenant.name, tenant.id.as_uuid()),
            )
        }
        TenantAction::List => {
            let tenants = cx.store.tenants().await?;
            let text = tenants
                .iter()
                .map(|t| format!("{}\t{}\t{}", t.name, t.display_name, rfc3339(t.created_at)))
                .collect::<Vec<_>>()
                .join("\n");
            let text = if tenants.is_empty() {
                "no tenants".to_string()
            } else {
                text
            };
            globals.emit(
                &Value::Array(tenants.iter().map(tenant_json).collect()),
                &text,
            )
        }
        TenantAction::Delete { name, yes } => delete(&cx, &name, yes).await,
        TenantAction::Key(key) => run_key(&cx, key.action).await,
    }
}

async fn delete(cx: &Context, name: &str, yes: bool) -> anyhow::Result<()> {
    let tenant = cx.tenant(name).await?;
    if !yes {
        if !interactive(&cx.globals) {
            anyhow::bail!(
                "deleting tenant {name} deletes its connections, plugins and API keys: add --yes to confirm"
            );
        }
        let confirmed = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Delete tenant {name} with its connections, plugins and API keys?"
            ))
            .default(false)
            .interact()?;
        if !confirmed {
            anyhow::bail!("not deleted");
        }
    }
    cx.store.delete_tenant(tenant.id).await?;
    cx.audit(Some(tenant.id), "tenant.delete", json!({ "name": name }))
        .await?;
    cx.globals.emit(
        &json!({ "deleted": name, "id": tenant.id.as_uuid() }),
        &format!("deleted tenant {name}"),
    )
}

async fn run_key(cx: &Context, action: KeyAction) -> anyhow::Result<()> {
    match action {
        KeyAction::Create {
            tenant,
            label,
            rights,
        } => {
            let tenant = cx.tenant(&tenant).await?;
            let rights = rights
                .iter()
                .map(|r| ApiKeyRight::parse(r.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let key = NewApiKey::mint();
            let record = cx
                .store
                .add_api_key(NewApiKeyRecord {
                    id: ApiKeyId::parse(key.id())?,
                    tenant: tenant.id,
                    hash: key.hash(),
                    rights: ApiKeyRights::of(&rights),
                    label,
                })
                .await?;
            cx.audit(
                Some(tenant.id),
                "api_key.create",
                json!({ "id": record.id.as_str(), "rights": record.rights.to_text() }),
            )
            .await?;
            show_once(cx, &tenant, &record, key)
        }
        KeyAction::List { tenant } => {
            let tenant = cx.tenant(&tenant).await?;
            let keys = cx.store.api_keys(tenant.id).await?;
            let text = keys
                .iter()
                .map(|k| {
                    let state = k
                        .revoked_at
                        .map_or("live".to_string(), |at| format!("revoked {}", rfc3339(at)));
                    format!(
                        "{}\t{}\t{}\t{}",
                        k.id.as_str(),
                        k.rights.to_text(),
                        state,
                        k.label
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let text = if keys.is_empty() {
                "no API keys".to_string()
            } else {
                text
            };
            cx.globals
                .emit(&Value::Array(keys.iter().map(key_json).collect()), &text)
        }
        KeyAction::Revoke { tenant, id } => {
            let tenant = cx.tenant(&tenant).await?;
            let id = ApiKeyId::parse(&id)?;
            if !cx.store.revoke_api_key(tenant.id, &id).await? {
                anyhow::bail!("tenant {} has no live API key {}", tenant.name, id.as_str());
            }
            cx.audit(
                Some(tenant.id),
                "api_key.revoke",
                json!({ "id": id.as_str() }),
            )
            .await?;
            cx.globals.emit(
                &json!({ "revoked": id.as_str() }),
                &format!("revoked API key {}", id.as_str()),
            )
        }
    }
}

/// Writes the new key once, straight from the crate that minted it to
/// standard output (as a JSON field with `--json`).
fn show_once(
    cx: &Context,
    tenant: &Tenant,
    record: &ApiKeyRecord,
    key: NewApiKey,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if cx.globals.json {
        // The key is letters, digits, '_' and '-': nothing to escape.
        write!(
            out,
            "{{\"id\":\"{}\",\"tenant\":\"{}\",\"rights\":\"{}\",\"key\":\"",
            record.id.as_str(),
            tenant.name,
            record.rights.to_text()
        )?;
        key.show_once(&mut out)?;
        writeln!(out, "\"}}")?;
    } else {
        writeln!(
            out,
            "API key {} for tenant {} (shown once, keep it now):",
            record.id.as_str(),
            tenant.name
        )?;
        key.show_once(&mut out)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id.as_uuid(),
        "name": t.name.as_str(),
        "display_name": t.display_name,
        "created_at": rfc3339(t.created_at),
    })
}

fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id.as_str(),
        "rights": k.rights.to_text(),
        "label": k.label,
        "created_at": rfc3339(k.created_at),
        "revoked_at": k.revoked_at.map(rfc3339),
        "live": k.is_live(),
    })
}
