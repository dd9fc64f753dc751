//! The server's door to credentials: [`StoreConnections`] implements
//! `dvhost_server::Connections` with the store's connections and the
//! secret-owning transport. One client (one token source, one token cache)
//! per connection, kept until the connection changes; the server only ever
//! receives the [`DataverseBackend`] as runtime trait objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dvhost_dataverse::{Client, Environment, MasterKey};
use dvhost_server::{ConnectionBackend, ConnectionFailure, Connections};
use dvhost_store::{Connection, ConnectionId, ConnectionState, Store};
use moka::future::Cache;
use serde_json::{Value, json};

use crate::DataverseBackend;
use crate::flows::auto::{Services, open_certificate, token_source};

/// How long a connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections from the store, opened with the master key.
pub struct StoreConnections {
    store: Store,
    master: Arc<MasterKey>,
    services: Services,
    clients: Cache<ConnectionId, Client>,
}

impl StoreConnections {
    /// Connections of `store`, whose sealed keys `master` opens, reaching
    /// Entra and Dataverse through `services`.
    pub fn new(store: Store, master: MasterKey, services: Services) -> StoreConnections {
        StoreConnections {
            store,
            master: Arc::new(master),
            services,
            clients: Cache::builder().max_capacity(100_000).build(),
        }
    }

    async fn client(&self, id: ConnectionId) -> Result<Client, ConnectionFailure> {
        self.clients
            .try_get_with(id, self.open(id))
            .await
            .map_err(|e| (*e).clone())
    }

    /// A client for a connection row: its active certificate opened, a
    /// token source for its app, nothing else.
    async fn open(&self, id: ConnectionId) -> Result<Client, ConnectionFailure> {
        let fail = |why: String| ConnectionFailure(why);
        let row = self
            .store
            .connection(id)
            .await
            .map_err(|e| fail(format!("the store: {e}")))?
            .ok_or_else(|| fail("the connection no longer exists".into()))?;
        self.client_for(&row).await
    }

    async fn client_for(&self, row: &Connection) -> Result<Client, ConnectionFailure> {
        connection_client(&self.store, &self.master, &self.services, row).await
    }
}

/// A Web API client acting as an active connection: its active certificate
/// opened, a token source for its app, nothing else.
pub(crate) async fn connection_client(
    store: &Store,
    master: &MasterKey,
    services: &Services,
    row: &Connection,
) -> Result<Client, ConnectionFailure> {
    let fail = |why: String| ConnectionFailure(format!("connection {}: {why}", row.name));
    if row.state != ConnectionState::Active {
        return Err(fail(format!(
            "it is {}, not active; complete or test it first",
            row.state.as_str()
        )));
    }
    let (Some(entra), Some(client_id)) = (row.entra_tenant_id, row.client_id) else {
        return Err(fail("it has no Entra tenant or client id yet".into()));
    };
    let stored = store
        .active_certificate(row.id)
        .await
        .map_err(|e| fail(format!("the store: {e}")))?
        .ok_or_else(|| fail("it has no active certificate".into()))?;
    let certificate = open_certificate(&stored, master)
        .map_err(|e| fail(format!("its key cannot be opened: {e}")))?;
    let environment = Environment::parse(&row.environment_url).map_err(|e| fail(e.to_string()))?;
    let tokens = token_source(services, entra, client_id, &environment, certificate)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Client::new(tokens))
}

#[async_trait]
impl Connections for StoreConnections {
    async fn backend(&self, id: ConnectionId) -> Result<ConnectionBackend, ConnectionFailure> {
        let backend = Arc::new(DataverseBackend::new(self.client(id).await?));
        Ok(ConnectionBackend {
            records: backend.clone(),
            metadata: backend,
        })
    }

    async fn test(&self, row: &Connection) -> Result<Value, ConnectionFailure> {
        let client = self.client_for(row).await?;
        let who = client
            .who_am_i(Instant::now() + TEST_TIMEOUT)
            .await
            .map_err(|e| ConnectionFailure(format!("connection {}: {e}", row.name)))?;
        Ok(json!({
            "connection": row.name.as_str(),
            "ok": true,
            "user_id": who.user_id,
            "business_unit_id": who.business_unit_id,
            "organization_id": who.organization_id,
        }))
    }

    async fn forget(&self, id: ConnectionId) {
        self.clients.invalidate(&id).await;
    }
}
