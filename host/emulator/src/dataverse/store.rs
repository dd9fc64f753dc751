//! An environment's rows: per table a B-tree by primary key (retrieve by id
//! never scans), many-to-many associations, and one version counter that
//! gives every write a fresh ETag. Writes validate against the metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{DvError, DvResult};
use super::metadata::{Attribute, Kind, Schema, Table};

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

/// A table and an `$orderby` list.
type OrderKey = (String, Vec<(String, bool)>);
/// Order indexes by table and `$orderby`, with the table version they were built at.
type OrderCache = Arc<parking_lot::Mutex<HashMap<OrderKey, (u64, Arc<Vec<Uuid>>)>>>;

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
    fn reindex(&mut self, table: &Table, id: Uuid) {
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
    /// Changes recorded while a `$batch` change set runs.
    journal: Option<Vec<Undo>>,
    /// A role with record access but no administrative privileges
    /// (no impersonation, no plug-in bypass).
    pub basic_role: Uuid,
}

/// What undoes one change, for change-set rollback.
#[derive(Debug, Clone)]
enum Undo {
    Row {
        table: String,
        id: Uuid,
        before: Option<Row>,
    },
    Link {
        relationship: String,
        key: (Uuid, Uuid),
        present: bool,
    },
}

/// A validated write: column values, and lookups to set (`None` clears).
struct ParsedBody {
    values: Vec<(String, Value)>,
    binds: Vec<(String, Option<(String, Uuid)>)>,
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
            journal: None,
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

    /// Validates a JSON body against the table and returns the values to
    /// store and the lookups to bind (`None` id = clear).
    fn parse_body(
        &self,
        table: &Table,
        body: &Map<String, Value>,
        creating: bool,
    ) -> DvResult<ParsedBody> {
        let mut values = Vec::new();
        let mut binds = Vec::new();
        for (key, value) in body {
            if key.starts_with('@') {
                continue;
            }
            if let Some(nav) = key.strip_suffix("@odata.bind") {
                let (attr, _) = table.single_nav(nav).ok_or_else(|| {
                    DvError::segment(format!("An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload."))
                })?;
                match value {
                    Value::Null => binds.push((attr.web_api_name(), None)),
                    Value::String(r) => {
                        let (target, id) = self.resolve_reference(r)?;
                        if !attr
                            .targets
                            .iter()
                            .any(|(t, n)| t == &target.logical_name && n == nav)
                            && !(attr.attribute_type == "Owner"
                                && (target.logical_name == "systemuser"
                                    || target.logical_name == "team"))
                        {
                            return Err(DvError::payload(format!(
                                "The navigation property '{nav}' cannot refer to a '{}'.",
                                target.logical_name
                            )));
                        }
                        binds.push((attr.web_api_name(), Some((target.logical_name.clone(), id))));
                    }
                    _ => {
                        return Err(DvError::payload(format!(
                            "The value of '{key}' must be a string reference."
                        )));
                    }
                }
                continue;
            }
            if key.contains('@') {
                continue;
            }
            // A navigation property set to null clears the lookup.
            if let Some((attr, _)) = table.single_nav(key) {
                if value.is_null() {
                    binds.push((attr.web_api_name(), None));
                    continue;
                }
                return Err(DvError::payload(format!(
                    "Use '{key}@odata.bind' to set the navigation property '{key}'."
                )));
            }
            let attr = table
                .attribute(key)
                .filter(|a| a.kind != Kind::Lookup && a.kind != Kind::Other)
                .ok_or_else(|| DvError::unknown_property(key, &table.logical_name))?;
            let allowed = if creating {
                attr.valid_for_create
            } else {
                attr.valid_for_update
            };
            if !allowed && key != &table.primary_id {
                // Dataverse ignores values for columns it computes itself.
                continue;
            }
            values.push((key.clone(), check_value(table, attr, value)?));
        }
        Ok(ParsedBody { values, binds })
    }

    /// Creates a row; `id` may be supplied by the caller (or in the body).
    pub fn create(
        &mut self,
        table: &Table,
        body: &Map<String, Value>,
        id: Option<Uuid>,
        caller: Caller,
    ) -> DvResult<Uuid> {
        let ParsedBody { values, binds } = self.parse_body(table, body, true)?;
        let body_id = values
            .iter()
            .find(|(k, _)| k == &table.primary_id)
            .and_then(|(_, v)| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        let id = id.or(body_id).unwrap_or_else(Uuid::new_v4);
        if self.get(&table.logical_name, &id).is_some() {
            return Err(DvError::new(
                StatusCode::PRECONDITION_FAILED,
                "0x80040237",
                "A record with matching key values already exists.",
            ));
        }
        self.check_alternate_keys(table, &values, None)?;
        let now = crate::clock::iso(time::OffsetDateTime::now_utc());
        let version = self.next_version();
        let mut row = Row {
            version,
            ..Row::default()
        };
        for a in table.attributes.iter().filter(|a| a.kind != Kind::Other) {
            row.values.insert(a.web_api_name(), Value::Null);
        }
        // Defaults Dataverse fills in.
        for a in &table.attributes {
            if let Some(d) = a.raw.get("DefaultValue").filter(|d| d.is_boolean()) {
                row.values.insert(a.web_api_name(), d.clone());
            }
        }
        let system_lookups: &[(&str, &str, Uuid)] = &[
            ("_ownerid_value", "systemuser", caller.systemuser),
            ("_owninguser_value", "systemuser", caller.systemuser),
            (
                "_owningbusinessunit_value",
                "businessunit",
                caller.business_unit,
            ),
            ("_createdby_value", "systemuser", caller.systemuser),
            ("_modifiedby_value", "systemuser", caller.systemuser),
        ];
        for (k, target, v) in system_lookups {
            if row.values.contains_key(k) {
                row.values
                    .insert((*k).to_string(), Value::String(v.to_string()));
                row.lookup_targets
                    .insert((*k).to_string(), (*target).to_string());
            }
        }
        for (k, v) in [("createdon", &now), ("modifiedon", &now)] {
            if row.values.contains_key(k) {
                row.values.insert(k.into(), Value::String(v.clone()));
            }
        }
        if row.values.contains_key("statecode") {
            row.values.insert("statecode".into(), Value::from(0));
            let status = table
                .attribute("statuscode")
                .and_then(|a| a.status_state.iter().find(|(_, s)| *s == 0))
                .map(|(v, _)| *v);
            row.values.insert(
                "statuscode".into(),
                status.map(Value::from).unwrap_or(Value::Null),
            );
        }
        for (k, v) in values {
            row.values.insert(k, v);
        }
        for (k, b) in binds {
            apply_bind(&mut row, k, b);
        }
        row.values
            .insert(table.primary_id.clone(), Value::String(id.to_string()));
        if row.values.contains_key("versionnumber") {
            row.values
                .insert("versionnumber".into(), Value::from(version));
        }
        self.remember(&table.logical_name, id);
        let t = self.tables.entry(table.logical_name.clone()).or_default();
        t.rows.insert(id, row);
        t.reindex(table, id);
        Ok(id)
    }

    /// Updates an existing row.
    pub fn update(
        &mut self,
        table: &Table,
        id: Uuid,
        body: &Map<String, Value>,
        caller: Caller,
    ) -> DvResult<()> {
        let ParsedBody { values, binds } = self.parse_body(table, body, false)?;
        if self.get(&table.logical_name, &id).is_none() {
            return Err(DvError::not_found(&table.logical_name, &id));
        }
        self.check_alternate_keys(table, &values, Some(id))?;
        self.remember(&table.logical_name, id);
        let version = self.next_version();
        let now = crate::clock::iso(time::OffsetDateTime::now_utc());
        let row = self
            .tables
            .get_mut(&table.logical_name)
            .and_then(|t| t.rows.get_mut(&id))
            .expect("checked above");
        for (k, v) in values {
            if k != table.primary_id {
                row.values.insert(k, v);
            }
        }
        for (k, b) in binds {
            apply_bind(row, k, b);
        }
        row.version = version;
        if row.values.contains_key("versionnumber") {
            row.values
                .insert("versionnumber".into(), Value::from(version));
        }
        if row.values.contains_key("modifiedon") {
            row.values.insert("modifiedon".into(), Value::String(now));
        }
        if row.values.contains_key("_modifiedby_value") {
            row.values.insert(
                "_modifiedby_value".into(),
                Value::String(caller.systemuser.to_string()),
            );
        }
        self.reindex(table, id);
        Ok(())
    }

    fn reindex(&mut self, table: &Table, id: Uuid) {
        if let Some(t) = self.tables.get_mut(&table.logical_name) {
            t.reindex(table, id);
        }
    }

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
                let ord = super::query::order_values(x, y);
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

    /// Starts recording changes (a change set begins).
    pub fn begin_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the recorded changes (the change set succeeded).
    pub fn commit_journal(&mut self) {
        self.journal = None;
    }

    /// Undoes every change since `begin_journal`, newest first. Costs the
    /// size of the change set, not of the tables.
    pub fn rollback_journal(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Row { table, id, before } => {
                    if let Some(t) = self.schema.table(&table).cloned() {
                        self.restore(&t, id, before);
                    }
                }
                Undo::Link {
                    relationship,
                    key,
                    present,
                } => {
                    let set = self.links.entry(relationship).or_default();
                    if present {
                        set.insert(key);
                    } else {
                        set.remove(&key);
                    }
                }
            }
        }
    }

    /// Records a row's state before it changes, while journaling.
    fn remember(&mut self, table: &str, id: Uuid) {
        if self.journal.is_some() {
            let before = self.get(table, &id).cloned();
            if let Some(j) = self.journal.as_mut() {
                j.push(Undo::Row {
                    table: table.to_string(),
                    id,
                    before,
                });
            }
        }
    }

    /// A copy of a row (for undo).
    pub fn snapshot(&self, table: &Table, id: Uuid) -> Option<Row> {
        self.get(&table.logical_name, &id).cloned()
    }

    /// Puts a row back as it was (`None`: it did not exist).
    pub fn restore(&mut self, table: &Table, id: Uuid, row: Option<Row>) {
        let t = self.tables.entry(table.logical_name.clone()).or_default();
        match row {
            Some(r) => {
                t.rows.insert(id, r);
            }
            None => {
                t.rows.remove(&id);
            }
        }
        t.reindex(table, id);
    }

    pub fn delete(&mut self, table: &Table, id: Uuid) -> DvResult<()> {
        self.remember(&table.logical_name, id);
        let removed = self
            .tables
            .get_mut(&table.logical_name)
            .and_then(|t| t.rows.remove(&id));
        if removed.is_none() {
            return Err(DvError::not_found(&table.logical_name, &id));
        }
        self.reindex(table, id);
        for (relationship, set) in self.links.iter_mut() {
            let gone: Vec<(Uuid, Uuid)> = set
                .iter()
                .filter(|(a, b)| *a == id || *b == id)
                .copied()
                .collect();
            for key in gone {
                set.remove(&key);
                if let Some(j) = self.journal.as_mut() {
                    j.push(Undo::Link {
                        relationship: relationship.clone(),
                        key,
                        present: true,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets or clears one lookup (`$ref` on a single-valued navigation property).
    pub fn set_lookup(
        &mut self,
        table: &Table,
        id: Uuid,
        attr: &Attribute,
        target: Option<(String, Uuid)>,
    ) -> DvResult<()> {
        self.remember(&table.logical_name, id);
        let version = self.next_version();
        let row = self
            .tables
            .get_mut(&table.logical_name)
            .and_then(|t| t.rows.get_mut(&id))
            .ok_or_else(|| DvError::not_found(&table.logical_name, &id))?;
        apply_bind(row, attr.web_api_name(), target);
        row.version = version;
        self.reindex(table, id);
        Ok(())
    }

    fn link_key(table: &str, other: &str, a: Uuid, b: Uuid) -> (Uuid, Uuid) {
        if table <= other { (a, b) } else { (b, a) }
    }

    /// Associates two rows through a many-to-many relationship.
    pub fn link(
        &mut self,
        relationship: &str,
        table: &str,
        other: &str,
        a: Uuid,
        b: Uuid,
        on: bool,
    ) {
        let key = Self::link_key(table, other, a, b);
        let set = self.links.entry(relationship.to_string()).or_default();
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Link {
                relationship: relationship.to_string(),
                key,
                present: set.contains(&key),
            });
        }
        if on {
            set.insert(key);
        } else {
            set.remove(&key);
        }
        self.version += 1;
    }

    /// Ids linked to `id` through a many-to-many relationship.
    pub fn linked(&self, relationship: &str, table: &str, other: &str, id: Uuid) -> Vec<Uuid> {
        let Some(set) = self.links.get(relationship) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|(x, y)| {
                if table <= other {
                    (*x == id).then_some(*y)
                } else {
                    (*y == id).then_some(*x)
                }
            })
            .collect()
    }

    fn check_alternate_keys(
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

fn apply_bind(row: &mut Row, attr: String, target: Option<(String, Uuid)>) {
    match target {
        Some((t, id)) => {
            row.values
                .insert(attr.clone(), Value::String(id.to_string()));
            row.lookup_targets.insert(attr, t);
        }
        None => {
            row.values.insert(attr.clone(), Value::Null);
            row.lookup_targets.remove(&attr);
        }
    }
}

fn type_error(table: &Table, attr: &Attribute, value: &Value) -> DvError {
    DvError::payload(format!(
        "Error identified in Payload provided by the user for Entity :'{}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : Microsoft.OData.ODataException: Cannot convert the literal '{}' to the expected type 'Edm.{}'.",
        table.entity_set,
        value,
        match attr.kind {
            Kind::String | Kind::Memo => "String",
            Kind::Integer | Kind::Choice => "Int32",
            Kind::BigInt => "Int64",
            Kind::Decimal | Kind::Money => "Decimal",
            Kind::Double => "Double",
            Kind::Boolean => "Boolean",
            Kind::DateTime => "DateTimeOffset",
            Kind::Uniqueidentifier | Kind::Lookup => "Guid",
            Kind::Other => "Untyped",
        }
    ))
}

/// Checks a value against its column; returns the value to store.
pub fn check_value(table: &Table, attr: &Attribute, value: &Value) -> DvResult<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bad = || type_error(table, attr, value);
    let range = |n: f64| -> DvResult<()> {
        if attr.min_value.is_some_and(|m| n < m) || attr.max_value.is_some_and(|m| n > m) {
            return Err(DvError::bad_request(
                "0x80044331",
                format!(
                    "A validation error occurred. The value {n} of '{}' on record of type '{}' is outside the valid range.",
                    attr.logical_name, table.logical_name
                ),
            ));
        }
        Ok(())
    };
    Ok(match attr.kind {
        Kind::String | Kind::Memo => {
            let s = value.as_str().ok_or_else(bad)?;
            if let Some(max) = attr.max_length
                && s.chars().count() as u64 > max
            {
                return Err(DvError::bad_request(
                    "0x80044331",
                    format!(
                        "A validation error occurred. The length of the '{}' attribute of the '{}' entity exceeded the maximum allowed length of '{max}'.",
                        attr.logical_name, table.logical_name
                    ),
                ));
            }
            value.clone()
        }
        Kind::Integer | Kind::BigInt => {
            let n = value.as_i64().ok_or_else(bad)?;
            range(n as f64)?;
            value.clone()
        }
        Kind::Decimal | Kind::Double | Kind::Money => {
            let n = value
                .as_f64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(bad)?;
            range(n)?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(bad)?
        }
        Kind::Boolean => Value::Bool(value.as_bool().ok_or_else(bad)?),
        Kind::Choice => {
            let n = value.as_i64().ok_or_else(bad)?;
            if !attr.options.is_empty() && !attr.options.iter().any(|(v, _)| *v == n) {
                let accepted: Vec<String> =
                    attr.options.iter().map(|(v, _)| v.to_string()).collect();
                return Err(DvError::bad_request(
                    "0x8004431a",
                    format!(
                        "A validation error occurred. The value {n} of '{}' on record of type '{}' is outside the valid range. Accepted Values: {}",
                        attr.logical_name,
                        table.logical_name,
                        accepted.join(",")
                    ),
                ));
            }
            Value::from(n)
        }
        Kind::DateTime => {
            let s = value.as_str().ok_or_else(bad)?;
            Value::String(normalize_datetime(s).ok_or_else(bad)?)
        }
        Kind::Uniqueidentifier => Value::String(
            value
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(bad)?
                .to_string(),
        ),
        Kind::Lookup | Kind::Other => return Err(bad()),
    })
}

/// Accepts `2024-05-01`, `2024-05-01T10:00:00Z`, offsets and fractions;
/// stores UTC `YYYY-MM-DDTHH:MM:SSZ` as Dataverse returns it.
pub fn normalize_datetime(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(crate::clock::iso(t.to_offset(time::UtcOffset::UTC)));
    }
    let date =
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(crate::clock::iso(date.midnight().assume_utc()))
}
