//! An environment's rows as saved in the `--state` rows file, and their
//! return: the rows, links and ids of the system records, with the
//! alternate-key index rebuilt on load (it is derived data).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{EnvData, Record, Row};
use crate::dataverse::metadata::Schema;

/// One saved row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedRow {
    values: Value,
    #[serde(default)]
    lookup_targets: HashMap<String, String>,
    version: u64,
}

/// One environment's saved data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    version: u64,
    organization_id: Uuid,
    root_business_unit: Uuid,
    sysadmin_role: Uuid,
    basic_role: Uuid,
    tables: BTreeMap<String, BTreeMap<Uuid, SavedRow>>,
    #[serde(default)]
    links: HashMap<String, BTreeSet<(Uuid, Uuid)>>,
}

impl EnvData {
    /// What the rows file keeps of this environment.
    pub fn saved(&self) -> Snapshot {
        let tables = self
            .tables
            .iter()
            .map(|(name, t)| {
                let rows = t
                    .rows
                    .iter()
                    .map(|(id, r)| {
                        let saved = SavedRow {
                            values: r.values.as_value().clone(),
                            lookup_targets: r.lookup_targets.clone(),
                            version: r.version,
                        };
                        (*id, saved)
                    })
                    .collect();
                (name.clone(), rows)
            })
            .collect();
        Snapshot {
            version: self.version,
            organization_id: self.organization_id,
            root_business_unit: self.root_business_unit,
            sysadmin_role: self.sysadmin_role,
            basic_role: self.basic_role,
            tables,
            links: self.links.clone(),
        }
    }

    /// An environment as saved, on today's schema: tables the schema no
    /// longer has are dropped, and the alternate-key index is rebuilt.
    pub fn from_snapshot(schema: Arc<Schema>, saved: Snapshot) -> Self {
        let mut env = EnvData {
            schema: schema.clone(),
            tables: HashMap::new(),
            links: saved.links,
            version: saved.version,
            organization_id: saved.organization_id,
            root_business_unit: saved.root_business_unit,
            sysadmin_role: saved.sysadmin_role,
            basic_role: saved.basic_role,
            order_cache: Default::default(),
            journals: HashMap::new(),
            journaling: None,
            next_journal: 0,
        };
        for (name, rows) in saved.tables {
            let Some(table) = schema.table(&name).cloned() else {
                tracing::warn!(table = %name, "saved rows of a table the schema no longer has are dropped");
                continue;
            };
            let t = env.tables.entry(name).or_default();
            for (id, r) in rows {
                let row = Row {
                    values: Record(r.values),
                    lookup_targets: r.lookup_targets,
                    version: r.version,
                };
                t.rows.insert(id, row);
                t.reindex(&table, id);
            }
        }
        env
    }
}
