//! Identifiers and names: ids are newtypes so a tenant id cannot be passed
//! where a connection id is expected, and names are checked once, here, so
//! every name in the store is safe in a URL path segment and a CLI argument.

use std::fmt;

use sha2::Digest as _;
use uuid::Uuid;

use crate::StoreError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }

            /// The id as a UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(text: &str) -> Result<Self, StoreError> {
                Uuid::parse_str(text).map($name).map_err(|_| StoreError::Invalid {
                    what: stringify!($name),
                    why: format!("{:?} is not a UUID", truncate(text)),
                })
            }
        }
    };
}

uuid_id!(
    /// A dvhost tenant (not an Entra tenant: that is an `entra_tenant_id`).
    TenantId
);
uuid_id!(
    /// A connection to one Dataverse environment.
    ConnectionId
);
uuid_id!(
    /// One certificate of a connection.
    CertificateId
);
uuid_id!(
    /// A plugin of a tenant (its versions are numbered under it).
    PluginId
);

/// At most this many characters of untrusted text are repeated in an error.
fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Longest tenant, connection or plugin name.
const MAX_NAME: usize = 63;

/// The name of a tenant, connection or plugin: 1 to 63 characters of
/// lower-case ASCII letters, digits, `-` and `_`, starting with a letter or
/// digit. Such a name needs no escaping in a URL path segment
/// (`/v1/tenants/{tenant}`), a `TENANT/NAME` argument or a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Checks `text` against the naming rule.
    pub fn parse(text: &str) -> Result<Name, StoreError> {
        let fail = |why: &'static str| {
            Err(StoreError::InvalidName {
                name: truncate(text),
                why,
            })
        };
        let Some(first) = text.chars().next() else {
            return fail("it is empty");
        };
        if text.len() > MAX_NAME {
            return fail("it is longer than 63 characters");
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return fail("it must start with a lower-case letter or a digit");
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if !text.chars().all(allowed) {
            return fail("only lower-case letters, digits, '-' and '_' are allowed");
        }
        Ok(Name(text.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Name, StoreError> {
        Name::parse(text)
    }
}

/// The public id of an API key (the `<id>` in `dvk_<id>_<secret>`), minted
/// with the key by the secret-owning crate: 8 to 64 ASCII letters and digits.
/// It finds the key's row; it is not a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Checks the form of an API key id.
    pub fn parse(text: &str) -> Result<ApiKeyId, StoreError> {
        let ok = (8..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(ApiKeyId(text.to_string()))
        } else {
            Err(StoreError::Invalid {
                what: "API key id",
                why: "it must be 8 to 64 ASCII letters and digits".into(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a component's bytes: a plugin version names its component
/// by this hash, so identical bytes are stored once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(sha2::Sha256::digest(bytes).into())
    }

    /// A hash from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ContentHash {
        ContentHash(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as `sha256sum` prints it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Ciphertext produced by the secret-owning crate (a sealed private key or
/// a sealed refresh token). The store keeps and returns these bytes as they
/// are; it cannot open them and never sees what they seal. `Debug` shows the
/// length only, to keep logs short.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps ciphertext for storage.
    pub fn new(ciphertext: Vec<u8>) -> Sealed {
        Sealed(ciphertext)
    }

    /// The ciphertext, to hand back to the secret-owning crate.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ciphertext, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "contoso", "dev-1", "0x", "a_b", &"a".repeat(63)] {
            assert!(Name::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Contoso",
            "a/b",
            "a b",
            "é",
            "a.b",
            &"a".repeat(64),
        ] {
            let error = Name::parse(bad).unwrap_err().to_string();
            assert!(error.contains("not a valid name"), "{bad}: {error}");
        }
    }

    #[test]
    fn api_key_ids_are_short_alphanumerics() {
        assert!(ApiKeyId::parse("abcd1234").is_ok());
        assert!(ApiKeyId::parse("abc").is_err());
        assert!(ApiKeyId::parse("abcd_1234").is_err());
        assert!(ApiKeyId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn content_hashes_are_sha256() {
        assert_eq!(
            ContentHash::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            format!("{:?}", Sealed::new(vec![1, 2, 3])),
            "Sealed(3 bytes)"
        );
    }

    #[test]
    fn ids_parse_back() {
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        assert!("nope".parse::<ConnectionId>().is_err());
    }
}
