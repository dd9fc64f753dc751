//! The alternate-key index: finding a row by key values without a scan,
//! and keeping keys unique.

use axum::http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::{EnvData, TableRows};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Attribute, Table};

static TABLE_VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The canonical index entry of key number `n` for these values (`None`
/// when a key column is null: such rows are not indexed).
fn key_string<'v>(n: usize, values: impl Iterator<Item = Option<&'v Value>>) -> Option<String> {
    let mut out = n.to_string();
    for v in values {
        out.push('\u{1f}');
        match v? {
            Value::Null => return None,
            // Key matching is case-insensitive, like SQL Server's collation.
            Value::String(s) => out.push_str(&s.to_lowercase()),
            Value::Number(x) => out.push_str(&x.as_f64().unwrap_or_default().to_string()),
            other => out.push_str(&other.to_string()),
        }
    }
    Some(out)
}

/// Web API names of a key's columns.
fn key_columns(table: &Table, key: &[String]) -> Vec<String> {
    key.iter()
        .map(|c| {
            table
                .attribute(c)
                .map(Attribute::web_api_name)
                .unwrap_or_else(|| c.clone())
        })
        .collect()
}

impl TableRows {
    /// Brings the alternate-key index up to date for one row.
    pub(super) fn reindex(&mut self, table: &Table, id: Uuid) {
        self.version = TABLE_VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if table.alternate_keys.is_empty() {
            return;
        }
        for old in self.row_keys.remove(&id).unwrap_or_default() {
            self.index.remove(&old);
        }
        let Some(row) = self.rows.get(&id) else {
            return;
        };
        let entries: Vec<String> = table
            .alternate_keys
            .iter()
            .enumerate()
            .filter_map(|(n, key)| {
                key_string(n, key_columns(table, key).iter().map(|c| row.values.get(c)))
            })
            .collect();
        for e in &entries {
            self.index.insert(e.clone(), id);
        }
        self.row_keys.insert(id, entries);
    }
}

impl EnvData {
    /// Finds a row by alternate-key values (web API names -> JSON values).
    pub fn find_by_key(&self, table: &Table, key: &[(String, Value)]) -> Option<Uuid> {
        let rows = self.tables.get(&table.logical_name)?;
        // A declared alternate key is answered from the index, without a scan.
        for (n, k) in table.alternate_keys.iter().enumerate() {
            let cols = key_columns(table, k);
            if cols.len() == key.len() && cols.iter().all(|c| key.iter().any(|(name, _)| name == c))
            {
                let probe = key_string(
                    n,
                    cols.iter()
                        .map(|c| key.iter().find(|(name, _)| name == c).map(|(_, v)| v)),
                )?;
                return rows.index.get(&probe).copied();
            }
        }
        rows.rows
            .iter()
            .find(|(_, r)| {
                key.iter().all(|(k, v)| {
                    r.values.get(k).is_some_and(|x| {
                        crate::odata::filter::compare(x, v) == Some(std::cmp::Ordering::Equal)
                    })
                })
            })
            .map(|(id, _)| *id)
    }

    pub(super) fn reindex(&mut self, table: &Table, id: Uuid) {
        if let Some(t) = self.tables.get_mut(&table.logical_name) {
            t.reindex(table, id);
        }
    }

    pub(super) fn check_alternate_keys(
        &self,
        table: &Table,
        values: &[(String, Value)],
        except: Option<Uuid>,
    ) -> DvResult<()> {
        for key in &table.alternate_keys {
            if !key.iter().any(|k| values.iter().any(|(n, _)| n == k)) {
                continue;
            }
            let probe: Vec<(String, Value)> = key
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        values
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or(Value::Null),
                    )
                })
                .collect();
            if probe.iter().any(|(_, v)| v.is_null()) {
                continue;
            }
            if self
                .find_by_key(table, &probe)
                .is_some_and(|found| Some(found) != except)
            {
                return Err(DvError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80060892",
                    "A record that has the attribute values already exists. The entity key requires that this set of attributes contains unique values.",
                ));
            }
        }
        Ok(())
    }
}
