//! The administrator request of the manual flow: the public certificate
//! (`.cer`, DER, and PEM), its thumbprints and step-by-step instructions,
//! written as files and, when SMTP is configured, sent as an e-mail with the
//! `.cer` attached. Nothing here is secret: the private key never leaves
//! `dvhost-dataverse`, and the administrator sends back only two ids.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::OffsetDateTime;

/// What an administrator needs to register a connection's app by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    /// The dvhost tenant's name.
    pub tenant: String,
    /// The connection's name.
    pub connection: String,
    /// The Dataverse environment URL.
    pub environment_url: String,
    /// The security role to give the application user.
    pub security_role: String,
    /// The display name suggested for the app registration.
    pub app_name: String,
    /// The public certificate, DER (the `.cer` file).
    pub cer: Vec<u8>,
    /// The public certificate, PEM.
    pub pem: String,
    /// SHA-1 thumbprint, upper-case hex (what the Entra portal shows).
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint, lower-case hex.
    pub sha256_thumbprint: String,
    /// End of the certificate's validity.
    pub not_after: OffsetDateTime,
}

/// The files [`AdminRequest::write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequestFiles {
    /// The public certificate, DER (upload this one to Entra).
    pub cer: PathBuf,
    /// The same certificate, PEM.
    pub pem: PathBuf,
    /// The step-by-step instructions, plain text.
    pub instructions: PathBuf,
}

/// How to reach the SMTP relay that sends administrator requests.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Relay host name.
    pub host: String,
    /// Relay port (25, 587 or 465 usually).
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// User name and password, when the relay asks for them.
    pub credentials: Option<(String, String)>,
    /// Longest wait for any one SMTP exchange.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// The relay port when none is named (submission, with STARTTLS).
    pub const DEFAULT_PORT: u16 = 587;
    /// The longest wait for one SMTP exchange when none is named.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The environment variable `dvhost connection create` and
    /// `dvhost serve` read the relay password from (it never goes in a
    /// file or on a command line).
    pub const PASSWORD_ENV: &str = "DVHOST_SMTP_PASSWORD";

    /// The relay's user name and password: both or neither. `user_label`
    /// names where the user comes from (`smtp.user`, `--smtp-user`) in the
    /// errors; an empty password counts as none, so a relay is never sent
    /// a user with an empty password by mistake.
    pub fn credentials(
        user: Option<&str>,
        password: Option<&str>,
        user_label: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let env = Self::PASSWORD_ENV;
        let password = password.filter(|p| !p.is_empty());
        match (user, password) {
            (Some(user), _) if user.trim().is_empty() => anyhow::bail!("{user_label} is empty"),
            (Some(user), Some(password)) => Ok(Some((user.to_string(), password.to_string()))),
            (Some(_), None) => anyhow::bail!(
                "{user_label} is set but {env} is not: the relay's password comes from the environment"
            ),
            (None, Some(_)) => {
                anyhow::bail!("{env} is set but {user_label} is not: name the relay's user")
            }
            (None, None) => Ok(None),
        }
    }

    /// Checks that [`Self::from`] is an e-mail address, so a bad sender is
    /// found at start rather than at the first request.
    pub fn check_sender(&self) -> Result<(), MailError> {
        mailbox("the sender", &self.from).map(|_| ())
    }
}

/// `address` as a mailbox, or an error naming `what` it was for.
fn mailbox(what: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address.parse::<Mailbox>().map_err(|_| MailError::Address {
        what,
        address: address.to_string(),
    })
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay password never appears in logs.
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

/// Transport security towards the SMTP relay, written `none`, `starttls`
/// (the default) or `tls` on the command line and in `dvhost.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpSecurity {
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl SmtpSecurity {
    /// How the choice is written.
    pub fn name(self) -> &'static str {
        match self {
            SmtpSecurity::None => "none",
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
        }
    }
}

impl std::str::FromStr for SmtpSecurity {
    type Err = String;

    fn from_str(text: &str) -> Result<SmtpSecurity, String> {
        [
            SmtpSecurity::None,
            SmtpSecurity::StartTls,
            SmtpSecurity::Tls,
        ]
        .into_iter()
        .find(|security| security.name() == text)
        .ok_or_else(|| format!("must be none, starttls or tls, not {text:?}"))
    }
}

impl std::fmt::Display for SmtpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an e-mail could not be sent.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address that is not an e-mail address.
    #[error("{what} {address:?} is not an e-mail address")]
    Address {
        /// Which address (sender, recipient).
        what: &'static str,
        /// The text given.
        address: String,
    },
    /// The message could not be built.
    #[error("the e-mail could not be built: {0}")]
    Build(String),
    /// The relay could not be reached or refused the message.
    #[error("the SMTP relay {host}:{port} did not take the e-mail: {why}")]
    Smtp {
        /// Relay host.
        host: String,
        /// Relay port.
        port: u16,
        /// What went wrong.
        why: String,
    },
}

impl AdminRequest {
    /// The file name stem shared by the request's files.
    fn stem(&self) -> String {
        format!("{}-{}", self.tenant, self.connection)
    }

    /// The `.cer` attachment's file name.
    pub fn cer_file_name(&self) -> String {
        format!("{}.cer", self.stem())
    }

    /// The step-by-step instructions for the administrator.
    pub fn instructions(&self) -> String {
        let r = self;
        let cer = r.cer_file_name();
        let until = r.not_after.date();
        format!(
            "\
dvhost asks an administrator to register an application for Dataverse
======================================================================

Connection:        {tenant}/{connection}
Environment:       {env}
Security role:     {role}
Certificate file:  {cer} (public certificate only; valid until {until})
SHA-1 thumbprint:  {sha1}
SHA-256 thumbprint: {sha256}

dvhost generated a certificate for this connection and keeps its private key
encrypted. No secret is needed from you, and none should be sent back.

1. Sign in to the Microsoft Entra admin center (https://entra.microsoft.com)
   as an Application Administrator (or Cloud Application Administrator) of
   the Entra tenant that holds the environment above.
2. Register an app: Identity > Applications > App registrations >
   New registration. Name: {app}. Supported account types: accounts in this
   organizational directory only. No redirect URI. Register.
   Note the \"Application (client) ID\" and \"Directory (tenant) ID\".
3. Upload this certificate: in the app, Certificates & secrets >
   Certificates > Upload certificate, choose {cer}. Check that the thumbprint
   Entra shows is {sha1}.
4. Create the service principal: the portal creates it with the registration
   (it appears under Enterprise applications as {app}). With the Azure CLI
   instead: az ad sp create --id <Application (client) ID>.
   No API permission and no admin consent are needed.
5. Create the Dataverse application user: in the Power Platform admin center
   (https://admin.powerplatform.microsoft.com), Environments > the environment
   at {env} > Settings > Users + permissions > Application users >
   New app user > Add an app, pick {app}, choose the business unit.
6. Assign the security role \"{role}\" to that application user (Edit
   security roles), and nothing broader than the connection needs.
7. Send back to the person who asked you, by any channel:
   - the Directory (tenant) ID, and
   - the Application (client) ID.
   They finish with:
   dvhost connection complete {tenant}/{connection} --tenant-id <tenant id> --client-id <client id>
   dvhost then tests the connection (WhoAmI) before using it.
",
            tenant = r.tenant,
            connection = r.connection,
            env = r.environment_url,
            role = r.security_role,
            app = r.app_name,
            sha1 = r.sha1_thumbprint,
            sha256 = r.sha256_thumbprint,
        )
    }

    /// Writes the `.cer`, the `.pem` and the instructions into `dir`
    /// (created when missing), replacing files of the same names.
    pub async fn write_files(&self, dir: &Path) -> std::io::Result<AdminRequestFiles> {
        tokio::fs::create_dir_all(dir).await?;
        let files = AdminRequestFiles {
            cer: dir.join(self.cer_file_name()),
            pem: dir.join(format!("{}.pem", self.stem())),
            instructions: dir.join(format!("{}-instructions.txt", self.stem())),
        };
        tokio::fs::write(&files.cer, &self.cer).await?;
        tokio::fs::write(&files.pem, &self.pem).await?;
        tokio::fs::write(&files.instructions, self.instructions()).await?;
        Ok(files)
    }

    /// The e-mail: the instructions as its text, the `.cer` attached.
    pub fn message(&self, from: &str, to: &str) -> Result<Message, MailError> {
        let certificate = ContentType::parse("application/pkix-cert")
            .map_err(|e| MailError::Build(e.to_string()))?;
        let attachment = Attachment::new(self.cer_file_name()).body(self.cer.clone(), certificate);
        Message::builder()
            .from(mailbox("the sender", from)?)
            .to(mailbox("the administrator's address", to)?)
            .subject(format!(
                "dvhost: please register an application for Dataverse connection {}/{}",
                self.tenant, self.connection
            ))
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(self.instructions()))
                    .singlepart(attachment),
            )
            .map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends [`Self::message`] to `to` through the relay.
    pub async fn send(&self, smtp: &SmtpSettings, to: &str) -> Result<(), MailError> {
        let message = self.message(&smtp.from, to)?;
        let smtp_error = |why: String| MailError::Smtp {
            host: smtp.host.clone(),
            port: smtp.port,
            why,
        };
        let builder = match smtp.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                    .map_err(|e| smtp_error(e.to_string()))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|e| smtp_error(e.to_string()))?,
        };
        let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
        if let Some((user, password)) = &smtp.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        builder
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| smtp_error(e.to_string()))
    }
}
