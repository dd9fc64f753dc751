//! The emulator's token-signing key: an RSA key with a self-signed
//! certificate, published as a JWKS entry the way Entra publishes its keys
//! (`kid` = `x5t` = base64url SHA-1 of the certificate, plus `x5c`, `n`, `e`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::Digest as _;

/// The persisted form of a signing key (inside the emulator's state file).
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyMaterial {
    pub key_pem: String,
    pub cert_der_b64: String,
}

impl std::fmt::Debug for SigningKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeyMaterial { .. }")
    }
}

/// A loaded signing key.
pub struct SigningKey {
    /// Tokens whose signature already verified, with their claims: every
    /// Web API call presents the same token, and RSA verification would
    /// otherwise dominate the cost of a request.
    verified: parking_lot::Mutex<std::collections::HashMap<String, Value>>,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    material: SigningKeyMaterial,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key and certificate.
    pub fn generate() -> anyhow::Result<Self> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dvhost emulator token signing");
        let cert = params.self_signed(&key)?;
        Self::load(SigningKeyMaterial {
            key_pem: key.serialize_pem(),
            cert_der_b64: STANDARD.encode(cert.der()),
        })
    }

    /// Loads persisted key material.
    pub fn load(material: SigningKeyMaterial) -> anyhow::Result<Self> {
        let cert_der = STANDARD.decode(&material.cert_der_b64)?;
        let encoding = EncodingKey::from_rsa_pem(material.key_pem.as_bytes())?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let (n, e) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => (rsa.n.clone(), rsa.e.clone()),
            _ => anyhow::bail!("signing key is not RSA"),
        };
        let decoding = DecodingKey::from_rsa_components(&n, &e)?;
        let kid = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der));
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": n,
            "e": e,
            "x5c": [material.cert_der_b64],
        });
        Ok(SigningKey {
            verified: Default::default(),
            kid,
            encoding,
            decoding,
            jwk,
            material,
        })
    }

    pub fn material(&self) -> &SigningKeyMaterial {
        &self.material
    }

    /// The JWKS entry for this key.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` as an RS256 JWT with `kid` and `x5t` headers.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        // Signing a JSON value with a valid RSA key cannot fail.
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("RS256 signing with a loaded key")
    }

    /// Verifies a token this emulator issued and returns its claims. Time
    /// claims are left to the caller, who knows the emulator's clock.
    pub fn verify(&self, token: &str) -> Option<Value> {
        if let Some(claims) = self.verified.lock().get(token) {
            return Some(claims.clone());
        }
        let claims = self.verify_signature(token)?;
        let mut cache = self.verified.lock();
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(token.to_string(), claims.clone());
        Some(claims)
    }

    fn verify_signature(&self, token: &str) -> Option<Value> {
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}
