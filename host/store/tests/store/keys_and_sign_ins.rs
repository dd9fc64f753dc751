//! API key records (hash, rights, revocation, tenant-scoped) verified by
//! the transport's key type, and delegated sign-ins kept per user and Entra
//! tenant.

use dvhost_dataverse::{NewApiKey, PresentedApiKey};
use dvhost_store::{
    ApiKeyId, ApiKeyRight, ApiKeyRights, NewApiKeyRecord, Sealed, SignIn, StoreError,
};
use uuid::Uuid;

use crate::util::{self, temp_store};

#[tokio::test]
async fn api_keys_are_found_by_id_verified_by_hash_and_revoked_per_tenant() {
    let (_dir, store) = temp_store().await;
    let contoso = util::tenant(&store, "contoso").await;
    let fabrikam = util::tenant(&store, "fabrikam").await;
    let minted = NewApiKey::mint();
    let id = ApiKeyId::parse(minted.id()).unwrap();
    let record = store
        .add_api_key(NewApiKeyRecord {
            id: id.clone(),
            tenant: contoso.id,
            hash: minted.hash(),
            rights: ApiKeyRights::of(&[ApiKeyRight::Invoke, ApiKeyRight::Deploy]),
            label: "ci".into(),
        })
        .await
        .unwrap();
    let mut shown = Vec::new();
    minted.show_once(&mut shown).unwrap();
    let presented = PresentedApiKey::parse(std::str::from_utf8(&shown).unwrap()).unwrap();

    let found = store
        .api_key(&ApiKeyId::parse(presented.id()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, record);
    assert!(presented.verify(&found.hash));
    assert!(found.rights.contains(ApiKeyRight::Deploy));
    assert!(!found.rights.contains(ApiKeyRight::Audit));
    assert!(found.is_live());

    let duplicate = NewApiKeyRecord {
        id: id.clone(),
        tenant: contoso.id,
        hash: [0; 32],
        rights: ApiKeyRights::default(),
        label: String::new(),
    };
    let error = store.add_api_key(duplicate).await.unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { .. }),
        "{error:?}"
    );

    assert!(
        !store.revoke_api_key(fabrikam.id, &id).await.unwrap(),
        "not theirs"
    );
    assert!(store.revoke_api_key(contoso.id, &id).await.unwrap());
    assert!(
        !store.revoke_api_key(contoso.id, &id).await.unwrap(),
        "already revoked"
    );
    let revoked = store.api_key(&id).await.unwrap().unwrap();
    assert!(!revoked.is_live());
    assert_eq!(store.api_keys(contoso.id).await.unwrap().len(), 1);
    assert!(store.api_keys(fabrikam.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn sign_ins_are_kept_per_user_and_entra_tenant() {
    let (_dir, store) = temp_store().await;
    let tenant = Uuid::new_v4();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let sign_in = |user, upn: &str, sealed: &[u8]| SignIn {
        entra_tenant_id: tenant,
        user_oid: user,
        upn: Some(upn.into()),
        scope: "https://graph.microsoft.com/.default offline_access".into(),
        sealed_refresh_token: Sealed::new(sealed.to_vec()),
        signed_in_at: at,
    };
    store
        .save_sign_in(&sign_in(alice, "alice@contoso", b"sealed-1"))
        .await
        .unwrap();
    store
        .save_sign_in(&sign_in(bob, "bob@contoso", b"sealed-2"))
        .await
        .unwrap();
    let again = sign_in(alice, "alice@contoso", b"sealed-3");
    store.save_sign_in(&again).await.unwrap();

    assert_eq!(store.sign_in(tenant, alice).await.unwrap(), Some(again));
    assert!(
        store
            .sign_in(Uuid::new_v4(), alice)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.sign_ins().await.unwrap().len(), 2);
    assert!(store.delete_sign_in(tenant, bob).await.unwrap());
    assert!(!store.delete_sign_in(tenant, bob).await.unwrap());
    let empty = store
        .save_sign_in(&sign_in(bob, "bob", b""))
        .await
        .unwrap_err();
    assert!(
        empty.to_string().contains("sealed refresh token"),
        "{empty}"
    );
}
