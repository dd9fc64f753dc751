//! Table metadata through the Web API (`EntityDefinitions`), in a cache per
//! client (one environment) with a lifetime, a size bound, one request in
//! flight per key however many callers miss at once, and explicit
//! invalidation.
//!
//! Names that come back from the server are checked like any caller's: an
//! `EntitySetName` that is not an entity set name (a URL, say) is an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::target::{ColumnName, EntitySet, TableName, Target};
use super::{Client, DataverseError};

/// Size and lifetime of a client's metadata cache.
#[derive(Debug, Clone, Copy)]
pub struct MetadataCacheConfig {
    /// How long an entry is served before it is fetched again.
    pub time_to_live: Duration,
    /// Most tables described at once (the table list counts as one).
    pub max_entries: u64,
}

impl Default for MetadataCacheConfig {
    /// Ten minutes, 500 tables: schema changes are rare, and an operator can
    /// invalidate after one.
    fn default() -> Self {
        MetadataCacheConfig {
            time_to_live: Duration::from_secs(600),
            max_entries: 500,
        }
    }
}

/// A table, as `list_tables` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    /// Logical name (`account`).
    pub logical_name: TableName,
    /// Entity set name (`accounts`).
    pub entity_set: EntitySet,
    /// Display name in the user's language.
    pub display_name: Option<String>,
    /// The primary key column (`accountid`).
    pub primary_id: ColumnName,
    /// The primary name column (`name`).
    pub primary_name: Option<String>,
    /// Whether it is a custom table.
    pub is_custom: bool,
}

/// A choice option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionValue {
    /// Its value.
    pub value: i64,
    /// Its label in the user's language.
    pub label: Option<String>,
}

/// How a lookup column is set to a row of one target table: the row
/// carries `<navigation>@odata.bind` = `/<entity_set>(<id>)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupTarget {
    /// The target table's logical name (`account`).
    pub table: String,
    /// The single-valued navigation property (`parentcustomerid_account`),
    /// `ReferencingEntityNavigationPropertyName` of the relationship.
    pub navigation: String,
    /// The target table's entity set (`accounts`).
    pub entity_set: EntitySet,
}

/// A column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// Logical name.
    pub logical_name: String,
    /// `AttributeType` (`String`, `Picklist`, `Lookup`...).
    pub kind: String,
    /// `AttributeTypeName.Value` (`StringType`, `MultiSelectPicklistType`...).
    pub type_name: Option<String>,
    /// Display name in the user's language.
    pub display_name: Option<String>,
    /// `None`, `SystemRequired`, `ApplicationRequired`, `Recommended`.
    pub required: Option<String>,
    /// Longest value, for text columns.
    pub max_length: Option<u64>,
    /// Lookup targets (logical names).
    pub targets: Vec<String>,
    /// Choice options (Picklist, State, Status).
    pub options: Vec<OptionValue>,
    /// Whether a create may set it.
    pub valid_for_create: bool,
    /// Whether an update may set it.
    pub valid_for_update: bool,
    /// `MinValue` of a number column.
    pub min_value: Option<f64>,
    /// `MaxValue` of a number column.
    pub max_value: Option<f64>,
    /// `Precision` of a decimal, float or money column.
    pub precision: Option<u32>,
    /// `DateTimeBehavior.Value` of a date-time column (`UserLocal`,
    /// `DateOnly`, `TimeZoneIndependent`).
    pub date_time_behavior: Option<String>,
    /// For a lookup, how to set it to each target that has a navigation
    /// property, in the order of `targets`.
    pub lookup_targets: Vec<LookupTarget>,
}

/// A table with its columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDescription {
    /// The table.
    pub table: TableInfo,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

/// Per-environment metadata cache.
pub(super) struct Cache {
    tables: moka::future::Cache<(), Arc<Vec<TableInfo>>>,
    described: moka::future::Cache<TableName, Arc<TableDescription>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("described", &self.described.entry_count())
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub(super) fn new(config: MetadataCacheConfig) -> Cache {
        Cache {
            tables: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(config.time_to_live)
                .build(),
            described: moka::future::Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.time_to_live)
                .build(),
        }
    }
}

/// The `$select` of table queries.
const TABLE_COLUMNS: &str =
    "LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute,PrimaryNameAttribute,IsCustomEntity";

fn label(v: &Value) -> Option<String> {
    v.get("UserLocalizedLabel")
        .and_then(|l| l.get("Label"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(String::from)
}

/// A table from an `EntityDefinitions` entry; its names are checked.
fn table_info(v: &Value) -> Result<TableInfo, DataverseError> {
    let field = |k: &str| {
        str_of(v, k).ok_or_else(|| {
            DataverseError::Transport(format!("an EntityDefinitions entry has no {k}"))
        })
    };
    Ok(TableInfo {
        logical_name: TableName::new(&field("LogicalName")?)?,
        entity_set: EntitySet::new(&field("EntitySetName")?)?,
        display_name: v.get("DisplayName").and_then(label),
        primary_id: ColumnName::new(&field("PrimaryIdAttribute")?)?,
        primary_name: str_of(v, "PrimaryNameAttribute"),
        is_custom: v
            .get("IsCustomEntity")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn options(v: &Value) -> Vec<OptionValue> {
    v.get("OptionSet")
        .and_then(|o| o.get("Options"))
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(|x| {
                    Some(OptionValue {
                        value: x.get("Value")?.as_i64()?,
                        label: x.get("Label").and_then(label),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How long a metadata load may take. It belongs to no caller: many may
/// wait on one load, each until its own deadline.
const LOAD_TIME: Duration = Duration::from_secs(60);

/// Waits for a cache entry until `deadline`; the load's error is shared by
/// every caller that waited on it.
async fn within<T>(
    deadline: Instant,
    load: impl std::future::Future<Output = Result<T, Arc<DataverseError>>>,
) -> Result<T, DataverseError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(remaining, load)
        .await
        .map_err(|_| DataverseError::Deadline(" (waiting for table metadata)".into()))?
        .map_err(Arc::unwrap_or_clone)
}

impl Client {
    /// Every table (one request; Dataverse does not page metadata).
    pub async fn list_tables(
        &self,
        deadline: Instant,
    ) -> Result<Arc<Vec<TableInfo>>, DataverseError> {
        let load = self.fetch_tables(Instant::now() + LOAD_TIME);
        within(deadline, self.metadata.tables.try_get_with((), load)).await
    }

    async fn fetch_tables(&self, deadline: Instant) -> Result<Arc<Vec<TableInfo>>, DataverseError> {
        let target = Target::fixed("EntityDefinitions").option("$select", TABLE_COLUMNS);
        let body = self.get(&target, &[], deadline).await?;
        let mut tables = body
            .get("value")
            .and_then(Value::as_array)
            .map(|v| v.iter().map(table_info).collect::<Result<Vec<_>, _>>())
            .unwrap_or(Ok(Vec::new()))?;
        tables.sort_by(|a, b| a.logical_name.cmp(&b.logical_name));
        Ok(Arc::new(tables))
    }

    /// The table named `table`, from the cached list (found by binary
    /// search: the list is kept sorted by logical name). A table the
    /// environment does not have is Dataverse's own 404, `0x80040217`.
    pub async fn table(
        &self,
        table: &TableName,
        deadline: Instant,
    ) -> Result<TableInfo, DataverseError> {
        let tables = self.list_tables(deadline).await?;
        match tables.binary_search_by(|t| t.logical_name.cmp(table)) {
            Ok(found) => Ok(tables[found].clone()),
            Err(_) => Err(DataverseError::Api {
                status: 404,
                code: "0x80040217".into(),
                message: format!("No table named '{table}' in this environment."),
                retry_after: None,
            }),
        }
    }

    /// The entity set name of a table (never guessed by pluralising).
    pub async fn entity_set(
        &self,
        table: &TableName,
        deadline: Instant,
    ) -> Result<EntitySet, DataverseError> {
        Ok(self.table(table, deadline).await?.entity_set)
    }

    /// Columns of a table with types, required level, max length, lookup
    /// targets and choice options.
    pub async fn describe_table(
        &self,
        table: &TableName,
        deadline: Instant,
    ) -> Result<Arc<TableDescription>, DataverseError> {
        let load = self.fetch_description(table, Instant::now() + LOAD_TIME);
        within(
            deadline,
            self.metadata.described.try_get_with(table.clone(), load),
        )
        .await
    }

    async fn fetch_description(
        &self,
        table: &TableName,
        deadline: Instant,
    ) -> Result<Arc<TableDescription>, DataverseError> {
        let get = |target: Target| async move { self.get(&target, &[], deadline).await };
        // The table's many-to-one relationships name each lookup's
        // navigation property per target ("Query relationship definitions
        // using the Web API": `$expand=ManyToOneRelationships($select=...)`).
        let entity = get(Target::definition(table)
            .option("$select", TABLE_COLUMNS)
            .option(
                "$expand",
                format!("ManyToOneRelationships($select={RELATIONSHIP_COLUMNS})"),
            ))
        .await?;
        let info = table_info(&entity)?;
        let attrs = get(Target::definition(table).then("Attributes")).await?;
        let mut columns: Vec<ColumnInfo> = attrs
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(column_info)
            .collect();
        // Option sets need a cast per derived type ("Query table definitions
        // using the Web API": retrieve attributes by type).
        for cast in [
            "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            "Microsoft.Dynamics.CRM.StateAttributeMetadata",
            "Microsoft.Dynamics.CRM.StatusAttributeMetadata",
        ] {
            let target = Target::definition(table)
                .then("Attributes")
                .then(cast)
                .option("$select", "LogicalName")
                .option("$expand", "OptionSet");
            let r = get(target).await?;
            for a in r
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = columns.iter_mut().find(|c| {
                    Some(c.logical_name.as_str()) == a.get("LogicalName").and_then(Value::as_str)
                }) {
                    c.options = options(a);
                }
            }
        }
        let relationships: Vec<Value> = entity
            .get("ManyToOneRelationships")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if columns.iter().any(|c| !c.targets.is_empty()) {
            let tables = self.list_tables(deadline).await?;
            for c in &mut columns {
                c.lookup_targets = lookup_targets(c, &relationships, &tables);
            }
        }
        Ok(Arc::new(TableDescription {
            table: info,
            columns,
        }))
    }

    /// Forgets cached metadata (after a schema change).
    pub fn invalidate_metadata(&self) {
        self.metadata.tables.invalidate_all();
        self.metadata.described.invalidate_all();
    }
}

/// The `$select` of many-to-one relationship queries.
const RELATIONSHIP_COLUMNS: &str =
    "ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName";

/// How lookup `column` is set to each of its targets, from the table's
/// many-to-one relationships: the relationship whose `ReferencingAttribute`
/// is the column and whose `ReferencedEntity` is the target gives the
/// navigation property. An owner lookup has one relationship to the
/// abstract `owner` table (not among its targets) whose navigation property
/// (`ownerid`) serves every target; that one is used when it is the
/// column's only relationship. A target without a relationship, a
/// navigation property that is not a name, or a target table this
/// environment does not list is left out (never guessed).
fn lookup_targets(
    column: &ColumnInfo,
    relationships: &[Value],
    tables: &[TableInfo],
) -> Vec<LookupTarget> {
    let of_column: Vec<(&str, &str)> = relationships
        .iter()
        .filter(|r| {
            r.get("ReferencingAttribute").and_then(Value::as_str)
                == Some(column.logical_name.as_str())
        })
        .filter_map(|r| {
            Some((
                r.get("ReferencedEntity")?.as_str()?,
                r.get("ReferencingEntityNavigationPropertyName")?.as_str()?,
            ))
        })
        .collect();
    column
        .targets
        .iter()
        .filter_map(|target| {
            let navigation = match of_column.iter().find(|(t, _)| t == target) {
                Some((_, nav)) => *nav,
                None => match of_column.as_slice() {
                    [(base, nav)] if !column.targets.iter().any(|t| t == base) => *nav,
                    _ => return None,
                },
            };
            let navigation = ColumnName::new(navigation).ok()?;
            let table = tables.iter().find(|t| t.logical_name.as_str() == target)?;
            Some(LookupTarget {
                table: target.clone(),
                navigation: navigation.to_string(),
                entity_set: table.entity_set.clone(),
            })
        })
        .collect()
}

/// A column from an `Attributes` entry (`None` without a logical name).
fn column_info(a: &Value) -> Option<ColumnInfo> {
    Some(ColumnInfo {
        logical_name: str_of(a, "LogicalName")?,
        kind: str_of(a, "AttributeType").unwrap_or_default(),
        type_name: a
            .get("AttributeTypeName")
            .and_then(|t| t.get("Value"))
            .and_then(Value::as_str)
            .map(String::from),
        display_name: a.get("DisplayName").and_then(label),
        required: a
            .get("RequiredLevel")
            .and_then(|r| r.get("Value"))
            .and_then(Value::as_str)
            .map(String::from),
        max_length: a.get("MaxLength").and_then(Value::as_u64),
        targets: a
            .get("Targets")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        options: Vec::new(),
        valid_for_create: a
            .get("IsValidForCreate")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        valid_for_update: a
            .get("IsValidForUpdate")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        min_value: a.get("MinValue").and_then(Value::as_f64),
        max_value: a.get("MaxValue").and_then(Value::as_f64),
        precision: a
            .get("Precision")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok()),
        date_time_behavior: a
            .get("DateTimeBehavior")
            .and_then(|b| b.get("Value"))
            .and_then(Value::as_str)
            .map(String::from),
        lookup_targets: Vec::new(),
    })
}
