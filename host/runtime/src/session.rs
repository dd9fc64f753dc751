//! Several calls on one instance: a [`Session`] keeps the `Store` and the
//! instance of its first call, so later calls skip instantiation. The calls
//! share the guest's memory, one deadline and one set of quotas, so a
//! session is for one caller's batch, never across callers or tenants.

use std::time::Instant;

use wasmtime::Store;

use crate::bindings;
use crate::error::InvokeError;
use crate::invocation::Invocation;
use crate::limits::PluginLimits;
use crate::plugin::{Capabilities, Plugin, action_output, classify};

/// One instance of a plugin kept for several calls.
pub struct Session {
    store: Store<Invocation>,
    instance: bindings::Plugin,
    limits: PluginLimits,
    deadline: Instant,
    broken: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("broken", &self.broken)
            .finish()
    }
}

impl Plugin {
    /// Instantiates the plugin with `caps` for several calls; the deadline
    /// and quotas of `caps.limits` cover the whole session.
    pub async fn session(&self, caps: &Capabilities) -> Result<Session, InvokeError> {
        let deadline = Instant::now() + caps.limits.deadline;
        let mut store = self.store(caps, deadline)?;
        let instance =
            tokio::time::timeout_at(deadline.into(), self.pre.instantiate_async(&mut store))
                .await
                .map_err(|_| InvokeError::Deadline(caps.limits.deadline))?
                .map_err(|e| InvokeError::Instantiate(format!("{e:#}")))?;
        Ok(Session {
            store,
            instance,
            limits: caps.limits,
            deadline,
            broken: false,
        })
    }
}

impl Session {
    /// Runs action `name` on `input`. After a trap or a deadline the
    /// instance may hold broken state: every later call fails.
    pub async fn invoke(&mut self, name: &str, input: &str) -> Result<String, InvokeError> {
        if self.broken {
            return Err(InvokeError::Instantiate(
                "this session ended with an earlier failure".into(),
            ));
        }
        let ran = tokio::time::timeout_at(
            self.deadline.into(),
            self.instance
                .dvhost_plugin_actions()
                .call_invoke(&mut self.store, name, input),
        )
        .await;
        match ran {
            Err(_) => {
                self.broken = true;
                Err(InvokeError::Deadline(self.limits.deadline))
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(classify(e, &self.store, &self.limits))
            }
            Ok(Ok(answer)) => action_output(answer, &self.limits),
        }
    }
}
