//! Rows of one table: the typed wrappers over the `records` import (create,
//! retrieve, update, upsert, delete, create-many, update-many). Queries live
//! in `query.rs`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::dvhost::plugin::records as wit;
use crate::error::{Error, ErrorKind};
use crate::query::Query;
use crate::raw::RawRecord;

/// A row as a JSON object, in the Web API's shape: column logical names as
/// keys, lookups as `_<column>_value` with the table of the row each points
/// to as `_<column>_value@Microsoft.Dynamics.CRM.lookuplogicalname`, and
/// annotations such as `@odata.etag`.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// A value of an alternate-key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// A text column.
    Text(String),
    /// A whole-number column.
    Integer(i64),
    /// A unique-identifier or lookup column (a GUID).
    Guid(String),
}

impl From<&str> for KeyValue {
    fn from(text: &str) -> KeyValue {
        KeyValue::Text(text.to_owned())
    }
}

impl From<String> for KeyValue {
    fn from(text: String) -> KeyValue {
        KeyValue::Text(text)
    }
}

impl From<i64> for KeyValue {
    fn from(number: i64) -> KeyValue {
        KeyValue::Integer(number)
    }
}

impl From<i32> for KeyValue {
    fn from(number: i32) -> KeyValue {
        KeyValue::Integer(number.into())
    }
}

/// Which row: its id, or an alternate key. A `&str` or `String` converts to
/// [`Key::Id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The row's id (a GUID).
    Id(String),
    /// An alternate key: the key's columns with their values.
    Alternate(Vec<(String, KeyValue)>),
}

impl Key {
    /// An alternate key from column and value pairs, such as
    /// `Key::alternate([("accountnumber", "A-1")])`.
    pub fn alternate<C, V>(pairs: impl IntoIterator<Item = (C, V)>) -> Key
    where
        C: Into<String>,
        V: Into<KeyValue>,
    {
        Key::Alternate(
            pairs
                .into_iter()
                .map(|(column, value)| (column.into(), value.into()))
                .collect(),
        )
    }

    fn to_wit(&self) -> wit::Key {
        match self {
            Key::Id(id) => wit::Key::Id(id.clone()),
            Key::Alternate(pairs) => wit::Key::Alternate(
                pairs
                    .iter()
                    .map(|(column, value)| {
                        let value = match value {
                            KeyValue::Text(text) => wit::KeyValue::Text(text.clone()),
                            KeyValue::Integer(number) => wit::KeyValue::Integer(*number),
                            KeyValue::Guid(id) => wit::KeyValue::Guid(id.clone()),
                        };
                        (column.clone(), value)
                    })
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Key {
    fn from(id: &str) -> Key {
        Key::Id(id.to_owned())
    }
}

impl From<String> for Key {
    fn from(id: String) -> Key {
        Key::Id(id)
    }
}

impl From<&String> for Key {
    fn from(id: &String) -> Key {
        Key::Id(id.clone())
    }
}

/// A related row or rows to include (`$expand`), with their columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    navigation: String,
    select: Vec<String>,
}

impl Expand {
    /// Includes the rows behind navigation property `navigation`
    /// (`primarycontactid`, `contact_customer_accounts`), all their columns.
    pub fn new(navigation: impl Into<String>) -> Expand {
        Expand {
            navigation: navigation.into(),
            select: Vec::new(),
        }
    }

    /// Only these columns of the related rows.
    pub fn select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Expand {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    pub(crate) fn to_wit(&self) -> wit::Expand {
        wit::Expand {
            navigation: self.navigation.clone(),
            select: self.select.clone(),
        }
    }
}

/// A table, by logical name (`account`, `contact`); every row operation
/// starts here. Making one checks nothing: the host checks the name and the
/// plugin's grants on each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    name: String,
}

impl Table {
    /// The table with logical name `name`.
    pub fn new(name: impl Into<String>) -> Table {
        Table { name: name.into() }
    }

    /// The table's logical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a row and returns its id.
    pub fn create<R: Serialize + ?Sized>(&self, row: &R) -> Result<String, Error> {
        let row = object_json(row)?;
        Ok(wit::create(&self.name, &row, None)?)
    }

    /// Creates a row with id `id`, so that retrying the call cannot create it
    /// twice; returns the id.
    pub fn create_with_id<R: Serialize + ?Sized>(
        &self,
        id: &str,
        row: &R,
    ) -> Result<String, Error> {
        let row = object_json(row)?;
        Ok(wit::create(&self.name, &row, Some(id))?)
    }

    /// Starts reading the row at `key` (an id, or [`Key::alternate`]); pick
    /// columns and related rows on the returned [`Retrieve`], then `run` it.
    pub fn retrieve(&self, key: impl Into<Key>) -> Retrieve<'_> {
        Retrieve {
            table: self,
            key: key.into(),
            select: Vec::new(),
            expand: Vec::new(),
        }
    }

    /// Changes the columns in `changes` of row `id`.
    pub fn update<R: Serialize + ?Sized>(&self, id: &str, changes: &R) -> Result<(), Error> {
        let changes = object_json(changes)?;
        Ok(wit::update(&self.name, id, &changes, None)?)
    }

    /// Changes row `id` only if it is still the version with ETag `etag` (the
    /// row's `@odata.etag`); Dataverse answers 412 if it changed since.
    pub fn update_if_match<R: Serialize + ?Sized>(
        &self,
        id: &str,
        changes: &R,
        etag: &str,
    ) -> Result<(), Error> {
        let changes = object_json(changes)?;
        Ok(wit::update(&self.name, id, &changes, Some(etag))?)
    }

    /// Creates the row at `key` (an id, or [`Key::alternate`]) or changes it
    /// if it exists.
    pub fn upsert<R: Serialize + ?Sized>(&self, key: impl Into<Key>, row: &R) -> Result<(), Error> {
        let row = object_json(row)?;
        Ok(wit::upsert(&self.name, &key.into().to_wit(), &row)?)
    }

    /// Deletes row `id`.
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        Ok(wit::delete(&self.name, id)?)
    }

    /// Creates `rows` all or none; returns their ids in order.
    pub fn create_many<R: Serialize>(&self, rows: &[R]) -> Result<Vec<String>, Error> {
        let rows = rows
            .iter()
            .map(object_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(wit::create_many(&self.name, &rows)?)
    }

    /// Changes `rows` all or none; each row carries its id in the table's
    /// primary id column (`accountid`).
    pub fn update_many<R: Serialize>(&self, rows: &[R]) -> Result<(), Error> {
        let rows = rows
            .iter()
            .map(object_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(wit::update_many(&self.name, &rows)?)
    }

    /// Starts a query of this table; see [`Query`].
    pub fn query(&self) -> Query {
        Query::new(&self.name)
    }
}

/// A retrieve being built by [`Table::retrieve`]: choose columns and related
/// rows, then [`run`](Retrieve::run).
#[derive(Debug, Clone)]
#[must_use = "a retrieve does nothing until it is run"]
pub struct Retrieve<'table> {
    table: &'table Table,
    key: Key,
    select: Vec<String>,
    expand: Vec<Expand>,
}

impl Retrieve<'_> {
    /// Only these columns (all when none are named).
    pub fn select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Also the related rows behind a navigation property.
    pub fn expand(mut self, expand: Expand) -> Self {
        self.expand.push(expand);
        self
    }

    /// Reads the row as the host returned it: the text of a JSON object.
    pub fn run_json(&self) -> Result<String, Error> {
        let expand: Vec<wit::Expand> = self.expand.iter().map(Expand::to_wit).collect();
        Ok(wit::retrieve(
            self.table.name(),
            &self.key.to_wit(),
            &self.select,
            &expand,
        )?)
    }

    /// Reads the row.
    pub fn run(&self) -> Result<Record, Error> {
        self.run_as()
    }

    /// Reads the row into a type of the plugin's.
    pub fn run_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.run_json()?).map_err(Error::json)
    }

    /// Reads the row without parsing it, to return or pass on unchanged.
    pub fn run_raw(&self) -> Result<RawRecord, Error> {
        RawRecord::from_json(self.run_json()?)
    }
}

/// Serializes a row, which must be a JSON object; nothing is sent otherwise.
/// One pass, straight to text: serde_json writes an object, and only an
/// object, starting with `{`, so no `Value` tree is built to check it.
fn object_json<R: Serialize + ?Sized>(row: &R) -> Result<String, Error> {
    let json = serde_json::to_string(row).map_err(Error::json)?;
    if !json.starts_with('{') {
        return Err(Error::local(
            ErrorKind::InvalidInput,
            "a row must serialize to a JSON object",
        ));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_must_be_objects() {
        assert_eq!(
            object_json(&json!({"name": "A"})).unwrap(),
            r#"{"name":"A"}"#
        );
        let error = object_json(&json!(["name"])).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        let error = object_json(&42).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        for not_objects in [json!("{"), json!(null), json!(" {}")] {
            let error = object_json(&not_objects).unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidInput);
        }
        #[derive(Serialize)]
        struct Row<'a> {
            name: &'a str,
            revenue: Option<f64>,
        }
        let row = Row {
            name: "A",
            revenue: None,
        };
        assert_eq!(object_json(&row).unwrap(), r#"{"name":"A","revenue":null}"#);
    }

    #[test]
    fn unserializable_rows_are_json_errors() {
        let mut row = std::collections::HashMap::new();
        row.insert(vec![1u8], 1);
        assert_eq!(object_json(&row).unwrap_err().kind, ErrorKind::Json);
    }

    #[test]
    fn keys_convert_to_wit() {
        assert_eq!(Key::from("abc").to_wit(), wit::Key::Id("abc".to_owned()));
        let key = Key::alternate([("accountnumber", KeyValue::from("A-1")), ("n", 7.into())]);
        assert_eq!(
            key.to_wit(),
            wit::Key::Alternate(vec![
                (
                    "accountnumber".to_owned(),
                    wit::KeyValue::Text("A-1".to_owned())
                ),
                ("n".to_owned(), wit::KeyValue::Integer(7)),
            ])
        );
    }

    #[test]
    fn retrieve_collects_select_and_expand() {
        let table = Table::new("account");
        let retrieve = table
            .retrieve("id-1")
            .select(["name", "revenue"])
            .expand(Expand::new("primarycontactid").select(["fullname"]));
        assert_eq!(retrieve.select, ["name", "revenue"]);
        assert_eq!(
            retrieve.expand[0].to_wit(),
            wit::Expand {
                navigation: "primarycontactid".to_owned(),
                select: vec!["fullname".to_owned()],
            }
        );
    }
}
