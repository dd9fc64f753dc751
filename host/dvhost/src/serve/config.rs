//! `dvhost.toml`, the configuration of `dvhost serve`. Every key is
//! optional (but `host` and `from` in an `[smtp]` section); the defaults
//! are below and in `examples/dvhost.toml`. Secrets never go in the file:
//! the master key comes from `DVHOST_MASTER_KEY` or the key file in the
//! data directory, the admin key from `DVHOST_ADMIN_KEY` (or only its
//! SHA-256 in `admin_key_sha256`), the SMTP relay's password from
//! `DVHOST_SMTP_PASSWORD`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use dvhost_server::ServerConfig;
use serde::{Deserialize, Deserializer};

use crate::flows::manual::{SmtpSecurity, SmtpSettings};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The data directory (store, master key file, compilation cache).
    /// Default: `--data-dir` / `DVHOST_DATA_DIR`, else the platform's.
    pub data_dir: Option<PathBuf>,
    /// SHA-256 (hex) of the admin key, when the key itself is not given in
    /// `DVHOST_ADMIN_KEY`. Without either, the admin routes are closed.
    pub admin_key_sha256: Option<String>,
    /// HTTP limits and tenants' limits.
    pub server: ServerConfig,
    /// The sandbox.
    pub runtime: RuntimeSection,
    /// Generated table integrations.
    pub integrations: IntegrationsSection,
    /// The relay that e-mails the manual flow's administrator requests.
    /// Without it they are not e-mailed: the admin API's answer is the
    /// request.
    pub smtp: Option<SmtpSection>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: None,
            admin_key_sha256: None,
            server: ServerConfig::default(),
            runtime: RuntimeSection::default(),
            integrations: IntegrationsSection::default(),
            smtp: None,
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSection {
    /// Compiled components, so a restart does not compile again. Default
    /// `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Plugin instances alive at once across all tenants. Default 1000.
    pub max_instances: u32,
    /// Instances made ahead of calls, at most two per plugin, on top of
    /// `max_instances`; 0 turns it off. Default 64.
    pub prepared_instances: u32,
    /// Seconds a prepared instance waits for a call before it is dropped
    /// (checked about once a second). Default 60.
    pub prepared_idle_seconds: u64,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            cache_dir: None,
            max_instances: 1000,
            prepared_instances: 64,
            prepared_idle_seconds: 60,
        }
    }
}

/// `[integrations]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationsSection {
    /// The table-actions component (`dvhost_tables.wasm`, built from
    /// `plugins/tables`). Without it, creating an integration is refused.
    pub component: Option<PathBuf>,
}

/// `[smtp]`. The relay's password is not here: it comes from
/// `DVHOST_SMTP_PASSWORD`, and only with `user`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// Relay host name. Required.
    pub host: String,
    /// Relay port. Default 587.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Transport security: `none`, `starttls` or `tls`. Default `starttls`.
    #[serde(default, deserialize_with = "smtp_security")]
    pub security: SmtpSecurity,
    /// The sender, `Name <address>` or a bare address. Required.
    pub from: String,
    /// Relay user name, when the relay asks for one (then
    /// `DVHOST_SMTP_PASSWORD` is required).
    pub user: Option<String>,
    /// Longest wait for any one SMTP exchange, in milliseconds. Default
    /// 30000.
    #[serde(default = "default_smtp_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_smtp_port() -> u16 {
    SmtpSettings::DEFAULT_PORT
}

fn default_smtp_timeout_ms() -> u64 {
    // 30 s fits in u64 milliseconds.
    SmtpSettings::DEFAULT_TIMEOUT.as_millis() as u64
}

/// `security` read with the same names as `--smtp-security`.
fn smtp_security<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SmtpSecurity, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl ServeConfig {
    /// Reads a file; a missing path gives the defaults only when `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let Some(path) = path else {
            return Ok(ServeConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in the configuration {}", path.display()))
    }

    /// The admin key's fingerprint: from `DVHOST_ADMIN_KEY` (the key), else
    /// `admin_key_sha256`.
    pub fn admin_key_hash(&self, env_key: Option<&str>) -> anyhow::Result<Option<[u8; 32]>> {
        if let Some(key) = env_key {
            let presented = dvhost_dataverse::PresentedApiKey::parse(key.trim())
                .context("DVHOST_ADMIN_KEY is not a dvhost API key (dvk_<id>_<secret>)")?;
            return Ok(Some(presented.fingerprint()));
        }
        let Some(hex) = &self.admin_key_sha256 else {
            return Ok(None);
        };
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<_>>()
            .context("admin_key_sha256 is not hex")?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("admin_key_sha256 is not 64 hex digits"))?;
        Ok(Some(hash))
    }

    /// The relay for administrator requests, from `[smtp]` and `password`
    /// (`DVHOST_SMTP_PASSWORD`); `None` without an `[smtp]` section. A
    /// user without a password, or a password without a user, is refused.
    pub fn smtp_settings(&self, password: Option<&str>) -> anyhow::Result<Option<SmtpSettings>> {
        let Some(smtp) = &self.smtp else {
            return Ok(None);
        };
        if smtp.host.trim().is_empty() {
            anyhow::bail!("smtp.host is empty");
        }
        if smtp.port == 0 {
            anyhow::bail!("smtp.port must not be 0");
        }
        if smtp.timeout_ms == 0 {
            anyhow::bail!("smtp.timeout_ms must be at least 1");
        }
        let credentials = SmtpSettings::credentials(smtp.user.as_deref(), password, "smtp.user")?;
        let settings = SmtpSettings {
            host: smtp.host.clone(),
            port: smtp.port,
            security: smtp.security,
            from: smtp.from.clone(),
            credentials,
            timeout: Duration::from_millis(smtp.timeout_ms),
        };
        settings.check_sender().context("smtp.from")?;
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "relay-password-4f9a";

    fn parse(text: &str) -> anyhow::Result<ServeConfig> {
        Ok(toml::from_str(text)?)
    }

    /// The error's whole chain, as `main` prints it.
    fn error_text(result: anyhow::Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.expect_err("an error"))
    }

    #[test]
    fn no_smtp_section_means_no_relay() {
        let config = parse("listen = \"127.0.0.1:9000\"").unwrap();
        assert!(config.smtp.is_none());
        assert!(config.smtp_settings(None).unwrap().is_none());
        // A password alone does not make a relay.
        assert!(config.smtp_settings(Some(PASSWORD)).unwrap().is_none());
    }

    #[test]
    fn smtp_defaults_are_the_command_lines() {
        let config = parse(
            r#"
            [smtp]
            host = "smtp.example.com"
            from = "dvhost <dvhost@example.com>"
            "#,
        )
        .unwrap();
        let settings = config.smtp_settings(None).unwrap().unwrap();
        assert_eq!(settings.host, "smtp.example.com");
        assert_eq!(settings.port, 587);
        assert_eq!(settings.security, SmtpSecurity::StartTls);
        assert_eq!(settings.from, "dvhost <dvhost@example.com>");
        assert!(settings.credentials.is_none());
        assert_eq!(settings.timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_smtp_key_is_read() {
        let config = parse(
            r#"
            [smtp]
            host = "relay.internal"
            port = 465
            security = "tls"
            from = "ops@example.com"
            user = "dvhost"
            timeout_ms = 2500
            "#,
        )
        .unwrap();
        let settings = config.smtp_settings(Some(PASSWORD)).unwrap().unwrap();
        assert_eq!(
            (settings.host.as_str(), settings.port),
            ("relay.internal", 465)
        );
        assert_eq!(settings.security, SmtpSecurity::Tls);
        assert_eq!(
            settings.credentials,
            Some(("dvhost".to_string(), PASSWORD.to_string()))
        );
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        let none = parse("[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nsecurity = \"none\"").unwrap();
        let settings = none.smtp_settings(None).unwrap().unwrap();
        assert_eq!(settings.security, SmtpSecurity::None);
    }

    #[test]
    fn a_user_needs_the_password_and_the_password_a_user() {
        let with_user =
            parse("[smtp]\nhost = \"relay\"\nfrom = \"a@example.com\"\nuser = \"dvhost\"").unwrap();
        for missing in [None, Some("")] {
            let message = error_text(with_user.smtp_settings(missing));
            assert!(
                message.contains("smtp.user") && message.contains("DVHOST_SMTP_PASSWORD"),
                "{message}"
            );
        }
        let without_user = parse("[smtp]\nhost = \"relay\"\nfrom = \"a@example.com\"").unwrap();
        let message = error_text(without_user.smtp_settings(Some(PASSWORD)));
        assert!(
            message.contains("DVHOST_SMTP_PASSWORD") && message.contains("smtp.user"),
            "{message}"
        );
        assert!(!message.contains(PASSWORD), "{message}");
    }

    #[test]
    fn required_keys_and_bad_values_are_refused_by_name() {
        for (text, key) in [
            ("[smtp]\nfrom = \"a@example.com\"", "host"),
            ("[smtp]\nhost = \"relay\"", "from"),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\nsecurity = \"ssl\"",
                "security",
            ),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\nport = 70000",
                "port",
            ),
        ] {
            let message = error_text(parse(text));
            assert!(message.contains(key), "{key}: {message}");
        }
        let message = error_text(parse(
            "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\nsecurity = \"ssl\"",
        ));
        assert!(message.contains("none, starttls or tls"), "{message}");
        for (text, key) in [
            ("[smtp]\nhost = \" \"\nfrom = \"a@b.c\"", "smtp.host"),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\nport = 0",
                "smtp.port",
            ),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\ntimeout_ms = 0",
                "smtp.timeout_ms",
            ),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"not an address\"",
                "smtp.from",
            ),
            (
                "[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\nuser = \"\"",
                "smtp.user",
            ),
        ] {
            let message = error_text(parse(text).unwrap().smtp_settings(None));
            assert!(message.contains(key), "{key}: {message}");
        }
    }

    #[test]
    fn unknown_smtp_keys_are_refused() {
        for key in ["password = \"x\"", "tls = true"] {
            let text = format!("[smtp]\nhost = \"relay\"\nfrom = \"a@b.c\"\n{key}");
            let message = error_text(parse(&text));
            assert!(message.contains("unknown field"), "{key}: {message}");
        }
    }

    #[test]
    fn the_example_states_the_runtime_defaults() {
        let example = parse(include_str!("../../../../examples/dvhost.toml")).unwrap();
        let (stated, default) = (example.runtime, RuntimeSection::default());
        assert_eq!(stated.max_instances, default.max_instances);
        assert_eq!(stated.prepared_instances, default.prepared_instances);
        assert_eq!(stated.prepared_idle_seconds, default.prepared_idle_seconds);
    }

    #[test]
    fn the_example_states_the_smtp_defaults() {
        let example = include_str!("../../../../examples/dvhost.toml");
        let (before, smtp) = example
            .split_once("# [smtp]")
            .expect("the example has an [smtp] section");
        let uncommented: String = std::iter::once("[smtp]")
            .chain(smtp.lines().filter_map(|line| line.strip_prefix("# ")))
            .map(|line| format!("{line}\n"))
            .collect();
        let config = parse(&format!("{before}{uncommented}")).unwrap();
        let settings = config.smtp_settings(Some(PASSWORD)).unwrap().unwrap();
        assert_eq!(settings.port, SmtpSettings::DEFAULT_PORT);
        assert_eq!(settings.security, SmtpSecurity::default());
        assert_eq!(settings.timeout, SmtpSettings::DEFAULT_TIMEOUT);
        assert_eq!(settings.from, "dvhost <dvhost@example.com>");
    }

    #[test]
    fn the_password_is_never_printed() {
        let config =
            parse("[smtp]\nhost = \"relay\"\nfrom = \"a@example.com\"\nuser = \"dvhost\"").unwrap();
        let settings = config.smtp_settings(Some(PASSWORD)).unwrap();
        for text in [
            format!("{config:?}"),
            format!("{settings:?}"),
            format!("{settings:#?}"),
        ] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(text.contains("dvhost"), "{text}");
        }
    }
}
