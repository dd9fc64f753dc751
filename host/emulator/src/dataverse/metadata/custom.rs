//! Custom tables from the seed: checked, turned into the same
//! compiled-metadata JSON the standard tables come in, and joined with
//! them into an environment's schema.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{CollectionNav, Kind, Schema, Table, label_of, parse_table};
use crate::seed::{ColumnSeed, TableSeed};

/// Why an environment's custom tables or alternate keys are rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// A table name without a publisher prefix, or not lower case.
    #[error("table name '{0}' must be lowercase with a publisher prefix, like new_project")]
    TableName(String),
    /// A column name with other characters than lower-case letters, digits, `_`.
    #[error("column name '{0}' must be lowercase letters, digits and _")]
    ColumnName(String),
    /// A column type the emulator does not know.
    #[error("column '{column}' has unsupported type '{kind}'")]
    ColumnType {
        /// The column.
        column: String,
        /// The type given.
        kind: String,
    },
    /// A lookup without exactly one target.
    #[error("lookup column '{0}' needs exactly one target")]
    LookupTargets(String),
    /// A lookup to a table the environment does not have.
    #[error("lookup column '{column}' targets unknown table '{target}'")]
    UnknownTarget {
        /// The column.
        column: String,
        /// The target table.
        target: String,
    },
    /// A choice column without options.
    #[error("choice column '{0}' needs options")]
    NoOptions(String),
    /// A column given twice (or clashing with a system column).
    #[error("column '{column}' is defined twice in '{table}'")]
    DuplicateColumn {
        /// The column.
        column: String,
        /// The table.
        table: String,
    },
    /// An alternate key naming a column the table does not have.
    #[error("alternate key column '{column}' is not a column of '{table}'")]
    KeyColumn {
        /// The column.
        column: String,
        /// The table.
        table: String,
    },
    /// A table defined twice (or clashing with a standard table).
    #[error("table '{0}' is defined twice")]
    DuplicateTable(String),
    /// Two tables with one entity set name.
    #[error("entity set '{0}' is used twice")]
    DuplicateEntitySet(String),
    /// Alternate keys for a table the environment does not have.
    #[error("alternate keys for unknown table '{0}'")]
    KeysForUnknownTable(String),
}

/// An environment's schema: the standard tables, its custom tables (with a
/// collection-valued navigation property on each lookup's target) and its
/// extra alternate keys.
pub fn build_schema(
    custom: &[TableSeed],
    keys: &BTreeMap<String, Vec<Vec<String>>>,
) -> Result<Schema, SchemaError> {
    let mut tables: Vec<Table> = Schema::standard()
        .tables
        .iter()
        .map(|t| (**t).clone())
        .collect();
    let standard: Vec<String> = tables.iter().map(|t| t.logical_name.clone()).collect();
    let custom_names: Vec<String> = custom.iter().map(|t| t.logical_name.clone()).collect();
    let known = |n: &str| standard.iter().chain(custom_names.iter()).any(|k| k == n);
    for (i, t) in custom.iter().enumerate() {
        if standard.contains(&t.logical_name)
            || custom_names
                .iter()
                .filter(|n| **n == t.logical_name)
                .count()
                > 1
        {
            return Err(SchemaError::DuplicateTable(t.logical_name.clone()));
        }
        // Custom tables get object type codes from 10000 up, in seed order
        // ("ObjectTypeCode" in "Table definitions",
        // https://learn.microsoft.com/power-apps/developer/data-platform/entity-metadata).
        let mut json = custom_table_json(t, &known)?;
        json["ObjectTypeCode"] = json!(10000 + i);
        tables.push(parse_table(&json));
    }
    let sets: Vec<&String> = tables.iter().map(|t| &t.entity_set).collect();
    if let Some((i, _)) = sets
        .iter()
        .enumerate()
        .find(|(i, s)| sets[..*i].contains(s))
    {
        return Err(SchemaError::DuplicateEntitySet(sets[i].clone()));
    }
    for (target, nav) in inverse_navigations(&tables, &custom_names) {
        if let Some(t) = tables.iter_mut().find(|t| t.logical_name == target) {
            t.collection_navs.push(nav);
        }
    }
    for (table, list) in keys {
        let t = tables
            .iter_mut()
            .find(|t| &t.logical_name == table)
            .ok_or_else(|| SchemaError::KeysForUnknownTable(table.clone()))?;
        for key in list {
            if let Some(missing) = key.iter().find(|k| t.attribute(k).is_none()) {
                return Err(SchemaError::KeyColumn {
                    column: missing.clone(),
                    table: table.clone(),
                });
            }
            t.alternate_keys.push(key.clone());
        }
    }
    Ok(Schema::new(tables))
}

/// Inverse navigation: the target of a custom lookup lists the rows
/// pointing at it. Returns (target table, its new navigation property).
fn inverse_navigations(tables: &[Table], custom: &[String]) -> Vec<(String, CollectionNav)> {
    let mut inverse = Vec::new();
    for t in tables.iter().filter(|t| custom.contains(&t.logical_name)) {
        for a in t
            .attributes
            .iter()
            .filter(|a| a.kind == Kind::Lookup && a.raw.get("Relationships").is_some())
        {
            if matches!(
                a.logical_name.as_str(),
                "ownerid" | "owningbusinessunit" | "createdby" | "modifiedby"
            ) {
                continue;
            }
            for (target, _) in &a.targets {
                let rel = format!("{}_{}", t.logical_name, a.logical_name);
                inverse.push((
                    target.clone(),
                    CollectionNav {
                        name: rel.clone(),
                        other: t.logical_name.clone(),
                        referencing_attribute: Some(a.logical_name.clone()),
                        relationship: rel,
                        intersect: None,
                    },
                ));
            }
        }
    }
    inverse
}

/// A lower-case name with a publisher prefix (`new_project`).
fn prefixed(n: &str) -> bool {
    lower_snake(n) && !n.is_empty() && n.contains('_')
}

/// Lower-case letters, digits and `_` only.
fn lower_snake(n: &str) -> bool {
    n.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The metadata JSON of a column nobody sets a type detail of.
fn system_column(name: &str, ty: &str, create: bool, update: bool) -> Value {
    json!({"LogicalName": name, "SchemaName": name, "AttributeType": ty, "AttributeTypeName": format!("{ty}Type"), "DisplayName": label_of(name), "RequiredLevel": "None", "IsValidForCreate": create, "IsValidForUpdate": update, "IsValidForRead": true})
}

/// The metadata JSON of a lookup column of `table`.
fn lookup_column(table: &str, name: &str, target: &str, ty: &str, create: bool) -> Value {
    let mut a = system_column(name, ty, create, create);
    a["Targets"] = json!([target]);
    a["Relationships"] = json!([{"Target": target, "RelationshipSchemaName": format!("{table}_{name}"), "ReferencingEntityNavigationPropertyName": name}]);
    a
}

/// The compiled-metadata JSON of a custom table, so it goes through the
/// same parser as the standard tables.
fn custom_table_json(t: &TableSeed, known: &dyn Fn(&str) -> bool) -> Result<Value, SchemaError> {
    let ln = t.logical_name.trim();
    if !prefixed(ln) {
        return Err(SchemaError::TableName(ln.to_string()));
    }
    let prefix = ln.split('_').next().unwrap_or("new");
    let primary_id = format!("{ln}id");
    let primary_name = t
        .primary_name
        .clone()
        .unwrap_or_else(|| format!("{prefix}_name"));
    let mut attrs = vec![system_column(&primary_id, "Uniqueidentifier", true, false)];
    let mut name_attr = system_column(&primary_name, "String", true, true);
    name_attr["MaxLength"] = json!(100);
    name_attr["RequiredLevel"] = json!("ApplicationRequired");
    name_attr["IsCustomAttribute"] = json!(true);
    attrs.push(name_attr);
    for c in &t.columns {
        attrs.push(column_json(ln, c, known)?);
    }
    attrs.extend(system_columns(ln));
    let names: Vec<&str> = attrs
        .iter()
        .filter_map(|a| a["LogicalName"].as_str())
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(SchemaError::DuplicateColumn {
                column: n.to_string(),
                table: ln.to_string(),
            });
        }
    }
    for key in &t.alternate_keys {
        if let Some(missing) = key.iter().find(|k| !names.contains(&k.as_str())) {
            return Err(SchemaError::KeyColumn {
                column: missing.clone(),
                table: ln.to_string(),
            });
        }
    }
    let set = t.entity_set.clone().unwrap_or_else(|| format!("{ln}s"));
    let display = t.display_name.clone().unwrap_or_else(|| label_of(ln));
    Ok(json!({
        "LogicalName": ln, "SchemaName": ln, "EntitySetName": set, "LogicalCollectionName": set, "CollectionSchemaName": set,
        "PrimaryIdAttribute": primary_id, "PrimaryNameAttribute": primary_name,
        "DisplayName": display, "DisplayCollectionName": display,
        "OwnershipType": "UserOwned", "TableType": "Standard", "IsCustomEntity": true, "IsIntersect": false,
        "IsPrivate": false, "IsManaged": false, "IsActivity": false, "IsValidForAdvancedFind": true, "IsCustomizable": true,
        "HasNotes": false, "HasActivities": false, "ChangeTrackingEnabled": false, "Description": "",
        "AlternateKeys": t.alternate_keys.iter().map(|k| json!({"KeyAttributes": k})).collect::<Vec<_>>(),
        "Attributes": attrs,
    }))
}

/// Owner, audit, state and version columns every custom table gets.
fn system_columns(table: &str) -> Vec<Value> {
    let mut state = system_column("statecode", "State", false, true);
    state["Options"] = json!([{"Value": 0, "Label": "Active", "DefaultStatus": 1}, {"Value": 1, "Label": "Inactive", "DefaultStatus": 2}]);
    let mut status = system_column("statuscode", "Status", true, true);
    status["Options"] = json!([{"Value": 1, "Label": "Active", "State": 0}, {"Value": 2, "Label": "Inactive", "State": 1}]);
    vec![
        lookup_column(table, "ownerid", "systemuser", "Owner", true),
        lookup_column(table, "owningbusinessunit", "businessunit", "Lookup", false),
        lookup_column(table, "createdby", "systemuser", "Lookup", false),
        lookup_column(table, "modifiedby", "systemuser", "Lookup", false),
        system_column("createdon", "DateTime", false, false),
        system_column("modifiedon", "DateTime", false, false),
        state,
        status,
        system_column("versionnumber", "BigInt", false, false),
    ]
}

/// The metadata JSON of a custom column of `table`.
fn column_json(
    table: &str,
    c: &ColumnSeed,
    known: &dyn Fn(&str) -> bool,
) -> Result<Value, SchemaError> {
    let name = c.logical_name.as_str();
    if !lower_snake(name) {
        return Err(SchemaError::ColumnName(name.to_string()));
    }
    let ty = match c.kind.as_str() {
        k @ ("String" | "Memo" | "Integer" | "BigInt" | "Decimal" | "Double" | "Money"
        | "Boolean" | "DateTime" | "Picklist" | "Lookup" | "Uniqueidentifier") => k,
        other => {
            return Err(SchemaError::ColumnType {
                column: name.to_string(),
                kind: other.to_string(),
            });
        }
    };
    let mut a = if ty == "Lookup" {
        let [target] = &c.targets[..] else {
            return Err(SchemaError::LookupTargets(name.to_string()));
        };
        if !known(target) && target != table {
            return Err(SchemaError::UnknownTarget {
                column: name.to_string(),
                target: target.clone(),
            });
        }
        lookup_column(table, name, target, "Lookup", true)
    } else {
        system_column(name, ty, true, true)
    };
    a["DisplayName"] = json!(c.display_name.clone().unwrap_or_else(|| label_of(name)));
    a["IsCustomAttribute"] = json!(true);
    if let Some(r) = &c.required {
        a["RequiredLevel"] = json!(r);
    }
    if matches!(ty, "String" | "Memo") {
        a["MaxLength"] = json!(
            c.max_length
                .unwrap_or(if ty == "Memo" { 2000 } else { 100 })
        );
    }
    if let Some(v) = c.min_value {
        a["MinValue"] = json!(v);
    }
    if let Some(v) = c.max_value {
        a["MaxValue"] = json!(v);
    }
    if ty == "Picklist" {
        if c.options.is_empty() {
            return Err(SchemaError::NoOptions(name.to_string()));
        }
        a["Options"] = json!(
            c.options
                .iter()
                .map(|o| json!({"Value": o.value, "Label": o.label}))
                .collect::<Vec<_>>()
        );
    }
    if ty == "Boolean" {
        a["DefaultValue"] = json!(false);
        a["OptionSet"] = json!({"TrueOption": {"Value": 1, "Label": "Yes"}, "FalseOption": {"Value": 0, "Label": "No"}});
    }
    Ok(a)
}
