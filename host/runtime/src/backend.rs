//! The narrow traits through which the runtime reaches Dataverse. The
//! binary implements them with the transport's client for one connection;
//! tests implement them with fakes. Nothing here carries a credential or a
//! URL: tables and columns are names, rows are JSON objects, and a page's
//! continuation is an opaque value only the backend can read.

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde_json::{Map, Value};
use uuid::Uuid;

/// A row: column logical names to values, in the Web API's JSON shape.
pub type Row = Map<String, Value>;

/// A row as JSON text (an object), as the environment wrote it. A read
/// hands it to the guest without building a map of every column and
/// writing it out again; the runtime only takes out URL annotations.
pub type RowText = Box<serde_json::value::RawValue>;

/// What a backend call failed with. Messages reach the guest: they must
/// hold no token, key, URL or header.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// Dataverse answered with an error.
    #[error("Dataverse returned HTTP {status}: {message}")]
    Dataverse {
        /// HTTP status.
        status: u16,
        /// Dataverse's error code (`0x80040217`), when it gave one.
        code: Option<String>,
        /// Its message.
        message: String,
        /// Seconds to wait (throttling).
        retry_after: Option<u32>,
    },
    /// A name, id, key, filter or row the backend refused; nothing was sent.
    #[error("{0}")]
    InvalidInput(String),
    /// The deadline passed.
    #[error("the deadline passed before Dataverse answered")]
    Deadline,
    /// Dataverse could not be reached or answered something unusable.
    #[error("{0}")]
    Unavailable(String),
}

/// Per-call context handed to the backend.
#[derive(Debug)]
pub struct CallContext {
    /// When the invocation ends: the backend must not work past it.
    pub deadline: Instant,
    retries: AtomicU32,
}

impl CallContext {
    /// A context ending at `deadline`.
    pub fn new(deadline: Instant) -> CallContext {
        CallContext {
            deadline,
            retries: AtomicU32::new(0),
        }
    }

    /// Records that the backend repeated the request `n` more times (for
    /// the audit record).
    pub fn add_retries(&self, n: u32) {
        self.retries.fetch_add(n, Ordering::Relaxed);
    }

    /// Repeats recorded so far.
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A value of an alternate-key column.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A GUID.
    Guid(Uuid),
}

/// Which row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKey {
    /// Its primary id.
    Id(Uuid),
    /// An alternate key (column, value) pairs.
    Alternate(Vec<(String, KeyValue)>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// A text function, matched literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// `contains`
    Contains,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
}

/// A value compared with a column.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// `null`
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A decimal number.
    Number(f64),
    /// `true`/`false`.
    Boolean(bool),
    /// A GUID.
    Guid(Uuid),
    /// An ISO 8601 date or date-time (checked by the backend).
    DateTime(String),
}

/// One condition of a filter; conditions are ANDed.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `column op value`.
    Compare {
        /// Column or navigation path (`parentaccountid/name`).
        column: String,
        /// Operator.
        op: Comparison,
        /// Value.
        value: FilterValue,
    },
    /// `contains`/`startswith`/`endswith`.
    Text {
        /// Function.
        function: TextMatch,
        /// Column.
        column: String,
        /// Text, matched literally.
        text: String,
    },
}

/// An `$orderby` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Column.
    pub column: String,
    /// Descending when true.
    pub descending: bool,
}

/// An `$expand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    /// Navigation property.
    pub navigation: String,
    /// Columns of the related rows.
    pub select: Vec<String>,
}

/// A query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuerySpec {
    /// Columns (all when empty).
    pub select: Vec<String>,
    /// Conditions, ANDed.
    pub filter: Vec<Condition>,
    /// Sort order.
    pub order_by: Vec<Order>,
    /// At most this many rows.
    pub top: Option<u32>,
    /// Rows per page.
    pub page_size: Option<u32>,
    /// Whether to count.
    pub count: bool,
    /// Related rows.
    pub expand: Vec<Expand>,
}

/// Where a query continues: opaque to the runtime and the guest.
pub type Continuation = Box<dyn Any + Send + Sync>;

/// One page of a query.
pub struct PageData {
    /// Its rows.
    pub rows: Vec<Row>,
    /// The count, when asked for.
    pub count: Option<u64>,
    /// The continuation, when more pages follow.
    pub next: Option<Continuation>,
}

impl std::fmt::Debug for PageData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageData")
            .field("rows", &self.rows.len())
            .field("count", &self.count)
            .field("has_more", &self.next.is_some())
            .finish()
    }
}

/// Row operations on one connection's environment.
#[async_trait::async_trait]
pub trait Records: Send + Sync + 'static {
    /// Creates a row; with `id`, under that id.
    async fn create(
        &self,
        call: &CallContext,
        table: &str,
        row: Row,
        id: Option<Uuid>,
    ) -> Result<Uuid, BackendError>;
    /// Reads one row, as JSON text.
    async fn retrieve(
        &self,
        call: &CallContext,
        table: &str,
        key: &RowKey,
        select: &[String],
        expand: &[Expand],
    ) -> Result<RowText, BackendError>;
    /// Changes a row, optionally only at ETag `if_match`.
    async fn update(
        &self,
        call: &CallContext,
        table: &str,
        id: Uuid,
        changes: Row,
        if_match: Option<&str>,
    ) -> Result<(), BackendError>;
    /// Creates or changes the row at `key`.
    async fn upsert(
        &self,
        call: &CallContext,
        table: &str,
        key: &RowKey,
        row: Row,
    ) -> Result<(), BackendError>;
    /// Deletes a row.
    async fn delete(&self, call: &CallContext, table: &str, id: Uuid) -> Result<(), BackendError>;
    /// First page of a query.
    async fn query(
        &self,
        call: &CallContext,
        table: &str,
        query: &QuerySpec,
    ) -> Result<PageData, BackendError>;
    /// The page after a continuation.
    async fn next_page(
        &self,
        call: &CallContext,
        continuation: &Continuation,
    ) -> Result<PageData, BackendError>;
    /// `CreateMultiple`: all or none; the ids in order.
    async fn create_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<Vec<Uuid>, BackendError>;
    /// `UpdateMultiple`: all or none; each row carries its id.
    async fn update_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<(), BackendError>;
}

/// A table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Logical name.
    pub logical_name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Primary key column.
    pub primary_id: String,
    /// Primary name column.
    pub primary_name: Option<String>,
    /// Custom table.
    pub is_custom: bool,
}

/// How much a column is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequiredLevel {
    /// Optional.
    #[default]
    None,
    /// Recommended.
    Recommended,
    /// Required by the application.
    ApplicationRequired,
    /// Required by the platform.
    SystemRequired,
}

/// How a lookup column is set to a row of one target table:
/// `<navigation>@odata.bind` = `/<entity_set>(<id>)` in the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupTarget {
    /// The target table's logical name.
    pub table: String,
    /// The single-valued navigation property for this target.
    pub navigation: String,
    /// The target table's entity set.
    pub entity_set: String,
}

/// A column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnInfo {
    /// Logical name.
    pub logical_name: String,
    /// `AttributeType`.
    pub kind: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Required level.
    pub required: RequiredLevel,
    /// Longest text.
    pub max_length: Option<u32>,
    /// Lookup targets.
    pub targets: Vec<String>,
    /// Choice options (value, label).
    pub options: Vec<(i64, Option<String>)>,
    /// Settable on create.
    pub valid_for_create: bool,
    /// Settable on update.
    pub valid_for_update: bool,
    /// `AttributeTypeName` (`StringType`, `MultiSelectPicklistType`...).
    pub type_name: Option<String>,
    /// Smallest value of a number column.
    pub min_value: Option<f64>,
    /// Largest value of a number column.
    pub max_value: Option<f64>,
    /// Digits after the decimal point of a decimal, float or money column.
    pub precision: Option<u32>,
    /// Whether a date-time column holds a date only (`DateTimeBehavior`
    /// `DateOnly`).
    pub date_only: bool,
    /// For a lookup, how to set it to each target, in the order of
    /// `targets` (targets without a navigation property are absent).
    pub lookup_targets: Vec<LookupTarget>,
}

/// A table with its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDescription {
    /// The table.
    pub table: TableInfo,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

/// Metadata of one connection's environment.
#[async_trait::async_trait]
pub trait Metadata: Send + Sync + 'static {
    /// Every table of the environment.
    async fn list_tables(&self, call: &CallContext) -> Result<Vec<TableInfo>, BackendError>;
    /// One table's columns.
    async fn describe_table(
        &self,
        call: &CallContext,
        table: &str,
    ) -> Result<TableDescription, BackendError>;
}

/// The backend of a plugin bound to no connection (and of `describe` at
/// load): every call fails with "unavailable", nothing is sent anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unconnected;

fn unconnected<T>() -> Result<T, BackendError> {
    Err(BackendError::Unavailable(
        "this plugin is not bound to a Dataverse connection".into(),
    ))
}

#[async_trait::async_trait]
impl Records for Unconnected {
    async fn create(
        &self,
        _: &CallContext,
        _: &str,
        _: Row,
        _: Option<Uuid>,
    ) -> Result<Uuid, BackendError> {
        unconnected()
    }
    async fn retrieve(
        &self,
        _: &CallContext,
        _: &str,
        _: &RowKey,
        _: &[String],
        _: &[Expand],
    ) -> Result<RowText, BackendError> {
        unconnected()
    }
    async fn update(
        &self,
        _: &CallContext,
        _: &str,
        _: Uuid,
        _: Row,
        _: Option<&str>,
    ) -> Result<(), BackendError> {
        unconnected()
    }
    async fn upsert(
        &self,
        _: &CallContext,
        _: &str,
        _: &RowKey,
        _: Row,
    ) -> Result<(), BackendError> {
        unconnected()
    }
    async fn delete(&self, _: &CallContext, _: &str, _: Uuid) -> Result<(), BackendError> {
        unconnected()
    }
    async fn query(
        &self,
        _: &CallContext,
        _: &str,
        _: &QuerySpec,
    ) -> Result<PageData, BackendError> {
        unconnected()
    }
    async fn next_page(&self, _: &CallContext, _: &Continuation) -> Result<PageData, BackendError> {
        unconnected()
    }
    async fn create_many(
        &self,
        _: &CallContext,
        _: &str,
        _: Vec<Row>,
    ) -> Result<Vec<Uuid>, BackendError> {
        unconnected()
    }
    async fn update_many(&self, _: &CallContext, _: &str, _: Vec<Row>) -> Result<(), BackendError> {
        unconnected()
    }
}

#[async_trait::async_trait]
impl Metadata for Unconnected {
    async fn list_tables(&self, _: &CallContext) -> Result<Vec<TableInfo>, BackendError> {
        unconnected()
    }
    async fn describe_table(
        &self,
        _: &CallContext,
        _: &str,
    ) -> Result<TableDescription, BackendError> {
        unconnected()
    }
}
