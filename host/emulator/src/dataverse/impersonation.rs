//! Impersonation (`CallerObjectId`, `MSCRMCallerID`) and the
//! `MSCRM.BypassCustomPluginExecution` privilege check ("Impersonate
//! another user using the Web API",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/impersonate-another-user-web-api>;
//! "Bypass custom Dataverse logic",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/bypass-custom-business-logic>).

use axum::http::HeaderMap;
use parking_lot::RwLock;
use serde_json::{Value, json};
use uuid::Uuid;

use super::caller::{privilege_denied, resolve_caller};
use super::error::{DvError, DvResult};
use super::store::{Caller, EnvData};
use crate::Emulator;
use crate::state::Environment;

/// The caller a request acts as: the impersonated user when the headers
/// name one (only System Administrators may), else `caller`; checks the
/// bypass privilege of whoever that is.
pub(super) fn effective_caller(
    emu: &Emulator,
    env: &Environment,
    data: &RwLock<EnvData>,
    caller: Caller,
    headers: &HeaderMap,
) -> DvResult<Caller> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let claims = match (header("CallerObjectId"), header("MSCRMCallerID")) {
        (None, None) => None,
        (by_oid, by_id) => {
            if !caller.is_admin {
                return Err(privilege_denied(format!(
                    "Principal user (Id={}, type=8) is missing prvActOnBehalfOfAnotherUser privilege (CannotActOnBehalfOfAnotherUser).",
                    caller.systemuser
                )));
            }
            Some(match by_oid {
                Some(oid) => json!({"scp": "user_impersonation", "oid": impersonation_id(oid)?}),
                None => claims_of_systemuser(data, impersonation_id(by_id.unwrap_or_default())?)?,
            })
        }
    };
    let effective = match claims {
        Some(claims) => resolve_caller(emu, env, data, &claims)?,
        None => caller,
    };
    if header("MSCRM.BypassCustomPluginExecution").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && !effective.is_admin
    {
        return Err(privilege_denied(format!(
            "Principal user (Id={}, type=8) is missing prvBypassCustomPlugins privilege (Id=148a9eaf-d0c4-4196-9852-c3a38e35f6a1).",
            effective.systemuser
        )));
    }
    Ok(effective)
}

fn impersonation_id(v: &str) -> DvResult<Uuid> {
    Uuid::parse_str(v).map_err(|_| {
        DvError::bad_request(
            "0x80040203",
            format!("'{v}' is not a valid id for impersonation."),
        )
    })
}

/// The token claims that would name the `systemuser` `uid`: its user's
/// object id, or its application id.
fn claims_of_systemuser(data: &RwLock<EnvData>, uid: Uuid) -> DvResult<Value> {
    let d = data.read();
    let row = d
        .get("systemuser", &uid)
        .ok_or_else(|| DvError::not_found("systemuser", &uid))?;
    let column = |c: &str| row.values.get(c).and_then(Value::as_str).map(String::from);
    match (
        column("azureactivedirectoryobjectid"),
        column("applicationid"),
    ) {
        (Some(o), _) => Ok(json!({"scp": "user_impersonation", "oid": o})),
        (None, Some(a)) => Ok(json!({"appid": a})),
        _ => Err(privilege_denied(format!(
            "The user {uid} cannot be impersonated."
        ))),
    }
}
