//! `dvhost login`, `environments`, `tables` and `columns`: the person at
//! the keyboard signs in with a device code; the sign-in is kept sealed for
//! that user and Entra tenant, and later commands resume it to list the
//! environments (Global Discovery) and browse metadata with the user's own
//! token.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use dvhost_dataverse::{Client, Discovery, Environment, Instance, TableName, UserTokens};
use dvhost_store::SignIn;
use serde_json::{Value, json};

use super::context::{Context, Globals, interactive, rfc3339};
use crate::flows;

pub(super) use crate::flows::sign_in::DISCOVERY_SCOPE;
/// How long one resumed call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `dvhost login`
#[derive(Debug, Args)]
pub struct LoginArgs {}

/// Which stored sign-in to use.
#[derive(Debug, Args)]
pub struct UserArg {
    /// The signed-in user (sign-in name or object id), when several are stored.
    #[arg(long)]
    pub user: Option<String>,
}

/// `dvhost environments`
#[derive(Debug, Args)]
pub struct EnvironmentsArgs {
    #[command(flatten)]
    user: UserArg,
}

/// `dvhost tables`
#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    user: UserArg,
    /// The environment: unique name, display name, id or URL (asked when
    /// several are reachable and none is named).
    #[arg(long)]
    environment: Option<String>,
}

/// `dvhost columns`
#[derive(Debug, Args)]
pub struct ColumnsArgs {
    #[command(flatten)]
    user: UserArg,
    /// The environment, as for `tables`.
    #[arg(long)]
    environment: Option<String>,
    /// The table's logical name (e.g. account).
    table: String,
}

/// Runs `dvhost login`.
pub async fn login(_args: LoginArgs, globals: &Globals) -> anyhow::Result<()> {
    let cx = Context::open(globals).await?;
    let sign_in = globals.device_sign_in()?;
    let pending = sign_in
        .start(&[DISCOVERY_SCOPE, "offline_access", "openid"])
        .await
        .context("starting the sign-in")?;
    let prompt = pending.prompt().clone();
    {
        // Shown at once (a script reads this line to hand the code on).
        let mut out = std::io::stdout().lock();
        if globals.json {
            let line = json!({
                "user_code": prompt.user_code,
                "verification_uri": prompt.verification_uri,
                "expires_in": prompt.expires_in,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", prompt.message)?;
        }
        out.flush()?;
    }
    let deadline = Instant::now() + Duration::from_secs(prompt.expires_in + 5);
    let tokens = globals
        .spinning("waiting for the sign-in to be approved", |_| {
            sign_in.complete(pending, deadline)
        })
        .await
        .context("signing in")?;
    let saved = save(&cx, &tokens, None).await?;
    cx.audit(
        None,
        "user.login",
        json!({ "user": saved.upn, "entra_tenant_id": saved.entra_tenant_id }),
    )
    .await?;
    globals.emit(
        &sign_in_json(&saved),
        &format!(
            "signed in as {} (Entra tenant {})",
            saved.upn.as_deref().unwrap_or("?"),
            saved.entra_tenant_id
        ),
    )
}

/// Seals and stores `tokens`' refresh token for their user; `previous`
/// keeps the time of the last interactive sign-in when a resumed sign-in is
/// stored again.
async fn save(
    cx: &Context,
    tokens: &UserTokens,
    previous: Option<&SignIn>,
) -> anyhow::Result<SignIn> {
    Ok(flows::sign_in::save(&cx.store, &cx.master, tokens, previous).await?)
}

fn sign_in_json(s: &SignIn) -> Value {
    json!({
        "user": s.upn,
        "user_oid": s.user_oid,
        "entra_tenant_id": s.entra_tenant_id,
        "signed_in_at": rfc3339(s.signed_in_at),
    })
}

/// The stored sign-in to use: the one named by `--user`, or the only one.
pub(super) async fn chosen_sign_in(cx: &Context, user: &UserArg) -> anyhow::Result<SignIn> {
    let wanted = flows::sign_in::Wanted {
        user: user.user.as_deref(),
        entra_tenant: None,
    };
    flows::sign_in::chosen(&cx.store, wanted)
        .await
        .map_err(sign_in_error)
}

/// A sign-in error in the command line's words (`--user`).
pub(super) fn sign_in_error(e: flows::sign_in::SignInError) -> anyhow::Error {
    match e {
        flows::sign_in::SignInError::Ambiguous(names) => anyhow::anyhow!(
            "several users are signed in ({}): name one with --user",
            names.join(", ")
        ),
        other => other.into(),
    }
}

/// Fresh tokens for `scopes` from the stored sign-in, stored again when
/// Entra rotated the refresh token.
pub(super) async fn resume(
    cx: &Context,
    stored: &SignIn,
    scopes: &[&str],
) -> anyhow::Result<UserTokens> {
    let sign_in = cx.globals.device_sign_in()?;
    Ok(flows::sign_in::resume(&cx.store, &cx.master, &sign_in, stored, scopes).await?)
}

pub(super) async fn instances(cx: &Context, stored: &SignIn) -> anyhow::Result<Vec<Instance>> {
    let ask = |_| async {
        let tokens = resume(cx, stored, &[DISCOVERY_SCOPE]).await?;
        Discovery::new(cx.globals.discovery()?, cx.globals.http()?)
            .instances(&tokens, Instant::now() + CALL_TIMEOUT)
            .await
            .context("listing environments (Global Discovery)")
    };
    cx.globals
        .spinning("asking Global Discovery for your environments", ask)
        .await
}

fn instance_json(i: &Instance) -> Value {
    json!({
        "id": i.id,
        "unique_name": i.unique_name,
        "friendly_name": i.friendly_name,
        "url": i.url.as_str(),
        "tenant_id": i.tenant_id,
    })
}

fn instance_line(i: &Instance) -> String {
    format!("{}\t{}\t{}", i.unique_name, i.friendly_name, i.url.as_str())
}

/// Runs `dvhost environments`.
pub async fn environments(args: EnvironmentsArgs, globals: &Globals) -> anyhow::Result<()> {
    let cx = Context::open(globals).await?;
    let stored = chosen_sign_in(&cx, &args.user).await?;
    let list = instances(&cx, &stored).await?;
    let text = if list.is_empty() {
        "no environments reachable".to_string()
    } else {
        list.iter()
            .map(instance_line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    globals.emit(
        &Value::Array(list.iter().map(instance_json).collect()),
        &text,
    )
}

/// The environment named by `wanted`, or the only one, or the one the user
/// picks; an error listing them when several are reachable and nobody can
/// be asked.
pub fn pick_environment(
    globals: &Globals,
    list: Vec<Instance>,
    wanted: Option<&str>,
) -> anyhow::Result<Instance> {
    if let Some(wanted) = wanted {
        let w = wanted.trim_end_matches('/');
        return list
            .into_iter()
            .find(|i| {
                i.unique_name.eq_ignore_ascii_case(w)
                    || i.friendly_name.eq_ignore_ascii_case(w)
                    || i.id.eq_ignore_ascii_case(w)
                    || i.url.as_str().trim_end_matches('/').eq_ignore_ascii_case(w)
            })
            .ok_or_else(|| anyhow::anyhow!("you cannot reach an environment named {wanted}"));
    }
    match list.len() {
        0 => anyhow::bail!("you cannot reach any environment"),
        1 => Ok(list.into_iter().next().expect("one element")),
        _ if interactive(globals) => {
            let items: Vec<String> = list.iter().map(instance_line).collect();
            let chosen = dialoguer::Select::new()
                .with_prompt("Which environment?")
                .items(&items)
                .default(0)
                .interact()?;
            Ok(list.into_iter().nth(chosen).expect("an offered item"))
        }
        _ => {
            let lines: Vec<String> = list
                .iter()
                .map(|i| format!("  {}", instance_line(i)))
                .collect();
            anyhow::bail!(
                "you can reach several environments; name one with --environment:\n{}",
                lines.join("\n")
            )
        }
    }
}

/// A client acting as the signed-in user in the chosen environment.
async fn user_client(
    cx: &Context,
    user: &UserArg,
    wanted: Option<&str>,
) -> anyhow::Result<(Instance, Client)> {
    let stored = chosen_sign_in(cx, user).await?;
    let list = instances(cx, &stored).await?;
    let chosen = pick_environment(&cx.globals, list, wanted)?;
    let scope = format!(
        "{}/user_impersonation",
        chosen.url.as_str().trim_end_matches('/')
    );
    let tokens = resume(cx, &stored, &[&scope]).await?;
    let environment: &Environment = &chosen.url;
    let client = Client::for_user(tokens, environment, cx.globals.http()?)?;
    Ok((chosen, client))
}

/// Runs `dvhost tables`.
pub async fn tables(args: TablesArgs, globals: &Globals) -> anyhow::Result<()> {
    let cx = Context::open(globals).await?;
    let (env, client) = user_client(&cx, &args.user, args.environment.as_deref()).await?;
    let bar = globals.progress("reading table metadata");
    let tables = client.list_tables(Instant::now() + CALL_TIMEOUT).await;
    bar.finish_and_clear();
    let tables = tables.with_context(|| format!("listing the tables of {}", env.unique_name))?;
    let text = tables
        .iter()
        .map(|t| {
            format!(
                "{}\t{}\t{}",
                t.logical_name,
                t.entity_set,
                t.display_name.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    globals.emit(&serde_json::to_value(tables.as_slice())?, &text)
}

/// Runs `dvhost columns`.
pub async fn columns(args: ColumnsArgs, globals: &Globals) -> anyhow::Result<()> {
    let table = TableName::new(&args.table)?;
    let cx = Context::open(globals).await?;
    let (env, client) = user_client(&cx, &args.user, args.environment.as_deref()).await?;
    let bar = globals.progress("reading column metadata");
    let described = client
        .describe_table(&table, Instant::now() + CALL_TIMEOUT)
        .await;
    bar.finish_and_clear();
    let described =
        described.with_context(|| format!("describing table {table} in {}", env.unique_name))?;
    let text = described
        .columns
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\t{}",
                c.logical_name,
                c.kind,
                c.display_name.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    globals.emit(&serde_json::to_value(described.as_ref())?, &text)
}
