//! The store's bytes hold no secret in clear: after a tenant, a connection
//! with a sealed certificate, an API key and a sealed sign-in are stored,
//! the database file and its write-ahead log are searched for the private
//! key (PEM text, DER bytes, each base64 line), the refresh token, the
//! access token and the API key. The search is shown to work by finding
//! what is stored in clear on purpose (the public certificate, the names).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use dvhost_dataverse::{Authority, DeviceSignIn, HttpClient, MasterKey, NewApiKey, UserTokens};
use dvhost_store::{ApiKeyId, ApiKeyRight, ApiKeyRights, NewApiKeyRecord, Sealed, SignIn};
use serde_json::json;
use uuid::Uuid;

use crate::util::{self, ACTOR, file_bytes, temp_store};

const ENTRA_TENANT: &str = "11111111-2222-3333-4444-555555555555";
const USER: &str = "22222222-3333-4444-5555-666666666666";
const CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";

/// Tokens the fake Entra hands out, unique to this run.
struct FakeTokens {
    access: String,
    refresh: String,
}

/// A token endpoint that approves every device code at once and answers
/// with `tokens` and an (unsigned) id token naming `USER`.
async fn fake_entra(tokens: Arc<FakeTokens>) -> String {
    let id_claims =
        json!({ "oid": USER, "tid": ENTRA_TENANT, "preferred_username": "admin@contoso" });
    let id_token = format!(
        "e30.{}.c2ln",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id_claims.to_string())
    );
    let app = Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(|| async {
                axum::Json(json!({
                    "device_code": "device-code", "user_code": "ABCD-EFGH",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 60, "interval": 1,
                }))
            }),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(move || {
                let body = json!({
                    "token_type": "Bearer", "expires_in": 3600,
                    "scope": "https://graph.microsoft.com/.default",
                    "access_token": tokens.access, "refresh_token": tokens.refresh,
                    "id_token": id_token,
                });
                async move { axum::Json(body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn sign_in_client(url: &str) -> DeviceSignIn {
    let http = HttpClient::new(None).unwrap();
    DeviceSignIn::new(Authority::parse(url).unwrap(), ENTRA_TENANT, CLIENT, http).unwrap()
}

async fn sign_in(url: &str) -> UserTokens {
    let client = sign_in_client(url);
    let pending = client
        .start(&[
            "https://graph.microsoft.com/.default",
            "offline_access",
            "openid",
        ])
        .await
        .unwrap();
    client
        .complete(pending, Instant::now() + Duration::from_secs(30))
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every form of the private key worth looking for, less what it shares
/// with the public certificate (the modulus is in both).
fn key_forms(key_pem: &str, public: &dvhost_dataverse::Certificate) -> Vec<Vec<u8>> {
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap();
    let mut forms = vec![key_pem.as_bytes().to_vec(), body.as_bytes().to_vec()];
    // The DER in pieces too (a page boundary could split the whole); the
    // last piece ends where the DER ends, not 64 bytes after its start: a
    // short tail (a single byte when the length is 64k + 1) would be
    // found anywhere.
    forms.extend(der.chunks(64).map(<[u8]>::to_vec));
    if let Some(last) = forms.last_mut()
        && last.len() < 64
    {
        *last = der[der.len() - 64..].to_vec();
    }
    forms.extend(
        key_pem
            .lines()
            .filter(|l| l.len() > 40)
            .map(|l| l.as_bytes().to_vec()),
    );
    let public_pem = public.pem();
    forms.retain(|form| !contains(public.der(), form) && !contains(public_pem.as_bytes(), form));
    assert!(forms.len() > 20, "enough private material to search for");
    forms
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let (dir, store) = temp_store().await;
    let master = MasterKey::from_bytes(rand_bytes());
    store.check_master_key(&master.fingerprint()).await.unwrap();
    let tenant = util::tenant(&store, "contoso").await;
    let connection = util::connection(&store, &tenant, "crm").await;
    let known = util::known_certificate("crm");
    let form = util::stored_form(&known.certificate, &master);
    store
        .add_certificate(connection.id, form, ACTOR)
        .await
        .unwrap();

    let minted = NewApiKey::mint();
    let record = NewApiKeyRecord {
        id: ApiKeyId::parse(minted.id()).unwrap(),
        tenant: tenant.id,
        hash: minted.hash(),
        rights: ApiKeyRights::of(&[ApiKeyRight::Invoke]),
        label: "ci".into(),
    };
    store.add_api_key(record).await.unwrap();
    let mut api_key = Vec::new();
    let api_key_id = minted.id().to_owned();
    minted.show_once(&mut api_key).unwrap();

    let fake = Arc::new(FakeTokens {
        access: format!("eyJ0eXAiOiJKV1QifQ.access-{}", Uuid::new_v4()),
        refresh: format!("0.AXkA-refresh-token-{}", Uuid::new_v4()),
    });
    let url = fake_entra(fake.clone()).await;
    let tokens = sign_in(&url).await;
    let sealed = tokens.seal_refresh_token(&master).unwrap();
    store
        .save_sign_in(&SignIn {
            entra_tenant_id: tokens.entra_tenant_id.as_deref().unwrap().parse().unwrap(),
            user_oid: tokens.oid.as_deref().unwrap().parse().unwrap(),
            upn: tokens.upn.clone(),
            scope: tokens.scope.clone(),
            sealed_refresh_token: Sealed::new(sealed.as_bytes().to_vec()),
            signed_in_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();

    let mut secrets: Vec<(&str, Vec<u8>)> = key_forms(&known.key_pem, &known.certificate)
        .into_iter()
        .map(|form| ("private key", form))
        .collect();
    secrets.push(("refresh token", fake.refresh.as_bytes().to_vec()));
    secrets.push(("access token", fake.access.as_bytes().to_vec()));
    secrets.push(("API key", api_key.clone()));
    // The secret is base64url, which may itself hold '_'.
    let api_secret = api_key[format!("dvk_{api_key_id}_").len()..].to_vec();
    assert_eq!(api_secret.len(), 43, "32 random bytes in base64url");
    secrets.push(("API key secret", api_secret));
    // Resuming with another master key fails without naming the token;
    // with the right one it redeems the stored sign-in.
    let client = sign_in_client(&url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let graph = ["https://graph.microsoft.com/.default"];
    let wrong = MasterKey::from_bytes(rand_bytes());
    let refused = client
        .resume(&sealed, &wrong, USER, &graph, deadline)
        .await
        .unwrap_err();
    let resumed = client
        .resume(&sealed, &master, USER, &graph, deadline)
        .await
        .unwrap();
    assert_eq!(resumed.upn.as_deref(), Some("admin@contoso"));
    // Nothing the test holds shows one either.
    let shown = format!(
        "{tokens:?} {sealed:?} {resumed:?} {refused} {refused:?} {:?}",
        store.sign_ins().await.unwrap()
    );
    for (what, secret) in &secrets {
        assert!(
            !contains(shown.as_bytes(), secret),
            "{what} in Debug output"
        );
    }

    // While the store is open (the write-ahead log holds recent pages)
    // and after it is closed (everything folded into the file).
    let open = file_bytes(dir.path());
    assert!(
        std::fs::metadata(
            dir.path()
                .join(format!("{}-wal", dvhost_store::DATABASE_FILE))
        )
        .is_ok()
    );
    store.close().await;
    let closed = file_bytes(dir.path());
    for bytes in [&open, &closed] {
        for (what, secret) in &secrets {
            assert!(
                !contains(bytes, secret),
                "the {what} is in the database files"
            );
        }
        // The search works: what is stored in clear on purpose is found.
        let public = known.certificate.pem();
        let public_line = public.lines().nth(1).unwrap();
        assert!(
            contains(bytes, public_line.as_bytes()),
            "public certificate not found"
        );
        assert!(contains(bytes, b"contoso-dev.crm.dynamics.com"));
        assert!(contains(
            bytes,
            known.certificate.sha1_thumbprint_hex().as_bytes()
        ));
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(16).enumerate() {
        chunk.copy_from_slice(&Uuid::new_v4().as_bytes()[..16]);
        chunk[0] ^= i as u8;
    }
    bytes
}
