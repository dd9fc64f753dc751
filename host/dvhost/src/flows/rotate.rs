//! Certificate rotation of an automatic connection (`dvhost connection
//! rotate-cert TENANT/NAME`), with overlap so no runtime call fails:
//!
//! 1. a new certificate is generated and stored pending;
//! 2. it is added to the app registration (Graph `addKey`, proven with the
//!    current certificate); both are now valid;
//! 3. it is used successfully: a token over client credentials and WhoAmI;
//! 4. the runtime's token sources switch to it and the store activates it
//!    (the old one becomes retiring);
//! 5. the old key is removed from the app (Graph `removeKey`, proven with
//!    the new certificate) and the old certificate removed from the store.
//!
//! Interrupted, a re-run resumes: a pending certificate is the one being
//! rolled in, a retiring one the one being rolled out.
//!
//! Token sources of other processes (a server sharing the store) are not
//! reached from here: they must switch when the store's active certificate
//! changes, before step 5 (tokens they already hold stay valid until they
//! expire).

use std::sync::Arc;
use std::time::Instant;

use dvhost_dataverse::{
    AdminError, AppRegistration, Certificate, GraphAdmin, MasterKey, TokenSource,
};
use dvhost_store::{
    CertificateState, Connection, ConnectionId, ConnectionMode, ConnectionState, Store,
    StoredCertificate,
};
use uuid::Uuid;

use super::auto::{
    AdminSignIn, Cause, Environment, ProvisionError, Services, graph_session, new_certificate,
    open_certificate, token_source, who_am_i,
};

/// A step of a rotation, for progress and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// The new certificate is generated and stored (pending).
    NewCertificate,
    /// It is registered on the app next to the old one.
    KeyAdded,
    /// A token and WhoAmI succeeded with it.
    NewCertificateProven,
    /// The runtime and the store use it.
    Switched,
    /// The old key is removed from the app.
    OldKeyRemoved,
    /// The old certificate is removed from the store.
    OldCertificateRemoved,
}

impl std::fmt::Display for RotationStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RotationStep::NewCertificate => "new certificate",
            RotationStep::KeyAdded => "add the new key to the app",
            RotationStep::NewCertificateProven => "prove the new certificate",
            RotationStep::Switched => "switch to the new certificate",
            RotationStep::OldKeyRemoved => "remove the old key from the app",
            RotationStep::OldCertificateRemoved => "remove the old certificate",
        })
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// SHA-1 thumbprint of the certificate rolled out.
    pub old_sha1_thumbprint: String,
    /// SHA-1 thumbprint of the certificate now in use.
    pub new_sha1_thumbprint: String,
}

/// Which connection to rotate, and by when.
#[derive(Debug, Clone, Copy)]
pub struct RotateRequest {
    /// The automatic connection.
    pub connection: ConnectionId,
    /// When the rotation must be over.
    pub deadline: Instant,
}

/// The certificates of a rotation in progress.
struct Pair {
    old: StoredCertificate,
    new: StoredCertificate,
    /// Whether the new one is already the active one (steps 1-4 done).
    switched: bool,
}

/// Rotates the certificate of automatic connection `request.connection`, with the
/// signed-in administrator's Graph rights, switching `runtime` (the token
/// sources of this process that use the connection) once the new
/// certificate has worked. Safe to run again after a failure.
pub async fn rotate_certificate(
    store: &Store,
    master: &MasterKey,
    admin: AdminSignIn<'_>,
    services: &Services,
    request: RotateRequest,
    runtime: &[&TokenSource],
    progress: &mut (dyn FnMut(RotationStep) + Send),
) -> Result<Rotation, ProvisionError> {
    let RotateRequest {
        connection,
        deadline,
    } = request;
    let conn = store
        .connection(connection)
        .await?
        .filter(|c| c.state != ConnectionState::Deleted)
        .ok_or_else(|| ProvisionError::Conflict("no such connection".into()))?;
    let (tenant, app_id, environment) = automatic_target(&conn)?;
    let graph = graph_session(admin, services, deadline).await?;
    let who = graph.who();
    let fail = |step: RotationStep| move |e: Cause| ProvisionError::Rotation { step, cause: e };
    let app = graph
        .application_by_app_id(app_id, deadline)
        .await
        .map_err(|e| fail(RotationStep::KeyAdded)(e.into()))?
        .ok_or_else(|| {
            ProvisionError::Conflict(format!(
                "the app registration {app_id} of connection {} no longer exists",
                conn.name
            ))
        })?;
    let subject = format!("dvhost connection {}", conn.name);
    let pair = pair(store, master, connection, &who, &subject, progress).await?;
    let old_cert = open_certificate(&pair.old, master)
        .map_err(|e| fail(RotationStep::NewCertificate)(e.into()))?;
    let new_cert = open_certificate(&pair.new, master)
        .map_err(|e| fail(RotationStep::NewCertificate)(e.into()))?;
    if !pair.switched {
        if app.key_for(&pair.new.sha1_thumbprint).is_none() {
            graph
                .add_key(&app, &old_cert, &new_cert, deadline)
                .await
                .map_err(|e| fail(RotationStep::KeyAdded)(e.into()))?;
        }
        progress(RotationStep::KeyAdded);
        let tokens = token_source(services, tenant, app_id, &environment, new_cert.clone())
            .map_err(|e| fail(RotationStep::NewCertificateProven)(e.into()))?;
        who_am_i(&tokens, deadline)
            .await
            .map_err(|e| fail(RotationStep::NewCertificateProven)(e.into()))?;
        store
            .mark_certificate_used(pair.new.id, time::OffsetDateTime::now_utc())
            .await?;
        progress(RotationStep::NewCertificateProven);
        store.activate_certificate(pair.new.id, &who).await?;
    }
    // Also after a resumed run: this process's sources may still sign with
    // the old certificate.
    for source in runtime {
        source.switch_certificate(new_cert.clone()).await;
    }
    progress(RotationStep::Switched);
    remove_old(&graph, &app, &new_cert, &pair.old, deadline)
        .await
        .map_err(|e| fail(RotationStep::OldKeyRemoved)(e.into()))?;
    progress(RotationStep::OldKeyRemoved);
    store.remove_certificate(pair.old.id, &who).await?;
    progress(RotationStep::OldCertificateRemoved);
    Ok(Rotation {
        old_sha1_thumbprint: pair.old.sha1_thumbprint,
        new_sha1_thumbprint: pair.new.sha1_thumbprint,
    })
}

/// Refuses, before any sign-in is used, a connection that cannot be
/// rotated with Graph (not a completed automatic one).
pub fn check_rotatable(conn: &Connection) -> Result<(), ProvisionError> {
    automatic_target(conn).map(|_| ())
}

/// The Entra tenant, app and environment of a completed automatic
/// connection; other connections cannot be rotated with Graph.
fn automatic_target(conn: &Connection) -> Result<(Uuid, Uuid, Environment), ProvisionError> {
    let (Some(tenant), Some(app_id), ConnectionMode::Automatic) =
        (conn.entra_tenant_id, conn.client_id, conn.mode)
    else {
        return Err(ProvisionError::Conflict(format!(
            "connection {} is not a completed automatic connection: rotate a manual one with a new administrator request",
            conn.name
        )));
    };
    let environment = Environment::parse(&conn.environment_url)
        .map_err(|e| ProvisionError::Conflict(format!("the connection's environment: {e}")))?;
    Ok((tenant, app_id, environment))
}

/// The certificate being rolled out and the one rolled in: found from an
/// interrupted rotation, or the active one and a new pending one.
async fn pair(
    store: &Store,
    master: &MasterKey,
    connection: ConnectionId,
    who: &str,
    subject: &str,
    progress: &mut (dyn FnMut(RotationStep) + Send),
) -> Result<Pair, ProvisionError> {
    let certs = store.certificates(connection).await?;
    let of = |state| certs.iter().rev().find(|c| c.state == state).cloned();
    let active = of(CertificateState::Active).ok_or_else(|| {
        ProvisionError::Conflict("the connection has no active certificate to rotate".into())
    })?;
    if let Some(old) = of(CertificateState::Retiring) {
        return Ok(Pair {
            old,
            new: active,
            switched: true,
        });
    }
    let new =
        match of(CertificateState::Pending) {
            Some(pending) => pending,
            None => {
                let cert = Certificate::generate(subject, Certificate::default_validity())
                    .map_err(|e| ProvisionError::Rotation {
                        step: RotationStep::NewCertificate,
                        cause: e.into(),
                    })?;
                store
                    .add_certificate(connection, new_certificate(&cert, master), who)
                    .await?
            }
        };
    progress(RotationStep::NewCertificate);
    Ok(Pair {
        old: active,
        new,
        switched: false,
    })
}

/// Removes the old certificate's key from the app, when still there.
async fn remove_old(
    graph: &GraphAdmin,
    app: &AppRegistration,
    proof: &Arc<Certificate>,
    old: &StoredCertificate,
    deadline: Instant,
) -> Result<(), AdminError> {
    // Re-read: the key list may have changed since the rotation began.
    let current = graph
        .application_by_app_id(app.app_id, deadline)
        .await?
        .unwrap_or_else(|| app.clone());
    let key: Option<Uuid> = current.key_for(&old.sha1_thumbprint).map(|k| k.key_id);
    match key {
        Some(key_id) => graph.remove_key(&current, proof, key_id, deadline).await,
        None => Ok(()),
    }
}
