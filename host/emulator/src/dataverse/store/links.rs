//! Many-to-many associations.

use uuid::Uuid;

use super::EnvData;
use super::journal::Undo;

impl EnvData {
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
        let present = self
            .links
            .get(relationship)
            .is_some_and(|set| set.contains(&key));
        self.record(Undo::Link {
            relationship: relationship.to_string(),
            key,
            present,
        });
        let set = self.links.entry(relationship.to_string()).or_default();
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
}
