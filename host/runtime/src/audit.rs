//! What an invocation did: one [`CallRecord`] per Dataverse call the guest
//! made (granted or not), for the server's audit log. No secrets: table
//! names, operations, statuses and timings only.

use std::time::Duration;

use serde::Serialize;

/// The interface a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// `records`
    Records,
    /// `metadata`
    Metadata,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallOutcome {
    /// Dataverse did it.
    Ok,
    /// Dataverse answered with an error.
    Dataverse {
        /// HTTP status.
        status: u16,
        /// Dataverse's error code.
        code: Option<String>,
        /// Seconds Dataverse asked to wait (throttling).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
    },
    /// The table or operation is not granted; nothing was sent.
    NotGranted,
    /// A quota was used up; nothing was sent (or the answer was dropped).
    Quota,
    /// The host refused a name, id or value; nothing was sent.
    InvalidInput,
    /// The deadline passed.
    Deadline,
    /// Dataverse could not be reached.
    Unavailable,
}

/// One Dataverse call made by a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Which interface.
    pub interface: Interface,
    /// The import called (`create`, `query`, `describe-table`...).
    pub operation: &'static str,
    /// The table, when the call names one.
    pub table: Option<String>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: CallOutcome,
    /// Time spent, including retries (serialized as `duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "milliseconds")]
    pub duration: Duration,
    /// Repeats made by the backend (throttling, lost answers).
    pub retries: u32,
}

/// A duration as fractional milliseconds, as the audit log shows it.
fn milliseconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
