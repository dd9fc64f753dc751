//! The audit log: filters by tenant, plugin and time range combine, pages
//! follow each other without gaps or repeats, the database itself refuses
//! to change or remove an entry, and many writers at once all land.

use std::collections::HashSet;

use dvhost_store::{AuditOutcome, AuditQuery, NewAuditEntry, PluginId, TenantId};
use serde_json::json;
use sqlx::Connection as _;
use time::{Duration, OffsetDateTime};

use crate::util::{count, raw, temp_store};

fn entry(at: OffsetDateTime, tenant: TenantId, plugin: Option<PluginId>, i: u32) -> NewAuditEntry {
    NewAuditEntry {
        at,
        tenant: Some(tenant),
        plugin,
        actor: format!("api_key:key{}", i % 3),
        action: "plugin.invoke".into(),
        outcome: if i.is_multiple_of(5) {
            AuditOutcome::Failure
        } else {
            AuditOutcome::Success
        },
        request_id: Some(format!("req-{i}")),
        detail: json!({ "i": i }),
    }
}

#[tokio::test]
async fn filters_combine_and_pages_cover_everything_once() {
    let (_dir, store) = temp_store().await;
    let (contoso, fabrikam) = (TenantId::new(), TenantId::new());
    let plugin = PluginId::new();
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    for i in 0..60u32 {
        let at = start + Duration::minutes(i64::from(i));
        let tenant = if i.is_multiple_of(2) {
            contoso
        } else {
            fabrikam
        };
        let plugin = i.is_multiple_of(4).then_some(plugin);
        let seq = store
            .append_audit(&entry(at, tenant, plugin, i))
            .await
            .unwrap();
        assert_eq!(seq, i64::from(i) + 1);
    }

    let mut query = AuditQuery {
        tenant: Some(contoso),
        limit: 7,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.audit(&query).await.unwrap();
        assert!(page.entries.len() <= 7);
        seen.extend(
            page.entries
                .iter()
                .map(|e| e.entry.detail["i"].as_u64().unwrap()),
        );
        match page.next {
            Some(next) => query.before_seq = Some(next),
            None => break,
        }
    }
    let expected: Vec<u64> = (0..60u64).rev().filter(|i| i.is_multiple_of(2)).collect();
    assert_eq!(seen, expected, "newest first, each entry once");

    let window = AuditQuery {
        tenant: Some(contoso),
        plugin: Some(plugin),
        since: Some(start + Duration::minutes(10)),
        until: Some(start + Duration::minutes(40)),
        ..Default::default()
    };
    let page = store.audit(&window).await.unwrap();
    let found: Vec<u64> = page
        .entries
        .iter()
        .map(|e| e.entry.detail["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        found,
        [36, 32, 28, 24, 20, 16, 12],
        "since inclusive, until exclusive"
    );
    assert_eq!(page.next, None);
    let first = &page.entries[0].entry;
    assert_eq!(first.at, start + Duration::minutes(36));
    assert_eq!(first.request_id.as_deref(), Some("req-36"));
    assert_eq!(first.plugin, Some(plugin));

    let everything = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(everything.entries.len(), 60);
    let seqs: HashSet<i64> = everything.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 60);
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_an_entry() {
    let (dir, store) = temp_store().await;
    let at = OffsetDateTime::now_utc();
    store
        .append_audit(&entry(at, TenantId::new(), None, 1))
        .await
        .unwrap();
    let mut conn = raw(dir.path()).await;
    for statement in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET seq = seq + 100",
    ] {
        let error = sqlx::query(statement).execute(&mut conn).await.unwrap_err();
        assert!(
            error.to_string().contains("the audit log is append-only"),
            "{statement}: {error}"
        );
    }
    conn.close().await.unwrap();
    assert_eq!(count(dir.path(), "audit_log").await, 1);
    let page = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.entries[0].entry.actor, "api_key:key1");
}

#[tokio::test]
async fn a_batch_is_appended_in_order_in_one_go() {
    let (_dir, store) = temp_store().await;
    let tenant = TenantId::new();
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    store.append_audit_all(&[]).await.unwrap();
    // More rows than one INSERT statement carries.
    let batch: Vec<_> = (0..300u32).map(|i| entry(at, tenant, None, i)).collect();
    store.append_audit_all(&batch).await.unwrap();
    store
        .append_audit(&entry(at, tenant, None, 300))
        .await
        .unwrap();
    let mut order = Vec::new();
    let mut query = AuditQuery {
        tenant: Some(tenant),
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.audit(&query).await.unwrap();
        order.extend(
            page.entries
                .iter()
                .map(|e| (e.seq, e.entry.detail["i"].as_u64().unwrap())),
        );
        match page.next {
            Some(next) => query.before_seq = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..=300u64).rev().map(|i| (i as i64 + 1, i)).collect();
    assert_eq!(order, expected);
}

/// Writers of one process queue for the store's one writing connection:
/// many at once (tenants created, audit entries appended, reads between
/// them) all land, and none fails with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_at_once_all_land() {
    let (_dir, store) = temp_store().await;
    let audited = TenantId::new();
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let name = dvhost_store::Name::parse(&format!("tenant-{i}")).unwrap();
            store.create_tenant(&name, "Tenant").await?;
            store
                .append_audit_all(&[entry(at, audited, None, i)])
                .await?;
            store.tenants().await?;
            store.append_audit(&entry(at, audited, None, 100 + i)).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(store.tenants().await.unwrap().len(), 64);
    let query = AuditQuery {
        tenant: Some(audited),
        limit: 1000,
        ..Default::default()
    };
    let page = store.audit(&query).await.unwrap();
    assert_eq!(page.entries.len(), 128);
    assert!(page.next.is_none());
}
