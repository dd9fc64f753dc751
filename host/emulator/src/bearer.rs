//! Validation of bearer tokens this emulator issued, for the services that
//! receive them (Graph, Global Discovery, later the Dataverse Web API).

use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::Emulator;

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BearerError {
    Missing,
    Invalid,
    Expired,
    WrongAudience,
}

impl BearerError {
    pub fn describe(&self) -> &'static str {
        match self {
            BearerError::Missing => "No bearer token was sent.",
            BearerError::Invalid => "The bearer token is malformed or its signature is invalid.",
            BearerError::Expired => "The bearer token has expired.",
            BearerError::WrongAudience => "The bearer token was issued for another audience.",
        }
    }
}

impl Emulator {
    /// Checks the `Authorization: Bearer` token: signed by this emulator,
    /// within `nbf`/`exp` on the emulator clock, and `aud` in `audiences`.
    pub(crate) fn bearer_claims(
        &self,
        headers: &HeaderMap,
        audiences: &[&str],
    ) -> Result<Value, BearerError> {
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(BearerError::Missing)?;
        let token = raw
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(BearerError::Missing)?;
        let claims = self.signing.verify(token).ok_or(BearerError::Invalid)?;
        let now = self.now().unix_timestamp();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(BearerError::Invalid)?;
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if now >= exp || now + 300 < nbf {
            return Err(BearerError::Expired);
        }
        let aud = claims
            .get("aud")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_end_matches('/');
        if !audiences
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(aud))
        {
            return Err(BearerError::WrongAudience);
        }
        Ok(claims)
    }
}
