//! Writes: create, update, delete and setting lookups, each journaled and
//! given a fresh version.

use axum::http::StatusCode;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::journal::Undo;
use super::validate::ParsedBody;
use super::{Caller, EnvData, Row};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Attribute, Kind, Table};

impl EnvData {
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
        let version = self.next_version();
        let mut row = new_row(table, caller, version);
        for (k, v) in values {
            row.values.insert(k, v);
        }
        for (k, b) in binds {
            apply_bind(&mut row, k, b);
        }
        derive_full_name(table, &mut row);
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
        let renamed = values.iter().any(|(k, _)| NAME_PARTS.contains(&k.as_str()));
        for (k, v) in values {
            if k != table.primary_id {
                row.values.insert(k, v);
            }
        }
        for (k, b) in binds {
            apply_bind(row, k, b);
        }
        // Only a change of a name part recomputes the full name: the users
        // the emulator makes for callers carry their directory display
        // name, which another update must not blank.
        if renamed {
            derive_full_name(table, row);
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

    /// Names the application user `id` after its application, as Dataverse
    /// does when one is saved (DV-S2S): its first and last names do not
    /// make its full name.
    pub fn name_app_user(&mut self, table: &Table, id: Uuid, name: String) {
        self.remember(&table.logical_name, id);
        let row = self
            .tables
            .get_mut(&table.logical_name)
            .and_then(|t| t.rows.get_mut(&id));
        if let Some(row) = row {
            row.values.insert("fullname".into(), Value::String(name));
            self.reindex(table, id);
        }
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
        let mut gone = Vec::new();
        for (relationship, set) in self.links.iter_mut() {
            let keys: Vec<(Uuid, Uuid)> = set
                .iter()
                .filter(|(a, b)| *a == id || *b == id)
                .copied()
                .collect();
            for key in keys {
                set.remove(&key);
                gone.push(Undo::Link {
                    relationship: relationship.clone(),
                    key,
                    present: true,
                });
            }
        }
        for undo in gone {
            self.record(undo);
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
}

/// The columns a person's full name is made of, in order.
const NAME_PARTS: [&str; 2] = ["firstname", "lastname"];

/// Dataverse computes a person's `fullname` (contact, lead, systemuser: a
/// read-only column) from `firstname` and `lastname`, as "First Last" in a
/// new environment's default format ("Rafel Shillo" in the Web API basic
/// operations sample); null when both are empty. An application user's is
/// its application's name instead (see [`EnvData::name_app_user`]).
fn derive_full_name(table: &Table, row: &mut Row) {
    let computed = table
        .attribute("fullname")
        .is_some_and(|a| !a.valid_for_create && !a.valid_for_update);
    let app_user = row
        .values
        .get("applicationid")
        .is_some_and(|v| !v.is_null());
    if !computed || app_user || !NAME_PARTS.iter().all(|p| table.attribute(p).is_some()) {
        return;
    }
    let parts: Vec<&str> = NAME_PARTS
        .iter()
        .filter_map(|p| row.values.get(p).and_then(Value::as_str))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let full = if parts.is_empty() {
        Value::Null
    } else {
        Value::String(parts.join(" "))
    };
    row.values.insert("fullname".into(), full);
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

/// A new row of `table` before the body's values: every column null, the
/// defaults Dataverse fills in, owner and audit columns, and the active
/// state.
fn new_row(table: &Table, caller: Caller, version: u64) -> Row {
    let now = crate::clock::iso(time::OffsetDateTime::now_utc());
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
    for k in ["createdon", "modifiedon"] {
        if row.values.contains_key(k) {
            row.values.insert(k.into(), Value::String(now.clone()));
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
    row
}
