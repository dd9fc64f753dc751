//! The server's settings, as `dvhost.toml`'s `[server]` and `[tenants]`
//! tables spell them. Every field has a default, so an empty file works.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// HTTP serving settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body of an action call or an admin request, in bytes.
    pub body_limit_bytes: usize,
    /// Largest component a deploy may upload, in bytes.
    pub component_limit_bytes: usize,
    /// Time a request may take, queueing included, in milliseconds (a
    /// plugin's own deadline is usually shorter).
    pub request_timeout_ms: u64,
    /// Time given to in-flight requests at shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Limits each tenant gets.
    pub tenants: TenantLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit_bytes: 1 << 20,
            component_limit_bytes: 64 << 20,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            tenants: TenantLimits::default(),
        }
    }
}

impl ServerConfig {
    /// [`ServerConfig::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`ServerConfig::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// What one tenant may use at once: action calls beyond `concurrency`
/// wait in a queue of `queue` places; beyond that, or beyond the rate,
/// callers get 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Action calls running at once.
    pub concurrency: u32,
    /// Action calls waiting for a running slot.
    pub queue: u32,
    /// Action calls per second, sustained.
    pub rate_per_second: u32,
    /// Action calls allowed in a burst above the rate.
    pub burst: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            concurrency: 16,
            queue: 256,
            rate_per_second: 1000,
            burst: 2000,
        }
    }
}
