//! The change-set journal: what undoes each change, so a failed change
//! set rolls back in the time of its own size.

use uuid::Uuid;

use super::{EnvData, Row};
use crate::dataverse::metadata::Table;

/// What undoes one change, for change-set rollback.
#[derive(Debug, Clone)]
pub(super) enum Undo {
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

impl EnvData {
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
    pub(super) fn remember(&mut self, table: &str, id: Uuid) {
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
}
