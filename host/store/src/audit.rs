//! The audit log: append and query, nothing else. The store offers no way
//! to change or remove an entry, and the database refuses it too (SQLite
//! triggers raise on UPDATE and DELETE). Entries name tenants and plugins
//! by id without a foreign key, so they outlive what they describe.

use serde_json::Value;
use time::OffsetDateTime;

use crate::connections::text_enum;
use crate::{PluginId, Store, StoreError, TenantId};

/// Most entries one query returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

text_enum!(
    /// How the audited action ended.
    AuditOutcome {
        /// It succeeded.
        Success = "success",
        /// It failed.
        Failure = "failure",
        /// It was refused (authentication, grants, limits).
        Denied = "denied",
    }
);

/// An entry to append. No secret may go into any field.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When it happened (the caller's clock: an invocation's start).
    pub at: OffsetDateTime,
    /// The tenant concerned.
    pub tenant: Option<TenantId>,
    /// The plugin concerned.
    pub plugin: Option<PluginId>,
    /// Who acted (`user:<upn>`, `api_key:<id>`, `system`).
    pub actor: String,
    /// What was done (`connection.edit`, `plugin.invoke`...).
    pub action: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The request id that carried it, when there was one.
    pub request_id: Option<String>,
    /// Details (JSON).
    pub detail: Value,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its position in the log: increasing, never reused.
    pub seq: i64,
    /// What was recorded.
    pub entry: NewAuditEntry,
}

/// Which entries to read: all filters combine, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's entries.
    pub tenant: Option<TenantId>,
    /// Only this plugin's entries.
    pub plugin: Option<PluginId>,
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries before this time.
    pub until: Option<OffsetDateTime>,
    /// Only entries older than this one (the `next` of the previous page).
    pub before_seq: Option<i64>,
    /// At most this many (0 means [`MAX_AUDIT_PAGE`]; larger is capped).
    pub limit: u32,
}

/// One page of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as [`AuditQuery::before_seq`] for the next page; `None` at the end.
    pub next: Option<i64>,
}

impl Store {
    /// Appends an entry; returns its sequence number.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        self.backend.append_audit(entry).await
    }

    /// Appends entries in order in one transaction (all or none): what a
    /// busy writer uses instead of one transaction per entry.
    pub async fn append_audit_all(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.backend.append_audit_all(entries).await
    }

    /// Reads entries matching `query`, newest first, one page at a time.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = match query.limit {
            0 => MAX_AUDIT_PAGE,
            n => n.min(MAX_AUDIT_PAGE),
        };
        // One more than asked tells whether a next page exists.
        let mut entries = self.backend.audit(query, limit + 1).await?;
        let next = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }
}
