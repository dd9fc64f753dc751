//! The per-invocation gate every Dataverse call passes: grants, quotas, the
//! deadline, and the audit record. `records` and `metadata` share it, and
//! [`to_wit_error`] is the only route from a refusal or a backend error to
//! what a guest sees.

use std::sync::Arc;
use std::time::Instant;

use crate::audit::{CallOutcome, CallRecord, Interface};
use crate::backend::{BackendError, CallContext, Metadata, Records};
use crate::bindings::types;
use crate::grants::{Grants, Operation};
use crate::limits::PluginLimits;

/// Why a call failed, before the guest's view of it.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Not granted; nothing sent.
    NotGranted(String),
    /// A quota is used up.
    Quota(String),
    /// The host refused an argument; nothing sent.
    InvalidInput(String),
    /// The backend failed.
    Backend(BackendError),
}

impl From<BackendError> for CallError {
    fn from(e: BackendError) -> Self {
        CallError::Backend(e)
    }
}

/// The one mapping from a failed call to the WIT `error` a guest receives.
pub(crate) fn to_wit_error(e: CallError) -> types::Error {
    let plain = |kind, message: String| types::Error {
        kind,
        status: None,
        code: None,
        message,
        retry_after: None,
    };
    match e {
        CallError::NotGranted(m) => plain(types::ErrorKind::NotGranted, m),
        CallError::Quota(m) => plain(types::ErrorKind::Quota, m),
        CallError::InvalidInput(m) => plain(types::ErrorKind::InvalidInput, m),
        CallError::Backend(BackendError::InvalidInput(m)) => {
            plain(types::ErrorKind::InvalidInput, m)
        }
        CallError::Backend(BackendError::Deadline) => plain(
            types::ErrorKind::Deadline,
            "the invocation's deadline passed before Dataverse answered".into(),
        ),
        CallError::Backend(BackendError::Unavailable(m)) => plain(types::ErrorKind::Unavailable, m),
        CallError::Backend(BackendError::Dataverse {
            status,
            code,
            message,
            retry_after,
        }) => types::Error {
            kind: types::ErrorKind::Dataverse,
            status: Some(status),
            code,
            message,
            retry_after,
        },
    }
}

fn outcome(e: &CallError) -> CallOutcome {
    match e {
        CallError::NotGranted(_) => CallOutcome::NotGranted,
        CallError::Quota(_) => CallOutcome::Quota,
        CallError::InvalidInput(_) | CallError::Backend(BackendError::InvalidInput(_)) => {
            CallOutcome::InvalidInput
        }
        CallError::Backend(BackendError::Deadline) => CallOutcome::Deadline,
        CallError::Backend(BackendError::Unavailable(_)) => CallOutcome::Unavailable,
        CallError::Backend(BackendError::Dataverse {
            status,
            code,
            retry_after,
            ..
        }) => CallOutcome::Dataverse {
            status: *status,
            code: code.clone(),
            retry_after: *retry_after,
        },
    }
}

/// A call let through the gate: its context and start time.
pub(crate) struct Admitted {
    pub(crate) context: CallContext,
    interface: Interface,
    operation: &'static str,
    table: Option<String>,
    started: Instant,
}

/// Per-invocation Dataverse state: what the plugin may do and what it did.
pub(crate) struct DataverseState {
    pub(crate) grants: Arc<Grants>,
    pub(crate) records: Arc<dyn Records>,
    pub(crate) metadata: Arc<dyn Metadata>,
    pub(crate) limits: PluginLimits,
    pub(crate) deadline: Instant,
    calls: u32,
    bytes_out: u64,
    bytes_in: u64,
    pub(crate) open_pages: u32,
    pub(crate) audit: Vec<CallRecord>,
}

impl DataverseState {
    pub(crate) fn new(
        grants: Arc<Grants>,
        records: Arc<dyn Records>,
        metadata: Arc<dyn Metadata>,
        limits: PluginLimits,
        deadline: Instant,
    ) -> Self {
        DataverseState {
            grants,
            records,
            metadata,
            limits,
            deadline,
            calls: 0,
            bytes_out: 0,
            bytes_in: 0,
            open_pages: 0,
            audit: Vec::new(),
        }
    }

    /// Records a call refused before it started.
    pub(crate) fn refuse(
        &mut self,
        interface: Interface,
        operation: &'static str,
        table: Option<&str>,
        e: CallError,
    ) -> CallError {
        self.audit.push(CallRecord {
            interface,
            operation,
            table: table.map(str::to_owned),
            outcome: outcome(&e),
            duration: Default::default(),
            retries: 0,
        });
        e
    }

    /// Checks the grant of `operations` on `table` (all of them), the call
    /// quota and the bytes-out quota; counts the call.
    pub(crate) fn admit(
        &mut self,
        interface: Interface,
        operation: &'static str,
        table: Option<&str>,
        operations: &[Operation],
        bytes_out: u64,
    ) -> Result<Admitted, CallError> {
        if let Some(t) = table
            && let Some(op) = operations.iter().find(|op| !self.grants.allows(t, **op))
        {
            let e =
                CallError::NotGranted(format!("this plugin is not granted {op} on table '{t}'"));
            return Err(self.refuse(interface, operation, table, e));
        }
        if self.calls >= self.limits.dataverse_calls {
            let e = CallError::Quota(format!(
                "this invocation has used its {} Dataverse calls",
                self.limits.dataverse_calls
            ));
            return Err(self.refuse(interface, operation, table, e));
        }
        if self.bytes_out + bytes_out > self.limits.bytes_out {
            let e = CallError::Quota(format!(
                "this call would send more than the invocation's {} bytes",
                self.limits.bytes_out
            ));
            return Err(self.refuse(interface, operation, table, e));
        }
        if self.bytes_in > self.limits.bytes_in {
            let e = CallError::Quota(format!(
                "this invocation has received its {} bytes from Dataverse",
                self.limits.bytes_in
            ));
            return Err(self.refuse(interface, operation, table, e));
        }
        if Instant::now() >= self.deadline {
            return Err(self.refuse(
                interface,
                operation,
                table,
                CallError::Backend(BackendError::Deadline),
            ));
        }
        self.calls += 1;
        self.bytes_out += bytes_out;
        Ok(Admitted {
            context: CallContext::new(self.deadline),
            interface,
            operation,
            table: table.map(str::to_owned),
            started: Instant::now(),
        })
    }

    /// Ends an admitted call: records it and counts `bytes_in` of its answer
    /// (an answer over the quota is dropped and becomes a quota error).
    pub(crate) fn finish<T>(
        &mut self,
        call: Admitted,
        result: Result<T, BackendError>,
        bytes_in: impl FnOnce(&T) -> u64,
    ) -> Result<T, CallError> {
        let result = match result {
            Ok(v) => {
                self.bytes_in += bytes_in(&v);
                if self.bytes_in > self.limits.bytes_in {
                    Err(CallError::Quota(format!(
                        "the answer takes this invocation past its {} bytes from Dataverse",
                        self.limits.bytes_in
                    )))
                } else {
                    Ok(v)
                }
            }
            Err(e) => Err(CallError::Backend(e)),
        };
        self.audit.push(CallRecord {
            interface: call.interface,
            operation: call.operation,
            table: call.table,
            outcome: match &result {
                Ok(_) => CallOutcome::Ok,
                Err(e) => outcome(e),
            },
            duration: call.started.elapsed(),
            retries: call.context.retries(),
        });
        result
    }
}

/// Awaits a backend call, but not past `deadline`: an epoch deadline stops
/// guest code only, so an import awaiting Dataverse needs its own bound.
pub(crate) async fn within<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Deadline),
    }
}

/// Checks a table's logical name lightly (the backend checks it fully) and
/// lower-cases it, so grants and requests see the same name.
pub(crate) fn table_name(name: &str) -> Result<String, CallError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(CallError::InvalidInput(format!(
            "'{}' is not a table logical name (letters, digits and _)",
            name.chars().take(100).collect::<String>()
        )))
    }
}
