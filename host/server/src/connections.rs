//! The one door from the server to credentials: [`Connections`], which the
//! `dvhost` binary implements with the secret-owning transport. The server
//! asks for a connection's Dataverse backend or for a test of it, and gets
//! trait objects and plain results back, never a key, a token or a URL.

use std::sync::Arc;

use async_trait::async_trait;
use dvhost_runtime::{Metadata, Records};
use dvhost_store::{Connection, ConnectionId};
use serde_json::Value;

/// A connection's Dataverse, as the runtime reaches it.
#[derive(Clone)]
pub struct ConnectionBackend {
    /// Row operations.
    pub records: Arc<dyn Records>,
    /// Table metadata.
    pub metadata: Arc<dyn Metadata>,
}

/// Why a connection cannot be used. The message reaches API callers: it
/// names the connection and what to do, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConnectionFailure(pub String);

/// What the server needs from the credential-holding side of the host.
#[async_trait]
pub trait Connections: Send + Sync + 'static {
    /// The backend for an active connection (cached by the implementation:
    /// one token source per connection, so this is cheap on every call).
    async fn backend(
        &self,
        connection: ConnectionId,
    ) -> Result<ConnectionBackend, ConnectionFailure>;

    /// Tests a connection end to end (WhoAmI) and describes the result.
    async fn test(&self, connection: &Connection) -> Result<Value, ConnectionFailure>;

    /// Forgets what is cached for a connection (after a rotation, an edit,
    /// a deletion), so the next call uses the store's current state.
    async fn forget(&self, connection: ConnectionId);
}

/// No credentials at all: every connection is unusable. For a server that
/// only runs plugins without Dataverse access, and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConnections;

#[async_trait]
impl Connections for NoConnections {
    async fn backend(&self, _: ConnectionId) -> Result<ConnectionBackend, ConnectionFailure> {
        Err(ConnectionFailure(
            "connections cannot be used: this server has no credentials configured".into(),
        ))
    }

    async fn test(&self, connection: &Connection) -> Result<Value, ConnectionFailure> {
        self.backend(connection.id).await.map(|_| Value::Null)
    }

    async fn forget(&self, _: ConnectionId) {}
}
