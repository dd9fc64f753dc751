//! Who is calling: the admin key (configured by the operator, opens every
//! route) or a tenant's API key (opens its own tenant's routes, within the
//! key's rights). Keys are `Authorization: Bearer dvk_<id>_<secret>`; the
//! server looks the key's record up by its public id and lets the
//! secret-owning crate verify it against the stored hash.
//!
//! A tenant key used on another tenant gets the same 404 as a tenant that
//! does not exist: it learns nothing about other tenants.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use dvhost_dataverse::PresentedApiKey;
use dvhost_store::{ApiKeyId, ApiKeyRight, ApiKeyRights, Name, Tenant, TenantId};

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator's admin key.
    Admin,
    /// A tenant's API key.
    Tenant {
        /// The tenant it opens.
        tenant: TenantId,
        /// Its public id (for the audit log).
        key: ApiKeyId,
        /// What it allows.
        rights: ApiKeyRights,
    },
}

impl Caller {
    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Tenant { key, .. } => format!("api_key:{}", key.as_str()),
        }
    }

    /// The tenant named `name`, if this caller may use it with `right`:
    /// 404 when the tenant does not exist or is another tenant's, 403 when
    /// the key lacks the right.
    pub async fn tenant(
        &self,
        state: &AppState,
        name: &str,
        right: ApiKeyRight,
    ) -> Result<Tenant, ApiError> {
        let unknown = || ApiError::not_found(format!("there is no tenant named {name:?}"));
        let name = Name::parse(name).map_err(|_| unknown())?;
        let tenant = state.tenant_by_name(&name).await?.ok_or_else(unknown)?;
        match self {
            Caller::Admin => Ok(tenant),
            Caller::Tenant { tenant: own, .. } if *own != tenant.id => Err(unknown()),
            Caller::Tenant { rights, .. } if !rights.contains(right) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key does not have the {} right", right.as_str()),
            )),
            Caller::Tenant { .. } => Ok(tenant),
        }
    }

    /// Refuses anyone but the admin key.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs the admin key",
            )),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The `Bearer` value of `Authorization`.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send an API key as `Authorization: Bearer dvk_...`"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            "the Authorization header is not `Bearer <key>`",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Caller, Self::Rejection> {
        authenticate(parts, state).await.map_err(|e| {
            let status = e.status;
            let mut response = axum::response::IntoResponse::into_response(e);
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"dvhost\""),
                );
            }
            response
        })
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let presented = PresentedApiKey::parse(bearer(parts)?)
        .map_err(|_| unauthorized("the key is not a dvhost API key (dvk_<id>_<secret>)"))?;
    if let Some(admin) = state.admin_key_hash()
        && presented.verify(admin)
    {
        return Ok(Caller::Admin);
    }
    let invalid = || unauthorized("the API key is unknown or revoked");
    let id = ApiKeyId::parse(presented.id()).map_err(|_| invalid())?;
    let record = state.api_key(&id).await?.ok_or_else(invalid)?;
    if !record.is_live() || !presented.verify(&record.hash) {
        return Err(invalid());
    }
    Ok(Caller::Tenant {
        tenant: record.tenant,
        key: record.id,
        rights: record.rights,
    })
}
