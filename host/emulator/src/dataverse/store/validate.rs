//! Validating a write against the metadata: the body's columns and
//! `@odata.bind` references, and each value against its column.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::EnvData;
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Attribute, Kind, Table};

/// A validated write: column values, and lookups to set (`None` clears).
pub(super) struct ParsedBody {
    pub(super) values: Vec<(String, Value)>,
    pub(super) binds: Vec<(String, Option<(String, Uuid)>)>,
}

impl EnvData {
    /// Validates a JSON body against the table and returns the values to
    /// store and the lookups to bind (`None` id = clear).
    pub(super) fn parse_body(
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
fn check_value(table: &Table, attr: &Attribute, value: &Value) -> DvResult<Value> {
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
fn normalize_datetime(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(crate::clock::iso(t.to_offset(time::UtcOffset::UTC)));
    }
    let date =
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(crate::clock::iso(date.midnight().assume_utc()))
}
