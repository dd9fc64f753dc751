//! Tenants: the unit of isolation. A tenant owns its connections, plugins
//! and API keys; deleting it deletes them (the audit log keeps its entries).

use time::OffsetDateTime;

use crate::{Name, Store, StoreError, TenantId};

/// A dvhost tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its unique name (`/v1/tenants/{name}`).
    pub name: Name,
    /// A human-readable name.
    pub display_name: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Creates a tenant; [`StoreError::AlreadyExists`] when the name is taken.
    pub async fn create_tenant(
        &self,
        name: &Name,
        display_name: &str,
    ) -> Result<Tenant, StoreError> {
        let tenant = Tenant {
            id: TenantId::new(),
            name: name.clone(),
            display_name: display_name.to_string(),
            created_at: crate::now(),
        };
        self.backend.insert_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// The tenant with this id.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        self.backend.tenant_by_id(id).await
    }

    /// The tenant with this name.
    pub async fn tenant_by_name(&self, name: &Name) -> Result<Option<Tenant>, StoreError> {
        self.backend.tenant_by_name(name).await
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.backend.tenants().await
    }

    /// Deletes a tenant with its connections (and their sealed keys), plugins
    /// and API keys, in one transaction; components no other tenant uses go
    /// too. The audit log keeps the tenant's entries. `false` when there was
    /// no such tenant.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        self.backend.delete_tenant(id).await
    }
}
