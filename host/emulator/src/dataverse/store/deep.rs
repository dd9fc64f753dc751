//! Deep insert: a create whose body nests related rows, an object under a
//! single-valued navigation property (`"primarycontactid": {...}`) or an
//! array under a collection-valued one (`"contact_customer_accounts":
//! [...]`). Every row is created in one operation, all or nothing, and only
//! the root's id is returned.

use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Caller, EnvData};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{CollectionNav, Table};

/// The related rows a create body nests, taken out of it.
struct Nested {
    /// Single-valued: the navigation property and the row to create.
    parents: Vec<(String, Map<String, Value>)>,
    /// Collection-valued: the relationship and the rows to create.
    children: Vec<(CollectionNav, Vec<Map<String, Value>>)>,
}

impl EnvData {
    /// Creates a row and the rows its body nests (see the module docs), all
    /// or nothing.
    pub fn create_deep(
        &mut self,
        table: &Table,
        body: &Map<String, Value>,
        id: Option<Uuid>,
        caller: Caller,
    ) -> DvResult<Uuid> {
        let (flat, nested) = split(table, body)?;
        if nested.parents.is_empty() && nested.children.is_empty() {
            return self.create(table, body, id, caller);
        }
        self.atomically(|d| d.create_nested(table, flat, nested, id, caller))
    }

    fn create_nested(
        &mut self,
        table: &Table,
        mut flat: Map<String, Value>,
        nested: Nested,
        id: Option<Uuid>,
        caller: Caller,
    ) -> DvResult<Uuid> {
        // The rows the new one looks up come first, then bind it to them.
        for (nav, row) in nested.parents {
            let target = self.related_table(table.single_nav(&nav).map(|(_, t)| t))?;
            let parent = self.create_deep(&target, &row, None, caller)?;
            flat.insert(
                format!("{nav}@odata.bind"),
                Value::String(format!("/{}({parent})", target.entity_set)),
            );
        }
        let root = self.create(table, &flat, id, caller)?;
        for (cn, rows) in nested.children {
            let other = self.related_table(Some(&cn.other))?;
            for mut row in rows {
                match &cn.referencing_attribute {
                    Some(lookup) => {
                        // The lookup's navigation property towards this table.
                        let nav = other
                            .attribute(lookup)
                            .and_then(|a| a.targets.iter().find(|(t, _)| t == &table.logical_name))
                            .map(|(_, nav)| nav.clone())
                            .ok_or_else(|| {
                                DvError::payload(format!(
                                    "Rows cannot be created through '{}'.",
                                    cn.name
                                ))
                            })?;
                        row.insert(
                            format!("{nav}@odata.bind"),
                            Value::String(format!("/{}({root})", table.entity_set)),
                        );
                        self.create_deep(&other, &row, None, caller)?;
                    }
                    None => {
                        let child = self.create_deep(&other, &row, None, caller)?;
                        self.link(
                            &cn.relationship,
                            &table.logical_name,
                            &other.logical_name,
                            root,
                            child,
                            true,
                        );
                    }
                }
            }
        }
        Ok(root)
    }

    fn related_table(&self, logical: Option<&str>) -> DvResult<Arc<Table>> {
        logical
            .and_then(|l| self.schema.table(l))
            .cloned()
            .ok_or_else(|| DvError::payload("The related table is not served here."))
    }
}

/// Splits a create body into its own columns and binds, and the related
/// rows it nests. An array under a collection-valued navigation property
/// must hold objects only; any other value of a navigation property stays
/// in the body, where the usual validation answers it (null clears a
/// lookup, the rest is refused).
fn split(table: &Table, body: &Map<String, Value>) -> DvResult<(Map<String, Value>, Nested)> {
    let mut flat = Map::new();
    let mut nested = Nested {
        parents: Vec::new(),
        children: Vec::new(),
    };
    for (key, value) in body {
        let single = table.single_nav(key).is_some();
        match (value, table.collection_nav(key)) {
            (Value::Object(row), _) if single => {
                nested.parents.push((key.clone(), row.clone()));
            }
            (Value::Array(items), Some(cn)) => {
                let rows = items
                    .iter()
                    .map(|item| {
                        item.as_object().cloned().ok_or_else(|| {
                            DvError::payload(format!(
                                "Each item of '{key}' must be an object: a row to create."
                            ))
                        })
                    })
                    .collect::<DvResult<Vec<_>>>()?;
                nested.children.push((cn.clone(), rows));
            }
            _ => {
                flat.insert(key.clone(), value.clone());
            }
        }
    }
    Ok((flat, nested))
}
