//! Table metadata through the Web API (`EntityDefinitions`), cached per
//! client (one environment) until explicitly invalidated.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{Client, DataverseError, Repeat};

/// A table, as `list_tables` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    pub logical_name: String,
    pub entity_set: String,
    pub display_name: Option<String>,
    pub primary_id: String,
    pub primary_name: Option<String>,
    pub is_custom: bool,
}

/// A choice option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionValue {
    pub value: i64,
    pub label: Option<String>,
}

/// A column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    pub logical_name: String,
    /// `AttributeType` (`String`, `Picklist`, `Lookup`...).
    pub kind: String,
    /// `AttributeTypeName.Value` (`StringType`, `MultiSelectPicklistType`...).
    pub type_name: Option<String>,
    pub display_name: Option<String>,
    /// `None`, `SystemRequired`, `ApplicationRequired`, `Recommended`.
    pub required: Option<String>,
    pub max_length: Option<u64>,
    /// Lookup targets (logical names).
    pub targets: Vec<String>,
    /// Choice options (Picklist, State, Status).
    pub options: Vec<OptionValue>,
    pub valid_for_create: bool,
    pub valid_for_update: bool,
}

/// A table with its columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDescription {
    pub table: TableInfo,
    pub columns: Vec<ColumnInfo>,
}

/// Per-environment metadata cache.
#[derive(Debug, Default)]
pub(super) struct Cache {
    tables: parking_lot::Mutex<Option<Arc<Vec<TableInfo>>>>,
    described: parking_lot::Mutex<HashMap<String, Arc<TableDescription>>>,
}

fn label(v: &Value) -> Option<String> {
    v.get("UserLocalizedLabel")
        .and_then(|l| l.get("Label"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(String::from)
}

fn table_info(v: &Value) -> Option<TableInfo> {
    Some(TableInfo {
        logical_name: str_of(v, "LogicalName")?,
        entity_set: str_of(v, "EntitySetName")?,
        display_name: v.get("DisplayName").and_then(label),
        primary_id: str_of(v, "PrimaryIdAttribute")?,
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

fn is_safe_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Client {
    /// Every table (one request; Dataverse does not page metadata).
    pub async fn list_tables(
        &self,
        deadline: Instant,
    ) -> Result<Arc<Vec<TableInfo>>, DataverseError> {
        if let Some(t) = self.metadata.tables.lock().clone() {
            return Ok(t);
        }
        let r = self
            .send(reqwest::Method::GET, "EntityDefinitions?$select=LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute,PrimaryNameAttribute,IsCustomEntity", None, &[], Repeat::Safe, deadline)
            .await?;
        let mut tables: Vec<TableInfo> = r
            .body
            .get("value")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(table_info).collect())
            .unwrap_or_default();
        tables.sort_by(|a, b| a.logical_name.cmp(&b.logical_name));
        let tables = Arc::new(tables);
        *self.metadata.tables.lock() = Some(tables.clone());
        Ok(tables)
    }

    /// The entity set name of a table (never guessed by pluralising).
    pub async fn entity_set(
        &self,
        logical_name: &str,
        deadline: Instant,
    ) -> Result<String, DataverseError> {
        let tables = self.list_tables(deadline).await?;
        tables
            .iter()
            .find(|t| t.logical_name == logical_name)
            .map(|t| t.entity_set.clone())
            .ok_or_else(|| DataverseError::Api {
                status: 404,
                code: "0x80040217".into(),
                message: format!("No table named '{logical_name}' in this environment."),
                retry_after: None,
            })
    }

    /// Columns of a table with types, required level, max length, lookup
    /// targets and choice options.
    pub async fn describe_table(
        &self,
        logical_name: &str,
        deadline: Instant,
    ) -> Result<Arc<TableDescription>, DataverseError> {
        if let Some(d) = self.metadata.described.lock().get(logical_name) {
            return Ok(d.clone());
        }
        if !is_safe_name(logical_name) {
            return Err(DataverseError::Api {
                status: 400,
                code: "0x80060888".into(),
                message: format!("'{logical_name}' is not a table name."),
                retry_after: None,
            });
        }
        let base = format!("EntityDefinitions(LogicalName='{logical_name}')");
        let entity = self.send(reqwest::Method::GET, &format!("{base}?$select=LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute,PrimaryNameAttribute,IsCustomEntity"), None, &[], Repeat::Safe, deadline).await?;
        let table = table_info(&entity.body)
            .ok_or_else(|| DataverseError::Transport("unexpected EntityDefinitions body".into()))?;
        let attrs = self
            .send(
                reqwest::Method::GET,
                &format!("{base}/Attributes"),
                None,
                &[],
                Repeat::Safe,
                deadline,
            )
            .await?;
        let mut columns: Vec<ColumnInfo> = Vec::new();
        for a in attrs
            .body
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = str_of(a, "LogicalName") else {
                continue;
            };
            columns.push(ColumnInfo {
                logical_name: name,
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
            });
        }
        // Option sets need a cast per derived type (reference §4).
        for cast in [
            "PicklistAttributeMetadata",
            "StateAttributeMetadata",
            "StatusAttributeMetadata",
        ] {
            let r = self.send(reqwest::Method::GET, &format!("{base}/Attributes/Microsoft.Dynamics.CRM.{cast}?$select=LogicalName&$expand=OptionSet"), None, &[], Repeat::Safe, deadline).await?;
            for a in r
                .body
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
        let described = Arc::new(TableDescription { table, columns });
        self.metadata
            .described
            .lock()
            .insert(logical_name.to_string(), described.clone());
        Ok(described)
    }

    /// Forgets cached metadata (after a schema change).
    pub fn invalidate_metadata(&self) {
        *self.metadata.tables.lock() = None;
        self.metadata.described.lock().clear();
    }
}
