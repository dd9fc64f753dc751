//! A connection's Dataverse application user, created with a signed-in
//! System Administrator's token ("Manage application users": a `systemuser`
//! with the app's `applicationid` in the root business unit, and a security
//! role through `systemuserroles_association`).

use std::time::Instant;

use serde_json::{Value, json};
use uuid::Uuid;

use super::{AdminError, odata_string, send, who};
use crate::endpoint::Environment;
use crate::identity::{DeviceSignIn, HttpClient, UserTokens};

const SERVICE: &str = "Dataverse";
/// The role whose holders may create application users.
const SYSTEM_ADMINISTRATOR: &str = "System Administrator";

/// Dataverse operations in one environment with a signed-in user's token.
pub struct EnvironmentAdmin {
    environment: Environment,
    tokens: UserTokens,
    http: HttpClient,
}

impl std::fmt::Debug for EnvironmentAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentAdmin")
            .field("environment", &self.environment.as_str())
            .field("user", &self.tokens.upn)
            .finish_non_exhaustive()
    }
}

fn uuid_of(v: &Value, what: &str) -> Result<Uuid, AdminError> {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| AdminError::Unexpected(format!("Dataverse answered no {what}")))
}

impl EnvironmentAdmin {
    /// A session in `environment` for the user of `user`, whose refresh
    /// token is redeemed by `sign_in` for a token of that environment only.
    pub async fn sign_in(
        sign_in: &DeviceSignIn,
        user: &UserTokens,
        environment: Environment,
        http: HttpClient,
        deadline: Instant,
    ) -> Result<EnvironmentAdmin, AdminError> {
        let scope = format!("{}/user_impersonation", environment.as_str());
        let tokens = sign_in.refresh(user, &[&scope], deadline).await?;
        Ok(EnvironmentAdmin {
            environment,
            tokens,
            http,
        })
    }

    fn who(&self) -> String {
        who(&self.tokens)
    }

    /// `<environment>/api/data/v9.2/<path>?<query>`; the path is built here
    /// from constants and ids, so the token only ever goes to the environment.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url, AdminError> {
        let mut url = self
            .environment
            .web_api()
            .join(path)
            .map_err(|e| AdminError::Unexpected(format!("Web API URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Value, AdminError> {
        let request = self.http.inner().get(self.url(path, query)?);
        let (body, _) = send(SERVICE, request, self.tokens.access_token(), deadline).await?;
        Ok(body)
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        deadline: Instant,
    ) -> Result<reqwest::header::HeaderMap, AdminError> {
        let request = self
            .http
            .inner()
            .post(self.url(path, &[])?)
            .header("OData-Version", "4.0")
            .json(&body);
        let (_, headers) = send(SERVICE, request, self.tokens.access_token(), deadline).await?;
        Ok(headers)
    }

    /// The names of the security roles of `systemuser`.
    async fn role_names(&self, user: Uuid, deadline: Instant) -> Result<Vec<Value>, AdminError> {
        let path = format!("systemusers({user})/systemuserroles_association");
        let body = self
            .get(&path, &[("$select", "roleid,name")], deadline)
            .await?;
        Ok(body["value"].as_array().cloned().unwrap_or_default())
    }

    /// Refuses, before anything is created, a user who is not a System
    /// Administrator of the environment.
    pub async fn check_system_administrator(&self, deadline: Instant) -> Result<(), AdminError> {
        let denied = |why: String| AdminError::NotAdministrator {
            who: self.who(),
            why,
        };
        let me = match self.get("WhoAmI", &[], deadline).await {
            Ok(me) => me,
            Err(e) if e.status() == Some(403) || e.status() == Some(401) => {
                return Err(denied(format!(
                    "the environment {} refused them: {e}",
                    self.environment
                )));
            }
            Err(e) => return Err(e),
        };
        let user = uuid_of(&me["UserId"], "UserId")?;
        let roles = self.role_names(user, deadline).await?;
        if roles.iter().any(|r| r["name"] == SYSTEM_ADMINISTRATOR) {
            Ok(())
        } else {
            Err(denied(format!(
                "creating an application user needs the {SYSTEM_ADMINISTRATOR} role in {}",
                self.environment
            )))
        }
    }

    /// The application user of `app_id`, if it exists.
    pub async fn application_user(
        &self,
        app_id: Uuid,
        deadline: Instant,
    ) -> Result<Option<Uuid>, AdminError> {
        let filter = format!("applicationid eq {app_id}");
        let body = self
            .get(
                "systemusers",
                &[("$select", "systemuserid"), ("$filter", &filter)],
                deadline,
            )
            .await?;
        match body["value"].as_array().and_then(|v| v.first()) {
            Some(row) => uuid_of(&row["systemuserid"], "systemuserid").map(Some),
            None => Ok(None),
        }
    }

    async fn root_business_unit(&self, deadline: Instant) -> Result<Uuid, AdminError> {
        let body = self
            .get(
                "businessunits",
                &[
                    ("$select", "businessunitid"),
                    ("$filter", "_parentbusinessunitid_value eq null"),
                ],
                deadline,
            )
            .await?;
        uuid_of(&body["value"][0]["businessunitid"], "root business unit")
    }

    /// Creates the application user of `app_id` in the root business unit.
    pub async fn create_application_user(
        &self,
        app_id: Uuid,
        deadline: Instant,
    ) -> Result<Uuid, AdminError> {
        let bu = self.root_business_unit(deadline).await?;
        let body = json!({
            "applicationid": app_id,
            "businessunitid@odata.bind": format!("/businessunits({bu})"),
        });
        let headers = self.post("systemusers", body, deadline).await?;
        let id = headers
            .get("OData-EntityId")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.rsplit_once('('))
            .map(|(_, id)| id.trim_end_matches(')'));
        match id.and_then(|s| Uuid::parse_str(s).ok()) {
            Some(id) => Ok(id),
            // No id in the answer: look it up.
            None => self
                .application_user(app_id, deadline)
                .await?
                .ok_or_else(|| {
                    AdminError::Unexpected("the application user was not created".into())
                }),
        }
    }

    /// The id of the security role `name` of the root business unit.
    pub async fn role(&self, name: &str, deadline: Instant) -> Result<Uuid, AdminError> {
        let bu = self.root_business_unit(deadline).await?;
        let filter = format!(
            "name eq {} and _businessunitid_value eq {bu}",
            odata_string(name)
        );
        let body = self
            .get(
                "roles",
                &[("$select", "roleid"), ("$filter", &filter)],
                deadline,
            )
            .await?;
        match body["value"].as_array().and_then(|v| v.first()) {
            Some(row) => uuid_of(&row["roleid"], "roleid"),
            None => Err(AdminError::RoleNotFound(name.into())),
        }
    }

    /// Whether `user` holds `role`.
    pub async fn has_role(
        &self,
        user: Uuid,
        role: Uuid,
        deadline: Instant,
    ) -> Result<bool, AdminError> {
        let roles = self.role_names(user, deadline).await?;
        let role = role.to_string();
        Ok(roles.iter().any(|r| {
            r["roleid"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&role))
        }))
    }

    /// Gives `user` the security role `role`.
    pub async fn assign_role(
        &self,
        user: Uuid,
        role: Uuid,
        deadline: Instant,
    ) -> Result<(), AdminError> {
        let target = self.url(&format!("roles({role})"), &[])?;
        let path = format!("systemusers({user})/systemuserroles_association/$ref");
        self.post(&path, json!({ "@odata.id": target.as_str() }), deadline)
            .await
            .map(drop)
    }
}
