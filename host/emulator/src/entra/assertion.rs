//! Validation of certificate client assertions ("Microsoft identity
//! platform application authentication certificate credentials",
//! <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>),
//! written as a pure function of the assertion text and what the
//! directory knows, so it can be property-tested without a server.
//!
//! Order of checks follows Entra's observable behaviour: a token that cannot
//! be parsed is "malformed" (AADSTS50027) before anything else; the algorithm
//! and key are resolved before the signature is checked (AADSTS5002738,
//! AADSTS700027); claims are only trusted after the signature verified.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha1::Digest as _;

use super::error::EntraError;
use crate::state::KeyCredential;

/// What the token endpoint knows when checking an assertion.
pub struct AssertionContext<'a> {
    /// The `client_id` form field.
    pub client_id: &'a str,
    /// Token URLs accepted as `aud` (this tenant's, by id and by domain).
    pub audiences: &'a [String],
    /// Certificates registered for the app.
    pub keys: &'a [KeyCredential],
    /// Emulator time, seconds since the epoch.
    pub now: i64,
    pub skew: i64,
    pub max_lifetime: i64,
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAssertion {
    pub algorithm: Algorithm,
    /// `true` when the key was selected by `x5t#S256`, `false` for `x5t`.
    pub sha256_thumbprint: bool,
    pub jti: String,
}

fn malformed(why: &str) -> EntraError {
    EntraError::invalid_client(50027, format!("JWT token is invalid or malformed. {why}"))
}

/// Decodes a base64url segment, padded or not (MSAL Python pads thumbprints).
fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn json_object(segment: &str, what: &str) -> Result<Map<String, Value>, EntraError> {
    let bytes =
        b64url(segment).ok_or_else(|| malformed(&format!("The {what} is not base64url.")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed(&format!("The {what} is not a JSON object."))),
    }
}

/// A JSON number as seconds; MSAL sends floats (`time.time()`).
pub(crate) fn seconds(v: &Value) -> Option<i64> {
    let f = v.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then_some(f as i64)
}

fn thumbprint_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Checks a client assertion against the app's registered certificates.
pub fn verify(assertion: &str, cx: &AssertionContext<'_>) -> Result<VerifiedAssertion, EntraError> {
    let signed = verify_signed(assertion, cx.keys, cx.now, cx.skew)?;
    check_claims(&signed.claims, cx)?;
    let jti = signed
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(VerifiedAssertion {
        algorithm: signed.algorithm,
        sha256_thumbprint: signed.sha256_thumbprint,
        jti,
    })
}

/// A JWT whose signature verified against one of the registered keys;
/// its claims are not checked yet.
pub struct SignedJwt {
    pub algorithm: Algorithm,
    pub sha256_thumbprint: bool,
    pub claims: Map<String, Value>,
}

/// Parses a JWS, selects the registered certificate by thumbprint and
/// verifies the signature. Also used for Graph's `addKey` proof tokens.
pub fn verify_signed(
    assertion: &str,
    keys: &[KeyCredential],
    now: i64,
    skew: i64,
) -> Result<SignedJwt, EntraError> {
    let parts: Vec<&str> = assertion.trim().split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(malformed("A JWS must have three parts."));
    };
    let header = json_object(header_b64, "header")?;
    let claims = json_object(payload_b64, "payload")?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    let algorithm = match alg_name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        other => {
            return Err(EntraError::invalid_client(
                5002738,
                format!(
                    "Invalid JWT token. '{other}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,RS384,RS512,PS256,PS384,PS512'"
                ),
            ));
        }
    };

    if b64url(signature_b64).is_none_or(|s| s.is_empty()) {
        return Err(malformed("The signature is missing or not base64url."));
    }

    // The key is selected by thumbprint: x5t#S256 (SHA-256) or x5t (SHA-1).
    let (key, sha256) = select_key(&header, keys)?;
    if let Some(x5c) = header.get("x5c") {
        check_x5c(x5c, key)?;
    }
    if now < key.start.unix_timestamp() - skew || now > key.end.unix_timestamp() + skew {
        return Err(EntraError::invalid_client(
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The certificate with thumbprint '{}' is expired or not yet valid on the application.]",
                thumbprint_hex(&key.sha1)
            ),
        ));
    }

    let message = &assertion.trim()[..header_b64.len() + 1 + payload_b64.len()];
    let signature = signature_b64.trim_end_matches('=');
    let decoding = DecodingKey::from_rsa_der(&key.public_key_der);
    if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), &decoding, algorithm)
        .unwrap_or(false)
    {
        return Err(EntraError::invalid_client(
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{}']",
                thumbprint_hex(&key.sha1)
            ),
        ));
    }
    Ok(SignedJwt {
        algorithm,
        sha256_thumbprint: sha256,
        claims,
    })
}

fn select_key<'k>(
    header: &Map<String, Value>,
    keys: &'k [KeyCredential],
) -> Result<(&'k KeyCredential, bool), EntraError> {
    let not_found = |tp: &str| {
        EntraError::invalid_client(
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{tp}']"
            ),
        )
    };
    if let Some(v) = header.get("x5t#S256") {
        let tp = v
            .as_str()
            .and_then(b64url)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed("x5t#S256 is not a SHA-256 thumbprint."))?;
        return keys
            .iter()
            .find(|k| k.sha256[..] == tp[..])
            .map(|k| (k, true))
            .ok_or_else(|| not_found(&thumbprint_hex(&tp)));
    }
    if let Some(v) = header.get("x5t") {
        let tp = v
            .as_str()
            .and_then(b64url)
            .filter(|b| b.len() == 20)
            .ok_or_else(|| malformed("x5t is not a SHA-1 thumbprint."))?;
        return keys
            .iter()
            .find(|k| k.sha1[..] == tp[..])
            .map(|k| (k, false))
            .ok_or_else(|| not_found(&thumbprint_hex(&tp)));
    }
    Err(not_found(""))
}

/// `x5c` (sent by MSAL with `public_certificate`) must carry the registered
/// certificate first.
fn check_x5c(x5c: &Value, key: &KeyCredential) -> Result<(), EntraError> {
    let first = match x5c {
        Value::Array(a) => a.first().and_then(Value::as_str),
        // MSAL Python has sent a bare string in some versions.
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    let der = first
        .and_then(|s| {
            STANDARD
                .decode(s.split_whitespace().collect::<String>())
                .ok()
        })
        .ok_or_else(|| malformed("x5c is not a list of base64 certificates."))?;
    if sha1::Sha1::digest(&der)[..] != key.sha1[..] {
        return Err(EntraError::invalid_client(
            700027,
            "Client assertion failed signature validation. [Reason - The certificate in x5c does not match the thumbprint.]",
        ));
    }
    Ok(())
}

fn check_claims(claims: &Map<String, Value>, cx: &AssertionContext<'_>) -> Result<(), EntraError> {
    // Entra wants one audience, the token endpoint; a list is refused even
    // when it names the endpoint (certificate-credentials page: "aud" is
    // the token endpoint URL).
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => cx.audiences.iter().any(|x| x.eq_ignore_ascii_case(a)),
        _ => false,
    };
    if !aud_ok {
        return Err(EntraError::invalid_client(
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    for claim in ["iss", "sub"] {
        let v = claims
            .get(claim)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !v.eq_ignore_ascii_case(cx.client_id) {
            return Err(EntraError::invalid_client(
                700021,
                format!(
                    "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . ({claim} claim)"
                ),
            ));
        }
    }
    if claims
        .get("jti")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(malformed(
            "The client assertion must contain a 'jti' claim.",
        ));
    }
    let time = |name: &str| -> Result<Option<i64>, EntraError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => seconds(v)
                .map(Some)
                .ok_or_else(|| malformed(&format!("The '{name}' claim is not a number."))),
        }
    };
    let exp = time("exp")?
        .ok_or_else(|| malformed("The client assertion must contain an 'exp' claim."))?;
    let nbf = time("nbf")?;
    let iat = time("iat")?;
    let valid_from = nbf.or(iat).unwrap_or(cx.now);
    let out_of_range = exp + cx.skew < cx.now
        || nbf.is_some_and(|t| t - cx.skew > cx.now)
        || iat.is_some_and(|t| t - cx.skew > cx.now)
        || exp - valid_from > cx.max_lifetime;
    if out_of_range {
        return Err(EntraError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                fmt_time(cx.now),
                fmt_time(valid_from),
                fmt_time(exp)
            ),
        ));
    }
    Ok(())
}

fn fmt_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(crate::clock::iso)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cx<'a>(keys: &'a [KeyCredential], aud: &'a [String]) -> AssertionContext<'a> {
        AssertionContext {
            client_id: "c",
            audiences: aud,
            keys,
            now: 1_700_000_000,
            skew: 300,
            max_lifetime: 86_400,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary text never panics and always yields an Entra 401.
        #[test]
        fn arbitrary_text_is_rejected(s in ".{0,400}") {
            let aud = vec!["a".to_string()];
            let err = verify(&s, &cx(&[], &aud)).unwrap_err();
            prop_assert_eq!(err.status.as_u16(), 401);
        }

        /// Three base64url segments of arbitrary JSON-ish content never panic.
        #[test]
        fn arbitrary_segments_are_rejected(h in prop::collection::vec(any::<u8>(), 0..200),
                                           p in prop::collection::vec(any::<u8>(), 0..200),
                                           s in prop::collection::vec(any::<u8>(), 0..300)) {
            let t = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), URL_SAFE_NO_PAD.encode(s));
            let aud = vec!["a".to_string()];
            let err = verify(&t, &cx(&[], &aud)).unwrap_err();
            prop_assert!([50027, 5002738, 700027].contains(&err.code), "code {}", err.code);
        }

        /// Structured headers with random alg/thumbprint/x5c values never panic.
        #[test]
        fn structured_headers_are_rejected(alg in prop::sample::select(vec!["RS256", "PS256", "HS256", "none", "ES256", ""]),
                                           x5t in proptest::option::of("[A-Za-z0-9_=-]{0,50}"),
                                           s256 in proptest::option::of("[A-Za-z0-9_=-]{0,60}"),
                                           x5c in proptest::option::of(".{0,40}"),
                                           exp in proptest::option::of(any::<f64>())) {
            let mut h = serde_json::json!({"alg": alg, "typ": "JWT"});
            if let Some(v) = x5t { h["x5t"] = v.into(); }
            if let Some(v) = s256 { h["x5t#S256"] = v.into(); }
            if let Some(v) = x5c { h["x5c"] = serde_json::json!([v]); }
            let p = serde_json::json!({"aud": "a", "iss": "c", "sub": "c", "jti": "j", "exp": exp});
            let t = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(h.to_string()), URL_SAFE_NO_PAD.encode(p.to_string()));
            let aud = vec!["a".to_string()];
            prop_assert!(verify(&t, &cx(&[], &aud)).is_err());
        }
    }

    #[test]
    fn none_and_hmac_are_unsupported_algorithms() {
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","x5t":"AAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#
            ));
            let p = URL_SAFE_NO_PAD.encode("{}");
            let aud = vec![];
            let err = verify(&format!("{h}.{p}.c2ln"), &cx(&[], &aud)).unwrap_err();
            assert_eq!(err.code, 5002738, "{alg}");
        }
    }

    #[test]
    fn padded_and_unpadded_base64url_decode_alike() {
        assert_eq!(b64url("YWJj"), b64url("YWJj"));
        assert_eq!(b64url("YWI="), b64url("YWI"));
        assert_eq!(b64url("YWI=").unwrap(), b"ab");
    }
}
