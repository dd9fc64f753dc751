//! Delegated sign-ins: one per (Entra tenant, user), the refresh token only
//! as the ciphertext the secret-owning crate sealed (bound there to the
//! issuer and the user, so a row copied to another user does not open).
//! The edit flow reads `signed_in_at` to require a fresh sign-in.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Sealed, Store, StoreError};

/// A stored sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The user's Entra tenant (`tid`).
    pub entra_tenant_id: Uuid,
    /// The user's object id (`oid`).
    pub user_oid: Uuid,
    /// The user's sign-in name, for display.
    pub upn: Option<String>,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The sealed refresh token.
    pub sealed_refresh_token: Sealed,
    /// When the user last signed in interactively.
    pub signed_in_at: OffsetDateTime,
}

impl Store {
    /// Stores a sign-in, replacing the same user's previous one in that
    /// Entra tenant.
    pub async fn save_sign_in(&self, sign_in: &SignIn) -> Result<(), StoreError> {
        if sign_in.sealed_refresh_token.as_bytes().is_empty() {
            return Err(StoreError::Invalid {
                what: "sealed refresh token",
                why: "it is empty".into(),
            });
        }
        self.backend.upsert_sign_in(sign_in).await
    }

    /// The user's sign-in in that Entra tenant.
    pub async fn sign_in(
        &self,
        entra_tenant_id: Uuid,
        user_oid: Uuid,
    ) -> Result<Option<SignIn>, StoreError> {
        self.backend.sign_in(entra_tenant_id, user_oid).await
    }

    /// Every stored sign-in, by user name.
    pub async fn sign_ins(&self) -> Result<Vec<SignIn>, StoreError> {
        self.backend.sign_ins().await
    }

    /// Forgets a sign-in (sign-out). `false` when there was none.
    pub async fn delete_sign_in(
        &self,
        entra_tenant_id: Uuid,
        user_oid: Uuid,
    ) -> Result<bool, StoreError> {
        self.backend.delete_sign_in(entra_tenant_id, user_oid).await
    }
}
