//! Tenant API keys: `dvk_<id>_<secret>`, where `<id>` (12 letters and
//! digits) finds the key's record and `<secret>` is 32 random bytes
//! (base64url). A key is shown once, when minted; what is kept is the
//! SHA-256 of the whole key, which is enough for a key of 256 random bits
//! (no password stretching needed: nothing to guess), and a presented key
//! is compared with it in constant time.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use rand::RngCore as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// What every dvhost API key starts with (so secret scanners can find a
/// leaked one).
pub const API_KEY_PREFIX: &str = "dvk_";
/// Length of the public id.
const ID_LEN: usize = 12;
/// Random bytes of the secret part.
const SECRET_BYTES: usize = 32;
/// Length of the secret part as base64url without padding.
const SECRET_LEN: usize = 43;

/// A presented key that is not a dvhost API key. Never contains the key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Not of the form `dvk_<id>_<secret>`.
    #[error("this is not a dvhost API key (expected dvk_<id>_<secret>)")]
    Malformed,
}

fn hash(key: &str) -> [u8; 32] {
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// A freshly minted API key. It can be shown once: [`NewApiKey::show_once`]
/// consumes it. Keep [`NewApiKey::id`] and [`NewApiKey::hash`].
pub struct NewApiKey {
    id: String,
    key: Zeroizing<String>,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NewApiKey {
    /// Mints a key from the operating system's random source.
    pub fn mint() -> NewApiKey {
        let mut rng = rand::rng();
        let id: String = (0..ID_LEN)
            .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
            .collect();
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        rng.fill_bytes(secret.as_mut_slice());
        let mut key = Zeroizing::new(String::with_capacity(
            API_KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN,
        ));
        key.push_str(API_KEY_PREFIX);
        key.push_str(&id);
        key.push('_');
        URL_SAFE_NO_PAD.encode_string(secret.as_slice(), &mut key);
        NewApiKey { id, key }
    }

    /// The public id (the store's key for the record).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SHA-256 of the whole key, what the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.key)
    }

    /// Writes the key to `out` (a terminal, an HTTP response body) and
    /// forgets it: it cannot be shown again.
    pub fn show_once(self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.key.as_bytes())
    }
}

/// A key presented by a caller (an `Authorization: Bearer` value), parsed
/// but not yet verified.
pub struct PresentedApiKey {
    id: String,
    key: Zeroizing<String>,
}

impl std::fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PresentedApiKey {
    /// Reads `dvk_<id>_<secret>`; anything else is [`ApiKeyError::Malformed`].
    pub fn parse(presented: &str) -> Result<PresentedApiKey, ApiKeyError> {
        let rest = presented
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ApiKeyError::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(ApiKeyError::Malformed)?;
        let id_ok = id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric());
        let secret_ok = secret.len() == SECRET_LEN
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !(id_ok && secret_ok) {
            return Err(ApiKeyError::Malformed);
        }
        Ok(PresentedApiKey {
            id: id.to_string(),
            key: Zeroizing::new(presented.to_string()),
        })
    }

    /// The public id, to look the key's record up.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SHA-256 of the whole key: what the store keeps, and what an
    /// operator configures for the admin key. Not a secret: a key of 256
    /// random bits cannot be found from it.
    pub fn fingerprint(&self) -> [u8; 32] {
        hash(&self.key)
    }

    /// Whether this key is the one whose hash the store kept, compared in
    /// constant time.
    pub fn verify(&self, stored_hash: &[u8; 32]) -> bool {
        hash(&self.key).ct_eq(stored_hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(key: NewApiKey) -> String {
        let mut out = Vec::new();
        key.show_once(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_minted_key_verifies_against_its_hash_only() {
        let key = NewApiKey::mint();
        let (id, hash) = (key.id().to_string(), key.hash());
        let text = shown(key);
        assert!(text.starts_with(&format!("dvk_{id}_")), "{text}");
        assert_eq!(text.len(), 4 + 12 + 1 + 43);
        let presented = PresentedApiKey::parse(&text).unwrap();
        assert_eq!(presented.id(), id);
        assert!(presented.verify(&hash));
        assert!(!presented.verify(&NewApiKey::mint().hash()));
        // One character changed in the secret: same id, no match.
        let mut tampered = text.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = PresentedApiKey::parse(std::str::from_utf8(&tampered).unwrap()).unwrap();
        assert!(!tampered.verify(&hash));
    }

    #[test]
    fn keys_differ_and_malformed_ones_are_refused_without_echo() {
        assert_ne!(shown(NewApiKey::mint()), shown(NewApiKey::mint()));
        let secret = "A".repeat(43);
        for bad in [
            String::new(),
            format!("dvk_abc_{secret}"),
            format!("dvx_abcdefghijkl_{secret}"),
            format!("dvk_abcdefghijkl_{}", &secret[1..]),
            format!("dvk_abcdefghijk!_{secret}"),
            format!("dvk_abcdefghijkl_{}!", &secret[1..]),
            format!("dvk_abcdefghijkl{secret}"),
        ] {
            let error = PresentedApiKey::parse(&bad).unwrap_err();
            assert_eq!(error, ApiKeyError::Malformed, "{bad}");
            assert!(!error.to_string().contains(&secret[..10]));
        }
    }
}
