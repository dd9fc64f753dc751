//! Opening the store: a missing data directory is created; a read-only
//! one, a damaged or foreign database and a newer schema are refused with
//! a clear error and left exactly as they were; a wrong master key is
//! refused before anything is sealed or opened with it.

use std::os::unix::fs::PermissionsExt as _;

use dvhost_dataverse::{Certificate, MasterKey, SealedKey};
use dvhost_store::{DATABASE_FILE, MasterKeyCheck, Store, StoreError};
use sqlx::Connection as _;

use crate::util::{self, ACTOR, count, file_bytes, raw, temp_store};

#[tokio::test]
async fn a_missing_data_directory_is_created_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("var/lib/dvhost");
    let store = Store::open_sqlite(&dir).await.unwrap();
    util::tenant(&store, "contoso").await;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(dir.join(DATABASE_FILE).is_file());
    store.close().await;

    let again = Store::open_sqlite(&dir).await.unwrap();
    let tenants = again.tenants().await.unwrap();
    assert_eq!(tenants.len(), 1, "reopening keeps the data");
    again.integrity_check().await.unwrap();
}

#[tokio::test]
async fn a_read_only_data_directory_is_refused_clearly() {
    let (dir, store) = temp_store().await;
    store.close().await;
    let before = file_bytes(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(error, StoreError::ReadOnly { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("read-only"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert_eq!(file_bytes(dir.path()), before);

    // A read-only database file in a writable directory, likewise.
    let file = dir.path().join(DATABASE_FILE);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::ReadOnly { path } if *path == file),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_data_directory_that_is_a_file_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("data");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = Store::open_sqlite(&file).await.unwrap_err();
    assert!(error.to_string().contains("is not a directory"), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE_FILE);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&file, &garbage).unwrap();
    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("damaged or is not a database"), "{text}");
    assert!(text.contains("left untouched"), "{text}");
    assert_eq!(std::fs::read(&file).unwrap(), garbage);
    assert!(!dir.path().join(format!("{DATABASE_FILE}-wal")).exists());
}

#[tokio::test]
async fn a_database_with_damaged_pages_is_refused_and_left_untouched() {
    let (dir, store) = temp_store().await;
    let tenant = util::tenant(&store, "contoso").await;
    for i in 0..50 {
        util::connection(&store, &tenant, &format!("c{i}")).await;
    }
    store.close().await;
    let file = dir.path().join(DATABASE_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    // Page 3 onwards (pages are 4096 bytes): b-tree pages turned to noise.
    for (i, byte) in bytes[2 * 4096..].iter_mut().enumerate() {
        *byte = (i * 31 % 253) as u8;
    }
    std::fs::write(&file, &bytes).unwrap();
    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

#[tokio::test]
async fn a_foreign_sqlite_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = raw(dir.path()).await;
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let file = dir.path().join(DATABASE_FILE);
    let before = std::fs::read(&file).unwrap();
    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");
    assert!(error.to_string().contains("\"invoices\""), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_never_migrated_down() {
    let (dir, store) = temp_store().await;
    util::tenant(&store, "contoso").await;
    store.close().await;
    // What a future dvhost would have recorded after its own migration.
    let mut conn = raw(dir.path()).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, x'00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let before = file_bytes(dir.path());

    let error = Store::open_sqlite(dir.path()).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 9999,
                known: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("schema version 9999"), "{text}");
    assert!(text.contains("upgrade dvhost"), "{text}");
    assert!(text.contains("never migrated down"), "{text}");
    assert_eq!(file_bytes(dir.path()), before, "nothing written");
    assert_eq!(count(dir.path(), "_sqlx_migrations").await, 2);
    assert_eq!(count(dir.path(), "tenants").await, 1);
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_the_sealed_keys_stay_as_they_were() {
    let (dir, store) = temp_store().await;
    let master = MasterKey::from_bytes([1; 32]);
    let wrong = MasterKey::from_bytes([2; 32]);
    let check = store.check_master_key(&master.fingerprint()).await.unwrap();
    assert_eq!(check, MasterKeyCheck::Recorded);
    let tenant = util::tenant(&store, "contoso").await;
    let connection = util::connection(&store, &tenant, "crm").await;
    let known = util::known_certificate("crm");
    let new = util::stored_form(&known.certificate, &master);
    let stored = store
        .add_certificate(connection.id, new, ACTOR)
        .await
        .unwrap();
    store.close().await;

    let store = Store::open_sqlite(dir.path()).await.unwrap();
    let error = store
        .check_master_key(&wrong.fingerprint())
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::MasterKeyMismatch { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("master key does not match"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");

    // The transport refuses the wrong key too, and the row is unchanged.
    let row = store.certificate(stored.id).await.unwrap().unwrap();
    assert_eq!(row, stored);
    let sealed = SealedKey::from_bytes(row.sealed_private_key.as_bytes().to_vec());
    let refused = Certificate::unseal(&row.certificate_pem, &sealed, &wrong).unwrap_err();
    assert!(
        refused.to_string().contains("wrong master key"),
        "{refused}"
    );

    assert_eq!(
        store.check_master_key(&master.fingerprint()).await.unwrap(),
        MasterKeyCheck::Matches
    );
    let opened = Certificate::unseal(&row.certificate_pem, &sealed, &master).unwrap();
    assert_eq!(
        opened.sha1_thumbprint_hex(),
        known.certificate.sha1_thumbprint_hex()
    );
    assert!(store.check_master_key("not hex").await.is_err());
}
