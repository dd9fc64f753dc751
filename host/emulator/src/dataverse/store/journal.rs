//! The change-set journal: what undoes each change, so a failed change
//! set rolls back in the time of its own size.

use uuid::Uuid;

use super::{EnvData, Row};
use crate::dataverse::error::DvResult;
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
    /// Starts recording the changes of a change set; its id.
    pub fn begin_journal(&mut self) -> u64 {
        self.next_journal += 1;
        self.journals.insert(self.next_journal, Vec::new());
        self.next_journal
    }

    /// Records the changes from now on in change set `id`'s journal
    /// (`None`: in none). Set for each operation of the change set while it
    /// holds the write lock, so another client's writes in between are not
    /// undone with it.
    pub fn journal_into(&mut self, id: Option<u64>) {
        self.journaling = id;
    }

    /// How many changes change set `id` has recorded (a mark to roll back to).
    fn journal_len(&self, id: u64) -> usize {
        self.journals.get(&id).map_or(0, Vec::len)
    }

    /// Keeps the recorded changes (the change set succeeded).
    pub fn commit_journal(&mut self, id: u64) {
        self.journals.remove(&id);
    }

    /// Undoes every change change set `id` recorded, newest first. Costs
    /// the size of the change set, not of the tables.
    pub fn rollback_journal(&mut self, id: u64) {
        self.rollback_to(id, 0);
        self.journals.remove(&id);
    }

    /// Undoes the changes change set `id` recorded after its first `mark`,
    /// newest first.
    fn rollback_to(&mut self, id: u64, mark: usize) {
        let undone = match self.journals.get_mut(&id) {
            Some(j) if j.len() > mark => j.split_off(mark),
            _ => return,
        };
        for undo in undone.into_iter().rev() {
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

    /// Runs `f` all or nothing (a deep insert, a bulk message): a failure
    /// undoes what it wrote, inside a change set back to where the change
    /// set's journal stood, otherwise through a journal of its own.
    pub fn atomically<T>(&mut self, f: impl FnOnce(&mut EnvData) -> DvResult<T>) -> DvResult<T> {
        let outer = self.journaling;
        let (journal, mark) = match outer {
            Some(change_set) => (change_set, self.journal_len(change_set)),
            None => (self.begin_journal(), 0),
        };
        self.journaling = Some(journal);
        let done = f(self);
        if done.is_err() {
            self.rollback_to(journal, mark);
        }
        self.journaling = outer;
        if outer.is_none() {
            self.commit_journal(journal);
        }
        done
    }

    /// Records what undoes a change, in the journal of the change set
    /// writing now (if any).
    pub(super) fn record(&mut self, undo: Undo) {
        if let Some(j) = self.journaling.and_then(|id| self.journals.get_mut(&id)) {
            j.push(undo);
        }
    }

    /// Records a row's state before it changes, while journaling.
    pub(super) fn remember(&mut self, table: &str, id: Uuid) {
        if self.journaling.is_some() {
            let before = self.get(table, &id).cloned();
            self.record(Undo::Row {
                table: table.to_string(),
                id,
                before,
            });
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, Value, json};
    use uuid::Uuid;

    use super::super::{Caller, EnvData};
    use crate::dataverse::metadata::Schema;

    fn env() -> (EnvData, Arc<crate::dataverse::metadata::Table>, Caller) {
        let schema = Arc::new(Schema::standard().clone());
        let d = EnvData::new(schema.clone(), Uuid::new_v4(), "org");
        let caller = Caller {
            systemuser: Uuid::new_v4(),
            business_unit: d.root_business_unit,
            is_admin: true,
        };
        (d, schema.table("account").unwrap().clone(), caller)
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// A change set undoes its own writes only: another request's write
    /// between two of its operations stays.
    #[test]
    fn a_failed_change_set_undoes_only_its_own_writes() {
        let (mut d, account, caller) = env();
        let change_set = d.begin_journal();
        d.journal_into(Some(change_set));
        let mine = d
            .create(&account, &body(json!({"name": "mine"})), None, caller)
            .unwrap();
        d.journal_into(None);
        let theirs = d
            .create(&account, &body(json!({"name": "theirs"})), None, caller)
            .unwrap();
        d.rollback_journal(change_set);
        assert!(d.get("account", &mine).is_none());
        assert!(d.get("account", &theirs).is_some());
    }

    /// A failed all-or-nothing step inside a change set undoes its own
    /// writes and leaves the change set's earlier ones for it to decide.
    #[test]
    fn a_failed_step_inside_a_change_set_keeps_the_earlier_writes() {
        let (mut d, account, caller) = env();
        let change_set = d.begin_journal();
        d.journal_into(Some(change_set));
        let earlier = d
            .create(&account, &body(json!({"name": "earlier"})), None, caller)
            .unwrap();
        let mut made = None;
        let failed = d.atomically(|d| {
            made = Some(d.create(&account, &body(json!({"name": "step"})), None, caller)?);
            d.create(&account, &body(json!({"nosuchcolumn": 1})), None, caller)
        });
        assert!(failed.is_err());
        assert!(d.get("account", &made.unwrap()).is_none());
        assert!(d.get("account", &earlier).is_some());
        // The change set can still undo the earlier write.
        d.rollback_journal(change_set);
        assert!(d.get("account", &earlier).is_none());
    }
}
