//! Editing a connection (its environment, client id, security role or
//! name), allowed only to a user who signed in recently.
//!
//! The edit names its editor, and the store must hold that user's own
//! delegated sign-in (device code, `dvhost login`) in the connection's Entra
//! tenant, made within [`FRESH_SIGN_IN`] of the edit. Another user's sign-in
//! does not count, nor the editor's sign-in in another Entra tenant, nor an
//! older one: the person changing where a connection points must have just
//! proven, in that tenant, who they are. Every attempt goes to the audit log
//! (refusals as `denied`), and an accepted edit to the connection's history
//! with the editor as its actor.
//!
//! Changing the environment or the client id moves an active connection
//! back to pending (the store does so in the same transaction): it must be
//! tested again before runtime calls use it.

use dvhost_dataverse::{EndpointError, Environment};

use super::manual::audit;
use dvhost_store::{
    AuditOutcome, Connection, ConnectionChanges, ConnectionId, Name, SignIn, Store, StoreError,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// The audit log's name for an edit.
const ACTION: &str = "connection.edit";

/// How recent the editor's sign-in must be: 10 minutes, long enough to
/// sign in and then type the edit, short enough that a sign-in left behind
/// on a shared machine soon stops authorising changes.
pub const FRESH_SIGN_IN: time::Duration = time::Duration::minutes(10);

/// Who is editing: the user as Entra knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Editor {
    /// By sign-in name (UPN), compared without regard to case.
    SignInName(String),
    /// By Entra object id (`oid`).
    ObjectId(Uuid),
}

impl std::fmt::Display for Editor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Editor::SignInName(upn) => f.write_str(upn),
            Editor::ObjectId(oid) => write!(f, "user {oid}"),
        }
    }
}

impl Editor {
    fn is(&self, sign_in: &SignIn) -> bool {
        match self {
            Editor::SignInName(upn) => sign_in
                .upn
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(upn)),
            Editor::ObjectId(oid) => sign_in.user_oid == *oid,
        }
    }
}

/// What to change: each `Some` field is changed, each `None` kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionEdit {
    /// A new name.
    pub name: Option<Name>,
    /// A new Dataverse environment URL.
    pub environment_url: Option<String>,
    /// A new application (client) id.
    pub client_id: Option<Uuid>,
    /// A new security role for the application user.
    pub security_role: Option<String>,
}

/// Why an edit was refused or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// No such connection.
    #[error("connection {0} does not exist")]
    NoConnection(ConnectionId),
    /// The edit changes no field.
    #[error("the edit names nothing to change")]
    Empty,
    /// The connection's Entra tenant is not known yet, so no sign-in can
    /// authorise an edit.
    #[error(
        "connection {name} has no Entra tenant yet: complete it (or delete and recreate it) instead of editing it"
    )]
    NoEntraTenant {
        /// The connection's name.
        name: String,
    },
    /// The editor has no sign-in in the connection's Entra tenant.
    #[error(
        "{editor} has not signed in to Entra tenant {entra_tenant}{elsewhere}: sign in there (dvhost login) and edit again; another user's sign-in does not count"
    )]
    NotSignedIn {
        /// The editor.
        editor: String,
        /// The connection's Entra tenant.
        entra_tenant: Uuid,
        /// The other tenants the editor signed in to, in words.
        elsewhere: String,
    },
    /// The editor's sign-in is older than [`FRESH_SIGN_IN`].
    #[error(
        "{editor} signed in to Entra tenant {entra_tenant} at {signed_in_at}, more than {minutes} minutes ago: sign in again (dvhost login) and edit again"
    )]
    Stale {
        /// The editor.
        editor: String,
        /// The connection's Entra tenant.
        entra_tenant: Uuid,
        /// When the editor last signed in there.
        signed_in_at: OffsetDateTime,
        /// The window, in minutes.
        minutes: i64,
    },
    /// The new environment URL cannot be used.
    #[error("the new environment URL cannot be used: {0}")]
    Environment(#[from] EndpointError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The editor's own sign-in in `entra_tenant`, if made within
/// [`FRESH_SIGN_IN`] before `now`; the refusal otherwise.
pub async fn fresh_sign_in(
    store: &Store,
    entra_tenant: Uuid,
    editor: &Editor,
    now: OffsetDateTime,
) -> Result<SignIn, EditError> {
    let mine: Vec<SignIn> = store
        .sign_ins()
        .await?
        .into_iter()
        .filter(|s| editor.is(s))
        .collect();
    let Some(here) = mine.iter().find(|s| s.entra_tenant_id == entra_tenant) else {
        let others: Vec<String> = mine.iter().map(|s| s.entra_tenant_id.to_string()).collect();
        return Err(EditError::NotSignedIn {
            editor: editor.to_string(),
            entra_tenant,
            elsewhere: if others.is_empty() {
                String::new()
            } else {
                format!(" (only to {})", others.join(", "))
            },
        });
    };
    if now - here.signed_in_at > FRESH_SIGN_IN {
        return Err(EditError::Stale {
            editor: editor.to_string(),
            entra_tenant,
            signed_in_at: here.signed_in_at,
            minutes: FRESH_SIGN_IN.whole_minutes(),
        });
    }
    Ok(here.clone())
}

/// Edits `connection` for `editor`, who must hold a fresh sign-in of their
/// own in its Entra tenant ([`fresh_sign_in`], judged at `now`). Records the
/// edit in the connection's history (actor `user:<sign-in name>`) and the
/// audit log; a refusal is audited as `denied` and changes nothing.
pub async fn edit(
    store: &Store,
    connection: ConnectionId,
    editor: &Editor,
    changes: ConnectionEdit,
    now: OffsetDateTime,
) -> Result<Connection, EditError> {
    let before = store
        .connection(connection)
        .await?
        .ok_or(EditError::NoConnection(connection))?;
    if changes == ConnectionEdit::default() {
        return Err(EditError::Empty);
    }
    let requested = requested_detail(&changes);
    let checked = match before.entra_tenant_id {
        None => Err(EditError::NoEntraTenant {
            name: before.name.to_string(),
        }),
        Some(tenant) => fresh_sign_in(store, tenant, editor, now).await,
    };
    let sign_in = match checked {
        Ok(sign_in) => sign_in,
        Err(refusal) => {
            let detail = json!({ "requested": requested, "refused": refusal.to_string() });
            let actor = format!("user:{editor}");
            audit(store, &before, &actor, ACTION, AuditOutcome::Denied, detail).await?;
            return Err(refusal);
        }
    };
    let actor = format!(
        "user:{}",
        sign_in.upn.clone().unwrap_or(sign_in.user_oid.to_string())
    );
    let environment_url = match changes.environment_url {
        Some(url) => Some(Environment::parse(&url)?.as_str().to_string()),
        None => None,
    };
    let store_changes = ConnectionChanges {
        name: changes.name,
        environment_url,
        entra_tenant_id: None,
        client_id: changes.client_id,
        security_role: changes.security_role,
    };
    let after = store
        .edit_connection(connection, store_changes, &actor)
        .await?;
    let detail = json!({
        "editor_oid": sign_in.user_oid,
        "entra_tenant_id": sign_in.entra_tenant_id,
        "signed_in_at": sign_in.signed_in_at.unix_timestamp(),
        "changed": changed_detail(&before, &after),
    });
    audit(store, &after, &actor, ACTION, AuditOutcome::Success, detail).await?;
    Ok(after)
}

fn requested_detail(changes: &ConnectionEdit) -> Value {
    json!({
        "name": changes.name.as_ref().map(Name::as_str),
        "environment_url": changes.environment_url,
        "client_id": changes.client_id,
        "security_role": changes.security_role,
    })
}

/// The fields that changed, before and after.
fn changed_detail(before: &Connection, after: &Connection) -> Value {
    let pairs = [
        (
            "name",
            json!(before.name.as_str()),
            json!(after.name.as_str()),
        ),
        (
            "environment_url",
            json!(before.environment_url),
            json!(after.environment_url),
        ),
        ("client_id", json!(before.client_id), json!(after.client_id)),
        (
            "security_role",
            json!(before.security_role),
            json!(after.security_role),
        ),
        (
            "state",
            json!(before.state.as_str()),
            json!(after.state.as_str()),
        ),
    ];
    let changed: serde_json::Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(field, from, to)| (field.to_string(), json!({ "from": from, "to": to })))
        .collect();
    Value::Object(changed)
}
