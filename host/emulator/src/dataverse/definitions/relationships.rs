//! The relationship navigation properties of `EntityMetadata`
//! (`ManyToOneRelationships`, `OneToManyRelationships`,
//! `ManyToManyRelationships`), derived from the lookups and navigation
//! properties the emulator routes with ("Query relationship definitions
//! using the Web API",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api>).

use serde_json::{Map, Value, json};

use super::{MetaType, NS};
use crate::dataverse::metadata::{Kind, Schema, Table};

/// The properties of `OneToManyRelationshipMetadata` the emulator serves.
pub(super) const ONE_TO_MANY_PROPERTIES: &[&str] = &[
    "MetadataId",
    "SchemaName",
    "RelationshipType",
    "IsCustomRelationship",
    "IsManaged",
    "ReferencedEntity",
    "ReferencedAttribute",
    "ReferencingEntity",
    "ReferencingAttribute",
    "ReferencedEntityNavigationPropertyName",
    "ReferencingEntityNavigationPropertyName",
];

/// The properties of `ManyToManyRelationshipMetadata` the emulator serves.
pub(super) const MANY_TO_MANY_PROPERTIES: &[&str] = &[
    "MetadataId",
    "SchemaName",
    "RelationshipType",
    "IsCustomRelationship",
    "IsManaged",
    "Entity1LogicalName",
    "Entity2LogicalName",
    "Entity1NavigationPropertyName",
    "Entity2NavigationPropertyName",
];

fn relationship_id(schema_name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("dvhost-emulator:relationship:{schema_name}").as_bytes(),
    )
}

fn custom(t: &Table) -> bool {
    t.raw["IsCustomEntity"].as_bool().unwrap_or(false)
}

/// One `OneToManyRelationshipMetadata` row: the referenced (entity,
/// attribute, navigation property) and the referencing ones.
fn one_to_many(
    schema_name: &str,
    referenced: (&str, &str, &str),
    referencing: (&str, &str, Option<&str>),
    is_custom: bool,
) -> Map<String, Value> {
    let v = json!({
        "@odata.type": format!("#{NS}OneToManyRelationshipMetadata"),
        "MetadataId": relationship_id(schema_name),
        "SchemaName": schema_name,
        "RelationshipType": "OneToManyRelationship",
        "IsCustomRelationship": is_custom,
        "IsManaged": !is_custom,
        "ReferencedEntity": referenced.0,
        "ReferencedAttribute": referenced.1,
        "ReferencedEntityNavigationPropertyName": referenced.2,
        "ReferencingEntity": referencing.0,
        "ReferencingAttribute": referencing.1,
        "ReferencingEntityNavigationPropertyName": referencing.2,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// The lookups of `t`, one relationship per target.
fn many_to_one(schema: &Schema, t: &Table) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for a in t.attributes.iter().filter(|a| a.kind == Kind::Lookup) {
        let Some(rels) = a.raw["Relationships"].as_array() else {
            continue;
        };
        for r in rels {
            let target = r["Target"].as_str().unwrap_or_default();
            let name = r["RelationshipSchemaName"].as_str().unwrap_or_default();
            let key = schema
                .table(target)
                .map(|tt| tt.primary_id.clone())
                .unwrap_or_else(|| format!("{target}id"));
            let nav = r["ReferencingEntityNavigationPropertyName"].as_str();
            let is_custom = a.raw["IsCustomAttribute"].as_bool().unwrap_or(false);
            out.push(one_to_many(
                name,
                (target, &key, name),
                (&t.logical_name, &a.logical_name, nav),
                is_custom,
            ));
        }
    }
    out
}

/// The one-to-many and many-to-many relationships behind `t`'s
/// collection-valued navigation properties.
fn from_collections(t: &Table, many: bool) -> Vec<Map<String, Value>> {
    t.collection_navs
        .iter()
        .filter(|c| c.referencing_attribute.is_none() == many)
        .map(|c| match &c.referencing_attribute {
            Some(attr) => one_to_many(
                &c.relationship,
                (&t.logical_name, &t.primary_id, &c.name),
                (&c.other, attr, None),
                custom(t),
            ),
            None => json!({
                "@odata.type": format!("#{NS}ManyToManyRelationshipMetadata"),
                "MetadataId": relationship_id(&c.relationship),
                "SchemaName": c.relationship,
                "RelationshipType": "ManyToManyRelationship",
                "IsCustomRelationship": custom(t),
                "IsManaged": !custom(t),
                "Entity1LogicalName": t.logical_name,
                "Entity2LogicalName": c.other,
                "Entity1NavigationPropertyName": c.name,
                "Entity2NavigationPropertyName": c.name,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        })
        .collect()
}

/// The rows of a relationship navigation property and their type;
/// `None` for any other name.
pub(super) fn relationships(
    schema: &Schema,
    t: &Table,
    nav: &str,
) -> Option<(Vec<Map<String, Value>>, MetaType<'static>)> {
    let (rows, name, properties) = match nav {
        "ManyToOneRelationships" => (
            many_to_one(schema, t),
            "OneToManyRelationshipMetadata",
            ONE_TO_MANY_PROPERTIES,
        ),
        "OneToManyRelationships" => (
            from_collections(t, false),
            "OneToManyRelationshipMetadata",
            ONE_TO_MANY_PROPERTIES,
        ),
        "ManyToManyRelationships" => (
            from_collections(t, true),
            "ManyToManyRelationshipMetadata",
            MANY_TO_MANY_PROPERTIES,
        ),
        _ => return None,
    };
    let ty = MetaType {
        name,
        properties: properties.to_vec(),
    };
    Some((rows, ty))
}
