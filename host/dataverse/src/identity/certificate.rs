//! Connection certificates: an RSA-2048 key and a self-signed X.509
//! certificate (rcgen), their exports for Entra (`keyCredentials`) and their
//! thumbprints. The private key is held zeroized-on-drop and never appears
//! in `Debug`, `Display`, logs or errors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{IdentityError, MasterKey, SealedKey};

/// A certificate with its private key.
pub struct Certificate {
    cert_der: Vec<u8>,
    /// PKCS#8 PEM of the private key.
    key_pem: Zeroizing<String>,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("sha1_thumbprint", &self.sha1_thumbprint_hex())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn cert_error(what: &str, e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Certificate(format!("{what}: {e}"))
}

impl Certificate {
    /// Generates an RSA-2048 key and a self-signed certificate whose subject
    /// names the connection, valid from now for `validity`.
    pub fn generate(subject: &str, validity: time::Duration) -> Result<Self, IdentityError> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| cert_error("key generation", e))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| cert_error("certificate parameters", e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, subject);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + validity;
        let cert = params
            .self_signed(&key)
            .map_err(|e| cert_error("self-signing", e))?;
        Self::from_parts(cert.der().to_vec(), Zeroizing::new(key.serialize_pem()))
    }

    /// The default validity of generated certificates: two years.
    pub fn default_validity() -> time::Duration {
        time::Duration::days(730)
    }

    /// Imports a PEM certificate and its PEM private key (PKCS#8 or PKCS#1).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| cert_error("certificate PEM", e))?;
        // Checks the key parses (and is RSA) before accepting it.
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|_| {
            IdentityError::Certificate("the private key is not a valid PEM RSA key".into())
        })?;
        let cert = Self::from_parts(pem.contents, Zeroizing::new(key.serialize_pem()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.cert_der)
            .map_err(|e| cert_error("certificate", e))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(IdentityError::Certificate(
                "the private key does not belong to the certificate".into(),
            ));
        }
        Ok(cert)
    }

    fn from_parts(cert_der: Vec<u8>, key_pem: Zeroizing<String>) -> Result<Self, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| cert_error("certificate", e))?;
        if !matches!(
            cert.public_key().parsed(),
            Ok(x509_parser::public_key::PublicKey::RSA(_))
        ) {
            return Err(IdentityError::Certificate(
                "only RSA certificates are supported by Entra client assertions".into(),
            ));
        }
        let subject = cert.subject().to_string();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        Ok(Certificate {
            cert_der,
            key_pem,
            subject,
            not_before,
            not_after,
        })
    }

    /// The subject distinguished name.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// DER of the public certificate (a `.cer` file).
    pub fn der(&self) -> &[u8] {
        &self.cert_der
    }

    /// PEM of the public certificate.
    pub fn pem(&self) -> String {
        let b64 = STANDARD.encode(&self.cert_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// Base64 of the DER, the `key` of a Graph `keyCredential`.
    pub fn key_credential_value(&self) -> String {
        STANDARD.encode(&self.cert_der)
    }

    /// SHA-1 of the DER (the `x5t` header of RS256 assertions).
    pub fn sha1_thumbprint(&self) -> [u8; 20] {
        sha1::Sha1::digest(&self.cert_der).into()
    }

    /// SHA-256 of the DER (the `x5t#S256` header of PS256 assertions).
    pub fn sha256_thumbprint(&self) -> [u8; 32] {
        sha2::Sha256::digest(&self.cert_der).into()
    }

    /// Upper-case hex SHA-1 thumbprint, as the Entra portal shows it.
    pub fn sha1_thumbprint_hex(&self) -> String {
        self.sha1_thumbprint()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// The private key, for signing assertions inside this crate only.
    pub(crate) fn private_key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key sealed with `master` (AES-256-GCM, bound to this
    /// certificate), for the store to keep at rest.
    pub fn seal_private_key(&self, master: &MasterKey) -> SealedKey {
        SealedKey::seal(master, &self.sha256_thumbprint(), self.key_pem.as_bytes())
    }

    /// A certificate from its PEM and its private key sealed by
    /// [`Self::seal_private_key`] under the same master key.
    pub fn unseal(
        cert_pem: &str,
        sealed: &SealedKey,
        master: &MasterKey,
    ) -> Result<Self, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| cert_error("certificate PEM", e))?;
        let binding: [u8; 32] = sha2::Sha256::digest(&pem.contents).into();
        let key = sealed.open(master, &binding)?;
        let key_pem = std::str::from_utf8(&key)
            .map_err(|_| IdentityError::Certificate("the sealed key is not PEM".into()))?;
        Self::from_pem(cert_pem, key_pem)
    }
}
