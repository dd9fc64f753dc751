//! Metadata through the Web API: `EntityDefinitions`, their `Attributes`,
//! and derived-type casts such as `PicklistAttributeMetadata` ("Query table
//! definitions using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api>). No paging: every match comes in one response.

use serde_json::{Map, Value, json};

use super::error::{DvError, DvResult};
use super::metadata::{Attribute, Kind, Schema, Table};
use super::path::{Key, Segment};
use crate::odata::filter;

const NS: &str = "Microsoft.Dynamics.CRM.";

/// A `Label` complex value in the user's language (1033).
fn label(text: &str, id_seed: &str) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    let l = json!({
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": true,
        "MetadataId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, id_seed.as_bytes()),
        "HasChanged": null,
    });
    json!({"LocalizedLabels": [l.clone()], "UserLocalizedLabel": l})
}

fn entity_json(t: &Table) -> Map<String, Value> {
    let raw = t.raw.as_object().cloned().unwrap_or_default();
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!(format!("#{NS}EntityMetadata")));
    m.insert("MetadataId".into(), json!(t.metadata_id));
    m.insert("LogicalName".into(), json!(t.logical_name));
    m.insert("SchemaName".into(), json!(t.schema_name));
    m.insert("EntitySetName".into(), json!(t.entity_set));
    m.insert(
        "LogicalCollectionName".into(),
        raw.get("LogicalCollectionName")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "CollectionSchemaName".into(),
        raw.get("CollectionSchemaName")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert("PrimaryIdAttribute".into(), json!(t.primary_id));
    m.insert("PrimaryNameAttribute".into(), json!(t.primary_name));
    m.insert(
        "PrimaryImageAttribute".into(),
        raw.get("PrimaryImageAttribute")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert("ObjectTypeCode".into(), json!(t.object_type_code));
    m.insert("OwnershipType".into(), json!(t.ownership));
    m.insert(
        "TableType".into(),
        raw.get("TableType").cloned().unwrap_or(json!("Standard")),
    );
    m.insert(
        "IsCustomEntity".into(),
        raw.get("IsCustomEntity").cloned().unwrap_or(json!(false)),
    );
    m.insert(
        "IsIntersect".into(),
        raw.get("IsIntersect").cloned().unwrap_or(json!(false)),
    );
    m.insert("IsValidForAdvancedFind".into(), json!(true));
    m.insert("IsOptimisticConcurrencyEnabled".into(), json!(true));
    let display = raw
        .get("DisplayName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let display_coll = raw
        .get("DisplayCollectionName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    m.insert(
        "DisplayName".into(),
        label(display, &format!("{}.DisplayName", t.logical_name)),
    );
    m.insert(
        "DisplayCollectionName".into(),
        label(
            display_coll,
            &format!("{}.DisplayCollectionName", t.logical_name),
        ),
    );
    m.insert(
        "Keys".into(),
        Value::Array(
            t.alternate_keys
                .iter()
                .map(|k| json!({"KeyAttributes": k, "LogicalName": k.join("_")}))
                .collect(),
        ),
    );
    m
}

/// The derived metadata type of an attribute (`StringAttributeMetadata`...).
fn derived_type(a: &Attribute) -> &'static str {
    match a.attribute_type.as_str() {
        "String" => "StringAttributeMetadata",
        "Memo" => "MemoAttributeMetadata",
        "Integer" => "IntegerAttributeMetadata",
        "BigInt" => "BigIntAttributeMetadata",
        "Decimal" => "DecimalAttributeMetadata",
        "Double" => "DoubleAttributeMetadata",
        "Money" => "MoneyAttributeMetadata",
        "Boolean" => "BooleanAttributeMetadata",
        "DateTime" => "DateTimeAttributeMetadata",
        "Picklist" => "PicklistAttributeMetadata",
        "State" => "StateAttributeMetadata",
        "Status" => "StatusAttributeMetadata",
        "Lookup" | "Customer" | "Owner" => "LookupAttributeMetadata",
        "Uniqueidentifier" => "UniqueIdentifierAttributeMetadata",
        "EntityName" => "EntityNameAttributeMetadata",
        "ManagedProperty" => "ManagedPropertyAttributeMetadata",
        _ if a.raw["AttributeTypeName"] == "ImageType" => "ImageAttributeMetadata",
        _ => "AttributeMetadata",
    }
}

fn option_set(t: &Table, a: &Attribute) -> Value {
    let key = format!("{}.{}", t.logical_name, a.logical_name);
    if a.kind == Kind::Boolean {
        let opt = |o: &str| {
            let v = &a.raw["OptionSet"][o];
            json!({"Value": v["Value"], "Label": label(v["Label"].as_str().unwrap_or_default(), &format!("{key}.{o}"))})
        };
        return json!({"Name": a.raw.get("GlobalChoiceName").cloned().unwrap_or(json!(key)), "OptionSetType": "Boolean", "TrueOption": opt("TrueOption"), "FalseOption": opt("FalseOption")});
    }
    let options: Vec<Value> = a.raw["Options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|x| {
                    let mut m = json!({"Value": x["Value"], "Label": label(x["Label"].as_str().unwrap_or_default(), &format!("{key}.{}", x["Value"])), "Description": label("", ""), "Color": null, "IsManaged": true});
                    if let Some(s) = x.get("State") {
                        m["State"] = s.clone();
                    }
                    if let Some(s) = x.get("DefaultStatus") {
                        m["DefaultStatus"] = s.clone();
                    }
                    m
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"Name": a.raw.get("GlobalChoiceName").cloned().unwrap_or(json!(key)), "OptionSetType": a.attribute_type, "IsGlobal": false, "Options": options})
}

fn attribute_json(t: &Table, a: &Attribute, expand_option_set: bool) -> Map<String, Value> {
    let raw = &a.raw;
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        json!(format!("#{NS}{}", derived_type(a))),
    );
    m.insert("MetadataId".into(), raw["MetadataId"].clone());
    m.insert("LogicalName".into(), json!(a.logical_name));
    m.insert("SchemaName".into(), raw["SchemaName"].clone());
    m.insert("EntityLogicalName".into(), json!(t.logical_name));
    m.insert("AttributeType".into(), json!(a.attribute_type));
    m.insert(
        "AttributeTypeName".into(),
        json!({"Value": raw["AttributeTypeName"]}),
    );
    m.insert("RequiredLevel".into(), json!({"Value": raw.get("RequiredLevel").cloned().unwrap_or(json!("None")), "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}));
    m.insert(
        "DisplayName".into(),
        label(
            raw["DisplayName"].as_str().unwrap_or_default(),
            &format!("{}.{}.DisplayName", t.logical_name, a.logical_name),
        ),
    );
    m.insert("IsValidForCreate".into(), json!(a.valid_for_create));
    m.insert("IsValidForUpdate".into(), json!(a.valid_for_update));
    m.insert(
        "IsValidForRead".into(),
        raw.get("IsValidForRead").cloned().unwrap_or(json!(true)),
    );
    m.insert("IsPrimaryId".into(), json!(a.logical_name == t.primary_id));
    m.insert(
        "IsPrimaryName".into(),
        json!(a.logical_name == t.primary_name),
    );
    m.insert("IsCustomAttribute".into(), json!(false));
    for k in [
        "MaxLength",
        "MinValue",
        "MaxValue",
        "Precision",
        "Format",
        "FormatName",
        "DateTimeBehavior",
        "DefaultValue",
        "DefaultFormValue",
    ] {
        if let Some(v) = raw.get(k) {
            let v = match k {
                "FormatName" => json!({"Value": v}),
                "DateTimeBehavior" => json!({"Value": v}),
                _ => v.clone(),
            };
            m.insert(k.into(), v);
        }
    }
    if a.kind == Kind::Lookup {
        m.insert(
            "Targets".into(),
            json!(a.targets.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>()),
        );
    }
    if expand_option_set && (a.kind == Kind::Choice || a.kind == Kind::Boolean) {
        m.insert("OptionSet".into(), option_set(t, a));
    }
    m
}

/// Rewrites enum literals (`Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`)
/// as strings, which is how the metadata stores enum values.
fn enum_literals(f: &str) -> String {
    let mut out = String::new();
    let mut rest = f;
    while let Some(i) = rest.find(NS) {
        out.push_str(&rest[..i]);
        let after = &rest[i + NS.len()..];
        let ident_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if after[ident_len..].starts_with('\'') {
            rest = &after[ident_len..];
        } else {
            out.push_str(NS);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `$select`/`$filter` over metadata rows; `MetadataId` is always kept.
fn shape(
    rows: Vec<Map<String, Value>>,
    pairs: &[(String, String)],
    kind: &str,
) -> DvResult<Vec<Value>> {
    let mut filter = None;
    let mut select: Option<Vec<String>> = None;
    for (k, v) in pairs {
        match k.as_str() {
            "$filter" => {
                filter = Some(
                    filter::parse(&enum_literals(v))
                        .map_err(|e| DvError::segment(format!("Invalid $filter: {e}")))?,
                )
            }
            "$select" => {
                select = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$expand" => {}
            "$top" | "$skip" | "$orderby" | "$count" => {
                return Err(DvError::segment(format!(
                    "The query parameter {k} is not supported on {kind}."
                )));
            }
            other if other.starts_with('$') => {
                return Err(DvError::segment(format!(
                    "The query parameter {other} is not supported."
                )));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in rows {
        if let Some(f) = &filter {
            let rv = Value::Object(r.clone());
            if !filter::eval(f, &rv).map_err(DvError::from)? {
                continue;
            }
        }
        let r = match &select {
            Some(cols) => selected(&r, cols, pairs, kind)?,
            None => r,
        };
        out.push(Value::Object(r));
    }
    Ok(out)
}

/// The `cols` of a metadata row, plus `@odata.type`, `MetadataId` and the
/// expanded navigation properties, which survive `$select` as in OData.
fn selected(
    r: &Map<String, Value>,
    cols: &[String],
    pairs: &[(String, String)],
    kind: &str,
) -> DvResult<Map<String, Value>> {
    let mut m = Map::new();
    for c in cols {
        let v = r.get(c).cloned().ok_or_else(|| {
            DvError::segment(format!(
                "Could not find a property named '{c}' on type '{NS}{kind}'."
            ))
        })?;
        m.insert(c.clone(), v);
    }
    let expanded = pairs
        .iter()
        .filter(|(k, _)| k == "$expand")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|e| e.split('(').next().unwrap_or_default().trim().to_string())
        })
        .collect::<Vec<_>>();
    for k in ["@odata.type", "MetadataId"]
        .into_iter()
        .chain(expanded.iter().map(String::as_str))
    {
        if let Some(v) = r.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Ok(m)
}

fn find_table<'s>(schema: &'s Schema, key: &Key) -> DvResult<&'s Table> {
    let found = match key {
        Key::Id(id) => schema.tables.iter().find(|t| t.metadata_id == *id),
        Key::Alternate(pairs) => match &pairs[..] {
            [(k, Value::String(v))] if k == "LogicalName" => schema.table(v),
            _ => {
                return Err(DvError::segment(
                    "EntityDefinitions keys are a MetadataId or LogicalName='...'.",
                ));
            }
        },
    };
    found.map(|t| &**t).ok_or_else(|| {
        DvError::new(
            axum::http::StatusCode::NOT_FOUND,
            "0x80040217",
            "Could not find an entity with the specified key.",
        )
    })
}

/// Answers `EntityDefinitions...` paths; `base` is the API base URL.
pub fn handle(
    schema: &Schema,
    segments: &[Segment],
    pairs: &[(String, String)],
    base: &str,
) -> DvResult<Value> {
    match segments {
        [Segment { key: None, .. }] => {
            let rows = schema.tables.iter().map(|t| entity_json(t)).collect();
            let value = shape(rows, pairs, "EntityMetadata")?;
            Ok(
                json!({"@odata.context": format!("{base}$metadata#EntityDefinitions"), "value": value}),
            )
        }
        [Segment { key: Some(key), .. }] => {
            let t = find_table(schema, key)?;
            let mut m = entity_json(t);
            if expands(pairs, |e| e.starts_with("Attributes")) {
                m.insert(
                    "Attributes".into(),
                    Value::Array(
                        t.attributes
                            .iter()
                            .map(|a| Value::Object(attribute_json(t, a, false)))
                            .collect(),
                    ),
                );
            }
            let mut v = shape(vec![m], pairs, "EntityMetadata")?
                .pop()
                .unwrap_or_default();
            v["@odata.context"] = json!(format!("{base}$metadata#EntityDefinitions/$entity"));
            Ok(v)
        }
        [
            Segment { key: Some(key), .. },
            Segment {
                name,
                key: attr_key,
            },
            rest @ ..,
        ] if name == "Attributes" => {
            let t = find_table(schema, key)?;
            attributes(t, attr_key.as_ref(), cast_of(rest)?, pairs, base)
        }
        _ => Err(DvError::segment(
            "Resource not found for the segment provided in the URL.",
        )),
    }
}

/// Whether `$expand` has an item `matching`.
fn expands(pairs: &[(String, String)], matching: impl Fn(&str) -> bool) -> bool {
    pairs
        .iter()
        .find(|(k, _)| k == "$expand")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
        .split(',')
        .any(|e| matching(e.trim()))
}

/// The derived type a path casts `Attributes` to
/// (`.../Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`).
fn cast_of(rest: &[Segment]) -> DvResult<Option<&str>> {
    let cast = match rest {
        [] => None,
        [Segment { name: c, key: None }] => Some(c.strip_prefix(NS).ok_or_else(|| {
            DvError::segment(format!("Resource not found for the segment '{c}'."))
        })?),
        _ => {
            return Err(DvError::segment(
                "Resource not found for the segment provided in the URL.",
            ));
        }
    };
    if cast == Some("EnumAttributeMetadata") {
        return Err(DvError::segment(
            "Cannot cast to the abstract type EnumAttributeMetadata; query each derived type.",
        ));
    }
    Ok(cast)
}

/// `EntityDefinitions(...)/Attributes[(key)][/cast]`.
fn attributes(
    t: &Table,
    attr_key: Option<&Key>,
    cast: Option<&str>,
    pairs: &[(String, String)],
    base: &str,
) -> DvResult<Value> {
    let expand_options = expands(pairs, |e| matches!(e, "OptionSet" | "GlobalOptionSet"));
    let rows: Vec<Map<String, Value>> = t
        .attributes
        .iter()
        .filter(|a| cast.is_none_or(|c| derived_type(a) == c))
        .filter(|a| match attr_key {
            None => true,
            Some(Key::Id(id)) => a.raw["MetadataId"].as_str() == Some(id.to_string().as_str()),
            Some(Key::Alternate(p)) => matches!(&p[..], [(k, Value::String(v))] if k == "LogicalName" && *v == a.logical_name),
        })
        .map(|a| attribute_json(t, a, expand_options))
        .collect();
    let kind = cast.unwrap_or("AttributeMetadata");
    let mut value = shape(rows, pairs, kind)?;
    if attr_key.is_some() {
        let mut one = value.pop().ok_or_else(|| {
            DvError::new(
                axum::http::StatusCode::NOT_FOUND,
                "0x80040217",
                "Could not find an attribute with the specified key.",
            )
        })?;
        one["@odata.context"] = json!(format!(
            "{base}$metadata#EntityDefinitions('{}')/Attributes/$entity",
            t.metadata_id
        ));
        return Ok(one);
    }
    let cast_part = cast.map(|c| format!("/{NS}{c}")).unwrap_or_default();
    Ok(
        json!({"@odata.context": format!("{base}$metadata#EntityDefinitions('{}')/Attributes{cast_part}", t.metadata_id), "value": value}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_literals_become_strings() {
        assert_eq!(
            enum_literals("OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'"),
            "OwnershipType eq 'UserOwned'"
        );
        assert_eq!(
            enum_literals("Microsoft.Dynamics.CRM.In(PropertyName='x')"),
            "Microsoft.Dynamics.CRM.In(PropertyName='x')"
        );
    }
}
