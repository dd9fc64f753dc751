//! Plugins: versions numbered per plugin, component bytes stored once by
//! content hash, the active-version switch (deploy and rollback), binding
//! to a connection of the same tenant only, and deletion (of a plugin, of a
//! tenant) that takes unused components with it and leaves the audit log.

use dvhost_store::{
    AuditOutcome, AuditQuery, ContentHash, NewAuditEntry, NewPluginVersion, StoreError,
};
use serde_json::json;

use crate::util::{self, count, name, temp_store};

fn version(bytes: &[u8], tables: &[&str]) -> NewPluginVersion {
    NewPluginVersion {
        component: bytes.to_vec(),
        grants: json!({ "tables": tables, "operations": ["read"] }),
        limits: json!({ "deadline_ms": 5000 }),
    }
}

#[tokio::test]
async fn versions_share_identical_bytes_and_switch_atomically() {
    let (dir, store) = temp_store().await;
    let tenant = util::tenant(&store, "contoso").await;
    let plugin = store
        .create_plugin(tenant.id, &name("hello"))
        .await
        .unwrap();
    let error = store
        .create_plugin(tenant.id, &name("hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { .. }),
        "{error:?}"
    );

    let v1 = store
        .publish_version(plugin.id, version(b"component one", &["account"]), true)
        .await
        .unwrap();
    // New grants for the same bytes: a new version, not a new component.
    let v2 = store
        .publish_version(
            plugin.id,
            version(b"component one", &["account", "contact"]),
            false,
        )
        .await
        .unwrap();
    let v3 = store
        .publish_version(plugin.id, version(b"component two", &["contact"]), true)
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version, v3.version), (1, 2, 3));
    assert_eq!(v1.component, v2.component);
    assert_eq!(v1.component, ContentHash::of(b"component one"));
    assert_eq!(count(dir.path(), "components").await, 2);
    assert_eq!(count(dir.path(), "plugin_versions").await, 3);
    assert_eq!(
        store
            .plugin(plugin.id)
            .await
            .unwrap()
            .unwrap()
            .active_version,
        Some(3)
    );

    let rolled_back = store.activate_version(plugin.id, 2).await.unwrap();
    assert_eq!(rolled_back.active_version, Some(2));
    let error = store.activate_version(plugin.id, 9).await.unwrap_err();
    assert!(error.to_string().contains("hello version 9"), "{error}");
    assert_eq!(
        store
            .plugin(plugin.id)
            .await
            .unwrap()
            .unwrap()
            .active_version,
        Some(2)
    );

    let versions = store.plugin_versions(plugin.id).await.unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[1].grants["tables"], json!(["account", "contact"]));
    assert_eq!(versions[2].component_size, b"component two".len() as u64);
    let bytes = store
        .component(&versions[2].component)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, b"component two");

    let empty = store
        .publish_version(plugin.id, version(b"", &[]), true)
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("0 bytes"), "{empty}");
}

#[tokio::test]
async fn a_plugin_binds_only_to_a_live_connection_of_its_tenant() {
    let (_dir, store) = temp_store().await;
    let contoso = util::tenant(&store, "contoso").await;
    let fabrikam = util::tenant(&store, "fabrikam").await;
    let theirs = util::connection(&store, &fabrikam, "crm").await;
    let ours = util::connection(&store, &contoso, "crm").await;
    let plugin = store
        .create_plugin(contoso.id, &name("sync"))
        .await
        .unwrap();

    let error = store
        .bind_plugin(plugin.id, Some(theirs.id))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotFound {
                what: "connection",
                ..
            }
        ),
        "{error:?}"
    );
    let bound = store.bind_plugin(plugin.id, Some(ours.id)).await.unwrap();
    assert_eq!(bound.connection, Some(ours.id));
    let found = store
        .plugin_by_name(contoso.id, &name("sync"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.connection, Some(ours.id));
    assert!(
        store
            .plugin_by_name(fabrikam.id, &name("sync"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn deleting_takes_unused_components_and_keeps_the_audit_log() {
    let (dir, store) = temp_store().await;
    let contoso = util::tenant(&store, "contoso").await;
    let fabrikam = util::tenant(&store, "fabrikam").await;
    let ours = store.create_plugin(contoso.id, &name("a")).await.unwrap();
    let other = store.create_plugin(contoso.id, &name("b")).await.unwrap();
    let theirs = store.create_plugin(fabrikam.id, &name("a")).await.unwrap();
    store
        .publish_version(ours.id, version(b"shared", &[]), true)
        .await
        .unwrap();
    store
        .publish_version(ours.id, version(b"only contoso a", &[]), true)
        .await
        .unwrap();
    store
        .publish_version(other.id, version(b"only contoso b", &[]), true)
        .await
        .unwrap();
    store
        .publish_version(theirs.id, version(b"shared", &[]), true)
        .await
        .unwrap();
    let connection = util::connection(&store, &contoso, "crm").await;
    store
        .bind_plugin(ours.id, Some(connection.id))
        .await
        .unwrap();
    store
        .append_audit(&NewAuditEntry {
            at: time::OffsetDateTime::now_utc(),
            tenant: Some(contoso.id),
            plugin: Some(ours.id),
            actor: "system".into(),
            action: "plugin.deploy".into(),
            outcome: AuditOutcome::Success,
            request_id: None,
            detail: json!({}),
        })
        .await
        .unwrap();
    assert_eq!(count(dir.path(), "components").await, 3);

    assert!(store.delete_plugin(other.id).await.unwrap());
    assert!(!store.delete_plugin(other.id).await.unwrap());
    assert_eq!(count(dir.path(), "components").await, 2);

    assert!(store.delete_tenant(contoso.id).await.unwrap());
    assert_eq!(
        count(dir.path(), "components").await,
        1,
        "fabrikam still uses 'shared'"
    );
    assert_eq!(count(dir.path(), "connections").await, 0);
    assert_eq!(count(dir.path(), "connection_history").await, 0);
    assert!(store.plugin(ours.id).await.unwrap().is_none());
    assert!(
        store
            .component(&ContentHash::of(b"shared"))
            .await
            .unwrap()
            .is_some()
    );
    let audit = store
        .audit(&AuditQuery {
            tenant: Some(contoso.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.entries.len(), 1, "the audit log outlives the tenant");
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}
