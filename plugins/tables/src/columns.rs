//! What each column becomes: a [`Shape`] from its metadata (`AttributeType`,
//! `AttributeTypeName`, length, range, options, lookup targets), the JSON
//! Schema of its value, and the check of a value against it.
//!
//! Columns without a JSON form this plugin can state precisely are left out
//! of every schema and refused in every input: `EntityName` (the type half
//! of a polymorphic lookup, set by the binding itself), `PartyList`,
//! `CalendarRules`, `ManagedProperty`, multi-select choices and file columns
//! (`Virtual` other than `ImageType`).

use dvhost_sdk::metadata::{ColumnInfo, LookupTarget, OptionValue, RequiredLevel};
use dvhost_sdk::serde_json::{Map, Value, json};

/// A column's value type.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape<'c> {
    /// `String`, `Memo`: text up to `max_length` characters.
    Text {
        /// Longest value, in characters.
        max_length: Option<u32>,
    },
    /// `Integer`, `BigInt`: a whole number in a range.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// `Decimal`, `Double`, `Money`: a number in a range.
    Number {
        /// Smallest value.
        min: Option<f64>,
        /// Largest value.
        max: Option<f64>,
        /// Digits after the decimal point.
        precision: Option<u32>,
        /// Whether it is an amount of money.
        money: bool,
    },
    /// `Boolean`.
    Boolean,
    /// `DateTime`: `YYYY-MM-DD` when date-only, else an RFC 3339 date-time.
    DateTime {
        /// Whether it holds a date only.
        date_only: bool,
    },
    /// `Uniqueidentifier`: a GUID.
    Guid,
    /// `Picklist`, `State`, `Status`: one of the option values.
    Choice {
        /// The options.
        options: &'c [OptionValue],
    },
    /// `Lookup`, `Customer`, `Owner`: the id of a row of one of `targets`.
    Lookup {
        /// Tables it may point to.
        targets: &'c [String],
        /// How to set it, per target (only these targets can be set).
        settable: &'c [LookupTarget],
    },
    /// `Virtual` with `ImageType`: the image's bytes in base64.
    Image,
}

/// The 32-bit range of `Integer` columns without `MinValue`/`MaxValue`.
const INT32: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);

/// The shape of `column`, or `None` for a column left out (module doc).
pub fn shape(column: &ColumnInfo) -> Option<Shape<'_>> {
    let whole = |(low, high): (i64, i64)| Shape::Integer {
        min: column.min_value.map_or(low, |v| v.ceil() as i64).max(low),
        max: column
            .max_value
            .map_or(high, |v| v.floor() as i64)
            .min(high),
    };
    Some(match column.kind.as_str() {
        "String" | "Memo" => Shape::Text {
            max_length: column.max_length,
        },
        "Integer" => whole(INT32),
        "BigInt" => whole((i64::MIN, i64::MAX)),
        "Decimal" | "Double" | "Money" => Shape::Number {
            min: column.min_value,
            max: column.max_value,
            precision: column.precision,
            money: column.kind == "Money",
        },
        "Boolean" => Shape::Boolean,
        "DateTime" => Shape::DateTime {
            date_only: column.date_only,
        },
        "Uniqueidentifier" => Shape::Guid,
        "Picklist" | "State" | "Status" => Shape::Choice {
            options: &column.options,
        },
        "Lookup" | "Customer" | "Owner" => Shape::Lookup {
            targets: &column.targets,
            settable: &column.lookup_targets,
        },
        "Virtual" if column.type_name.as_deref() == Some("ImageType") => Shape::Image,
        _ => return None,
    })
}

/// Where a column's value is in a Web API row: `_<column>_value` for a
/// lookup, the logical name otherwise.
pub fn web_api_name(column: &ColumnInfo) -> String {
    match shape(column) {
        Some(Shape::Lookup { .. }) => format!("_{}_value", column.logical_name),
        _ => column.logical_name.clone(),
    }
}

/// The JSON Schema of a GUID.
pub fn guid_schema() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// Which way a value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from Dataverse: a lookup with several targets names the table
    /// of the row it points to (the one in Dataverse's
    /// `lookuplogicalname` annotation), like a written one.
    Read,
    /// Compared in a filter: lookups are ids.
    Filter,
    /// Written by the caller: a lookup with several targets names one.
    Write,
}

/// The schema of `column`'s value (not yet nullable), with its title and a
/// description of what the type alone cannot say.
pub fn value_schema(column: &ColumnInfo, shape: &Shape, direction: Direction) -> Value {
    let mut notes: Vec<String> = Vec::new();
    let mut schema = match shape {
        Shape::Text { max_length } => {
            let mut s = json!({"type": "string"});
            if let Some(n) = max_length {
                s["maxLength"] = json!(n);
            }
            s
        }
        Shape::Integer { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Shape::Number {
            min,
            max,
            precision,
            money,
        } => {
            let mut s = json!({"type": "number"});
            if let Some(v) = min {
                s["minimum"] = json!(v);
            }
            if let Some(v) = max {
                s["maximum"] = json!(v);
            }
            if *money {
                notes.push("An amount in the row's currency.".into());
            }
            if let Some(p) = precision {
                notes.push(format!(
                    "Dataverse keeps {p} digits after the decimal point."
                ));
            }
            s
        }
        Shape::Boolean => json!({"type": "boolean"}),
        Shape::DateTime { date_only: true } => json!({"type": "string", "format": "date"}),
        Shape::DateTime { date_only: false } => {
            json!({"type": "string", "format": "date-time"})
        }
        Shape::Guid => guid_schema(),
        Shape::Choice { options } => {
            let labels: Vec<String> = options
                .iter()
                .map(|o| match &o.label {
                    Some(label) => format!("{} = {label}", o.value),
                    None => o.value.to_string(),
                })
                .collect();
            if !labels.is_empty() {
                notes.push(format!("Options: {}.", labels.join(", ")));
            }
            json!({
                "type": "integer",
                "enum": options.iter().map(|o| o.value).collect::<Vec<_>>(),
            })
        }
        Shape::Lookup { targets, settable } => match direction {
            Direction::Read if targets.len() > 1 => {
                notes.push(format!(
                    "A row of {}: its table and id.",
                    targets.join(" or ")
                ));
                reference_schema(targets.iter().map(String::as_str).collect())
            }
            Direction::Read | Direction::Filter => {
                notes.push(format!("The id of a row of {}.", targets.join(" or ")));
                guid_schema()
            }
            Direction::Write if settable.len() == 1 => {
                notes.push(format!("The id of a row of {}.", settable[0].table));
                guid_schema()
            }
            Direction::Write => {
                notes.push(format!(
                    "A row of {}: name its table and id.",
                    tables_of(settable).join(" or ")
                ));
                reference_schema(tables_of(settable))
            }
        },
        Shape::Image => {
            notes.push("The image's bytes, base64-encoded.".into());
            json!({"type": "string", "contentEncoding": "base64"})
        }
    };
    if let Some(title) = &column.display_name {
        schema["title"] = json!(title);
    }
    if !notes.is_empty() {
        schema["description"] = json!(notes.join(" "));
    }
    schema
}

/// A row of one of `tables`, named by table and id: a lookup with several
/// targets, written or read.
fn reference_schema(tables: Vec<&str>) -> Value {
    json!({
        "type": "object",
        "properties": {
            "table": {"enum": tables},
            "id": guid_schema(),
        },
        "required": ["table", "id"],
        "additionalProperties": false,
    })
}

fn tables_of(targets: &[LookupTarget]) -> Vec<&str> {
    targets.iter().map(|t| t.table.as_str()).collect()
}

/// `schema` that also accepts `null`.
pub fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        schema["type"] = json!([t, "null"]);
    }
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

/// Whether a create must set `column` (of a table whose primary key is
/// `primary_id`): a create can set it, its required level is application-
/// or system-required,
/// except where the platform fills it in itself — the primary key (a new
/// GUID) and an owner (the calling user, "Assign or share rows": a row
/// created without an owner belongs to its creator).
pub fn required_on_create(column: &ColumnInfo, primary_id: &str) -> bool {
    matches!(
        column.required,
        RequiredLevel::ApplicationRequired | RequiredLevel::SystemRequired
    ) && writable(column, true)
        && column.logical_name != primary_id
        && column.kind != "Owner"
}

/// Whether `column` can be written on create (`create`) or update: it has a
/// shape, Dataverse says it is valid there, and a lookup has a navigation
/// property to set it with.
pub fn writable(column: &ColumnInfo, create: bool) -> bool {
    let valid = if create {
        column.valid_for_create
    } else {
        column.valid_for_update
    };
    valid
        && match shape(column) {
            None => false,
            Some(Shape::Lookup { settable, .. }) => !settable.is_empty(),
            Some(_) => true,
        }
}

/// Checks a non-null `value` against `shape`; the error says why not.
pub fn check_value(shape: &Shape, value: &Value) -> Result<(), String> {
    match shape {
        Shape::Text { max_length } => {
            let text = value.as_str().ok_or("expected text")?;
            if let Some(max) = max_length {
                let length = text.chars().count();
                if length > *max as usize {
                    return Err(format!("{length} characters is longer than {max}"));
                }
            }
        }
        Shape::Integer { min, max } => {
            let n = value.as_i64().ok_or("expected a whole number")?;
            if n < *min || n > *max {
                return Err(format!("{n} is outside {min} to {max}"));
            }
        }
        Shape::Number { min, max, .. } => {
            let n = value.as_f64().filter(|_| value.is_number());
            let n = n.ok_or("expected a number")?;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(format!(
                    "{n} is outside {} to {}",
                    min.map_or("any".into(), |m| m.to_string()),
                    max.map_or("any".into(), |m| m.to_string())
                ));
            }
        }
        Shape::Boolean => {
            value.as_bool().ok_or("expected true or false")?;
        }
        Shape::DateTime { date_only } => {
            let text = value.as_str().ok_or("expected a date as text")?;
            let ok = if *date_only {
                is_date(text)
            } else {
                is_date_time(text)
            };
            if !ok {
                return Err(if *date_only {
                    format!("'{text}' is not a date (YYYY-MM-DD)")
                } else {
                    format!("'{text}' is not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ssZ)")
                });
            }
        }
        Shape::Guid => {
            let text = value.as_str().ok_or("expected a GUID as text")?;
            if !is_guid(text) {
                return Err(format!("'{text}' is not a GUID"));
            }
        }
        Shape::Choice { options } => {
            let n = value
                .as_i64()
                .ok_or("expected an option value (a whole number)")?;
            if !options.iter().any(|o| o.value == n) {
                let values: Vec<String> = options.iter().map(|o| o.value.to_string()).collect();
                return Err(format!(
                    "{n} is not one of the options {}",
                    values.join(", ")
                ));
            }
        }
        Shape::Lookup { .. } => {
            let text = value.as_str().ok_or("expected an id (a GUID as text)")?;
            if !is_guid(text) {
                return Err(format!("'{text}' is not a GUID"));
            }
        }
        Shape::Image => {
            let text = value.as_str().ok_or("expected base64 text")?;
            if !is_base64(text) {
                return Err("not base64 text".into());
            }
        }
    }
    Ok(())
}

/// A GUID in its 8-4-4-4-12 hexadecimal form.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn digits(text: &str, n: usize) -> Option<u32> {
    (text.len() == n && text.chars().all(|c| c.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` with a real month and day.
pub fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (digits(year, 4), digits(month, 2), digits(day, 2))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// An RFC 3339 date-time: `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`.
pub fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (clock, zone) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, None)
    } else {
        match time.rfind(['+', '-']) {
            Some(at) => (&time[..at], Some(&time[at + 1..])),
            None => return false,
        }
    };
    let zone_ok = zone.is_none_or(|z| {
        matches!(z.split_once(':'), Some((h, m))
            if digits(h, 2).is_some_and(|h| h < 24) && digits(m, 2).is_some_and(|m| m < 60))
    });
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let parts: Vec<&str> = whole.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return false;
    };
    zone_ok
        && !fraction.is_empty()
        && fraction.chars().all(|c| c.is_ascii_digit())
        && digits(h, 2).is_some_and(|h| h < 24)
        && digits(m, 2).is_some_and(|m| m < 60)
        && digits(s, 2).is_some_and(|s| s < 61)
}

fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

/// The columns of a row object of the input, by name; anything else is
/// refused with the action's wording.
pub fn object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: &str) -> ColumnInfo {
        ColumnInfo {
            logical_name: "c".into(),
            kind: kind.into(),
            ..ColumnInfo::default()
        }
    }

    #[test]
    fn dates_and_date_times_are_checked_strictly() {
        assert!(is_date("2024-02-29") && !is_date("2023-02-29") && !is_date("2024-13-01"));
        assert!(!is_date("24-01-01") && !is_date("2024-1-01"));
        assert!(is_date_time("2024-01-31T10:00:00Z"));
        assert!(is_date_time("2024-01-31T10:00:00.123+02:00"));
        assert!(!is_date_time("2024-01-31T10:00Z"));
        assert!(!is_date_time("2024-01-31"));
        assert!(!is_date_time("2024-01-31T10:00:00"));
    }

    #[test]
    fn guids_and_base64() {
        assert!(is_guid("00000000-0000-0000-0000-00000000c001"));
        assert!(!is_guid("00000000-0000-0000-0000-00000000c00"));
        assert!(!is_guid("{00000000-0000-0000-0000-00000000c001}"));
        assert!(is_base64("aGk=") && !is_base64("a$==") && !is_base64("abc"));
    }

    #[test]
    fn shapes_follow_the_attribute_type() {
        assert_eq!(
            shape(&column("Integer")),
            Some(Shape::Integer {
                min: i32::MIN as i64,
                max: i32::MAX as i64
            })
        );
        let mut employees = column("Integer");
        employees.min_value = Some(0.0);
        employees.max_value = Some(1_000_000_000.0);
        assert_eq!(
            shape(&employees),
            Some(Shape::Integer {
                min: 0,
                max: 1_000_000_000
            })
        );
        assert_eq!(shape(&column("EntityName")), None);
        assert_eq!(shape(&column("Virtual")), None);
        let mut image = column("Virtual");
        image.type_name = Some("ImageType".into());
        assert_eq!(shape(&image), Some(Shape::Image));
        assert_eq!(web_api_name(&column("Customer")), "_c_value");
    }

    #[test]
    fn values_are_checked_against_their_shape() {
        let text = Shape::Text {
            max_length: Some(3),
        };
        assert!(check_value(&text, &json!("abc")).is_ok());
        assert!(
            check_value(&text, &json!("abcd"))
                .unwrap_err()
                .contains("longer than 3")
        );
        assert!(check_value(&text, &json!(1)).is_err());
        let whole = Shape::Integer { min: 0, max: 10 };
        assert!(check_value(&whole, &json!(10)).is_ok());
        assert!(check_value(&whole, &json!(11)).is_err());
        assert!(check_value(&whole, &json!(1.5)).is_err());
        assert!(check_value(&whole, &json!("1")).is_err());
        let options = [OptionValue {
            value: 1,
            label: Some("One".into()),
        }];
        let choice = Shape::Choice { options: &options };
        assert!(check_value(&choice, &json!(1)).is_ok());
        assert!(
            check_value(&choice, &json!(2))
                .unwrap_err()
                .contains("not one of")
        );
    }

    #[test]
    fn schemas_carry_limits_options_and_nullability() {
        let mut name = column("String");
        name.max_length = Some(160);
        name.display_name = Some("Name".into());
        let s = value_schema(&name, &shape(&name).unwrap(), Direction::Write);
        assert_eq!(
            s,
            json!({"type": "string", "maxLength": 160, "title": "Name"})
        );
        assert_eq!(nullable(s)["type"], json!(["string", "null"]));
        let mut code = column("Picklist");
        code.options = vec![OptionValue {
            value: 1,
            label: Some("Preferred".into()),
        }];
        let s = nullable(value_schema(&code, &shape(&code).unwrap(), Direction::Read));
        assert_eq!(s["enum"], json!([1, null]));
        assert_eq!(s["description"], "Options: 1 = Preferred.");
    }

    #[test]
    fn required_on_create_leaves_out_what_the_platform_fills() {
        let mut c = column("String");
        c.required = RequiredLevel::ApplicationRequired;
        c.valid_for_create = true;
        assert!(required_on_create(&c, "accountid"));
        c.required = RequiredLevel::Recommended;
        assert!(!required_on_create(&c, "accountid"));
        let mut owner = column("Owner");
        owner.required = RequiredLevel::SystemRequired;
        owner.valid_for_create = true;
        assert!(!required_on_create(&owner, "accountid"));
        let mut id = column("Uniqueidentifier");
        id.logical_name = "accountid".into();
        id.required = RequiredLevel::SystemRequired;
        id.valid_for_create = true;
        assert!(!required_on_create(&id, "accountid"));
    }
}
