//! Private keys at rest: AES-256-GCM under the operator's master key, with
//! the certificate's SHA-256 thumbprint as associated data, so a sealed key
//! opens only with the master key and only beside its own certificate.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::IdentityError;

/// Format version of a sealed key, its first byte.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The operator's key-encryption key (32 bytes). It is supplied by the
/// operator (a file or an environment variable of `dvhost serve`) and never
/// leaves this type.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A master key from standard base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, IdentityError> {
        use base64::Engine as _;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| IdentityError::Certificate("the master key is not base64".into()))?,
        );
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            IdentityError::Certificate(
                "the master key must be 32 bytes (base64 of 32 bytes)".into(),
            )
        })?;
        Ok(MasterKey::from_bytes(array))
    }

    /// A public fingerprint of this key (32 hex digits): the store records
    /// it at its first start and refuses a different key with a clear
    /// message. It is a one-way, domain-separated hash and reveals nothing
    /// usable about the key.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"dvhost master key fingerprint v1\0");
        hasher.update(self.0.as_slice());
        let digest = hasher.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_slice().into())
    }
}

/// A private key sealed with a [`MasterKey`]: safe to store in a database
/// row or a file. Opened only through [`super::Certificate::unseal`].
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey(Vec<u8>);

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedKey({} bytes)", self.0.len())
    }
}

impl SealedKey {
    /// The stored form (version, nonce, ciphertext and tag).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A sealed key read back from storage; checked when it is opened.
    pub fn from_bytes(bytes: Vec<u8>) -> SealedKey {
        SealedKey(bytes)
    }

    pub(super) fn seal(master: &MasterKey, binding: &[u8], secret: &[u8]) -> SealedKey {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = master
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: binding,
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        SealedKey(out)
    }

    pub(super) fn open(
        &self,
        master: &MasterKey,
        binding: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        let refused = || {
            IdentityError::Certificate(
                "the sealed key cannot be opened: wrong master key, another certificate, or damaged data"
                    .into(),
            )
        };
        let (version, rest) = self.0.split_first().ok_or_else(refused)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        master
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: binding,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }
}
