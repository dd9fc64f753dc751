//! Per-plugin limits: raw [`LimitsConfig`] (as an operator writes it) and
//! validated [`PluginLimits`], bounded by hard ceilings the engine's pool
//! is sized for.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits as configured: every field optional, defaults filled in by
/// [`PluginLimits::from_config`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock time for one invocation, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory of the guest, in bytes.
    pub memory_bytes: Option<usize>,
    /// Dataverse calls (records and metadata imports) per invocation.
    pub dataverse_calls: Option<u32>,
    /// Bytes of rows and queries sent to Dataverse per invocation.
    pub bytes_out: Option<u64>,
    /// Bytes of rows received from Dataverse per invocation.
    pub bytes_in: Option<u64>,
    /// Bytes of log lines plus captured stdout/stderr per invocation.
    pub log_bytes: Option<usize>,
    /// Bytes of an action's output.
    pub output_bytes: Option<usize>,
    /// Query pages a guest may hold open at once.
    pub open_pages: Option<u32>,
}

/// Validated limits of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock time for one invocation (guest code and awaited imports).
    pub deadline: Duration,
    /// Linear memory cap; a `memory.grow` past it traps.
    pub memory_bytes: usize,
    /// Dataverse calls per invocation.
    pub dataverse_calls: u32,
    /// Bytes sent to Dataverse per invocation.
    pub bytes_out: u64,
    /// Bytes received from Dataverse per invocation.
    pub bytes_in: u64,
    /// Log and stdout/stderr bytes kept per invocation (the rest is dropped
    /// and the report says so).
    pub log_bytes: usize,
    /// Largest action output.
    pub output_bytes: usize,
    /// Open query pages at once.
    pub open_pages: u32,
}

/// The most any plugin may be given. The engine's instance pool reserves
/// memory slots of `memory_bytes` and a deadline past this would let one
/// caller hold an instance for minutes.
pub const CEILING: PluginLimits = PluginLimits {
    deadline: Duration::from_secs(60),
    memory_bytes: 1 << 30,
    dataverse_calls: 10_000,
    bytes_out: 256 << 20,
    bytes_in: 1 << 30,
    log_bytes: 4 << 20,
    output_bytes: 64 << 20,
    open_pages: 1_000,
};

impl Default for PluginLimits {
    /// 5 s, 128 MiB (enough for Python and JavaScript components), 100
    /// calls, 16 MiB out, 64 MiB in, 64 KiB of log, 4 MiB of output, 16 open
    /// pages.
    fn default() -> Self {
        PluginLimits {
            deadline: Duration::from_secs(5),
            memory_bytes: 128 << 20,
            dataverse_calls: 100,
            bytes_out: 16 << 20,
            bytes_in: 64 << 20,
            log_bytes: 64 << 10,
            output_bytes: 4 << 20,
            open_pages: 16,
        }
    }
}

/// A limit that cannot be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// Above the hard ceiling.
    #[error("{name} = {value} is above the ceiling of {ceiling}")]
    AboveCeiling {
        /// Which limit.
        name: &'static str,
        /// The value asked for.
        value: u64,
        /// The ceiling.
        ceiling: u64,
    },
    /// Zero, which would make every call fail.
    #[error("{name} must be greater than zero")]
    Zero {
        /// Which limit.
        name: &'static str,
    },
}

fn check(
    name: &'static str,
    value: Option<u64>,
    default: u64,
    ceiling: u64,
) -> Result<u64, LimitsError> {
    let value = value.unwrap_or(default);
    if value == 0 {
        return Err(LimitsError::Zero { name });
    }
    if value > ceiling {
        return Err(LimitsError::AboveCeiling {
            name,
            value,
            ceiling,
        });
    }
    Ok(value)
}

impl PluginLimits {
    /// Validates `config` against [`CEILING`], filling defaults.
    pub fn from_config(config: &LimitsConfig) -> Result<PluginLimits, LimitsError> {
        let d = PluginLimits::default();
        let c = CEILING;
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(PluginLimits {
            deadline: Duration::from_millis(check(
                "deadline_ms",
                config.deadline_ms,
                ms(d.deadline),
                ms(c.deadline),
            )?),
            memory_bytes: check(
                "memory_bytes",
                config.memory_bytes.map(|v| v as u64),
                d.memory_bytes as u64,
                c.memory_bytes as u64,
            )? as usize,
            dataverse_calls: check(
                "dataverse_calls",
                config.dataverse_calls.map(u64::from),
                d.dataverse_calls.into(),
                c.dataverse_calls.into(),
            )? as u32,
            bytes_out: check("bytes_out", config.bytes_out, d.bytes_out, c.bytes_out)?,
            bytes_in: check("bytes_in", config.bytes_in, d.bytes_in, c.bytes_in)?,
            log_bytes: check(
                "log_bytes",
                config.log_bytes.map(|v| v as u64),
                d.log_bytes as u64,
                c.log_bytes as u64,
            )? as usize,
            output_bytes: check(
                "output_bytes",
                config.output_bytes.map(|v| v as u64),
                d.output_bytes as u64,
                c.output_bytes as u64,
            )? as usize,
            open_pages: check(
                "open_pages",
                config.open_pages.map(u64::from),
                d.open_pages.into(),
                c.open_pages.into(),
            )? as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_and_ceilings_refuse() {
        let l = PluginLimits::from_config(&LimitsConfig::default()).unwrap();
        assert_eq!(l, PluginLimits::default());
        let e = PluginLimits::from_config(&LimitsConfig {
            deadline_ms: Some(120_000),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "deadline_ms = 120000 is above the ceiling of 60000"
        );
        let e = PluginLimits::from_config(&LimitsConfig {
            dataverse_calls: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e,
            LimitsError::Zero {
                name: "dataverse_calls"
            }
        );
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let e = serde_json::from_str::<LimitsConfig>(r#"{"deadline":5}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `deadline`"), "{e}");
    }
}
