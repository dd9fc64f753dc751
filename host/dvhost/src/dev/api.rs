//! `dvhost dev` sets its tenant up over the server's own HTTP API, as an
//! operator would: the dev API key (the previous one revoked), deploys with
//! grants and the connection binding, and the generated table integration.

use anyhow::Context as _;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::guests::{Deployment, DevPlugin};
use crate::cli::client::send;

/// The label of the keys `dvhost dev` mints; a new run revokes the live
/// ones before minting its own.
pub const DEV_KEY_LABEL: &str = "dvhost dev";
/// The rights of the dev API key.
pub const DEV_KEY_RIGHTS: &[&str] = &["invoke", "deploy", "audit"];

/// What a deploy did.
pub enum Deployed {
    /// Published a new version; the plugin's view.
    New(Value),
    /// The active version is the same component and settings; its view.
    Unchanged(Value),
}

/// A client of the running server.
#[derive(Clone)]
pub struct DevApi {
    http: reqwest::Client,
    /// The server's base URL.
    pub url: String,
    admin_key: String,
    tenant: String,
    connection: String,
}

impl DevApi {
    /// A client of the server at `url` acting with `admin_key` on
    /// `tenant`, whose plugins use `connection`.
    pub fn new(url: String, admin_key: String, tenant: String, connection: String) -> DevApi {
        DevApi {
            http: reqwest::Client::new(),
            url,
            admin_key,
            tenant,
            connection,
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_key)
    }

    /// Revokes the live keys an earlier run minted and mints a new one.
    /// The key is shown by the server once, in this answer.
    pub async fn rotate_dev_key(&self) -> anyhow::Result<String> {
        let keys_path = format!("/v1/admin/tenants/{}/keys", self.tenant);
        let keys = send(self.request(Method::GET, &keys_path)).await?;
        for key in keys.as_array().into_iter().flatten() {
            let live = key["revoked_at"].is_null();
            if live && key["label"] == DEV_KEY_LABEL {
                let id = key["id"].as_str().unwrap_or_default();
                send(self.request(Method::DELETE, &format!("{keys_path}/{id}")))
                    .await
                    .with_context(|| format!("revoking the previous dev key {id}"))?;
            }
        }
        let minted = send(
            self.request(Method::POST, &keys_path)
                .json(&json!({ "rights": DEV_KEY_RIGHTS, "label": DEV_KEY_LABEL })),
        )
        .await
        .context("minting the dev API key")?;
        minted["key"]
            .as_str()
            .map(str::to_string)
            .context("the server showed no key")
    }

    /// Deploys `component` as `plugin` with its grants, bound to the dev
    /// connection. The first deploy of the table integration goes through
    /// the integrations API (the server's own table-actions component);
    /// later ones, after a rebuild, upload the new component.
    pub async fn deploy(
        &self,
        plugin: &DevPlugin,
        component: Vec<u8>,
        first: bool,
    ) -> anyhow::Result<Deployed> {
        if let Some(view) = self.served_as_is(plugin, &component).await {
            return Ok(Deployed::Unchanged(view));
        }
        self.publish(plugin, component, first)
            .await
            .map(Deployed::New)
    }

    /// The plugin's view when its active version is this component with
    /// these grants and connection already (a restart with nothing
    /// changed publishes no new version).
    async fn served_as_is(&self, plugin: &DevPlugin, component: &[u8]) -> Option<Value> {
        let path = format!("/v1/tenants/{}/plugins/{}", self.tenant, plugin.name);
        let view = send(self.request(Method::GET, &path)).await.ok()?;
        let active = view["versions"]
            .as_array()?
            .iter()
            .find(|v| v["version"] == view["active_version"])?;
        let sha256: String = Sha256::digest(component)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let same = active["component_sha256"] == sha256.as_str()
            && active["grants"] == plugin.grants_json()
            && view["connection"] == self.connection.as_str();
        same.then_some(view)
    }

    async fn publish(
        &self,
        plugin: &DevPlugin,
        component: Vec<u8>,
        first: bool,
    ) -> anyhow::Result<Value> {
        if let (Deployment::Integration(tables), true) = (plugin.deployment, first) {
            let body = json!({
                "name": plugin.name,
                "connection": self.connection,
                "tables": tables,
            });
            return send(
                self.request(
                    Method::POST,
                    &format!("/v1/admin/tenants/{}/integrations", self.tenant),
                )
                .json(&body),
            )
            .await
            .with_context(|| format!("creating the table integration {}", plugin.name));
        }
        let settings = json!({
            "grants": plugin.grants_json(),
            "connection": self.connection,
        });
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(component).mime_str("application/wasm")?,
            )
            .text("settings", settings.to_string());
        send(
            self.request(
                Method::PUT,
                &format!("/v1/tenants/{}/plugins/{}", self.tenant, plugin.name),
            )
            .multipart(form),
        )
        .await
        .with_context(|| format!("deploying {}", plugin.name))
    }
}
