//! What a plugin may touch: tables × operations. Checked by the runtime
//! before a request is handed to the backend, so an ungranted call sends
//! nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One operation on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// retrieve, query, next page, describe-table.
    Read,
    /// create, create-many (and upsert, with update).
    Create,
    /// update, update-many (and upsert, with create).
    Update,
    /// delete.
    Delete,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        })
    }
}

/// Grants of one plugin: for each table logical name, the operations
/// allowed. The table `*` stands for every table (for trusted plugins
/// only; it also allows `$expand` through any relationship).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grants {
    tables: BTreeMap<String, Vec<Operation>>,
}

/// The table name that grants every table.
pub const ANY_TABLE: &str = "*";

impl Grants {
    /// No grants: every Dataverse call is refused.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Adds `operations` on `table` (a logical name, compared in lower case).
    pub fn allow(mut self, table: &str, operations: &[Operation]) -> Grants {
        let entry = self.tables.entry(table.to_ascii_lowercase()).or_default();
        for op in operations {
            if !entry.contains(op) {
                entry.push(*op);
            }
        }
        entry.sort();
        self
    }

    /// Whether `operation` on `table` is granted.
    pub fn allows(&self, table: &str, operation: Operation) -> bool {
        let has = |t: &str| {
            self.tables
                .get(t)
                .is_some_and(|ops| ops.contains(&operation))
        };
        has(&table.to_ascii_lowercase()) || has(ANY_TABLE)
    }

    /// Whether any operation on `table` is granted (metadata is visible then).
    pub fn touches(&self, table: &str) -> bool {
        self.tables.contains_key(&table.to_ascii_lowercase()) || self.tables.contains_key(ANY_TABLE)
    }

    /// Whether no table is granted at all.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Whether every table is granted.
    pub fn is_unbounded(&self) -> bool {
        self.tables.contains_key(ANY_TABLE)
    }

    /// The granted tables and operations.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &[Operation])> {
        self.tables.iter().map(|(t, o)| (t.as_str(), o.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_per_table_and_operation() {
        let g = Grants::none()
            .allow("Account", &[Operation::Read])
            .allow("contact", &[Operation::Create, Operation::Read]);
        assert!(g.allows("account", Operation::Read));
        assert!(!g.allows("account", Operation::Delete));
        assert!(g.allows("CONTACT", Operation::Create));
        assert!(!g.allows("lead", Operation::Read));
        assert!(g.touches("contact") && !g.touches("lead"));
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, r#"{"account":["read"],"contact":["read","create"]}"#);
        assert_eq!(serde_json::from_str::<Grants>(&json).unwrap(), g);
    }

    #[test]
    fn star_grants_every_table() {
        let g = Grants::none().allow(ANY_TABLE, &[Operation::Read]);
        assert!(g.allows("lead", Operation::Read) && !g.allows("lead", Operation::Update));
        assert!(g.is_unbounded());
    }

    #[test]
    fn unknown_operations_are_refused() {
        assert!(serde_json::from_str::<Grants>(r#"{"account":["write"]}"#).is_err());
    }
}
