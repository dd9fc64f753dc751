//! Connections: one Dataverse environment, one Entra tenant, one app
//! (client) id, a state machine and a history. Every change to a connection
//! writes its history row in the same transaction, so the history is exactly
//! what happened. The provisioning steps of the automatic flow are recorded
//! here too, so a flow that stopped half-way finds what it already did.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ConnectionId, Name, Store, StoreError, TenantId};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The stored (and displayed) form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Reads the stored form.
            pub fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Invalid {
                        what: stringify!($name),
                        why: format!("unknown value {:?}", other.chars().take(40).collect::<String>()),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Where a connection is in its life.
    ConnectionState {
        /// Created, not yet proven (waiting for an administrator, or for
        /// the automatic flow to finish, or for a test after an edit).
        Pending = "pending",
        /// Proven with WhoAmI; runtime calls may use it.
        Active = "active",
        /// The last test or provisioning step failed.
        Failed = "failed",
        /// Deleted: kept for its history, its certificates are gone.
        Deleted = "deleted",
    }
);

impl ConnectionState {
    /// Whether a connection in this state may be moved to `next` by
    /// [`Store::set_connection_state`]. Deleted is final and reached only
    /// through [`Store::delete_connection`]; staying in a state is allowed
    /// (a repeated test is recorded again).
    pub fn may_become(self, next: ConnectionState) -> bool {
        !matches!(self, ConnectionState::Deleted) && !matches!(next, ConnectionState::Deleted)
    }
}

text_enum!(
    /// How a connection's app registration came to be.
    ConnectionMode {
        /// Registered by dvhost with an administrator's sign-in.
        Automatic = "automatic",
        /// Registered by an administrator from dvhost's request.
        Manual = "manual",
    }
);

/// A connection to one Dataverse environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its id.
    pub id: ConnectionId,
    /// The tenant owning it.
    pub tenant: TenantId,
    /// Its name, unique among the tenant's connections that are not deleted.
    pub name: Name,
    /// The Dataverse environment URL (checked by the transport when used).
    pub environment_url: String,
    /// The Entra tenant of the environment and the app (unknown until a
    /// manual connection is completed).
    pub entra_tenant_id: Option<Uuid>,
    /// The application (client) id (unknown until registered).
    pub client_id: Option<Uuid>,
    /// The Dataverse security role given to the application user.
    pub security_role: Option<String>,
    /// Automatic or manual.
    pub mode: ConnectionMode,
    /// Its state.
    pub state: ConnectionState,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a new connection starts with (state [`ConnectionState::Pending`]).
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The owning tenant.
    pub tenant: TenantId,
    /// Its name.
    pub name: Name,
    /// The Dataverse environment URL.
    pub environment_url: String,
    /// The Entra tenant, when known at creation (automatic flow).
    pub entra_tenant_id: Option<Uuid>,
    /// The client id, when known at creation.
    pub client_id: Option<Uuid>,
    /// The security role to give the application user.
    pub security_role: Option<String>,
    /// Automatic or manual.
    pub mode: ConnectionMode,
}

/// An edit: each `Some` field is changed, each `None` kept.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChanges {
    /// A new name.
    pub name: Option<Name>,
    /// A new environment URL.
    pub environment_url: Option<String>,
    /// A new Entra tenant id.
    pub entra_tenant_id: Option<Uuid>,
    /// A new client id.
    pub client_id: Option<Uuid>,
    /// A new security role.
    pub security_role: Option<String>,
}

text_enum!(
    /// What a history row records.
    HistoryEvent {
        /// The connection was created.
        Created = "created",
        /// Fields were edited (the detail lists them, before and after).
        Edited = "edited",
        /// The state was set (the detail says why).
        StateChanged = "state_changed",
        /// A certificate was added.
        CertificateAdded = "certificate_added",
        /// A certificate became the active one.
        CertificateActivated = "certificate_activated",
        /// A certificate was removed.
        CertificateRemoved = "certificate_removed",
        /// The connection was deleted.
        Deleted = "deleted",
    }
);

/// One row of a connection's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// Its position in the connection's history, from 1.
    pub seq: i64,
    /// When it happened.
    pub at: OffsetDateTime,
    /// Who did it (a user's sign-in name, `system`...).
    pub actor: String,
    /// What happened.
    pub event: HistoryEvent,
    /// The connection's state after it.
    pub state: ConnectionState,
    /// Details (never secrets): changed fields, thumbprints, reasons.
    pub detail: Value,
}

text_enum!(
    /// A step of the automatic flow, recorded so a re-run resumes it.
    ProvisioningStep {
        /// The certificate was generated and stored.
        Certificate = "certificate",
        /// The Entra application was registered (detail: its object and app ids).
        AppRegistration = "app_registration",
        /// Its service principal was created.
        ServicePrincipal = "service_principal",
        /// The Dataverse application user was created.
        ApplicationUser = "application_user",
        /// The security role was given to the application user.
        RoleAssignment = "role_assignment",
        /// The connection was proven with WhoAmI.
        ConnectionTest = "connection_test",
    }
);

text_enum!(
    /// How far a provisioning step got.
    StepStatus {
        /// Begun (recorded before the remote call, with what identifies its
        /// result, so a re-run can look for it instead of repeating it).
        Started = "started",
        /// Finished (detail: what it produced).
        Done = "done",
    }
);

/// The recorded state of one provisioning step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The step.
    pub step: ProvisioningStep,
    /// How far it got.
    pub status: StepStatus,
    /// What identifies its result (ids at Entra, Graph, Dataverse).
    pub detail: Value,
    /// When it was last recorded.
    pub updated_at: OffsetDateTime,
}

/// What the transaction of a state change or edit knows besides the row.
pub(crate) struct ConnectionFacts {
    /// Whether the connection has an active certificate.
    pub(crate) has_active_certificate: bool,
}

/// A change applied to a connection inside its transaction: it edits the row
/// and returns the history row to write, or refuses.
pub(crate) type ConnectionUpdate = Box<
    dyn FnOnce(&mut Connection, &ConnectionFacts) -> Result<(HistoryEvent, Value), StoreError>
        + Send,
>;

impl Store {
    /// Creates a pending connection and its `created` history row.
    /// [`StoreError::AlreadyExists`] when the tenant has a live connection of
    /// that name.
    pub async fn create_connection(
        &self,
        new: NewConnection,
        actor: &str,
    ) -> Result<Connection, StoreError> {
        let now = crate::now();
        let connection = Connection {
            id: ConnectionId::new(),
            tenant: new.tenant,
            name: new.name,
            environment_url: new.environment_url,
            entra_tenant_id: new.entra_tenant_id,
            client_id: new.client_id,
            security_role: new.security_role,
            mode: new.mode,
            state: ConnectionState::Pending,
            created_at: now,
            updated_at: now,
        };
        let detail = json!({
            "mode": connection.mode.as_str(),
            "environment_url": connection.environment_url,
        });
        self.backend
            .insert_connection(&connection, actor, detail)
            .await?;
        Ok(connection)
    }

    /// The connection with this id (deleted ones included).
    pub async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.backend.connection(id).await
    }

    /// The tenant's live (not deleted) connection of this name.
    pub async fn connection_by_name(
        &self,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Option<Connection>, StoreError> {
        self.backend.connection_by_name(tenant, name).await
    }

    /// The tenant's connections, by name; deleted ones only when asked.
    pub async fn connections(
        &self,
        tenant: TenantId,
        include_deleted: bool,
    ) -> Result<Vec<Connection>, StoreError> {
        self.backend.connections(tenant, include_deleted).await
    }

    /// Sets a connection's state, recording `reason` in its history.
    /// A connection becomes active only with its Entra tenant id, client id
    /// and an active certificate; deleting goes through
    /// [`Self::delete_connection`].
    pub async fn set_connection_state(
        &self,
        id: ConnectionId,
        state: ConnectionState,
        actor: &str,
        reason: &str,
    ) -> Result<Connection, StoreError> {
        let reason = reason.to_string();
        let update: ConnectionUpdate = Box::new(move |connection, facts| {
            if !connection.state.may_become(state) {
                return Err(StoreError::NotAllowed(format!(
                    "connection {} is {} and cannot become {state}{}",
                    connection.name,
                    connection.state,
                    if state == ConnectionState::Deleted {
                        " this way: delete it instead"
                    } else {
                        ""
                    }
                )));
            }
            if state == ConnectionState::Active {
                check_activation(connection, facts)?;
            }
            let from = connection.state;
            connection.state = state;
            Ok((
                HistoryEvent::StateChanged,
                json!({ "from": from.as_str(), "to": state.as_str(), "reason": reason }),
            ))
        });
        self.backend.update_connection(id, actor, update).await
    }

    /// Edits a connection and records the fields changed (before and after)
    /// in its history. Changing where it points (environment, Entra tenant,
    /// client id) moves an active connection back to pending: it must be
    /// tested again before runtime calls use it.
    pub async fn edit_connection(
        &self,
        id: ConnectionId,
        changes: ConnectionChanges,
        actor: &str,
    ) -> Result<Connection, StoreError> {
        let update: ConnectionUpdate =
            Box::new(move |connection, _| apply_edit(connection, changes));
        self.backend.update_connection(id, actor, update).await
    }

    /// Deletes a connection: its state becomes deleted, its certificates
    /// (sealed keys included) are removed, and a `deleted` history row is
    /// written, in one transaction. Refused while plugins are bound to it.
    pub async fn delete_connection(
        &self,
        id: ConnectionId,
        actor: &str,
    ) -> Result<Connection, StoreError> {
        self.backend.delete_connection(id, actor).await
    }

    /// A connection's history, oldest first.
    pub async fn connection_history(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.backend.connection_history(id).await
    }

    /// Records how far a provisioning step got (replacing its previous
    /// record). `detail` must hold no secret.
    pub async fn record_step(
        &self,
        id: ConnectionId,
        step: ProvisioningStep,
        status: StepStatus,
        detail: Value,
    ) -> Result<StepRecord, StoreError> {
        let record = StepRecord {
            step,
            status,
            detail,
            updated_at: crate::now(),
        };
        self.backend.upsert_step(id, &record).await?;
        Ok(record)
    }

    /// The provisioning steps recorded for a connection, in flow order.
    pub async fn provisioning_steps(
        &self,
        id: ConnectionId,
    ) -> Result<Vec<StepRecord>, StoreError> {
        let mut steps = self.backend.steps(id).await?;
        steps.sort_by_key(|s| s.step);
        Ok(steps)
    }
}

fn check_activation(connection: &Connection, facts: &ConnectionFacts) -> Result<(), StoreError> {
    let missing = [
        (connection.entra_tenant_id.is_none(), "its Entra tenant id"),
        (connection.client_id.is_none(), "its client id"),
        (!facts.has_active_certificate, "an active certificate"),
    ];
    let missing: Vec<&str> = missing.iter().filter(|m| m.0).map(|m| m.1).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::NotAllowed(format!(
            "connection {} cannot become active without {}",
            connection.name,
            missing.join(" and ")
        )))
    }
}

/// Applies an edit; returns the history row listing what changed.
fn apply_edit(
    connection: &mut Connection,
    changes: ConnectionChanges,
) -> Result<(HistoryEvent, Value), StoreError> {
    if connection.state == ConnectionState::Deleted {
        return Err(StoreError::NotAllowed(format!(
            "connection {} is deleted and cannot be edited",
            connection.name
        )));
    }
    let mut changed = serde_json::Map::new();
    let mut note = |field: &str, from: Value, to: Value| {
        if from != to {
            changed.insert(field.into(), json!({ "from": from, "to": to }));
        }
    };
    if let Some(name) = changes.name {
        note(
            "name",
            json!(connection.name.as_str()),
            json!(name.as_str()),
        );
        connection.name = name;
    }
    if let Some(url) = changes.environment_url {
        note(
            "environment_url",
            json!(connection.environment_url),
            json!(url),
        );
        connection.environment_url = url;
    }
    if let Some(id) = changes.entra_tenant_id {
        note(
            "entra_tenant_id",
            json!(connection.entra_tenant_id),
            json!(id),
        );
        connection.entra_tenant_id = Some(id);
    }
    if let Some(id) = changes.client_id {
        note("client_id", json!(connection.client_id), json!(id));
        connection.client_id = Some(id);
    }
    if let Some(role) = changes.security_role {
        note(
            "security_role",
            json!(connection.security_role),
            json!(role),
        );
        connection.security_role = Some(role);
    }
    let repointed = ["environment_url", "entra_tenant_id", "client_id"]
        .iter()
        .any(|f| changed.contains_key(*f));
    if repointed && connection.state == ConnectionState::Active {
        connection.state = ConnectionState::Pending;
        changed.insert(
            "state".into(),
            json!({ "from": "active", "to": "pending", "reason": "it must be tested again" }),
        );
    }
    Ok((HistoryEvent::Edited, Value::Object(changed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_final_and_reached_only_by_deleting() {
        use ConnectionState::*;
        for from in [Pending, Active, Failed] {
            for to in [Pending, Active, Failed] {
                assert!(from.may_become(to), "{from} -> {to}");
            }
            assert!(!from.may_become(Deleted));
            assert!(!Deleted.may_become(from));
        }
    }

    #[test]
    fn stored_forms_read_back() {
        for state in ["pending", "active", "failed", "deleted"] {
            assert_eq!(ConnectionState::parse(state).unwrap().as_str(), state);
        }
        let error = ConnectionState::parse("paused").unwrap_err().to_string();
        assert!(error.contains("unknown value \"paused\""), "{error}");
    }
}
