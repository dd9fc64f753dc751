//! API keys of tenants: the store keeps the public id, the SHA-256 of the
//! whole key (computed by the secret-owning crate, which also mints and
//! verifies keys), the rights and the dates. A key itself never reaches the
//! store: it is shown once to whoever created it.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::connections::text_enum;
use crate::{ApiKeyId, Store, StoreError, TenantId};

text_enum!(
    /// One thing an API key allows within its tenant.
    ApiKeyRight {
        /// Call plugin actions.
        Invoke = "invoke",
        /// Deploy plugin versions and switch between them.
        Deploy = "deploy",
        /// Read the tenant's audit log.
        Audit = "audit",
    }
);

/// The rights of an API key (stored as `invoke,deploy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiKeyRights(BTreeSet<ApiKeyRight>);

impl ApiKeyRights {
    /// The given rights.
    pub fn of(rights: &[ApiKeyRight]) -> ApiKeyRights {
        ApiKeyRights(rights.iter().copied().collect())
    }

    /// Whether `right` is among them.
    pub fn contains(&self, right: ApiKeyRight) -> bool {
        self.0.contains(&right)
    }

    /// The stored form: the rights' names, in declaration order, comma-separated.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Result<ApiKeyRights, StoreError> {
        let rights = text
            .split(',')
            .filter(|part| !part.is_empty())
            .map(ApiKeyRight::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApiKeyRights::of(&rights))
    }
}

/// A key to record, as the secret-owning crate minted it.
#[derive(Debug, Clone)]
pub struct NewApiKeyRecord {
    /// Its public id.
    pub id: ApiKeyId,
    /// The tenant it opens.
    pub tenant: TenantId,
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    /// What it allows.
    pub rights: ApiKeyRights,
    /// A note for operators (who or what uses it).
    pub label: String,
}

/// A recorded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Its public id.
    pub id: ApiKeyId,
    /// The tenant it opens.
    pub tenant: TenantId,
    /// SHA-256 of the whole key, to verify a presented key against.
    pub hash: [u8; 32],
    /// What it allows.
    pub rights: ApiKeyRights,
    /// The operators' note.
    pub label: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked; a revoked key opens nothing.
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// Whether the key may still be used.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

impl Store {
    /// Records a new key of a tenant.
    pub async fn add_api_key(&self, new: NewApiKeyRecord) -> Result<ApiKeyRecord, StoreError> {
        let record = ApiKeyRecord {
            id: new.id,
            tenant: new.tenant,
            hash: new.hash,
            rights: new.rights,
            label: new.label,
            created_at: crate::now(),
            revoked_at: None,
        };
        self.backend.insert_api_key(&record).await?;
        Ok(record)
    }

    /// The key with this public id (revoked ones included: check
    /// [`ApiKeyRecord::is_live`]).
    pub async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.backend.api_key(id).await
    }

    /// A tenant's keys, oldest first.
    pub async fn api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.backend.api_keys(tenant).await
    }

    /// Revokes one of the tenant's keys. `false` when the tenant has no live
    /// key with this id.
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: &ApiKeyId,
    ) -> Result<bool, StoreError> {
        self.backend.revoke_api_key(tenant, id, crate::now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_have_one_stable_text() {
        let rights = ApiKeyRights::of(&[ApiKeyRight::Deploy, ApiKeyRight::Invoke]);
        assert_eq!(rights.to_text(), "invoke,deploy");
        assert_eq!(ApiKeyRights::parse("deploy,invoke").unwrap(), rights);
        assert!(rights.contains(ApiKeyRight::Invoke));
        assert!(!rights.contains(ApiKeyRight::Audit));
        assert_eq!(ApiKeyRights::parse("").unwrap(), ApiKeyRights::default());
        assert!(ApiKeyRights::parse("invoke,root").is_err());
    }
}
