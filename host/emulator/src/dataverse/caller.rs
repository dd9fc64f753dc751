//! Who calls: the token's principal mapped to its `systemuser`, with users
//! and application users provisioned on first use, as Dataverse's user sync
//! does.

use axum::http::StatusCode;
use parking_lot::RwLock;
use serde_json::Value;
use uuid::Uuid;

use super::error::{DvError, DvResult};
use super::store::{Caller, EnvData, Row};
use crate::Emulator;
use crate::state::{Directory, Environment, User};

/// 403 0x80040220: the caller lacks a privilege.
pub(super) fn privilege_denied(message: impl Into<String>) -> DvError {
    DvError::new(StatusCode::FORBIDDEN, "0x80040220", message)
}

/// The principal a token names: a user (`oid`, delegated tokens carry
/// `scp`) or an application (`appid`).
struct Principal {
    is_user: bool,
    id: Uuid,
}

impl Principal {
    fn of(claims: &Value) -> DvResult<Principal> {
        let is_user = claims.get("scp").is_some();
        let id = claims
            .get(if is_user { "oid" } else { "appid" })
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| privilege_denied("The token names no principal."))?;
        Ok(Principal { is_user, id })
    }

    /// The `systemuser` column that holds the principal's id.
    fn column(&self) -> &'static str {
        if self.is_user {
            "azureactivedirectoryobjectid"
        } else {
            "applicationid"
        }
    }
}

/// Who is provisioned for a principal without a `systemuser` yet.
enum Provision {
    /// A user of the tenant who may reach the environment; `true` when
    /// System Administrator there.
    User(User, bool),
    /// An application user, with its display name.
    App(String),
}

/// Maps the token's principal to its systemuser, provisioning users of
/// the tenant who may reach the environment (as Dataverse's user sync does).
pub(super) fn resolve_caller(
    emu: &Emulator,
    env: &Environment,
    data: &RwLock<EnvData>,
    claims: &Value,
) -> DvResult<Caller> {
    let principal = Principal::of(claims)?;
    let existing = find(&data.read(), &principal);
    let (uid, row) = match existing {
        Some(found) => found,
        None => {
            let provision = provision_for(emu, env, &principal)?;
            provision_systemuser(&mut data.write(), &principal, provision)
        }
    };
    caller_of(&data.read(), uid, &row)
}

fn find(d: &EnvData, principal: &Principal) -> Option<(Uuid, Row)> {
    let id = principal.id.to_string();
    d.rows("systemuser").and_then(|t| {
        t.rows
            .iter()
            .find(|(_, r)| r.values.get(principal.column()).and_then(Value::as_str) == Some(&id))
            .map(|(uid, r)| (*uid, r.clone()))
    })
}

/// Whom to provision for `principal`, or why nobody.
fn provision_for(emu: &Emulator, env: &Environment, principal: &Principal) -> DvResult<Provision> {
    let id = principal.id;
    let dir = emu.dir.read();
    if principal.is_user {
        return dir
            .user_by_id(id)
            .filter(|u| dir.user_can_reach(env, u))
            .map(|u| {
                let admin = env.admins.contains(&u.id) || (env.admins.is_empty() && u.admin);
                Provision::User(u.clone(), admin)
            })
            .ok_or_else(|| {
                privilege_denied(format!(
                    "The user with Microsoft Entra object id {id} is not a member of the organization {}.",
                    env.id
                ))
            });
    }
    if !env.app_users.contains(&id) {
        return Err(privilege_denied(format!(
            "The application user for application id {id} does not exist in the organization {}. Create an application user and give it a security role.",
            env.id
        )));
    }
    Ok(Provision::App(app_name(&dir, id)))
}

/// Inserts the `systemuser` with its security role: System Administrator
/// for admins and application users, Basic User otherwise.
fn provision_systemuser(
    d: &mut EnvData,
    principal: &Principal,
    provision: Provision,
) -> (Uuid, Row) {
    let uid = Uuid::new_v4();
    let bu = d.root_business_unit;
    let (values, role): (Vec<(&str, Value)>, Uuid) = match provision {
        Provision::User(user, admin) => (
            vec![
                ("fullname", user.display_name.clone().into()),
                ("domainname", user.upn.clone().into()),
                ("internalemailaddress", user.upn.clone().into()),
                ("azureactivedirectoryobjectid", user.id.to_string().into()),
                ("isdisabled", false.into()),
            ],
            if admin { d.sysadmin_role } else { d.basic_role },
        ),
        Provision::App(name) => (
            vec![
                ("fullname", name.into()),
                ("applicationid", principal.id.to_string().into()),
                ("isdisabled", false.into()),
                ("accessmode", 4.into()),
            ],
            d.sysadmin_role,
        ),
    };
    d.insert_system(
        "systemuser",
        uid,
        &values,
        &[("_businessunitid_value", "businessunit", bu)],
    );
    d.link(
        "systemuserroles_association",
        "systemuser",
        "role",
        uid,
        role,
        true,
    );
    let row = d.get("systemuser", &uid).cloned().expect("just inserted");
    (uid, row)
}

/// The caller a `systemuser` row stands for, if enabled and holding a role.
fn caller_of(d: &EnvData, uid: Uuid, row: &Row) -> DvResult<Caller> {
    if row.values.get("isdisabled") == Some(&Value::Bool(true)) {
        return Err(privilege_denied(format!(
            "The user with id {uid} is disabled."
        )));
    }
    let roles = d.linked("systemuserroles_association", "systemuser", "role", uid);
    if roles.is_empty() {
        return Err(privilege_denied(format!(
            "Principal user (Id={uid}, type=8, roleCount=0) is missing prvReadAccount privilege. Assign a security role to the user."
        )));
    }
    let business_unit = row
        .values
        .get("_businessunitid_value")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or(d.root_business_unit);
    Ok(Caller {
        systemuser: uid,
        business_unit,
        is_admin: roles.contains(&d.sysadmin_role),
    })
}

/// The name Dataverse gives an application user: its application's display
/// name (the application id when the directory does not know it).
pub(super) fn app_name(dir: &Directory, app_id: Uuid) -> String {
    dir.apps
        .iter()
        .find(|a| a.app_id == app_id)
        .map(|a| a.display_name.clone())
        .unwrap_or_else(|| app_id.to_string())
}
