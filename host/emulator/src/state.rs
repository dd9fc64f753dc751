//! The emulator's in-memory directory: tenants, users, apps, environments,
//! pending device codes and refresh tokens. Everything is plain data guarded
//! by one lock in [`crate::Emulator`]; it can be snapshotted to a file.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::seed::{AppSeed, EnvironmentSeed, Settings, TenantSeed, UserSeed};

/// Well-known Microsoft public clients that exist in every tenant (Azure CLI,
/// Azure PowerShell, the Dataverse/Power Platform sample client), so real
/// tools can run the device-code flow against the emulator unmodified.
pub const WELL_KNOWN_PUBLIC_CLIENTS: &[(&str, &str)] = &[
    (
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        "Microsoft Azure CLI",
    ),
    (
        "1950a258-227b-4e31-a9cf-717495945fc2",
        "Microsoft Azure PowerShell",
    ),
    (
        "51f81489-12ee-4a9e-aaae-a2591f45987d",
        "Power Platform sample client",
    ),
];

/// Resource id of Microsoft Graph as it appears in scopes and `aud`.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Graph's application id, also accepted as a resource.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Resource id of the Global Discovery Service.
pub const DISCOVERY_RESOURCE: &str = "https://globaldisco.crm.dynamics.com";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub upn: String,
    pub display_name: String,
    pub admin: bool,
}

/// One registered certificate (Graph `keyCredential` of type AsymmetricX509Cert).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyCredential {
    pub key_id: Uuid,
    pub display_name: String,
    /// DER of the certificate.
    #[serde(with = "b64")]
    pub cert_der: Vec<u8>,
    /// PKCS#1 RSAPublicKey DER taken from the certificate.
    #[serde(with = "b64")]
    pub public_key_der: Vec<u8>,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Why a certificate could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is not valid PEM or DER: {0}")]
    Encoding(String),
    #[error("the certificate could not be parsed: {0}")]
    Parse(String),
    #[error("only RSA certificates are supported")]
    NotRsa,
}

impl KeyCredential {
    /// Builds a key credential from a PEM or DER certificate.
    pub fn from_certificate(
        bytes: &[u8],
        display_name: Option<String>,
    ) -> Result<Self, CertificateError> {
        let der = if bytes.starts_with(b"-----") {
            let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
                .map_err(|e| CertificateError::Encoding(e.to_string()))?;
            pem.contents
        } else {
            bytes.to_vec()
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CertificateError::Parse(e.to_string()))?;
        let spki = cert.public_key();
        match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(_)) => {}
            _ => return Err(CertificateError::NotRsa),
        }
        let public_key_der = spki.subject_public_key.data.to_vec();
        let subject = cert.subject().to_string();
        let start = cert.validity().not_before.to_datetime();
        let end = cert.validity().not_after.to_datetime();
        Ok(KeyCredential {
            key_id: Uuid::new_v4(),
            display_name: display_name.unwrap_or(subject),
            sha1: sha1::Sha1::digest(&der).into(),
            sha256: sha2::Sha256::digest(&der).into(),
            cert_der: der,
            public_key_der,
            start,
            end,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    /// Application object id (Graph URLs).
    pub object_id: Uuid,
    /// Application (client) id (OAuth).
    pub app_id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
    pub public_client: bool,
    pub keys: Vec<KeyCredential>,
    /// Service principal object id, once one exists in the tenant.
    pub service_principal: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Extra Graph properties kept verbatim (signInAudience, requiredResourceAccess, ...).
    #[serde(default)]
    pub graph_extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub id: Uuid,
    pub environment_id: Uuid,
    pub tenant_id: Uuid,
    pub unique_name: String,
    pub friendly_name: String,
    /// Organization URL without trailing slash; also the token `aud`.
    /// By default the environment's own origin ([`Environment::origin`]).
    pub url: String,
    /// The origin of the environment's own listener
    /// (`http(s)://127.0.0.1:<port>`), kept across restarts with `--state`
    /// so the URL stays the same.
    #[serde(default)]
    pub origin: Option<String>,
    pub region: String,
    pub users: Vec<Uuid>,
    pub admins: Vec<Uuid>,
    /// Apps with an application user (System Administrator) from the seed.
    #[serde(default)]
    pub app_users: Vec<Uuid>,
    /// Custom tables and added alternate keys (see [`crate::seed::TableSeed`]).
    #[serde(default)]
    pub tables: Vec<crate::seed::TableSeed>,
    #[serde(default)]
    pub alternate_keys: std::collections::BTreeMap<String, Vec<Vec<String>>>,
}

/// Outcome chosen for a pending device code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum DeviceCodeStatus {
    Pending,
    Approved {
        user: Uuid,
    },
    Declined,
    /// Tokens were handed out; the code cannot be redeemed again.
    Redeemed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub client_id: Uuid,
    /// The tenant in the authority, or `None` for `common`/`organizations`.
    pub tenant_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub interval: u64,
    pub last_poll: Option<i64>,
    /// Number of upcoming polls answered with `slow_down` (set by tests).
    pub scripted_slow_downs: u32,
    pub status: DeviceCodeStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub tenant_id: Uuid,
    pub user: Uuid,
    pub client_id: Uuid,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

/// Counts of token-endpoint requests, for tests that assert how many token
/// requests a client made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenStats {
    /// Token requests, including injected refusals.
    pub requests: u64,
    /// Requests that got a token.
    pub issued: u64,
    /// Requests that got an error.
    pub rejected: u64,
    /// Requests by `client_id` (`-` when absent).
    pub by_client: HashMap<String, u64>,
    /// Requests by `grant_type` (`-` when absent).
    pub by_grant: HashMap<String, u64>,
}

/// The whole directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Directory {
    pub settings: Settings,
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    pub apps: Vec<App>,
    pub environments: Vec<Environment>,
    pub device_codes: Vec<DeviceCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    #[serde(default)]
    pub stats: TokenStats,
    /// Injected faults with their counters.
    #[serde(default)]
    pub faults: Vec<crate::faults::FaultState>,
    /// The emulator's own base URLs (not persisted): an environment is also
    /// addressed as `<base>/<unique_name>` at each.
    #[serde(skip)]
    pub base_urls: Vec<String>,
}

/// A seed entry that refers to something missing, or collides.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("unknown tenant '{0}'")]
    UnknownTenant(String),
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("app '{app}': {source}")]
    Certificate {
        app: String,
        #[source]
        source: CertificateError,
    },
}

impl Directory {
    /// Finds a tenant by id, short name or verified domain (case-insensitive).
    pub fn tenant(&self, key: &str) -> Option<&Tenant> {
        let key = key.trim();
        if let Ok(id) = Uuid::parse_str(key) {
            return self.tenants.iter().find(|t| t.id == id);
        }
        self.tenants.iter().find(|t| {
            t.name.eq_ignore_ascii_case(key)
                || t.domains.iter().any(|d| d.eq_ignore_ascii_case(key))
        })
    }

    pub fn tenant_by_id(&self, id: Uuid) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// Finds a user by UPN or object id.
    pub fn user(&self, key: &str) -> Option<&User> {
        if let Ok(id) = Uuid::parse_str(key) {
            return self.users.iter().find(|u| u.id == id);
        }
        self.users.iter().find(|u| u.upn.eq_ignore_ascii_case(key))
    }

    pub fn user_by_id(&self, id: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The app registration with this client id in this tenant.
    pub fn app(&self, tenant: Uuid, app_id: Uuid) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.tenant_id == tenant && a.app_id == app_id)
    }

    pub fn environment_for_resource(&self, resource: &str) -> Option<&Environment> {
        let r = resource.trim_end_matches('/');
        self.environments.iter().find(|e| {
            self.environment_audiences(e)
                .iter()
                .any(|a| a.eq_ignore_ascii_case(r))
        })
    }

    /// Every resource id an environment answers to, as Dataverse answers
    /// tokens for either of its hosts: its URL, its own origin, and the path
    /// form `<emulator base>/<unique_name>`.
    pub fn environment_audiences(&self, env: &Environment) -> Vec<String> {
        let mut out = vec![env.url.clone()];
        out.extend(env.origin.clone());
        out.extend(
            self.base_urls
                .iter()
                .map(|b| format!("{b}/{}", env.unique_name)),
        );
        out
    }

    pub fn add_tenant(&mut self, seed: TenantSeed) -> Result<Tenant, SeedError> {
        if seed.name.trim().is_empty() || seed.name.contains('/') {
            return Err(SeedError::Invalid {
                what: "tenant name".into(),
                why: "must be a non-empty path segment".into(),
            });
        }
        if self.tenant(&seed.name).is_some()
            || seed.id.is_some_and(|id| self.tenant_by_id(id).is_some())
        {
            return Err(SeedError::Duplicate(format!("tenant '{}'", seed.name)));
        }
        let mut domains = seed.domains;
        let default_domain = format!("{}.onmicrosoft.com", seed.name.to_ascii_lowercase());
        if !domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&default_domain))
        {
            domains.push(default_domain);
        }
        let t = Tenant {
            id: seed.id.unwrap_or_else(Uuid::new_v4),
            display_name: seed.display_name.unwrap_or_else(|| seed.name.clone()),
            name: seed.name,
            domains,
        };
        self.tenants.push(t.clone());
        Ok(t)
    }

    pub fn add_user(&mut self, seed: UserSeed) -> Result<User, SeedError> {
        let tenant = self
            .tenant(&seed.tenant)
            .ok_or_else(|| SeedError::UnknownTenant(seed.tenant.clone()))?
            .id;
        if !seed.upn.contains('@') {
            return Err(SeedError::Invalid {
                what: "upn".into(),
                why: format!("'{}' is not name@domain", seed.upn),
            });
        }
        if self.user(&seed.upn).is_some() {
            return Err(SeedError::Duplicate(format!("user '{}'", seed.upn)));
        }
        let u = User {
            id: seed.id.unwrap_or_else(Uuid::new_v4),
            tenant_id: tenant,
            display_name: seed
                .display_name
                .unwrap_or_else(|| seed.upn.split('@').next().unwrap_or_default().to_string()),
            upn: seed.upn,
            admin: seed.admin,
        };
        self.users.push(u.clone());
        Ok(u)
    }

    pub fn add_app(&mut self, seed: AppSeed, now: OffsetDateTime) -> Result<App, SeedError> {
        let tenant = self
            .tenant(&seed.tenant)
            .ok_or_else(|| SeedError::UnknownTenant(seed.tenant.clone()))?
            .id;
        let app_id = seed.app_id.unwrap_or_else(Uuid::new_v4);
        if self.app(tenant, app_id).is_some() {
            return Err(SeedError::Duplicate(format!("app {app_id}")));
        }
        let keys = seed
            .certificates
            .iter()
            .map(|pem| KeyCredential::from_certificate(pem.as_bytes(), None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| SeedError::Certificate {
                app: seed.display_name.clone(),
                source,
            })?;
        let app = App {
            object_id: Uuid::new_v4(),
            app_id,
            tenant_id: tenant,
            display_name: seed.display_name,
            public_client: seed.public_client,
            keys,
            service_principal: seed.service_principal.then(Uuid::new_v4),
            created: now,
            graph_extra: Default::default(),
        };
        self.apps.push(app.clone());
        Ok(app)
    }

    /// Adds an environment served at `origin` (its own listener, when it
    /// has one); the organization URL is the seed's, else the origin, else
    /// `<base_url>/<unique_name>`.
    pub fn add_environment(
        &mut self,
        seed: EnvironmentSeed,
        base_url: &str,
        origin: Option<String>,
    ) -> Result<Environment, SeedError> {
        let tenant = self
            .tenant(&seed.tenant)
            .ok_or_else(|| SeedError::UnknownTenant(seed.tenant.clone()))?
            .id;
        let name = seed.unique_name.trim();
        let base = origin
            .clone()
            .unwrap_or_else(|| format!("{}/{}", base_url.trim_end_matches('/'), name));
        let url = self.environment_url(&seed, name, &base)?;
        let resolve = |upns: &[String]| -> Result<Vec<Uuid>, SeedError> {
            upns.iter()
                .map(|u| {
                    self.user(u)
                        .map(|u| u.id)
                        .ok_or_else(|| SeedError::UnknownUser(u.clone()))
                })
                .collect()
        };
        let env = Environment {
            id: seed.id.unwrap_or_else(Uuid::new_v4),
            environment_id: Uuid::new_v4(),
            tenant_id: tenant,
            unique_name: name.to_string(),
            friendly_name: seed
                .friendly_name
                .clone()
                .unwrap_or_else(|| name.to_string()),
            url,
            origin,
            region: seed.region.clone(),
            users: resolve(&seed.users)?,
            admins: resolve(&seed.admins)?,
            app_users: seed
                .app_users
                .iter()
                .map(|a| {
                    Uuid::parse_str(a).map_err(|_| SeedError::Invalid {
                        what: "app_users entry".into(),
                        why: format!("'{a}' is not an application id"),
                    })
                })
                .collect::<Result<_, _>>()?,
            tables: seed.tables.clone(),
            alternate_keys: seed.alternate_keys.clone(),
        };
        // Build the schema once now, so a bad table definition fails the seed.
        crate::dataverse::metadata::build_schema(&env.tables, &env.alternate_keys).map_err(
            |why| SeedError::Invalid {
                what: format!("tables of environment '{name}'"),
                why: why.to_string(),
            },
        )?;
        self.environments.push(env.clone());
        Ok(env)
    }

    /// Checks an environment's unique name (a free URL path segment) and
    /// returns its organization URL (the seed's, else `default_url`).
    fn environment_url(
        &self,
        seed: &EnvironmentSeed,
        name: &str,
        default_url: &str,
    ) -> Result<String, SeedError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SeedError::Invalid {
                what: "environment unique_name".into(),
                why: format!("'{name}' must be letters, digits, '-' or '_'"),
            });
        }
        if self
            .environments
            .iter()
            .any(|e| e.unique_name.eq_ignore_ascii_case(name))
        {
            return Err(SeedError::Duplicate(format!("environment '{name}'")));
        }
        let url = seed
            .url
            .clone()
            .unwrap_or_else(|| default_url.to_string())
            .trim_end_matches('/')
            .to_string();
        if url::Url::parse(&url).is_err() {
            return Err(SeedError::Invalid {
                what: "environment url".into(),
                why: format!("'{url}' is not a URL"),
            });
        }
        Ok(url)
    }

    /// Whether a user can see an environment in Global Discovery.
    pub fn user_can_reach(&self, env: &Environment, user: &User) -> bool {
        env.tenant_id == user.tenant_id
            && (env.users.is_empty()
                || env.users.contains(&user.id)
                || env.admins.contains(&user.id))
    }
}
