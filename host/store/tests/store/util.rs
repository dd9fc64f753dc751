//! Shared set-up: a store in a temporary directory, raw SQL access to its
//! file, and certificates whose private key the test knows.

use std::path::Path;

use dvhost_dataverse::{Certificate, MasterKey};
use dvhost_store::{
    Connection, ConnectionMode, DATABASE_FILE, Name, NewCertificate, NewConnection, Sealed, Store,
    Tenant,
};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tempfile::TempDir;

pub const ACTOR: &str = "user:admin@contoso.onmicrosoft.com";

pub async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    (dir, store)
}

pub fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

pub async fn tenant(store: &Store, text: &str) -> Tenant {
    store.create_tenant(&name(text), text).await.unwrap()
}

pub async fn connection(store: &Store, tenant: &Tenant, text: &str) -> Connection {
    let new = NewConnection {
        tenant: tenant.id,
        name: name(text),
        environment_url: "https://contoso-dev.crm.dynamics.com".into(),
        entra_tenant_id: None,
        client_id: None,
        security_role: Some("Basic User".into()),
        mode: ConnectionMode::Manual,
    };
    store.create_connection(new, ACTOR).await.unwrap()
}

/// A connection certificate whose private key (PKCS#8 PEM) the test knows.
pub struct KnownCertificate {
    pub certificate: Certificate,
    pub key_pem: String,
}

pub fn known_certificate(subject: &str) -> KnownCertificate {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    let cert = params.self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    KnownCertificate {
        certificate: Certificate::from_pem(&cert.pem(), &key_pem).unwrap(),
        key_pem,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of `certificate`: public parts and the sealed key.
pub fn stored_form(certificate: &Certificate, master: &MasterKey) -> NewCertificate {
    NewCertificate {
        certificate_pem: certificate.pem(),
        sha1_thumbprint: certificate.sha1_thumbprint_hex(),
        sha256_thumbprint: hex(&certificate.sha256_thumbprint()),
        not_before: certificate.not_before(),
        not_after: certificate.not_after(),
        sealed_private_key: Sealed::new(certificate.seal_private_key(master).as_bytes().to_vec()),
    }
}

/// A second connection to the database file, beside the store's own, for
/// what the store's API does not offer (raw reads, forbidden writes).
pub async fn raw(dir: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(dir.join(DATABASE_FILE))
        .create_if_missing(true)
        .foreign_keys(true);
    SqliteConnection::connect_with(&options).await.unwrap()
}

pub async fn count(dir: &Path, table: &str) -> i64 {
    let mut conn = raw(dir).await;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

/// The database file and its journals, concatenated as they are on disk.
pub fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(format!("{DATABASE_FILE}{suffix}"))) {
            all.extend_from_slice(&bytes);
        }
    }
    all
}
