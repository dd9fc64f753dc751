//! Shared helpers for the emulator's integration tests: a seeded world,
//! client certificates, hand-built client assertions, and sign-in.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use dvhost_emulator::{
    AppSeed, EmulatorBuilder, EnvironmentSeed, RunningEmulator, Seed, Settings, TenantSeed,
    UserSeed,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha1::Digest as _;
use uuid::Uuid;

pub const TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const APP_ID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub const PUBLIC_APP_ID: &str = "aaaaaaaa-0000-0000-0000-0000000000ff";
pub const ADMIN: &str = "admin@contoso.onmicrosoft.com";
pub const USER: &str = "alice@contoso.onmicrosoft.com";

/// An RSA client certificate and its private key.
pub struct TestCert {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
    pub key: EncodingKey,
}

impl TestCert {
    pub fn generate(cn: &str) -> Self {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        TestCert {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key: EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
            key_pem,
        }
    }

    pub fn sha1(&self) -> Vec<u8> {
        sha1::Sha1::digest(&self.cert_der).to_vec()
    }

    pub fn sha256(&self) -> Vec<u8> {
        sha2::Sha256::digest(&self.cert_der).to_vec()
    }

    pub fn b64(&self) -> String {
        STANDARD.encode(&self.cert_der)
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Signs `claims` with `header` (any JSON) using `alg`; nothing is checked,
/// so tests can build every malformed variant.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

/// Standard claims of a valid assertion.
pub fn claims(aud: &str, client: &str) -> Value {
    let now = now();
    json!({"aud": aud, "iss": client, "sub": client, "jti": Uuid::new_v4().to_string(), "iat": now, "nbf": now, "exp": now + 600})
}

/// RS256 assertion with a SHA-1 `x5t`.
pub fn rs256(cert: &TestCert, claims: &Value) -> String {
    sign_raw(
        &json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(cert.sha1())}),
        claims,
        &cert.key,
        Algorithm::RS256,
    )
}

/// PS256 assertion with a padded SHA-256 `x5t#S256` and `x5c`, as MSAL Python sends it.
pub fn ps256(cert: &TestCert, claims: &Value) -> String {
    let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": URL_SAFE.encode(cert.sha256()), "x5c": [cert.b64()]});
    sign_raw(&header, claims, &cert.key, Algorithm::PS256)
}

pub struct World {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub cert: TestCert,
    pub env_url: String,
    pub env2_url: String,
}

impl World {
    pub async fn start() -> Self {
        Self::start_with(Settings {
            device_code_interval_secs: 1,
            ..Settings::default()
        })
        .await
    }

    pub async fn start_with(settings: Settings) -> Self {
        let cert = TestCert::generate("sync");
        let seed = Seed {
            settings,
            faults: vec![],
            tenants: vec![
                TenantSeed {
                    name: "contoso".into(),
                    id: Some(TENANT_ID.parse().unwrap()),
                    domains: vec![],
                    display_name: None,
                },
                TenantSeed {
                    name: "fabrikam".into(),
                    id: None,
                    domains: vec!["fabrikam.example".into()],
                    display_name: None,
                },
            ],
            users: vec![
                UserSeed {
                    tenant: "contoso".into(),
                    upn: ADMIN.into(),
                    id: None,
                    display_name: Some("Admin".into()),
                    admin: true,
                },
                UserSeed {
                    tenant: "contoso".into(),
                    upn: USER.into(),
                    id: None,
                    display_name: Some("Alice".into()),
                    admin: false,
                },
                UserSeed {
                    tenant: "fabrikam".into(),
                    upn: "bob@fabrikam.example".into(),
                    id: None,
                    display_name: None,
                    admin: true,
                },
            ],
            apps: vec![
                app(
                    "contoso",
                    "sync",
                    APP_ID,
                    false,
                    vec![cert.cert_pem.clone()],
                ),
                app("contoso", "dvhost cli", PUBLIC_APP_ID, true, vec![]),
            ],
            environments: vec![
                EnvironmentSeed {
                    app_users: vec![APP_ID.into()],
                    admins: vec![ADMIN.into()],
                    ..env("contoso", "contoso-dev", vec![])
                },
                env("contoso", "contoso-prod", vec![ADMIN.into()]),
                env("fabrikam", "fabrikam-dev", vec![]),
            ],
        };
        let emu = EmulatorBuilder::new().seed(seed).start().await.unwrap();
        // The environment URLs exactly as the emulator reports them (each
        // environment's own origin).
        let env_url = emu.environment_url("contoso-dev").unwrap();
        let env2_url = emu.environment_url("contoso-prod").unwrap();
        World {
            http: reqwest::Client::new(),
            emu,
            cert,
            env_url,
            env2_url,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub fn token_url(&self) -> String {
        self.url(&format!("/{TENANT_ID}/oauth2/v2.0/token"))
    }

    /// POSTs a form to the token endpoint of `tenant`; returns status and JSON.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A client-credentials request with `assertion` for the environment.
    pub async fn client_credentials(&self, assertion: &str) -> (u16, Value) {
        self.client_credentials_as(APP_ID, assertion, &format!("{}/.default", self.env_url))
            .await
    }

    pub async fn client_credentials_as(
        &self,
        client: &str,
        assertion: &str,
        scope: &str,
    ) -> (u16, Value) {
        self.post_form(
            &format!("/{TENANT_ID}/oauth2/v2.0/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("scope", scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
            ],
        )
        .await
    }

    /// RS256 client-credentials request for `client` signed with `cert`, for the environment.
    pub async fn cert_token(&self, client: &str, cert: &TestCert) -> (u16, Value) {
        let scope = format!("{}/.default", self.env_url);
        self.client_credentials_as(
            client,
            &rs256(cert, &claims(&self.token_url(), client)),
            &scope,
        )
        .await
    }

    /// Runs a control action (`approve`, `decline`, `expire`, `slow-down`) on a device code response.
    pub async fn code_action(&self, dc: &Value, action: &str, body: Option<Value>) -> u16 {
        let code = dc["user_code"].as_str().unwrap();
        self.control(
            reqwest::Method::POST,
            &format!("device-codes/{code}/{action}"),
            body,
        )
        .await
        .0
    }

    /// Polls the token endpoint for a device code response started on `TENANT_ID`.
    pub async fn poll_dc(&self, client: &str, dc: &Value) -> (u16, Value) {
        self.poll(TENANT_ID, client, dc["device_code"].as_str().unwrap())
            .await
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(&format!("/_emulator/{path}")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Starts a device-code flow for `scope`; returns the device-code response.
    pub async fn device_code(&self, tenant: &str, client: &str, scope: &str) -> Value {
        let (status, body) = self
            .post_form(
                &format!("/{tenant}/oauth2/v2.0/devicecode"),
                &[("client_id", client), ("scope", scope)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn poll(&self, tenant: &str, client: &str, device_code: &str) -> (u16, Value) {
        self.post_form(
            &format!("/{tenant}/oauth2/v2.0/token"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client),
                ("device_code", device_code),
            ],
        )
        .await
    }

    /// Signs `upn` in through the device-code flow and returns the token response.
    pub async fn sign_in(&self, upn: &str, scope: &str) -> Value {
        let dc = self
            .device_code("organizations", PUBLIC_APP_ID, scope)
            .await;
        let user_code = dc["user_code"].as_str().unwrap();
        let (s, b) = self
            .control(
                reqwest::Method::POST,
                &format!("device-codes/{user_code}/approve"),
                Some(json!({"user": upn})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
        let (status, body) = self
            .poll(
                "organizations",
                PUBLIC_APP_ID,
                dc["device_code"].as_str().unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// An app-only token for `contoso-dev` (the seeded application user).
    pub async fn dv_token(&self) -> String {
        let (s, b) = self
            .client_credentials(&rs256(&self.cert, &claims(&self.token_url(), APP_ID)))
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_string()
    }

    /// `<env>/api/data/v9.2/<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/data/v9.2/{path}", self.env_url)
    }

    /// Sends a Web API request; returns status, headers and JSON body (Null when empty).
    pub async fn dv(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, self.api(path))
            .bearer_auth(token)
            .header("OData-Version", "4.0")
            .header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            h,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// `GET <path>` on the Web API, without extra headers.
    pub async fn get(&self, token: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.dv(token, reqwest::Method::GET, path, None, &[]).await
    }

    /// `DELETE <path>` on the Web API, without extra headers.
    pub async fn delete(
        &self,
        token: &str,
        path: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.dv(token, reqwest::Method::DELETE, path, None, &[])
            .await
    }

    /// A request with a JSON body on the Web API, without extra headers.
    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.dv(token, method, path, Some(body), &[]).await
    }

    /// The number of rows of an entity set (`$count=true`).
    pub async fn count(&self, token: &str, set: &str) -> i64 {
        self.dv(
            token,
            reqwest::Method::GET,
            &format!("{set}?$count=true&$select=createdon"),
            None,
            &[],
        )
        .await
        .2["@odata.count"]
            .as_i64()
            .unwrap()
    }

    /// Creates a row (`POST <set>`, expecting 204) and returns its id.
    pub async fn create(&self, token: &str, set: &str, body: Value) -> String {
        let (s, h, e) = self
            .dv(token, reqwest::Method::POST, set, Some(body), &[])
            .await;
        assert_eq!(s, 204, "POST {set}: {e}");
        entity_id(&h)
    }

    /// GETs a URL and parses its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: impl reqwest::IntoUrl) -> T {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Fetches the JWKS and verifies `token` (RS256) against it.
    pub async fn verify_with_jwks(&self, token: &str) -> Value {
        let jwks: JwkSet = self
            .get_json(self.url(&format!("/{TENANT_ID}/discovery/v2.0/keys")))
            .await;
        verify_token(&jwks, token, None)
    }
}

/// Verifies an RS256 token against a JWKS by its `kid`, and its `aud` when given.
pub fn verify_token(jwks: &JwkSet, token: &str, aud: Option<&str>) -> Value {
    let kid = jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("kid header");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("kid in JWKS")).unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    match aud {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("signature verifies against JWKS")
        .claims
}

pub fn tenant(name: &str, id: Option<&str>) -> TenantSeed {
    TenantSeed {
        name: name.into(),
        id: id.map(|i| i.parse().unwrap()),
        domains: vec![],
        display_name: None,
    }
}

pub fn app(
    tenant: &str,
    name: &str,
    app_id: &str,
    public_client: bool,
    certificates: Vec<String>,
) -> AppSeed {
    AppSeed {
        tenant: tenant.into(),
        display_name: name.into(),
        app_id: Some(app_id.parse().unwrap()),
        public_client,
        certificates,
        certificate_files: vec![],
        service_principal: true,
    }
}

pub fn env(tenant: &str, name: &str, users: Vec<String>) -> EnvironmentSeed {
    EnvironmentSeed {
        tenant: tenant.into(),
        unique_name: name.into(),
        friendly_name: None,
        url: None,
        port: None,
        id: None,
        region: "NA".into(),
        users,
        admins: vec![],
        app_users: vec![],
        tables: vec![],
        alternate_keys: Default::default(),
    }
}

/// Asserts the Entra error shape and returns nothing; `code` is the AADSTS number.
pub fn assert_entra_error(
    status: u16,
    body: &Value,
    want_status: u16,
    want_error: &str,
    code: u32,
) {
    assert_eq!(status, want_status, "status; body {body}");
    assert_eq!(body["error"], want_error, "error; body {body}");
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&format!("AADSTS{code}: ")),
        "description {desc:?} should start with AADSTS{code}"
    );
    assert!(
        desc.contains("\r\nTrace ID: ")
            && desc.contains("\r\nCorrelation ID: ")
            && desc.contains("\r\nTimestamp: "),
        "{desc:?}"
    );
    assert_eq!(body["error_codes"], json!([code]));
    let ts = body["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && &ts[10..11] == " ",
        "timestamp {ts:?}"
    );
    assert!(Uuid::parse_str(body["trace_id"].as_str().unwrap_or_default()).is_ok());
    assert!(Uuid::parse_str(body["correlation_id"].as_str().unwrap_or_default()).is_ok());
}

/// The workspace root (holds tests/python, tests/node and their installed
/// dependencies).
pub fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The program the environment variable `var` names (tests/run.sh sets it),
/// or `None` after printing why `test` is skipped: a test needing Python or
/// Node does not guess at what is on `PATH`.
pub fn program_from_env(var: &str, test: &str) -> Option<std::path::PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            eprintln!("skipping {test}: ${var} is not set (bash tests/run.sh sets it)");
            None
        }
    }
}

/// An HTTPS client that trusts only the emulator's CA.
pub fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// The id in a response's `OData-EntityId` header
/// (`.../accounts(<id>)` gives `<id>`).
pub fn entity_id(h: &reqwest::header::HeaderMap) -> String {
    h["odata-entityid"]
        .to_str()
        .unwrap()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

/// Tenant `contoso` (id [`TENANT_ID`]), the confidential app [`APP_ID`]
/// whose certificate is `cert`, and the environment `contoso-dev` (with the
/// app as an application user when `app_user`).
pub fn seed_with_app(cert: &TestCert, app_user: bool) -> Seed {
    Seed {
        tenants: vec![tenant("contoso", Some(TENANT_ID))],
        apps: vec![app(
            "contoso",
            "sync",
            APP_ID,
            false,
            vec![cert.cert_pem.clone()],
        )],
        environments: vec![EnvironmentSeed {
            app_users: if app_user {
                vec![APP_ID.into()]
            } else {
                Vec::new()
            },
            ..env("contoso", "contoso-dev", vec![])
        }],
        ..Seed::default()
    }
}

/// An HTTPS emulator seeded with [`seed_with_app`].
pub async fn tls_emulator_with_app(cert: &TestCert, app_user: bool) -> RunningEmulator {
    EmulatorBuilder::new()
        .tls(true)
        .seed(seed_with_app(cert, app_user))
        .start()
        .await
        .unwrap()
}

/// The claims of a JWT (unverified).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `token` re-issued, validly signed, by tenant `tid` (`tid` and `iss`
/// changed), as a token for another directory would look.
pub fn from_tenant(emu: &RunningEmulator, token: &str, tid: &str) -> String {
    let mut c = jwt_claims(token);
    c["tid"] = json!(tid);
    c["iss"] = json!(format!("https://sts.windows.net/{tid}/"));
    emu.sign_token(&c)
}

/// The id of the seeded `fabrikam` tenant.
pub async fn fabrikam_id(w: &World) -> String {
    let (_, state) = w.control(reqwest::Method::GET, "state", None).await;
    state["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fabrikam")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .expect("fabrikam is seeded")
}
