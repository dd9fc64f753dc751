//! `$orderby` indexes: row ids in order, built once per table version.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::EnvData;
use crate::dataverse::metadata::Table;

/// A table and an `$orderby` list.
type OrderKey = (String, Vec<(String, bool)>);
/// Order indexes by table and `$orderby`, with the table version they were built at.
pub(super) type OrderCache = Arc<parking_lot::Mutex<HashMap<OrderKey, (u64, Arc<Vec<Uuid>>)>>>;

impl EnvData {
    /// Row ids of a table in `$orderby` order (ties by primary key), built
    /// once per table version: an index that paging queries walk instead of
    /// sorting the table on every page.
    pub fn ordered(&self, table: &Table, orderby: &[(String, bool)]) -> Arc<Vec<Uuid>> {
        let Some(rows) = self.tables.get(&table.logical_name) else {
            return Arc::default();
        };
        let key = (table.logical_name.clone(), orderby.to_vec());
        if let Some((v, ids)) = self.order_cache.lock().get(&key)
            && *v == rows.version
        {
            return ids.clone();
        }
        // Sort keys are read once per row, not once per comparison.
        let mut keyed: Vec<(Vec<&Value>, Uuid)> = rows
            .rows
            .iter()
            .map(|(id, r)| {
                (
                    orderby
                        .iter()
                        .map(|(c, _)| r.values.get(c).unwrap_or(&Value::Null))
                        .collect(),
                    *id,
                )
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, y), (_, desc)) in a.iter().zip(b).zip(orderby) {
                let ord = crate::dataverse::query::order_values(x, y);
                let ord = if *desc { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        let ids = Arc::new(keyed.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
        let mut cache = self.order_cache.lock();
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(key, (rows.version, ids.clone()));
        ids
    }
}
