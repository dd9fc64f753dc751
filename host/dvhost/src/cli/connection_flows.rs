//! The connection flows of `dvhost connection`: create (automatic with the
//! signed-in administrator, or manual through an administrator request),
//! complete, edit and rotate-cert. The flows themselves live in
//! [`crate::flows`]; this file reads the command line and shows progress.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use dvhost_dataverse::{Environment, UserTokens};
use dvhost_store::Name;
use serde_json::json;
use uuid::Uuid;

use super::connection::{connection_json, find};
use super::context::{Context, actor};
use super::sign_in::{self, UserArg};
use crate::flows::{self, auto, edit, manual, rotate};

/// How long an automatic creation or a rotation may take.
const FLOW_TIMEOUT: Duration = Duration::from_secs(600);

/// `dvhost connection create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// TENANT/NAME of the new connection.
    connection: String,
    /// The environment's URL, or (with --auto) its unique or display name.
    #[arg(long)]
    environment: String,
    /// Register the app, its service principal and the application user now,
    /// as the signed-in administrator.
    #[arg(long, conflicts_with = "manual", required_unless_present = "manual")]
    auto: bool,
    /// Prepare a request for an administrator (certificate and instructions).
    #[arg(long, requires = "admin_email")]
    manual: bool,
    /// Where the manual request is sent (and named in its instructions).
    #[arg(long)]
    admin_email: Option<String>,
    /// Security role of the application user (default: Basic User).
    #[arg(long)]
    role: Option<String>,
    /// Where the manual request's files are written.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    #[command(flatten)]
    smtp: SmtpArgs,
    #[command(flatten)]
    user: UserArg,
}

/// SMTP relay for administrator requests (none: the files are the request).
#[derive(Debug, Args)]
struct SmtpArgs {
    /// SMTP relay host.
    #[arg(long, env = "DVHOST_SMTP_HOST")]
    smtp_host: Option<String>,
    /// SMTP relay port.
    #[arg(long, env = "DVHOST_SMTP_PORT", default_value_t = manual::SmtpSettings::DEFAULT_PORT)]
    smtp_port: u16,
    /// Transport security: none, starttls or tls.
    #[arg(long, env = "DVHOST_SMTP_SECURITY", default_value_t = manual::SmtpSecurity::default())]
    smtp_security: manual::SmtpSecurity,
    /// Sender address.
    #[arg(long, env = "DVHOST_SMTP_FROM", default_value = "dvhost@localhost")]
    smtp_from: String,
    /// Relay user name (the password comes from DVHOST_SMTP_PASSWORD).
    #[arg(long, env = "DVHOST_SMTP_USER")]
    smtp_user: Option<String>,
}

impl SmtpArgs {
    /// The relay, when `--smtp-host` names one; a user without a password
    /// (or a password without a user) is refused, as `dvhost serve` does.
    fn settings(&self) -> anyhow::Result<Option<manual::SmtpSettings>> {
        let Some(host) = &self.smtp_host else {
            return Ok(None);
        };
        let password = std::env::var(manual::SmtpSettings::PASSWORD_ENV).ok();
        let credentials = manual::SmtpSettings::credentials(
            self.smtp_user.as_deref(),
            password.as_deref(),
            "--smtp-user",
        )?;
        Ok(Some(manual::SmtpSettings {
            host: host.clone(),
            port: self.smtp_port,
            security: self.smtp_security,
            from: self.smtp_from.clone(),
            credentials,
            timeout: manual::SmtpSettings::DEFAULT_TIMEOUT,
        }))
    }
}

/// `dvhost connection complete`
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// TENANT/NAME.
    connection: String,
    /// The Entra tenant id the administrator sent back.
    #[arg(long)]
    tenant_id: Uuid,
    /// The application (client) id the administrator sent back.
    #[arg(long)]
    client_id: Uuid,
}

/// `dvhost connection edit`
#[derive(Debug, Args)]
pub struct EditArgs {
    /// TENANT/NAME.
    connection: String,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// A new environment URL.
    #[arg(long)]
    environment: Option<String>,
    /// A new client id.
    #[arg(long)]
    client_id: Option<Uuid>,
    /// A new security role.
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    user: UserArg,
}

/// `dvhost connection rotate-cert`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// TENANT/NAME.
    connection: String,
    #[command(flatten)]
    user: UserArg,
}

/// The signed-in user's tokens and the client that signed them in.
async fn admin(
    cx: &Context,
    user: &UserArg,
) -> anyhow::Result<(dvhost_dataverse::DeviceSignIn, UserTokens)> {
    let device = cx.globals.device_sign_in()?;
    let wanted = flows::sign_in::Wanted {
        user: user.user.as_deref(),
        entra_tenant: None,
    };
    let tokens = flows::sign_in::administrator(&cx.store, &cx.master, &device, wanted)
        .await
        .map_err(sign_in::sign_in_error)?;
    Ok((device, tokens))
}

/// Runs `dvhost connection create`.
pub async fn create(cx: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let (tenant, name) = args
        .connection
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("name the connection as TENANT/NAME"))?;
    let tenant = cx.tenant(tenant).await?;
    let name = Name::parse(name)?;
    if args.manual {
        let request = manual::ManualConnection {
            tenant: tenant.id,
            name,
            environment_url: args.environment.clone(),
            security_role: args.role.clone(),
            admin_email: args.admin_email.clone(),
        };
        let smtp = args.smtp.settings()?;
        let made = manual::create_manual(
            &cx.store,
            &cx.master,
            &request,
            &args.out_dir,
            smtp.as_ref(),
            &actor(),
        )
        .await?;
        let mut value = connection_json(&made.connection);
        value["sha1_thumbprint"] = json!(made.certificate.sha1_thumbprint);
        value["files"] = json!({
            "cer": made.files.cer,
            "pem": made.files.pem,
            "instructions": made.files.instructions,
        });
        let (mail, said) = mail_outcome(&made.mail);
        value["mail"] = mail;
        let text = format!(
            "connection {} is pending: the administrator's request is in {} (certificate {}); {said}; then run dvhost connection complete {} --tenant-id ... --client-id ...",
            args.connection,
            made.files.instructions.display(),
            made.files.cer.display(),
            args.connection
        );
        return cx.globals.emit(&value, &text);
    }
    let (device, tokens) = admin(cx, &args.user).await?;
    let environment = match Environment::parse(&args.environment) {
        Ok(url) => url,
        // A name: the environment of that name the administrator can reach.
        Err(_) => {
            let stored = sign_in::chosen_sign_in(cx, &args.user).await?;
            let list = sign_in::instances(cx, &stored).await?;
            sign_in::pick_environment(&cx.globals, list, Some(&args.environment))?.url
        }
    };
    let request = auto::AutoRequest {
        tenant,
        name,
        environment,
        security_role: args.role.clone(),
        deadline: Instant::now() + FLOW_TIMEOUT,
    };
    let services = cx.globals.services()?;
    let made = cx
        .globals
        .spinning("creating the connection", |bar| async move {
            let mut progress = move |p: auto::Progress| bar.set_message(p.to_string());
            let admin = auto::AdminSignIn {
                sign_in: &device,
                tokens: &tokens,
            };
            let made = auto::create_connection(
                &cx.store,
                &cx.master,
                admin,
                &services,
                request,
                &mut progress,
            );
            made.await
        })
        .await?;
    cx.globals.emit(
        &connection_json(&made),
        &format!("connection {} is {}", args.connection, made.state),
    )
}

/// Runs `dvhost connection complete`.
pub async fn complete(cx: &Context, args: CompleteArgs) -> anyhow::Result<()> {
    let c = find(cx, &args.connection).await?;
    let services = cx.globals.services()?;
    let actor = actor();
    let done = cx
        .globals
        .spinning("testing the administrator's answer", |_| {
            manual::complete(
                &cx.store,
                &cx.master,
                &services,
                c.id,
                args.tenant_id,
                args.client_id,
                &actor,
            )
        })
        .await?;
    cx.globals.emit(
        &connection_json(&done),
        &format!("connection {} is {}", args.connection, done.state),
    )
}

/// Runs `dvhost connection edit`.
pub async fn edit(cx: &Context, args: EditArgs) -> anyhow::Result<()> {
    let c = find(cx, &args.connection).await?;
    let stored = sign_in::chosen_sign_in(cx, &args.user).await?;
    let editor = edit::Editor::ObjectId(stored.user_oid);
    let changes = edit::ConnectionEdit {
        name: args.name.as_deref().map(Name::parse).transpose()?,
        environment_url: args.environment.clone(),
        client_id: args.client_id,
        security_role: args.role.clone(),
    };
    let edited = edit::edit(
        &cx.store,
        c.id,
        &editor,
        changes,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    cx.globals.emit(
        &connection_json(&edited),
        &format!("connection {} edited", args.connection),
    )
}

/// Runs `dvhost connection rotate-cert`.
pub async fn rotate_cert(cx: &Context, args: RotateArgs) -> anyhow::Result<()> {
    let c = find(cx, &args.connection).await?;
    let (device, tokens) = admin(cx, &args.user).await?;
    let services = cx.globals.services()?;
    let request = rotate::RotateRequest {
        connection: c.id,
        deadline: Instant::now() + FLOW_TIMEOUT,
    };
    let rotated = cx
        .globals
        .spinning("rotating the certificate", |bar| async move {
            let mut progress = move |step: rotate::RotationStep| bar.set_message(step.to_string());
            let admin = auto::AdminSignIn {
                sign_in: &device,
                tokens: &tokens,
            };
            let rotated = rotate::rotate_certificate(
                &cx.store,
                &cx.master,
                admin,
                &services,
                request,
                &[],
                &mut progress,
            );
            rotated.await
        })
        .await?;
    cx.globals.emit(
        &json!({
            "connection": args.connection,
            "old_sha1_thumbprint": rotated.old_sha1_thumbprint,
            "new_sha1_thumbprint": rotated.new_sha1_thumbprint,
        }),
        &format!(
            "connection {} now signs with certificate {} (was {})",
            args.connection, rotated.new_sha1_thumbprint, rotated.old_sha1_thumbprint
        ),
    )
}

/// The e-mail's fate, for `--json` and in words.
fn mail_outcome(mail: &manual::MailOutcome) -> (serde_json::Value, String) {
    let mut value = json!({ "sent": mail.sent() });
    if let Some(to) = mail.to() {
        value["to"] = json!(to);
    }
    if let Some(reason) = mail.reason() {
        value["reason"] = json!(reason);
    }
    let words = match mail {
        manual::MailOutcome::NoRecipient => "no e-mail".into(),
        manual::MailOutcome::NotConfigured => {
            "SMTP is not configured: send the files to the administrator".into()
        }
        manual::MailOutcome::Sent { to } => format!("e-mailed to {to}"),
        manual::MailOutcome::Failed { to, reason } => {
            format!("the e-mail to {to} failed ({reason}): send the files")
        }
    };
    (value, words)
}
