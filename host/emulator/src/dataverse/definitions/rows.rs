//! The metadata rows `EntityDefinitions` serves: `EntityMetadata` and the
//! `AttributeMetadata` types, with the property names each type defines
//! ("EntityMetadata EntityType",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/entitymetadata>;
//! "AttributeMetadata EntityType",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/attributemetadata>).

use serde_json::{Map, Value, json};

use super::NS;
use crate::dataverse::metadata::{Attribute, Kind, Table};

/// The `EntityMetadata` properties the emulator serves, in the order it
/// writes them; `Attributes` and `Keys` are its navigation properties.
pub(super) const ENTITY_PROPERTIES: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "LogicalCollectionName",
    "CollectionSchemaName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "PrimaryImageAttribute",
    "ObjectTypeCode",
    "OwnershipType",
    "TableType",
    "IsCustomEntity",
    "IsIntersect",
    "IsPrivate",
    "IsManaged",
    "IsActivity",
    "IsActivityParty",
    "IsValidForAdvancedFind",
    "IsCustomizable",
    "IsAuditEnabled",
    "HasNotes",
    "HasActivities",
    "ChangeTrackingEnabled",
    "IsOptimisticConcurrencyEnabled",
    "DisplayName",
    "DisplayCollectionName",
    "Description",
    "Keys",
    "Attributes",
    "ManyToOneRelationships",
    "OneToManyRelationships",
    "ManyToManyRelationships",
];

/// The properties of the base `AttributeMetadata` type.
pub(super) const ATTRIBUTE_PROPERTIES: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntityLogicalName",
    "AttributeType",
    "AttributeTypeName",
    "AttributeOf",
    "RequiredLevel",
    "DisplayName",
    "Description",
    "IsValidForCreate",
    "IsValidForUpdate",
    "IsValidForRead",
    "IsValidODataAttribute",
    "IsPrimaryId",
    "IsPrimaryName",
    "IsCustomAttribute",
    "IsManaged",
    "IsCustomizable",
    "IsLogical",
];

/// The properties a derived attribute type adds to `AttributeMetadata`.
pub(super) fn derived_properties(derived: &str) -> &'static [&'static str] {
    match derived {
        "StringAttributeMetadata" => &["MaxLength", "Format", "FormatName"],
        "MemoAttributeMetadata" => &["MaxLength", "Format"],
        "IntegerAttributeMetadata" => &["MinValue", "MaxValue", "Format"],
        "BigIntAttributeMetadata" => &["MinValue", "MaxValue"],
        "DecimalAttributeMetadata" | "DoubleAttributeMetadata" => {
            &["MinValue", "MaxValue", "Precision"]
        }
        "MoneyAttributeMetadata" => &[
            "MinValue",
            "MaxValue",
            "Precision",
            "PrecisionSource",
            "IsBaseCurrency",
        ],
        "DateTimeAttributeMetadata" => &["Format", "DateTimeBehavior"],
        "PicklistAttributeMetadata" | "StateAttributeMetadata" | "StatusAttributeMetadata" => {
            &["OptionSet", "GlobalOptionSet", "DefaultFormValue"]
        }
        "BooleanAttributeMetadata" => &["OptionSet", "GlobalOptionSet", "DefaultValue"],
        "LookupAttributeMetadata" => &["Targets"],
        _ => &[],
    }
}

/// A `Label` complex value in the user's language (1033).
fn label(text: &str, id_seed: &str, managed: bool) -> Value {
    if text.is_empty() {
        return json!({"LocalizedLabels": [], "UserLocalizedLabel": null});
    }
    let l = json!({
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": managed,
        "MetadataId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, id_seed.as_bytes()),
        "HasChanged": null,
    });
    json!({"LocalizedLabels": [l.clone()], "UserLocalizedLabel": l})
}

/// A `BooleanManagedProperty` ("Managed properties",
/// <https://learn.microsoft.com/power-platform/alm/managed-properties-alm>).
fn managed_property(value: bool, can_be_changed: bool, logical: &str) -> Value {
    json!({"Value": value, "CanBeChanged": can_be_changed, "ManagedPropertyLogicalName": logical})
}

fn raw_bool(raw: &Map<String, Value>, key: &str, default: bool) -> bool {
    raw.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn raw_str<'r>(raw: &'r Map<String, Value>, key: &str) -> &'r str {
    raw.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// One `EntityMetadata` row. Standard tables carry Microsoft's values in
/// `data/standard-tables.json`; a custom table from the seed is unmanaged
/// and customizable, without notes, activities or change tracking, as a
/// table created in the maker portal starts out.
pub(super) fn entity_json(t: &Table) -> Map<String, Value> {
    let raw = t.raw.as_object().cloned().unwrap_or_default();
    let custom = raw_bool(&raw, "IsCustomEntity", false);
    let copied = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!(format!("#{NS}EntityMetadata")));
    m.insert("MetadataId".into(), json!(t.metadata_id));
    m.insert("LogicalName".into(), json!(t.logical_name));
    m.insert("SchemaName".into(), json!(t.schema_name));
    m.insert("EntitySetName".into(), json!(t.entity_set));
    m.insert(
        "LogicalCollectionName".into(),
        copied("LogicalCollectionName"),
    );
    m.insert(
        "CollectionSchemaName".into(),
        copied("CollectionSchemaName"),
    );
    m.insert("PrimaryIdAttribute".into(), json!(t.primary_id));
    m.insert("PrimaryNameAttribute".into(), json!(t.primary_name));
    m.insert(
        "PrimaryImageAttribute".into(),
        copied("PrimaryImageAttribute"),
    );
    m.insert("ObjectTypeCode".into(), json!(t.object_type_code));
    m.insert("OwnershipType".into(), json!(t.ownership));
    m.insert(
        "TableType".into(),
        raw.get("TableType").cloned().unwrap_or(json!("Standard")),
    );
    m.insert("IsCustomEntity".into(), json!(custom));
    m.insert(
        "IsIntersect".into(),
        json!(raw_bool(&raw, "IsIntersect", false)),
    );
    for (k, default) in [
        ("IsPrivate", false),
        ("IsManaged", !custom),
        ("IsActivity", false),
        ("IsActivityParty", false),
        ("IsValidForAdvancedFind", true),
        ("HasNotes", false),
        ("HasActivities", false),
        ("ChangeTrackingEnabled", false),
    ] {
        m.insert(k.into(), json!(raw_bool(&raw, k, default)));
    }
    m.insert(
        "IsCustomizable".into(),
        managed_property(
            raw_bool(&raw, "IsCustomizable", true),
            custom,
            "iscustomizable",
        ),
    );
    m.insert(
        "IsAuditEnabled".into(),
        managed_property(false, true, "canmodifyauditsettings"),
    );
    m.insert("IsOptimisticConcurrencyEnabled".into(), json!(true));
    for k in ["DisplayName", "DisplayCollectionName", "Description"] {
        m.insert(
            k.into(),
            label(
                raw_str(&raw, k),
                &format!("{}.{k}", t.logical_name),
                !custom,
            ),
        );
    }
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
pub(super) fn derived_type(a: &Attribute) -> &'static str {
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

fn option_set(t: &Table, a: &Attribute, managed: bool) -> Value {
    let key = format!("{}.{}", t.logical_name, a.logical_name);
    let name = a.raw.get("GlobalChoiceName").cloned().unwrap_or(json!(key));
    if a.kind == Kind::Boolean {
        let opt = |o: &str| {
            let v = &a.raw["OptionSet"][o];
            let text = v["Label"].as_str().unwrap_or_default();
            json!({"Value": v["Value"], "Label": label(text, &format!("{key}.{o}"), managed)})
        };
        return json!({"Name": name, "OptionSetType": "Boolean", "TrueOption": opt("TrueOption"), "FalseOption": opt("FalseOption")});
    }
    let options: Vec<Value> = a.raw["Options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|x| {
                    let text = x["Label"].as_str().unwrap_or_default();
                    let mut m = json!({"Value": x["Value"], "Label": label(text, &format!("{key}.{}", x["Value"]), managed), "Description": label("", "", managed), "Color": null, "IsManaged": managed});
                    for k in ["State", "DefaultStatus"] {
                        if let Some(s) = x.get(k) {
                            m[k] = s.clone();
                        }
                    }
                    m
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"Name": name, "OptionSetType": a.attribute_type, "IsGlobal": false, "Options": options})
}

/// The flags every `AttributeMetadata` row has. A column is custom when
/// the seed added it (`IsCustomAttribute` in its compiled JSON).
fn attribute_flags(t: &Table, a: &Attribute, m: &mut Map<String, Value>) {
    let custom = a.raw["IsCustomAttribute"].as_bool().unwrap_or(false);
    let required = a.raw.get("RequiredLevel").cloned().unwrap_or(json!("None"));
    // A system-required level cannot be changed ("RequiredLevel" in
    // "Column definitions", https://learn.microsoft.com/power-apps/developer/data-platform/entity-attribute-metadata).
    let changeable = required != "SystemRequired";
    m.insert("RequiredLevel".into(), json!({"Value": required, "CanBeChanged": changeable, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}));
    m.insert("IsValidForCreate".into(), json!(a.valid_for_create));
    m.insert("IsValidForUpdate".into(), json!(a.valid_for_update));
    m.insert(
        "IsValidForRead".into(),
        a.raw.get("IsValidForRead").cloned().unwrap_or(json!(true)),
    );
    m.insert("IsValidODataAttribute".into(), json!(true));
    m.insert("IsPrimaryId".into(), json!(a.logical_name == t.primary_id));
    m.insert(
        "IsPrimaryName".into(),
        json!(a.logical_name == t.primary_name),
    );
    m.insert("IsCustomAttribute".into(), json!(custom));
    m.insert("IsManaged".into(), json!(!custom && !is_custom_table(t)));
    m.insert(
        "IsCustomizable".into(),
        managed_property(true, custom, "iscustomizable"),
    );
    m.insert("IsLogical".into(), json!(false));
}

fn is_custom_table(t: &Table) -> bool {
    t.raw["IsCustomEntity"].as_bool().unwrap_or(false)
}

/// One `AttributeMetadata` row, typed by its derived type.
pub(super) fn attribute_json(
    t: &Table,
    a: &Attribute,
    expand_option_set: bool,
) -> Map<String, Value> {
    let raw = &a.raw;
    let managed = !is_custom_table(t);
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
    m.insert(
        "AttributeOf".into(),
        raw.get("AttributeOf").cloned().unwrap_or(Value::Null),
    );
    for k in ["DisplayName", "Description"] {
        m.insert(
            k.into(),
            label(
                raw[k].as_str().unwrap_or_default(),
                &format!("{}.{}.{k}", t.logical_name, a.logical_name),
                managed,
            ),
        );
    }
    attribute_flags(t, a, &mut m);
    for k in [
        "MaxLength",
        "MinValue",
        "MaxValue",
        "Precision",
        "PrecisionSource",
        "IsBaseCurrency",
        "Format",
        "FormatName",
        "DateTimeBehavior",
        "DefaultValue",
        "DefaultFormValue",
    ] {
        if let Some(v) = raw.get(k) {
            let v = match k {
                "FormatName" | "DateTimeBehavior" => json!({"Value": v}),
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
        m.insert("OptionSet".into(), option_set(t, a, managed));
    }
    m
}
