//! Why a call to the host failed: the WIT `error` record as a Rust error,
//! plus the one failure the SDK itself can meet (JSON that does not fit).

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

use crate::bindings::dvhost::plugin::types as wit;

/// Dataverse's error code for "the row does not exist".
const RECORD_NOT_FOUND: &str = "0x80040217";

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Dataverse answered with an error (see [`Error::status`] and
    /// [`Error::code`]).
    Dataverse,
    /// The plugin is not granted this table or operation; nothing was sent.
    NotGranted,
    /// A per-invocation quota (calls, bytes) is used up; nothing was sent.
    Quota,
    /// The invocation's deadline passed.
    Deadline,
    /// A name, id, key, filter or record was refused (by the host, or by the
    /// SDK before calling it); nothing was sent.
    InvalidInput,
    /// Dataverse could not be reached, or answered something unusable.
    Unavailable,
    /// A value of the plugin did not serialize to JSON, or a row from the host
    /// did not deserialize into the plugin's type. Raised by the SDK inside
    /// the guest: for a row to send, nothing was sent.
    Json,
}

impl ErrorKind {
    /// The kind's name, as in the WIT (`not-granted`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dataverse => "dataverse",
            ErrorKind::NotGranted => "not-granted",
            ErrorKind::Quota => "quota",
            ErrorKind::Deadline => "deadline",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Json => "json",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A failed call to the host, as the plugin sees it. It never holds a token,
/// a key or a URL: the host builds it, and the SDK only copies it.
///
/// Serializes as `{"kind", "status", "code", "message", "retry_after"}`, so an
/// action can return it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[non_exhaustive]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The HTTP status Dataverse answered, when it answered.
    pub status: Option<u16>,
    /// Dataverse's error code, such as `0x80040217` (record not found).
    pub code: Option<String>,
    /// A message for a person.
    pub message: String,
    /// Seconds Dataverse asked to wait before trying again (throttling).
    pub retry_after: Option<u32>,
}

impl Error {
    /// An error raised by the SDK itself, before or after the host call.
    pub(crate) fn local(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A JSON value that did not fit, with serde's message.
    pub(crate) fn json(error: serde_json::Error) -> Error {
        Error::local(ErrorKind::Json, error.to_string())
    }

    /// Whether the row does not exist (Dataverse's `0x80040217`, or a 404).
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref() == Some(RECORD_NOT_FOUND) || self.status == Some(404)
    }

    /// Whether the plugin is not granted the table or operation.
    pub fn is_not_granted(&self) -> bool {
        self.kind == ErrorKind::NotGranted
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        match (self.status, &self.code) {
            (Some(status), Some(code)) => write!(formatter, " ({status}, {code})")?,
            (Some(status), None) => write!(formatter, " ({status})")?,
            (None, Some(code)) => write!(formatter, " ({code})")?,
            (None, None) => {}
        }
        write!(formatter, ": {}", self.message)?;
        if let Some(seconds) = self.retry_after {
            write!(formatter, " (retry after {seconds} s)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<wit::Error> for Error {
    fn from(error: wit::Error) -> Error {
        let kind = match error.kind {
            wit::ErrorKind::Dataverse => ErrorKind::Dataverse,
            wit::ErrorKind::NotGranted => ErrorKind::NotGranted,
            wit::ErrorKind::Quota => ErrorKind::Quota,
            wit::ErrorKind::Deadline => ErrorKind::Deadline,
            wit::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            wit::ErrorKind::Unavailable => ErrorKind::Unavailable,
        };
        Error {
            kind,
            status: error.status,
            code: error.code,
            message: error.message,
            retry_after: error.retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_error(kind: wit::ErrorKind, status: Option<u16>, code: Option<&str>) -> Error {
        Error::from(wit::Error {
            kind,
            status,
            code: code.map(str::to_owned),
            message: "Account With Id = 1 Does Not Exist".to_owned(),
            retry_after: Some(3),
        })
    }

    #[test]
    fn host_errors_keep_every_field() {
        let error = host_error(wit::ErrorKind::Dataverse, Some(404), Some(RECORD_NOT_FOUND));
        assert_eq!(error.kind, ErrorKind::Dataverse);
        assert_eq!(error.status, Some(404));
        assert_eq!(error.retry_after, Some(3));
        assert!(error.is_not_found());
        assert!(!error.is_not_granted());
        assert_eq!(
            error.to_string(),
            "dataverse (404, 0x80040217): Account With Id = 1 Does Not Exist (retry after 3 s)"
        );
    }

    #[test]
    fn kinds_map_one_to_one() {
        let pairs = [
            (wit::ErrorKind::Dataverse, ErrorKind::Dataverse),
            (wit::ErrorKind::NotGranted, ErrorKind::NotGranted),
            (wit::ErrorKind::Quota, ErrorKind::Quota),
            (wit::ErrorKind::Deadline, ErrorKind::Deadline),
            (wit::ErrorKind::InvalidInput, ErrorKind::InvalidInput),
            (wit::ErrorKind::Unavailable, ErrorKind::Unavailable),
        ];
        for (wit_kind, kind) in pairs {
            let error = host_error(wit_kind, None, None);
            assert_eq!(error.kind, kind);
            assert_eq!(
                error.to_string(),
                format!("{}: {} (retry after 3 s)", kind.as_str(), error.message)
            );
        }
        assert!(host_error(wit::ErrorKind::NotGranted, None, None).is_not_granted());
    }

    #[test]
    fn serializes_with_kebab_kind() {
        let error = Error::local(ErrorKind::NotGranted, "no");
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "not-granted", "status": null, "code": null,
                "message": "no", "retry_after": null
            })
        );
    }
}
