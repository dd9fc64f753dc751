//! Rows passed through unparsed: [`RawRecord`].

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind};
use crate::records::Record;

/// A row as the host returned it: the text of one JSON object, unparsed.
///
/// Reading a wide row into a [`Record`] and writing it back out is most of
/// what a pass-through action spends inside the sandbox (an account of 50
/// columns: about 25 µs of the guest's time; the README's Performance
/// section has the figures). An action that returns a row as it was read,
/// or puts it unchanged into its output, can skip both with a `RawRecord`:
/// it serializes as the object it holds, byte for byte, and its JSON Schema
/// is an object. Parse it ([`RawRecord::parse`]) when the action needs the
/// columns.
///
/// ```no_run
/// use dvhost_sdk::{RawRecord, Table};
///
/// fn read_account(id: String) -> Result<RawRecord, dvhost_sdk::Error> {
///     Table::new("account").retrieve(id).run_raw()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RawRecord(Box<RawValue>);

impl RawRecord {
    /// Wraps the text of a JSON object. Text that is not valid JSON, or JSON
    /// that is not an object, is an [`ErrorKind::Json`] error.
    pub fn from_json(text: String) -> Result<RawRecord, Error> {
        let raw = RawValue::from_string(text).map_err(Error::json)?;
        RawRecord::checked(raw).map_err(|message| Error::local(ErrorKind::Json, message))
    }

    /// `raw` if it holds an object. serde_json's raw text starts at the
    /// value itself (no leading whitespace), so its first byte says.
    fn checked(raw: Box<RawValue>) -> Result<RawRecord, &'static str> {
        if raw.get().starts_with('{') {
            Ok(RawRecord(raw))
        } else {
            Err("a row must be a JSON object")
        }
    }

    /// The row's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The row, parsed.
    pub fn parse(&self) -> Result<Record, Error> {
        self.parse_as()
    }

    /// The row, parsed into a type of the plugin's.
    pub fn parse_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(self.0.get()).map_err(Error::json)
    }
}

impl PartialEq for RawRecord {
    /// The same text (not the same object: key order and spacing count).
    fn eq(&self, other: &RawRecord) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for RawRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawRecord, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        RawRecord::checked(raw).map_err(D::Error::custom)
    }
}

impl JsonSchema for RawRecord {
    fn schema_name() -> Cow<'static, str> {
        "RawRecord".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "A row in the Web API's shape, as Dataverse returned it."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_byte_for_byte_inside_other_output() {
        let row = RawRecord::from_json(r#"{"name":"Contoso" ,"revenue":5}"#.into()).unwrap();
        #[derive(Serialize)]
        struct Out {
            row: RawRecord,
        }
        let out = Out { row };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"row":{"name":"Contoso" ,"revenue":5}}"#
        );
    }

    #[test]
    fn only_a_json_object_is_a_row() {
        for bad in ["[1]", "\"text\"", "3", "{\"open\":", ""] {
            let error = RawRecord::from_json(bad.into()).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Json, "{bad}");
        }
        let read: Result<RawRecord, _> = serde_json::from_str(" [1] ");
        assert!(read.unwrap_err().to_string().contains("JSON object"));
        let read: RawRecord = serde_json::from_str(" {\"a\": 1} ").unwrap();
        assert_eq!(read.as_str(), "{\"a\": 1}");
    }

    #[test]
    fn parses_into_a_record_or_a_type() {
        let row = RawRecord::from_json(r#"{"name":"Contoso","revenue":5}"#.into()).unwrap();
        assert_eq!(row.parse().unwrap()["revenue"], 5);
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        assert_eq!(row.parse_as::<Named>().unwrap().name, "Contoso");
    }

    #[test]
    fn its_schema_is_an_object() {
        let schema = schemars::schema_for!(RawRecord);
        assert_eq!(schema.get("type"), Some(&serde_json::json!("object")));
    }
}
