//! Duplicate contacts: contacts sharing an e-mail address, compared without
//! case or surrounding spaces, across every e-mail column the environment's
//! `contact` table has (`emailaddress1` to `emailaddress3` in Dataverse; the
//! metadata says which exist).

use std::collections::{BTreeMap, BTreeSet};

use dvhost_sdk::Record;
use dvhost_sdk::metadata::TableDescription;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The prefix of Dataverse's e-mail columns.
const EMAIL_PREFIX: &str = "emailaddress";

/// The table's text columns holding e-mail addresses, by name.
pub fn email_columns(description: &TableDescription) -> Vec<String> {
    let mut columns: Vec<String> = description
        .columns
        .iter()
        .filter(|column| {
            column.logical_name.starts_with(EMAIL_PREFIX)
                && column.kind.eq_ignore_ascii_case("String")
        })
        .map(|column| column.logical_name.clone())
        .collect();
    columns.sort();
    columns
}

/// A contact in a duplicate group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct Member {
    /// The contact's id.
    pub id: String,
    /// Its full name, when it has one.
    pub name: Option<String>,
}

/// Contacts sharing one e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Group {
    /// The address, lower case.
    pub email: String,
    /// The contacts, by id.
    pub contacts: Vec<Member>,
}

/// Collects contacts by address as rows arrive, page after page.
#[derive(Debug, Default)]
pub struct Finder {
    by_email: BTreeMap<String, BTreeSet<Member>>,
}

impl Finder {
    /// Adds one contact row, read with `id_column`, `name_column` and
    /// `email_columns`; a contact with one address in two columns counts once.
    pub fn add(
        &mut self,
        row: &Record,
        id_column: &str,
        name_column: Option<&str>,
        email_columns: &[String],
    ) {
        let Some(id) = row.get(id_column).and_then(Value::as_str) else {
            return;
        };
        let member = Member {
            id: id.to_owned(),
            name: name_column
                .and_then(|name| row.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        for column in email_columns {
            let Some(email) = row.get(column).and_then(Value::as_str) else {
                continue;
            };
            let email = email.trim().to_lowercase();
            if !email.is_empty() {
                self.by_email
                    .entry(email)
                    .or_default()
                    .insert(member.clone());
            }
        }
    }

    /// The addresses shared by two contacts or more, by address.
    pub fn groups(self) -> Vec<Group> {
        self.by_email
            .into_iter()
            .filter(|(_, members)| members.len() > 1)
            .map(|(email, members)| Group {
                email,
                contacts: members.into_iter().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: serde_json::Value) -> Record {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn groups_by_normalised_address_across_columns() {
        let columns = vec!["emailaddress1".to_owned(), "emailaddress2".to_owned()];
        let mut finder = Finder::default();
        for contact in [
            json!({"contactid": "1", "fullname": "Ann", "emailaddress1": "Ann@X.com "}),
            json!({"contactid": "2", "fullname": "Anne", "emailaddress2": "ann@x.com"}),
            json!({"contactid": "3", "emailaddress1": "bob@x.com", "emailaddress2": "BOB@x.com"}),
            json!({"contactid": "4", "emailaddress1": ""}),
            json!({"fullname": "no id", "emailaddress1": "ann@x.com"}),
        ] {
            finder.add(&row(contact), "contactid", Some("fullname"), &columns);
        }
        let groups = finder.groups();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].email, "ann@x.com");
        let ids: Vec<&str> = groups[0].contacts.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(groups[0].contacts[1].name.as_deref(), Some("Anne"));
    }
}
