//! Microsoft Graph app registration for a connection ("Add a certificate to
//! an app using Microsoft Graph"): the application with the certificate's
//! public key, its service principal, and `addKey`/`removeKey` for
//! rotation, with the proof of possession those two require.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AdminError, GraphService, may_register_apps, odata_string, send, who};
use crate::identity::{Certificate, DeviceSignIn, HttpClient, UserTokens};

const SERVICE: &str = "Microsoft Graph";
/// Audience of `addKey`/`removeKey` proofs (Azure AD Graph's app id).
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// What the administrator's Graph token is asked for.
const GRAPH_SCOPE: &str = "/.default";

/// A key credential registered on an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    /// Its `keyId`.
    pub key_id: Uuid,
    /// The certificate's SHA-1 thumbprint, upper-case hex (from
    /// `customKeyIdentifier`).
    pub sha1_thumbprint: String,
}

/// An application registration, as far as a connection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistration {
    /// The application object id (`id`).
    pub object_id: Uuid,
    /// The application (client) id (`appId`).
    pub app_id: Uuid,
    /// Its display name.
    pub display_name: String,
    /// Its certificates.
    pub keys: Vec<RegisteredKey>,
}

impl AppRegistration {
    /// The registered key of the certificate with this SHA-1 thumbprint.
    pub fn key_for(&self, sha1_thumbprint: &str) -> Option<&RegisteredKey> {
        self.keys
            .iter()
            .find(|k| k.sha1_thumbprint.eq_ignore_ascii_case(sha1_thumbprint))
    }

    fn from_json(v: &Value) -> Result<AppRegistration, AdminError> {
        let uuid = |k: &str| {
            v[k].as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| AdminError::Unexpected(format!("an application without {k}")))
        };
        let keys = v["keyCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                let key_id = Uuid::parse_str(k["keyId"].as_str()?).ok()?;
                let sha1 = STANDARD.decode(k["customKeyIdentifier"].as_str()?).ok()?;
                Some(RegisteredKey {
                    key_id,
                    sha1_thumbprint: sha1.iter().map(|b| format!("{b:02X}")).collect(),
                })
            })
            .collect();
        Ok(AppRegistration {
            object_id: uuid("id")?,
            app_id: uuid("appId")?,
            display_name: v["displayName"].as_str().unwrap_or_default().into(),
            keys,
        })
    }
}

/// Graph operations with a signed-in administrator's token.
pub struct GraphAdmin {
    base: GraphService,
    tokens: UserTokens,
    http: HttpClient,
}

impl std::fmt::Debug for GraphAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphAdmin")
            .field("base", &self.base.as_str())
            .field("user", &self.who())
            .finish_non_exhaustive()
    }
}

impl GraphAdmin {
    /// A Graph session for the user of `user`, whose refresh token is
    /// redeemed for a Graph token (`<graph>/.default`) by `sign_in`.
    pub async fn sign_in(
        sign_in: &DeviceSignIn,
        user: &UserTokens,
        base: GraphService,
        http: HttpClient,
        deadline: Instant,
    ) -> Result<GraphAdmin, AdminError> {
        if !base.trusts(&user.issuer.authority) {
            return Err(AdminError::Endpoint(crate::EndpointError::Mismatch(
                "these tokens were not issued for this Graph service",
            )));
        }
        let scope = format!("https://graph.microsoft.com{GRAPH_SCOPE}");
        let tokens = sign_in.refresh(user, &[&scope], deadline).await?;
        Ok(GraphAdmin { base, tokens, http })
    }

    /// The signed-in user's name (or object id).
    pub fn who(&self) -> String {
        who(&self.tokens)
    }

    /// Refuses, before anything is created, a user whose token names no
    /// directory role that may register applications.
    pub fn check_administrator(&self) -> Result<(), AdminError> {
        if may_register_apps(self.tokens.access_token()) {
            Ok(())
        } else {
            Err(AdminError::NotAdministrator {
                who: self.who(),
                why: "registering an application needs the Global, Application or Cloud Application Administrator role".into(),
            })
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<Value>,
        deadline: Instant,
    ) -> Result<Value, AdminError> {
        let mut request = self.http.inner().request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        send(SERVICE, request, self.tokens.access_token(), deadline)
            .await
            .map(|(v, _)| v)
    }

    async fn list_applications(
        &self,
        filter: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, AdminError> {
        let mut url = self.base.url("applications")?;
        url.query_pairs_mut().append_pair("$filter", filter);
        let body = self.call(reqwest::Method::GET, url, None, deadline).await?;
        Ok(body["value"].as_array().cloned().unwrap_or_default())
    }

    /// The application named `display_name` that carries the tag `marker`
    /// (so a re-run finds the app an earlier run made), if any.
    pub async fn find_application(
        &self,
        display_name: &str,
        marker: &str,
        deadline: Instant,
    ) -> Result<Option<AppRegistration>, AdminError> {
        let filter = format!("displayName eq {}", odata_string(display_name));
        let rows = self.list_applications(&filter, deadline).await?;
        let found: Vec<&Value> = rows
            .iter()
            .filter(|a| {
                a["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(marker)))
            })
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => AppRegistration::from_json(one).map(Some),
            _ => Err(AdminError::Unexpected(format!(
                "{} app registrations named '{display_name}' carry the tag '{marker}'",
                found.len()
            ))),
        }
    }

    /// The application with this (client) id, if any.
    pub async fn application_by_app_id(
        &self,
        app_id: Uuid,
        deadline: Instant,
    ) -> Result<Option<AppRegistration>, AdminError> {
        let rows = self
            .list_applications(&format!("appId eq '{app_id}'"), deadline)
            .await?;
        rows.first().map(AppRegistration::from_json).transpose()
    }

    /// Registers a single-tenant application tagged `marker` whose only
    /// credential is `certificate`'s public key.
    pub async fn create_application(
        &self,
        display_name: &str,
        marker: &str,
        certificate: &Certificate,
        deadline: Instant,
    ) -> Result<AppRegistration, AdminError> {
        let body = json!({
            "displayName": display_name,
            "signInAudience": "AzureADMyOrg",
            "tags": ["dvhost", marker],
            "notes": "Created by dvhost for a Dataverse connection; its certificate is kept by dvhost.",
            "keyCredentials": [key_credential(certificate)],
        });
        let url = self.base.url("applications")?;
        let created = self
            .call(reqwest::Method::POST, url, Some(body), deadline)
            .await?;
        AppRegistration::from_json(&created)
    }

    /// The id of the service principal of `app_id`, created when missing;
    /// `true` when this call created it.
    pub async fn ensure_service_principal(
        &self,
        app_id: Uuid,
        deadline: Instant,
    ) -> Result<(Uuid, bool), AdminError> {
        if let Some(id) = self.service_principal(app_id, deadline).await? {
            return Ok((id, false));
        }
        let url = self.base.url("servicePrincipals")?;
        let body = json!({ "appId": app_id });
        match self
            .call(reqwest::Method::POST, url, Some(body), deadline)
            .await
        {
            Ok(sp) => sp["id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .map(|id| (id, true))
                .ok_or_else(|| AdminError::Unexpected("a service principal without id".into())),
            // Made meanwhile (or by a request whose answer was lost).
            Err(e) if e.status() == Some(409) => self
                .service_principal(app_id, deadline)
                .await?
                .map(|id| (id, false))
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn service_principal(
        &self,
        app_id: Uuid,
        deadline: Instant,
    ) -> Result<Option<Uuid>, AdminError> {
        let mut url = self.base.url("servicePrincipals")?;
        url.query_pairs_mut()
            .append_pair("$filter", &format!("appId eq '{app_id}'"));
        let body = self.call(reqwest::Method::GET, url, None, deadline).await?;
        Ok(body["value"][0]["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok()))
    }

    /// Adds `new` to the application's keys (`addKey`), proving possession
    /// with `current`, one of its registered certificates. Both stay valid.
    pub async fn add_key(
        &self,
        app: &AppRegistration,
        current: &Certificate,
        new: &Certificate,
        deadline: Instant,
    ) -> Result<RegisteredKey, AdminError> {
        let url = self
            .base
            .url(&format!("applications/{}/addKey", app.object_id))?;
        let body = json!({
            "keyCredential": key_credential(new),
            "passwordCredential": null,
            "proof": proof(app, current)?,
        });
        let added = self
            .call(reqwest::Method::POST, url, Some(body), deadline)
            .await?;
        let key_id = added["keyId"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| AdminError::Unexpected("addKey answered no keyId".into()))?;
        Ok(RegisteredKey {
            key_id,
            sha1_thumbprint: new.sha1_thumbprint_hex(),
        })
    }

    /// Removes key `key_id` from the application (`removeKey`), proving
    /// possession with `current`, a certificate that stays registered.
    pub async fn remove_key(
        &self,
        app: &AppRegistration,
        current: &Certificate,
        key_id: Uuid,
        deadline: Instant,
    ) -> Result<(), AdminError> {
        let url = self
            .base
            .url(&format!("applications/{}/removeKey", app.object_id))?;
        let body = json!({ "keyId": key_id, "proof": proof(app, current)? });
        self.call(reqwest::Method::POST, url, Some(body), deadline)
            .await
            .map(drop)
    }
}

/// A certificate as a Graph `keyCredential`.
fn key_credential(certificate: &Certificate) -> Value {
    json!({
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": certificate.key_credential_value(),
        "displayName": format!("CN={}", certificate.subject().trim_start_matches("CN=")),
    })
}

/// The proof of possession of `addKey`/`removeKey`: a JWT signed with one
/// of the app's certificates, `aud` Azure AD Graph, `iss` the app's object
/// id, valid 10 minutes.
fn proof(app: &AppRegistration, certificate: &Certificate) -> Result<String, AdminError> {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(URL_SAFE_NO_PAD.encode(certificate.sha1_thumbprint()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "aud": PROOF_AUDIENCE,
        "iss": app.object_id.to_string(),
        "nbf": now,
        "exp": now + 600,
    });
    let key = EncodingKey::from_rsa_pem(certificate.private_key_pem().as_bytes())
        .map_err(|_| AdminError::Unexpected("the certificate's key cannot sign".into()))?;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| AdminError::Unexpected("signing the proof failed".into()))
}
