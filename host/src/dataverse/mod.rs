//! The Dataverse Web API client: requests with the standard headers, OData
//! errors mapped to typed errors, authentication through the connection's
//! [`TokenSource`]. (Typed CRUD, queries, batch and resilience build on
//! [`Client::send`].)

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use crate::identity::{IdentityError, TokenSource};

/// A Web API failure. Carries no token, key or Authorization header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataverseError {
    /// Dataverse answered with an error body.
    #[error("Dataverse returned HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        /// Hex code such as `0x80040217` (may be empty).
        code: String,
        message: String,
        /// Seconds to wait, on 429.
        retry_after: Option<u64>,
    },
    /// Getting a token failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The request could not be sent or the answer read.
    #[error("the Dataverse request failed: {0}")]
    Transport(String),
    /// The caller's deadline passed.
    #[error("the deadline passed before Dataverse answered")]
    Deadline,
}

/// The `WhoAmI` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WhoAmI {
    pub user_id: uuid::Uuid,
    pub business_unit_id: uuid::Uuid,
    pub organization_id: uuid::Uuid,
}

/// A client for one environment.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `<environment URL>/api/data/v9.2/`.
    api: String,
    tokens: Arc<TokenSource>,
}

impl Client {
    /// `environment_url` is the organization URL, e.g. `https://contoso.crm.dynamics.com`.
    pub fn new(environment_url: &str, tokens: Arc<TokenSource>, http: reqwest::Client) -> Self {
        Client {
            http,
            api: format!("{}/api/data/v9.2/", environment_url.trim_end_matches('/')),
            tokens,
        }
    }

    /// Sends one request (path relative to `/api/data/v9.2/`) with the
    /// standard OData headers and a request id, and returns the JSON body
    /// (`Value::Null` for 204).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<(u16, reqwest::header::HeaderMap, Value), DataverseError> {
        let token = self.tokens.token(deadline).await?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token.secret())
            .header("Accept", "application/json")
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
        if let Some(b) = body {
            req = req.json(b);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let resp = tokio::time::timeout(remaining, req.send())
            .await
            .map_err(|_| DataverseError::Deadline)?
            .map_err(|e| DataverseError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| DataverseError::Transport(e.without_url().to_string()))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status >= 400 {
            if status == 401 {
                self.tokens.invalidate();
            }
            let retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(DataverseError::Api {
                status,
                code: json["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                message: json["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                retry_after,
            });
        }
        Ok((status, headers, json))
    }

    /// `WhoAmI`: which systemuser the connection is.
    pub async fn who_am_i(&self, deadline: Instant) -> Result<WhoAmI, DataverseError> {
        let (_, _, body) = self
            .send(reqwest::Method::GET, "WhoAmI", None, deadline)
            .await?;
        serde_json::from_value(body)
            .map_err(|e| DataverseError::Transport(format!("unexpected WhoAmI body: {e}")))
    }
}
