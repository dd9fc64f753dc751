//! Connection certificates: the public certificate, its thumbprints and
//! validity, and the private key only as the ciphertext the secret-owning
//! crate sealed under the master key. Rotation keeps two certificates during
//! an overlap: the new one is added pending, then activated (the old one
//! becomes retiring), and the old one is removed once the new one has been
//! used successfully.

use serde_json::json;
use time::OffsetDateTime;

use crate::connections::text_enum;
use crate::{CertificateId, ConnectionId, Sealed, Store, StoreError};

text_enum!(
    /// Where a certificate is in a rotation.
    CertificateState {
        /// Added, not yet used for runtime calls (registered or waiting for
        /// an administrator to register it).
        Pending = "pending",
        /// The one runtime calls sign with; at most one per connection.
        Active = "active",
        /// Replaced by a newer one, still registered until that one has
        /// been used successfully.
        Retiring = "retiring",
    }
);

/// A certificate to store. Thumbprints are hex (SHA-1 upper-case as the
/// Entra portal shows it; SHA-256 as the transport computes it).
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// The public certificate, PEM.
    pub certificate_pem: String,
    /// SHA-1 thumbprint (the `x5t` header), hex.
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint (the `x5t#S256` header), hex.
    pub sha256_thumbprint: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The private key sealed by the secret-owning crate.
    pub sealed_private_key: Sealed,
}

/// A stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    /// Its id.
    pub id: CertificateId,
    /// The connection it belongs to.
    pub connection: ConnectionId,
    /// The public certificate, PEM.
    pub certificate_pem: String,
    /// SHA-1 thumbprint, hex.
    pub sha1_thumbprint: String,
    /// SHA-256 thumbprint, hex.
    pub sha256_thumbprint: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Its place in a rotation.
    pub state: CertificateState,
    /// The sealed private key, to hand back to the secret-owning crate.
    pub sealed_private_key: Sealed,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// When a runtime call last succeeded with it.
    pub last_used_at: Option<OffsetDateTime>,
}

fn check_thumbprint(what: &'static str, text: &str, len: usize) -> Result<(), StoreError> {
    if text.len() == len && text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what,
            why: format!("it must be {len} hex digits"),
        })
    }
}

impl Store {
    /// Stores a certificate for a connection that is not deleted. It becomes
    /// the active certificate when the connection has none, else it is
    /// pending until [`Self::activate_certificate`]. Written with its history
    /// row in one transaction.
    pub async fn add_certificate(
        &self,
        connection: ConnectionId,
        new: NewCertificate,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError> {
        check_thumbprint("SHA-1 thumbprint", &new.sha1_thumbprint, 40)?;
        check_thumbprint("SHA-256 thumbprint", &new.sha256_thumbprint, 64)?;
        if new.sealed_private_key.as_bytes().is_empty() {
            return Err(StoreError::Invalid {
                what: "sealed private key",
                why: "it is empty".into(),
            });
        }
        let certificate = StoredCertificate {
            id: CertificateId::new(),
            connection,
            certificate_pem: new.certificate_pem,
            sha1_thumbprint: new.sha1_thumbprint.to_ascii_uppercase(),
            sha256_thumbprint: new.sha256_thumbprint.to_ascii_lowercase(),
            not_before: new.not_before,
            not_after: new.not_after,
            // The backend decides between active and pending in its transaction.
            state: CertificateState::Pending,
            sealed_private_key: new.sealed_private_key,
            created_at: crate::now(),
            last_used_at: None,
        };
        self.backend.insert_certificate(certificate, actor).await
    }

    /// The certificate with this id.
    pub async fn certificate(
        &self,
        id: CertificateId,
    ) -> Result<Option<StoredCertificate>, StoreError> {
        self.backend.certificate(id).await
    }

    /// A connection's certificates, oldest first.
    pub async fn certificates(
        &self,
        connection: ConnectionId,
    ) -> Result<Vec<StoredCertificate>, StoreError> {
        self.backend.certificates(connection).await
    }

    /// The certificate runtime calls of this connection sign with.
    pub async fn active_certificate(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<StoredCertificate>, StoreError> {
        let all = self.backend.certificates(connection).await?;
        Ok(all
            .into_iter()
            .find(|c| c.state == CertificateState::Active))
    }

    /// Makes a pending certificate the active one; the previously active one
    /// becomes retiring. One transaction, with a history row.
    pub async fn activate_certificate(
        &self,
        id: CertificateId,
        actor: &str,
    ) -> Result<StoredCertificate, StoreError> {
        self.backend.activate_certificate(id, actor).await
    }

    /// Records that a runtime call succeeded with this certificate, the
    /// signal that a retiring predecessor may now be removed.
    pub async fn mark_certificate_used(
        &self,
        id: CertificateId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.backend.mark_certificate_used(id, at).await
    }

    /// Removes a pending or retiring certificate (its sealed key with it),
    /// with a history row. The active certificate cannot be removed: activate
    /// another first.
    pub async fn remove_certificate(
        &self,
        id: CertificateId,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.backend.remove_certificate(id, actor).await
    }
}

/// The history detail of a certificate event: which one, by thumbprint.
pub(crate) fn certificate_detail(certificate: &StoredCertificate) -> serde_json::Value {
    json!({
        "certificate": certificate.id.to_string(),
        "sha1_thumbprint": certificate.sha1_thumbprint,
        "not_after": certificate.not_after.unix_timestamp(),
    })
}
