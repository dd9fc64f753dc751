//! An environment's rows: per table a B-tree by primary key (retrieve by id
//! never scans), many-to-many associations, and one version counter that
//! gives every write a fresh ETag. Writes validate against the metadata.

mod deep;
mod journal;
mod keys;
mod links;
mod order;
mod snapshot;
mod validate;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{DvError, DvResult};
use super::metadata::{Kind, Schema, Table};
use journal::Undo;
use order::OrderCache;
pub use snapshot::Snapshot;

/// A row's values as one JSON object, keyed by Web API names (`name`,
/// `_primarycontactid_value`), so `$filter` evaluates on it without copying.
#[derive(Debug, Clone)]
pub struct Record(Value);

impl Default for Record {
    fn default() -> Self {
        Record(Value::Object(Map::new()))
    }
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.get(key).is_some()
    }

    pub fn insert(&mut self, key: String, value: Value) {
        if let Value::Object(m) = &mut self.0 {
            m.insert(key, value);
        }
    }

    /// The whole record, for `$filter` evaluation.
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

/// One record and its version (the ETag).
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub values: Record,
    /// Target table of each set lookup (`_x_value` -> logical name).
    pub lookup_targets: HashMap<String, String>,
    pub version: u64,
}

impl Row {
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

/// Rows of one table.
#[derive(Debug, Clone, Default)]
pub struct TableRows {
    pub rows: BTreeMap<Uuid, Row>,
    /// Alternate-key index: canonical key values -> row, and the reverse.
    index: HashMap<String, Uuid>,
    row_keys: HashMap<Uuid, Vec<String>>,
    /// Changes whenever a row changes (from a process-wide counter, so a
    /// rolled-back copy never reuses a version).
    pub version: u64,
}

/// The caller a write is attributed to.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub systemuser: Uuid,
    pub business_unit: Uuid,
    /// Holds System Administrator (impersonation, plug-in bypass).
    pub is_admin: bool,
}

/// All data of one environment.
#[derive(Debug, Clone)]
pub struct EnvData {
    pub schema: Arc<Schema>,
    pub tables: HashMap<String, TableRows>,
    /// Many-to-many links per relationship, as (smaller-logical-name side id, other side id).
    pub links: HashMap<String, BTreeSet<(Uuid, Uuid)>>,
    version: u64,
    pub organization_id: Uuid,
    pub root_business_unit: Uuid,
    pub sysadmin_role: Uuid,
    /// `$orderby` indexes: (table, order) -> (table version, ids in order).
    order_cache: OrderCache,
    /// What undoes the changes of each `$batch` change set running.
    journals: HashMap<u64, Vec<Undo>>,
    /// The change set whose operation holds the write lock now, if any:
    /// only its changes are recorded, not another client's in between.
    journaling: Option<u64>,
    /// The id the next change set gets.
    next_journal: u64,
    /// A role with record access but no administrative privileges
    /// (no impersonation, no plug-in bypass).
    pub basic_role: Uuid,
}

impl EnvData {
    /// A fresh environment: root business unit, System Administrator role.
    pub fn new(schema: Arc<Schema>, organization_id: Uuid, name: &str) -> Self {
        let mut env = EnvData {
            schema,
            tables: HashMap::new(),
            links: HashMap::new(),
            version: 1000,
            organization_id,
            root_business_unit: Uuid::new_v4(),
            sysadmin_role: Uuid::new_v4(),
            basic_role: Uuid::new_v4(),
            order_cache: Default::default(),
            journals: HashMap::new(),
            journaling: None,
            next_journal: 0,
        };
        let bu = env.root_business_unit;
        let now = crate::clock::iso(time::OffsetDateTime::now_utc());
        env.insert_system(
            "businessunit",
            bu,
            &[
                ("name", Value::from(name)),
                ("isdisabled", false.into()),
                ("createdon", now.clone().into()),
            ],
            &[],
        );
        for (id, name) in [
            (env.sysadmin_role, "System Administrator"),
            (env.basic_role, "Basic User"),
        ] {
            env.insert_system(
                "role",
                id,
                &[("name", name.into()), ("createdon", now.clone().into())],
                &[("_businessunitid_value", "businessunit", bu)],
            );
        }
        env
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Inserts a row without validation (system data).
    pub fn insert_system(
        &mut self,
        table: &str,
        id: Uuid,
        values: &[(&str, Value)],
        lookups: &[(&str, &str, Uuid)],
    ) {
        let version = self.next_version();
        let t = self.schema.table(table).expect("system table").clone();
        let mut row = Row {
            version,
            ..Row::default()
        };
        for a in t.attributes.iter().filter(|a| a.kind != Kind::Other) {
            row.values.insert(a.web_api_name(), Value::Null);
        }
        row.values
            .insert(t.primary_id.clone(), Value::String(id.to_string()));
        row.values
            .insert("versionnumber".into(), Value::from(version));
        for (k, v) in values {
            row.values.insert((*k).to_string(), v.clone());
        }
        for (k, target, id) in lookups {
            row.values
                .insert((*k).to_string(), Value::String(id.to_string()));
            row.lookup_targets
                .insert((*k).to_string(), (*target).to_string());
        }
        self.tables
            .entry(table.to_string())
            .or_default()
            .rows
            .insert(id, row);
    }

    pub fn rows(&self, table: &str) -> Option<&TableRows> {
        self.tables.get(table)
    }

    pub fn get(&self, table: &str, id: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.rows.get(id)
    }

    /// Parses an `@odata.bind` / `@odata.id` reference (`/contacts(id)`,
    /// `contacts(id)`, or a full URL) into (table, id).
    pub fn resolve_reference(&self, reference: &str) -> DvResult<(Arc<Table>, Uuid)> {
        let path = reference.rsplit("/api/data/").next().unwrap_or(reference);
        let path = path
            .split_once('/')
            .filter(|(v, _)| v.starts_with('v'))
            .map(|(_, p)| p)
            .unwrap_or(path);
        let path = path.trim_start_matches('/');
        let (set, rest) = path
            .split_once('(')
            .ok_or_else(|| DvError::payload(format!("Invalid reference '{reference}'.")))?;
        let id = rest
            .strip_suffix(')')
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| DvError::payload(format!("Invalid reference '{reference}'.")))?;
        let table = self.schema.by_set(set).cloned().ok_or_else(|| {
            DvError::segment(format!("Resource not found for the segment '{set}'."))
        })?;
        if self.get(&table.logical_name, &id).is_none() {
            return Err(DvError::not_found(&table.logical_name, &id));
        }
        Ok((table, id))
    }
}
