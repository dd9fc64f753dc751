//! Global Discovery: the environments a signed-in user can reach, so an
//! operator picks one from a list instead of typing its URL ("Discover the
//! URL for your organization", Dataverse developer guide).

use std::time::Instant;

use serde::Deserialize;

use super::{HttpClient, IdentityError, UserTokens};
use crate::endpoint::{DiscoveryService, Environment};
use crate::retry::{self, Repeat};

/// One environment, as Global Discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The environment id (a GUID).
    pub id: String,
    /// The unique name, such as `unq3a7...` or the emulator's `contoso-dev`.
    pub unique_name: String,
    /// The display name.
    pub friendly_name: String,
    /// The environment URL, checked like any configured one.
    pub url: Environment,
    /// The Entra tenant it belongs to.
    pub tenant_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    id: String,
    unique_name: String,
    #[serde(default)]
    friendly_name: String,
    url: String,
    #[serde(default)]
    tenant_id: Option<String>,
}

/// A client of the Global Discovery service.
#[derive(Debug, Clone)]
pub struct Discovery {
    base: DiscoveryService,
    http: HttpClient,
}

impl Discovery {
    /// A client of the Global Discovery service at `base`.
    pub fn new(base: DiscoveryService, http: HttpClient) -> Discovery {
        Discovery { base, http }
    }

    /// The environments the user of `tokens` can reach. The tokens must be
    /// for Global Discovery (`https://globaldisco.crm.dynamics.com/user_impersonation`).
    /// An entry whose URL is not a usable environment URL is an error, not
    /// skipped: it would mean the service is not what it claims.
    pub async fn instances(
        &self,
        tokens: &UserTokens,
        deadline: Instant,
    ) -> Result<Vec<Instance>, IdentityError> {
        // The access token goes only to the Discovery service of the
        // authority that issued it.
        if !self.base.trusts(&tokens.issuer.authority) {
            return Err(IdentityError::Endpoint(crate::EndpointError::Mismatch(
                "these tokens were not issued for this Global Discovery service",
            )));
        }
        let url = self.base.instances();
        let body: serde_json::Value =
            retry::run(&retry::TOKEN, Repeat::Safe, deadline, "discovery", |_| {
                let url = url.clone();
                async move {
                    let resp = self
                        .http
                        .inner()
                        .get(url)
                        .bearer_auth(tokens.access_token())
                        .header("Accept", "application/json")
                        .send()
                        .await
                        .map_err(|e| IdentityError::Transport(e.without_url().to_string()))?;
                    let status = resp.status().as_u16();
                    let retry_after = crate::seconds::retry_after(resp.headers());
                    let body = super::read_json(resp).await.unwrap_or_default();
                    if status == 200 {
                        Ok(body)
                    } else {
                        Err(super::entra_error(status, &body, retry_after))
                    }
                }
            })
            .await?;
        let wire: Vec<Wire> = serde_json::from_value(body["value"].clone()).map_err(|e| {
            IdentityError::Transport(format!("unexpected Global Discovery answer: {e}"))
        })?;
        wire.into_iter()
            .map(|w| {
                Ok(Instance {
                    url: Environment::parse(&w.url)?,
                    id: w.id,
                    unique_name: w.unique_name,
                    friendly_name: w.friendly_name,
                    tenant_id: w.tenant_id,
                })
            })
            .collect()
    }
}
