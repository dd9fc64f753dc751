//! Validation of bearer tokens this emulator issued, for the services that
//! receive them (Graph, Global Discovery, the Dataverse Web API).
//!
//! Like Microsoft's resource servers, a token is only accepted when it was
//! issued by the tenant the resource belongs to: the v1.0 access tokens
//! carry `iss` = `https://sts.windows.net/{tid}/` and `tid` ("Access token
//! claims reference",
//! <https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>).

use axum::http::{HeaderMap, header};
use serde_json::Value;
use uuid::Uuid;

use crate::Emulator;

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` header.
    #[error("No bearer token was sent.")]
    Missing,
    /// Not a token this emulator signed.
    #[error("The bearer token is malformed or its signature is invalid.")]
    Invalid,
    /// Outside `nbf`/`exp`.
    #[error("The bearer token has expired.")]
    Expired,
    /// `aud` names another resource.
    #[error("The bearer token was issued for another audience.")]
    WrongAudience,
    /// `iss`/`tid` name a tenant other than the resource's (or none known).
    #[error("The bearer token was issued by another tenant.")]
    WrongTenant,
}

/// The issuing tenant of verified claims: `tid`, which must agree with `iss`.
pub(crate) fn issuing_tenant(claims: &Value) -> Result<Uuid, BearerError> {
    let tid = claims
        .get("tid")
        .and_then(Value::as_str)
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or(BearerError::WrongTenant)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !iss.eq_ignore_ascii_case(&format!("https://sts.windows.net/{tid}/")) {
        return Err(BearerError::WrongTenant);
    }
    Ok(tid)
}

impl Emulator {
    /// Checks the `Authorization: Bearer` token: signed by this emulator,
    /// within `nbf`/`exp` on the emulator clock, `aud` in `audiences`, and
    /// issued by a tenant of the directory (`iss`/`tid`). Callers that serve
    /// one tenant compare [`issuing_tenant`] with it, or use
    /// [`Emulator::bearer_claims_for`].
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
        let tid = issuing_tenant(&claims)?;
        if self.dir.read().tenant_by_id(tid).is_none() {
            return Err(BearerError::WrongTenant);
        }
        Ok(claims)
    }

    /// [`Emulator::bearer_claims`] for a resource of `tenant`: a token from
    /// any other tenant is refused.
    pub(crate) fn bearer_claims_for(
        &self,
        headers: &HeaderMap,
        audiences: &[&str],
        tenant: Uuid,
    ) -> Result<Value, BearerError> {
        let claims = self.bearer_claims(headers, audiences)?;
        if issuing_tenant(&claims)? != tenant {
            return Err(BearerError::WrongTenant);
        }
        Ok(claims)
    }
}
