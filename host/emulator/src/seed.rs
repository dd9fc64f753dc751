//! The seed: tenants, users, applications, environments and settings that an
//! emulator starts with. The same shapes are accepted by the control API
//! (`POST /_emulator/...`), so a test can build its world either way.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Everything an emulator can be seeded with. Every list may be empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Clock, lifetime and device-flow settings.
    #[serde(default)]
    pub settings: Settings,
    /// Entra tenants (directories).
    #[serde(default)]
    pub tenants: Vec<TenantSeed>,
    /// Users of those tenants, for delegated sign-in.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// App registrations with their certificates.
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    /// Dataverse environments (organizations) that tokens can be issued for.
    #[serde(default)]
    pub environments: Vec<EnvironmentSeed>,
    /// Faults injected into Dataverse responses.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

/// A fault injected into matching Dataverse Web API requests. Deterministic:
/// by position (`skip`, `every`, `times`) or by a seeded random draw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Environment unique name; absent = every environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// HTTP method (`POST`, `PATCH`...); absent = any.
    #[serde(default)]
    pub method: Option<String>,
    /// Resource path after `/api/data/v9.2/`: exact, a prefix ending in `*`, or `*`.
    #[serde(default = "any_path")]
    pub path: String,
    /// What happens.
    pub action: FaultAction,
    /// Matching requests let through before the rule starts.
    #[serde(default)]
    pub skip: u64,
    /// Apply to every n-th matching request (1 = each).
    #[serde(default)]
    pub every: Option<u64>,
    /// Apply with this probability, drawn from a generator seeded with `seed`.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seed of the generator `probability` draws from (same seed, same
    /// outcomes).
    #[serde(default)]
    pub seed: u64,
    /// Stop after applying this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

fn any_path() -> String {
    "*".into()
}

/// The injected behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// 429 with the service-protection body and this `Retry-After`.
    Throttle {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// A bare 500/502/503/504 error, before the request is processed.
    Status {
        /// The HTTP status (5xx).
        status: u16,
    },
    /// Added latency: the request is processed, and its answer comes this
    /// much later (a Web API request holds its concurrency slot meanwhile).
    Latency {
        /// The delay, in milliseconds.
        ms: u64,
    },
    /// The connection is closed without a response; nothing is written.
    DropBefore,
    /// The request is processed (a write is applied), then the connection is
    /// closed without a response.
    DropAfter,
}

impl Seed {
    /// Parses a TOML seed. Relative `certificate_files` are resolved against
    /// `base_dir` and read into `certificates`.
    pub fn from_toml(text: &str, base_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut seed: Seed = toml::from_str(text)?;
        for app in &mut seed.apps {
            for file in std::mem::take(&mut app.certificate_files) {
                let path = match base_dir {
                    Some(dir) if Path::new(&file).is_relative() => dir.join(&file),
                    _ => file.clone().into(),
                };
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("certificate file {}: {e}", path.display()))?;
                app.certificates.push(pem);
            }
        }
        Ok(seed)
    }

    /// Reads and parses a TOML seed file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("seed file {}: {e}", path.display()))?;
        Self::from_toml(&text, path.parent())
            .map_err(|e| anyhow::anyhow!("seed file {}: {e}", path.display()))
    }
}

/// Emulator-wide behaviour that tests want to change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Fixed access-token lifetime in seconds. `None` reproduces Entra's
    /// default: a random lifetime between 60 and 90 minutes.
    pub token_lifetime_secs: Option<u64>,
    /// When set, token responses carry `refresh_in` (MSAL's proactive refresh hint).
    pub refresh_in_secs: Option<u64>,
    /// Seconds added to the emulator's clock (negative values move it back).
    pub clock_offset_secs: i64,
    /// Allowed clock skew when checking assertion times.
    pub clock_skew_secs: u64,
    /// Longest accepted client-assertion lifetime (`exp` minus `nbf`/`iat`).
    pub max_assertion_lifetime_secs: u64,
    /// `interval` returned by the device-code endpoint.
    pub device_code_interval_secs: u64,
    /// `expires_in` returned by the device-code endpoint.
    pub device_code_lifetime_secs: u64,
    /// Lifetime of refresh tokens (Entra: 90 days).
    pub refresh_token_lifetime_secs: u64,
    /// Dataverse service protection limits, per user and environment.
    pub service_protection: ServiceProtection,
}

/// Dataverse's service protection API limits ("Service protection API
/// limits", <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>); tests set
/// low values to see 429s quickly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceProtection {
    /// Requests per user in the sliding window.
    pub requests: u64,
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Combined execution time per user in the window, in milliseconds.
    pub execution_ms: u64,
    /// Concurrent requests per user.
    pub concurrent: u64,
}

impl Default for ServiceProtection {
    fn default() -> Self {
        ServiceProtection {
            requests: 6000,
            window_secs: 300,
            execution_ms: 1_200_000,
            concurrent: 52,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_lifetime_secs: None,
            refresh_in_secs: None,
            clock_offset_secs: 0,
            clock_skew_secs: 300,
            max_assertion_lifetime_secs: 24 * 3600,
            device_code_interval_secs: 5,
            device_code_lifetime_secs: 900,
            refresh_token_lifetime_secs: 90 * 24 * 3600,
            service_protection: ServiceProtection::default(),
        }
    }
}

/// A partial update of [`Settings`] (control API `PATCH /_emulator/settings`).
/// `token_lifetime_secs: null` switches back to the random default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// New [`Settings::token_lifetime_secs`]; `Some(None)` is the random default.
    #[serde(default, deserialize_with = "double_option")]
    pub token_lifetime_secs: Option<Option<u64>>,
    /// New [`Settings::refresh_in_secs`]; `Some(None)` is the default.
    #[serde(default, deserialize_with = "double_option")]
    pub refresh_in_secs: Option<Option<u64>>,
    /// New [`Settings::clock_offset_secs`].
    pub clock_offset_secs: Option<i64>,
    /// New [`Settings::clock_skew_secs`].
    pub clock_skew_secs: Option<u64>,
    /// New [`Settings::max_assertion_lifetime_secs`].
    pub max_assertion_lifetime_secs: Option<u64>,
    /// New [`Settings::device_code_interval_secs`].
    pub device_code_interval_secs: Option<u64>,
    /// New [`Settings::device_code_lifetime_secs`].
    pub device_code_lifetime_secs: Option<u64>,
    /// New [`Settings::refresh_token_lifetime_secs`].
    pub refresh_token_lifetime_secs: Option<u64>,
    /// New [`Settings::service_protection`].
    pub service_protection: Option<ServiceProtection>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl SettingsPatch {
    /// Applies the fields that are present.
    pub fn apply(self, s: &mut Settings) {
        if let Some(v) = self.token_lifetime_secs {
            s.token_lifetime_secs = v;
        }
        if let Some(v) = self.refresh_in_secs {
            s.refresh_in_secs = v;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { s.$f = v; } )* };
        }
        set!(
            clock_offset_secs,
            clock_skew_secs,
            max_assertion_lifetime_secs,
            device_code_interval_secs,
            device_code_lifetime_secs,
            refresh_token_lifetime_secs,
            service_protection
        );
    }
}

/// An Entra tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    /// Short name used to refer to the tenant in the seed; also the first
    /// label of its default domain `<name>.onmicrosoft.com`.
    pub name: String,
    /// Tenant id; generated when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Verified domains usable in authority URLs instead of the id.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Display name; defaults to the name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A user of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// Tenant name, id or domain.
    pub tenant: String,
    /// User principal name, e.g. `admin@contoso.onmicrosoft.com`.
    pub upn: String,
    /// Object id; generated when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Display name; derived from the UPN when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Holds a directory role that may register applications and consent.
    #[serde(default)]
    pub admin: bool,
}

/// An app registration (and its service principal).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// Tenant name, id or domain.
    pub tenant: String,
    /// Display name of the app registration.
    pub display_name: String,
    /// Application (client) id; generated when absent.
    #[serde(default)]
    pub app_id: Option<Uuid>,
    /// Whether public-client flows (device code) are allowed.
    #[serde(default)]
    pub public_client: bool,
    /// PEM certificates whose private keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Paths of PEM certificate files (seed files only).
    #[serde(default, skip_serializing)]
    pub certificate_files: Vec<String>,
    /// Create the service principal too (default true). Apps registered
    /// through Graph get one only through `POST /v1.0/servicePrincipals`.
    #[serde(default = "yes")]
    pub service_principal: bool,
}

fn yes() -> bool {
    true
}

/// A Dataverse environment (organization).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSeed {
    /// Tenant name, id or domain.
    pub tenant: String,
    /// Unique name of the organization; also its path segment on the
    /// emulator's main listener (`<emulator>/<unique_name>`).
    pub unique_name: String,
    /// Friendly (display) name; defaults to the unique name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Organization URL, the `aud` of its tokens. Defaults to the
    /// environment's own origin, `http(s)://<emulator host>:<port>`.
    #[serde(default)]
    pub url: Option<String>,
    /// Port of the environment's own listener; a free one when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// Organization id; generated when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Geo/region code Global Discovery reports (`NA` by default).
    #[serde(default = "default_region")]
    pub region: String,
    /// UPNs of users who can reach the environment; empty means every user
    /// of its tenant.
    #[serde(default)]
    pub users: Vec<String>,
    /// UPNs of users who are System Administrators there.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Application (client) ids that have an application user with the
    /// System Administrator role in the environment.
    #[serde(default)]
    pub app_users: Vec<String>,
    /// Custom tables of this environment.
    #[serde(default)]
    pub tables: Vec<TableSeed>,
    /// Alternate keys added to tables (standard or custom): logical name ->
    /// list of keys, each a list of column logical names.
    #[serde(default)]
    pub alternate_keys: std::collections::BTreeMap<String, Vec<Vec<String>>>,
}

/// A custom table. System columns (primary key, primary name, owner,
/// created/modified, state/status, version) are added automatically.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableSeed {
    /// Logical name, with a publisher prefix (`new_project`).
    pub logical_name: String,
    /// Entity set name; defaults to the logical name plus `s`.
    #[serde(default)]
    pub entity_set: Option<String>,
    /// Display name; defaults to the logical name without its prefix.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Primary name column; defaults to `<prefix>_name`.
    #[serde(default)]
    pub primary_name: Option<String>,
    /// Custom columns.
    #[serde(default)]
    pub columns: Vec<ColumnSeed>,
    /// Alternate keys, each a list of column logical names.
    #[serde(default)]
    pub alternate_keys: Vec<Vec<String>>,
}

/// A column of a custom table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSeed {
    /// Logical name, with a publisher prefix (`new_budget`).
    pub logical_name: String,
    /// `String`, `Memo`, `Integer`, `BigInt`, `Decimal`, `Double`, `Money`,
    /// `Boolean`, `DateTime`, `Picklist`, `Lookup` or `Uniqueidentifier`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Display name; defaults to the logical name without its prefix.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `None`, `Recommended`, `ApplicationRequired`.
    #[serde(default)]
    pub required: Option<String>,
    /// Longest value of a text column.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Smallest value of a number column.
    #[serde(default)]
    pub min_value: Option<f64>,
    /// Largest value of a number column.
    #[serde(default)]
    pub max_value: Option<f64>,
    /// Choice options (Picklist).
    #[serde(default)]
    pub options: Vec<OptionSeed>,
    /// Lookup targets (logical names).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// One choice option.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptionSeed {
    /// The stored value.
    pub value: i64,
    /// The label (`@OData.Community.Display.V1.FormattedValue`).
    pub label: String,
}

fn default_region() -> String {
    "NA".into()
}
