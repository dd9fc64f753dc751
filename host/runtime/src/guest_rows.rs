//! Rows as a guest receives them: JSON text without the OData annotations
//! whose values are URLs of the environment, so a guest never learns
//! where Dataverse is.
//!
//! A page's rows arrive as maps and are written out; a single row read
//! arrives as the text Dataverse wrote and stays text: only its top-level
//! members are looked at, and a nested object or array is copied as it is
//! unless it could hold such an annotation (then it is parsed, cleaned and
//! written out).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::backend::{BackendError, Row};

/// OData annotations whose values are URLs of the environment.
const URL_ANNOTATIONS: [&str; 9] = [
    "@odata.context",
    "@odata.id",
    "@odata.editLink",
    "@odata.readLink",
    "@odata.nextLink",
    "@odata.navigationLink",
    "@odata.associationLink",
    "@odata.mediaReadLink",
    "@odata.mediaEditLink",
];

fn is_url_annotation(key: &str) -> bool {
    // Most names are plain columns: one search rules out all nine.
    key.contains("@odata.") && URL_ANNOTATIONS.iter().any(|a| key.ends_with(a))
}

/// Removes URL-valued annotations from a row and the rows expanded in it.
pub(crate) fn without_urls(mut row: Row) -> Row {
    row.retain(|key, _| !is_url_annotation(key));
    for value in row.values_mut() {
        clean(value);
    }
    row
}

/// Removes URL-valued annotations from the objects in `value`.
fn clean(value: &mut Value) {
    match value {
        Value::Object(inner) => *inner = without_urls(std::mem::take(inner)),
        Value::Array(items) => items.iter_mut().for_each(clean),
        _ => {}
    }
}

/// A row as JSON text, written straight into a buffer (`Value`'s `Display`
/// goes through `fmt::Write`, and wrapping a row in a `Value` needs a move
/// or a clone).
pub(crate) fn row_text(row: &Row) -> String {
    serde_json::to_string(row).expect("a JSON map with string keys always serializes")
}

/// Rows as the guest receives them: JSON text without URL annotations.
pub(crate) fn to_text(rows: Vec<Row>) -> Vec<String> {
    rows.into_iter()
        .map(|r| row_text(&without_urls(r)))
        .collect()
}

/// A row read as text, as the guest receives it: the same text without URL
/// annotations, members in the order Dataverse wrote them.
pub(crate) fn text_without_urls(row: &RawValue) -> Result<String, BackendError> {
    let unusable = |e: serde_json::Error| {
        BackendError::Unavailable(format!("Dataverse sent an unusable row: {e}"))
    };
    let members: Members<'_> = serde_json::from_str(row.get()).map_err(unusable)?;
    let mut out = String::with_capacity(row.get().len());
    out.push('{');
    for (key, value) in members.0 {
        if is_url_annotation(&key) {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        match &key {
            // A name borrowed from the row had no escapes: its text between
            // the quotes is already valid JSON (the parser refuses raw
            // control characters), so it is copied as it stands.
            Cow::Borrowed(name) => {
                out.push('"');
                out.push_str(name);
                out.push('"');
            }
            Cow::Owned(name) => {
                out.push_str(&serde_json::to_string(name).expect("a string writes as JSON"));
            }
        }
        out.push(':');
        let text = value.get();
        if may_hold_url_annotation(text) {
            let mut parsed: Value = serde_json::from_str(text).map_err(unusable)?;
            clean(&mut parsed);
            out.push_str(&parsed.to_string());
        } else {
            out.push_str(text);
        }
    }
    out.push('}');
    Ok(out)
}

/// Whether a member's value is an object or array that might hold a URL
/// annotation at some depth. Text with an escape is counted in, since a key
/// could spell `@` as `\u0040`; a scalar holds no keys.
fn may_hold_url_annotation(text: &str) -> bool {
    (text.starts_with('{') || text.starts_with('['))
        && (text.contains('\\') || text.contains("@odata."))
}

/// An object's members, in order, borrowed from its text where possible.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(64));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            members.push((key.0, map.next_value()?));
        }
        Ok(Members(members))
    }
}

/// A member's name: borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#accounts/$entity",
            "@odata.etag": "W/\"1\"",
            "name": "A",
            "primarycontactid": {"@odata.id": "https://x/api/data/v9.2/contacts(1)", "fullname": "B"},
            "contact_customer_accounts": [{"@odata.editLink": "contacts(2)", "fullname": "C"}],
            "contact_customer_accounts@odata.nextLink": "https://x/api/data/v9.2/next"
        })
    }

    fn assert_clean(text: &str) {
        assert!(
            !text.contains("http") && !text.contains("contacts("),
            "{text}"
        );
        assert!(
            text.contains("@odata.etag") && text.contains("\"fullname\":\"C\""),
            "{text}"
        );
    }

    #[test]
    fn url_annotations_are_removed_at_every_depth() {
        let Value::Object(row) = sample() else {
            unreachable!()
        };
        assert_clean(&to_text(vec![row]).remove(0));
    }

    #[test]
    fn a_row_read_as_text_loses_the_same_annotations_and_nothing_else() {
        let raw = serde_json::value::to_raw_value(&sample()).unwrap();
        let text = text_without_urls(&raw).unwrap();
        assert_clean(&text);
        let Value::Object(row) = sample() else {
            unreachable!()
        };
        let expected = Value::Object(without_urls(row));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    }

    #[test]
    fn a_row_read_as_text_keeps_its_member_order_and_copies_plain_values() {
        let raw = RawValue::from_string(
            r#"{"z":1,"a":{"b":[1,2]},"@odata.context":"https://x/","m":"t\"q","n":null}"#.into(),
        )
        .unwrap();
        assert_eq!(
            text_without_urls(&raw).unwrap(),
            r#"{"z":1,"a":{"b":[1,2]},"m":"t\"q","n":null}"#
        );
    }

    #[test]
    fn an_escaped_annotation_name_is_still_found() {
        let raw = RawValue::from_string(
            r#"{"\u0040odata.context":"https://x/","p":{"\u0040odata.id":"https://x/c(1)","n":"\u00e9"}}"#
                .into(),
        )
        .unwrap();
        let text = text_without_urls(&raw).unwrap();
        assert!(!text.contains("https"), "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::json!({"p": {"n": "é"}})
        );
    }

    #[test]
    fn names_with_escapes_are_written_escaped_and_plain_names_as_they_stand() {
        let text = r#"{"a\"b":1,"\u00e9t\u00e9":2,"tab\tname":3,"été":4,"x@odata.type":5}"#;
        let raw = RawValue::from_string(text.into()).unwrap();
        let out = text_without_urls(&raw).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert!(
            out.contains(r#""été":4"#) && out.contains(r#""x@odata.type":5"#),
            "{out}"
        );
    }

    #[test]
    fn text_that_is_not_an_object_is_an_unusable_answer() {
        for text in ["[1]", "\"x\"", "3"] {
            let raw = RawValue::from_string(text.into()).unwrap();
            assert!(
                matches!(text_without_urls(&raw), Err(BackendError::Unavailable(_))),
                "{text}"
            );
        }
    }
}
