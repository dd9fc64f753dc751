//! Connections: the state machine and its preconditions, edits recorded
//! before and after, names unique among live connections, deletion (refused
//! while plugins use it), certificate rotation, provisioning steps.

use dvhost_dataverse::MasterKey;
use dvhost_store::{
    CertificateState, ConnectionChanges, ConnectionState, HistoryEvent, ProvisioningStep,
    StepStatus, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use crate::util::{self, ACTOR, name, temp_store};

const ENTRA_TENANT: Uuid = Uuid::from_u128(0x1111_1111_2222_3333_4444_5555_5555_5555);
const CLIENT: Uuid = Uuid::from_u128(0xaaaa_aaaa_0000_0000_0000_0000_0000_0001);

#[tokio::test]
async fn a_connection_lives_through_its_states_with_a_history() {
    let (_dir, store) = temp_store().await;
    let master = MasterKey::from_bytes([3; 32]);
    let tenant = util::tenant(&store, "contoso").await;
    let created = util::connection(&store, &tenant, "crm").await;
    assert_eq!(created.state, ConnectionState::Pending);

    let error = store
        .set_connection_state(created.id, ConnectionState::Active, ACTOR, "WhoAmI ok")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("without its Entra tenant id and its client id and an active certificate"),
        "{text}"
    );

    let known = util::known_certificate("crm");
    let certificate = store
        .add_certificate(
            created.id,
            util::stored_form(&known.certificate, &master),
            ACTOR,
        )
        .await
        .unwrap();
    assert_eq!(
        certificate.state,
        CertificateState::Active,
        "the first one is active"
    );
    let changes = ConnectionChanges {
        entra_tenant_id: Some(ENTRA_TENANT),
        client_id: Some(CLIENT),
        ..Default::default()
    };
    let completed = store
        .edit_connection(created.id, changes, "user:admin")
        .await
        .unwrap();
    assert_eq!(completed.client_id, Some(CLIENT));
    let active = store
        .set_connection_state(created.id, ConnectionState::Active, ACTOR, "WhoAmI ok")
        .await
        .unwrap();
    assert_eq!(active.state, ConnectionState::Active);

    // Pointing it elsewhere needs a new test before it is used again.
    let moved = ConnectionChanges {
        environment_url: Some("https://contoso-test.crm.dynamics.com".into()),
        ..Default::default()
    };
    let moved = store
        .edit_connection(created.id, moved, "user:editor")
        .await
        .unwrap();
    assert_eq!(moved.state, ConnectionState::Pending);

    let history = store.connection_history(created.id).await.unwrap();
    let events: Vec<HistoryEvent> = history.iter().map(|h| h.event).collect();
    use HistoryEvent::*;
    assert_eq!(
        events,
        [Created, CertificateAdded, Edited, StateChanged, Edited]
    );
    assert_eq!(
        history.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(history[2].actor, "user:admin");
    assert_eq!(
        history[2].detail["client_id"],
        json!({ "from": null, "to": CLIENT.to_string() })
    );
    assert_eq!(history[3].detail["reason"], "WhoAmI ok");
    assert_eq!(history[4].actor, "user:editor");
    assert_eq!(history[4].detail["state"]["to"], "pending");
    assert_eq!(
        history[4].detail["environment_url"]["to"],
        "https://contoso-test.crm.dynamics.com"
    );
    assert_eq!(history[4].state, ConnectionState::Pending);
}

#[tokio::test]
async fn names_are_unique_among_live_connections_and_deletion_frees_them() {
    let (dir, store) = temp_store().await;
    let master = MasterKey::from_bytes([3; 32]);
    let tenant = util::tenant(&store, "contoso").await;
    let other = util::tenant(&store, "fabrikam").await;
    let first = util::connection(&store, &tenant, "crm").await;
    util::connection(&store, &other, "crm").await;
    let second = util::connection(&store, &tenant, "erp").await;

    let new = dvhost_store::NewConnection {
        tenant: tenant.id,
        name: name("crm"),
        environment_url: "https://x.crm.dynamics.com".into(),
        entra_tenant_id: None,
        client_id: None,
        security_role: None,
        mode: dvhost_store::ConnectionMode::Automatic,
    };
    let error = store
        .create_connection(new.clone(), ACTOR)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { .. }),
        "{error:?}"
    );
    let rename = ConnectionChanges {
        name: Some(name("crm")),
        ..Default::default()
    };
    let error = store
        .edit_connection(second.id, rename, ACTOR)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("connection crm already exists"),
        "{error}"
    );

    // A plugin bound to it keeps it alive.
    let known = util::known_certificate("crm");
    let form = util::stored_form(&known.certificate, &master);
    store.add_certificate(first.id, form, ACTOR).await.unwrap();
    let plugin = store.create_plugin(tenant.id, &name("sync")).await.unwrap();
    store.bind_plugin(plugin.id, Some(first.id)).await.unwrap();
    let error = store.delete_connection(first.id, ACTOR).await.unwrap_err();
    assert!(
        error.to_string().contains("used by plugin(s) sync"),
        "{error}"
    );
    assert_eq!(crate::util::count(dir.path(), "certificates").await, 1);

    store.bind_plugin(plugin.id, None).await.unwrap();
    let deleted = store.delete_connection(first.id, ACTOR).await.unwrap();
    assert_eq!(deleted.state, ConnectionState::Deleted);
    assert!(
        store.certificates(first.id).await.unwrap().is_empty(),
        "sealed keys gone"
    );
    assert_eq!(crate::util::count(dir.path(), "certificates").await, 0);
    assert_eq!(
        store
            .delete_connection(first.id, ACTOR)
            .await
            .unwrap()
            .state,
        ConnectionState::Deleted
    );
    let history = store.connection_history(first.id).await.unwrap();
    assert_eq!(history.last().unwrap().event, HistoryEvent::Deleted);
    assert_eq!(history.last().unwrap().detail["certificates_removed"], 1);
    let error = store
        .set_connection_state(first.id, ConnectionState::Pending, ACTOR, "undo")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is deleted and cannot become pending"),
        "{error}"
    );

    let reused = store.create_connection(new, ACTOR).await.unwrap();
    assert_ne!(reused.id, first.id);
    let live = store.connections(tenant.id, false).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(store.connections(tenant.id, true).await.unwrap().len(), 3);
    let found = store
        .connection_by_name(tenant.id, &name("crm"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, reused.id);
}

#[tokio::test]
async fn certificates_rotate_with_an_overlap() {
    let (_dir, store) = temp_store().await;
    let master = MasterKey::from_bytes([4; 32]);
    let tenant = util::tenant(&store, "contoso").await;
    let connection = util::connection(&store, &tenant, "crm").await;
    let old = util::known_certificate("old");
    let new = util::known_certificate("new");
    let old = store
        .add_certificate(
            connection.id,
            util::stored_form(&old.certificate, &master),
            ACTOR,
        )
        .await
        .unwrap();
    let form = util::stored_form(&new.certificate, &master);
    let duplicate = form.clone();
    let new = store
        .add_certificate(connection.id, form, ACTOR)
        .await
        .unwrap();
    assert_eq!(
        new.state,
        CertificateState::Pending,
        "the active one stays until switched"
    );
    let error = store
        .add_certificate(connection.id, duplicate, ACTOR)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { .. }),
        "{error:?}"
    );

    let switched = store.activate_certificate(new.id, ACTOR).await.unwrap();
    assert_eq!(switched.state, CertificateState::Active);
    let states: Vec<_> = store
        .certificates(connection.id)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.id, c.state))
        .collect();
    assert_eq!(
        states,
        [
            (old.id, CertificateState::Retiring),
            (new.id, CertificateState::Active)
        ]
    );
    let active = store
        .active_certificate(connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.id, new.id);

    let error = store.remove_certificate(new.id, ACTOR).await.unwrap_err();
    assert!(error.to_string().contains("is the active one"), "{error}");
    let used_at = time::OffsetDateTime::now_utc();
    store.mark_certificate_used(new.id, used_at).await.unwrap();
    let used = store.certificate(new.id).await.unwrap().unwrap();
    assert_eq!(
        used.last_used_at.unwrap().unix_timestamp(),
        used_at.unix_timestamp()
    );
    store.remove_certificate(old.id, ACTOR).await.unwrap();
    assert_eq!(store.certificates(connection.id).await.unwrap().len(), 1);

    let events: Vec<_> = store
        .connection_history(connection.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .collect();
    use HistoryEvent::*;
    assert_eq!(
        events,
        [
            Created,
            CertificateAdded,
            CertificateAdded,
            CertificateActivated,
            CertificateRemoved
        ]
    );
    let bad = dvhost_store::NewCertificate {
        sha1_thumbprint: "xyz".into(),
        ..util::stored_form(&util::known_certificate("bad").certificate, &master)
    };
    let error = store
        .add_certificate(connection.id, bad, ACTOR)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("40 hex digits"), "{error}");
}

#[tokio::test]
async fn provisioning_steps_are_recorded_for_a_resumed_flow() {
    let (_dir, store) = temp_store().await;
    let tenant = util::tenant(&store, "contoso").await;
    let connection = util::connection(&store, &tenant, "crm").await;
    let app = json!({ "display_name": "dvhost contoso/crm", "marker": "dvhost-7f3a" });
    store
        .record_step(
            connection.id,
            ProvisioningStep::ServicePrincipal,
            StepStatus::Started,
            json!({}),
        )
        .await
        .unwrap();
    store
        .record_step(
            connection.id,
            ProvisioningStep::AppRegistration,
            StepStatus::Started,
            app,
        )
        .await
        .unwrap();
    let done = json!({ "app_id": CLIENT.to_string(), "object_id": "0b9c" });
    store
        .record_step(
            connection.id,
            ProvisioningStep::AppRegistration,
            StepStatus::Done,
            done.clone(),
        )
        .await
        .unwrap();
    let steps = store.provisioning_steps(connection.id).await.unwrap();
    let summary: Vec<_> = steps.iter().map(|s| (s.step, s.status)).collect();
    assert_eq!(
        summary,
        [
            (ProvisioningStep::AppRegistration, StepStatus::Done),
            (ProvisioningStep::ServicePrincipal, StepStatus::Started),
        ],
        "one record per step, in flow order"
    );
    assert_eq!(steps[0].detail, done);

    let error = store
        .record_step(
            dvhost_store::ConnectionId::new(),
            ProvisioningStep::Certificate,
            StepStatus::Done,
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
}
