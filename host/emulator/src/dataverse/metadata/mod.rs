//! Table metadata: the standard tables' real metadata (compiled from
//! Microsoft's documentation into `data/standard-tables.json`), parsed into
//! the model the Web API emulator routes, validates and serialises with.

mod custom;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

pub use custom::build_schema;

/// The standard tables served by every environment.
pub const STANDARD_TABLES_JSON: &str = include_str!("../../../data/standard-tables.json");

const TABLES: &[&str] = &[
    "account",
    "contact",
    "lead",
    "systemuser",
    "businessunit",
    "role",
];

/// Column types the emulator stores and validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Memo,
    Integer,
    BigInt,
    Decimal,
    Double,
    Money,
    Boolean,
    DateTime,
    /// Picklist, State or Status: an integer from `options`.
    Choice,
    /// Lookup, Customer or Owner: a GUID plus the target table.
    Lookup,
    Uniqueidentifier,
    /// Virtual, EntityName, ManagedProperty...: read-only, never stored.
    Other,
}

/// One column.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub logical_name: String,
    pub kind: Kind,
    /// `AttributeType` as Dataverse names it (`String`, `Picklist`, `Owner`...).
    pub attribute_type: String,
    pub valid_for_create: bool,
    pub valid_for_update: bool,
    pub max_length: Option<u64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    /// Choice values and labels.
    pub options: Vec<(i64, String)>,
    /// For statuscode: the statecode each status belongs to.
    pub status_state: Vec<(i64, i64)>,
    /// For lookups: (target logical name, single-valued navigation property).
    pub targets: Vec<(String, String)>,
    /// The metadata JSON as compiled, served by `EntityDefinitions`.
    pub raw: Value,
}

impl Attribute {
    /// `_x_value` for lookups, the logical name otherwise.
    pub fn web_api_name(&self) -> String {
        match self.kind {
            Kind::Lookup => format!("_{}_value", self.logical_name),
            _ => self.logical_name.clone(),
        }
    }
}

/// A collection-valued navigation property (one-to-many or many-to-many).
#[derive(Debug, Clone)]
pub struct CollectionNav {
    pub name: String,
    /// The table on the other side.
    pub other: String,
    /// One-to-many: the lookup column on the other table pointing here.
    /// Many-to-many: `None` (rows live in an intersect).
    pub referencing_attribute: Option<String>,
    /// Many-to-many relationship name (the intersect key).
    pub relationship: String,
    /// Many-to-many: the intersect table's logical name
    /// (`IntersectEntityName`, `systemuserroles`), which FetchXML joins through.
    pub intersect: Option<String>,
}

/// One table.
#[derive(Debug, Clone)]
pub struct Table {
    pub logical_name: String,
    pub schema_name: String,
    pub entity_set: String,
    pub primary_id: String,
    pub primary_name: String,
    pub object_type_code: i64,
    pub ownership: String,
    pub attributes: Vec<Attribute>,
    by_name: HashMap<String, usize>,
    pub collection_navs: Vec<CollectionNav>,
    /// Alternate keys: each a list of column logical names.
    pub alternate_keys: Vec<Vec<String>>,
    pub metadata_id: uuid::Uuid,
    pub raw: Value,
}

impl Table {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.by_name.get(name).map(|&i| &self.attributes[i])
    }

    /// The lookup column and target behind a single-valued navigation property.
    pub fn single_nav(&self, nav: &str) -> Option<(&Attribute, &str)> {
        self.attributes
            .iter()
            .filter(|a| a.kind == Kind::Lookup)
            .find_map(|a| {
                a.targets
                    .iter()
                    .find(|(_, n)| n == nav)
                    .map(|(t, _)| (a, t.as_str()))
            })
    }

    pub fn collection_nav(&self, nav: &str) -> Option<&CollectionNav> {
        self.collection_navs.iter().find(|c| c.name == nav)
    }
}

/// All tables of an environment, indexed by logical name and entity set.
#[derive(Debug, Clone)]
pub struct Schema {
    pub tables: Vec<Arc<Table>>,
    by_logical: HashMap<String, usize>,
    by_set: HashMap<String, usize>,
}

impl Schema {
    pub fn table(&self, logical: &str) -> Option<&Arc<Table>> {
        self.by_logical.get(logical).map(|&i| &self.tables[i])
    }

    pub fn by_set(&self, set: &str) -> Option<&Arc<Table>> {
        self.by_set.get(set).map(|&i| &self.tables[i])
    }

    /// The standard tables (parsed once per process).
    pub fn standard() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let doc: Value = serde_json::from_str(STANDARD_TABLES_JSON)
                .expect("bundled standard-tables.json parses");
            let tables: Vec<Table> = TABLES.iter().map(|t| parse_table(&doc[*t])).collect();
            Schema::new(tables)
        })
    }

    pub fn new(tables: Vec<Table>) -> Schema {
        let tables: Vec<Arc<Table>> = tables.into_iter().map(Arc::new).collect();
        let by_logical = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.logical_name.clone(), i))
            .collect();
        let by_set = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.entity_set.clone(), i))
            .collect();
        Schema {
            tables,
            by_logical,
            by_set,
        }
    }
}

fn kind_of(attribute_type: &str) -> Kind {
    match attribute_type {
        "String" => Kind::String,
        "Memo" => Kind::Memo,
        "Integer" => Kind::Integer,
        "BigInt" => Kind::BigInt,
        "Decimal" => Kind::Decimal,
        "Double" => Kind::Double,
        "Money" => Kind::Money,
        "Boolean" => Kind::Boolean,
        "DateTime" => Kind::DateTime,
        "Picklist" | "State" | "Status" => Kind::Choice,
        "Lookup" | "Customer" | "Owner" => Kind::Lookup,
        "Uniqueidentifier" => Kind::Uniqueidentifier,
        _ => Kind::Other,
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A stable id derived from a name, so metadata ids survive restarts.
fn name_id(name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("dvhost-emulator:{name}").as_bytes(),
    )
}

fn parse_attribute(table: &str, a: &Value) -> Attribute {
    let attribute_type = str_of(a, "AttributeType");
    let kind = kind_of(&attribute_type);
    let options = a
        .get("Options")
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .map(|x| (x["Value"].as_i64().unwrap_or_default(), str_of(x, "Label")))
                .collect()
        })
        .unwrap_or_default();
    let status_state = a
        .get("Options")
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(|x| Some((x["Value"].as_i64()?, x.get("State")?.as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    let targets = match kind {
        Kind::Lookup => {
            let rels = a
                .get("Relationships")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let declared: Vec<String> = a
                .get("Targets")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            declared
                .iter()
                .map(|t| {
                    // Owner lookups list one relationship for target "owner".
                    let nav = rels
                        .iter()
                        .find(|r| r["Target"] == t.as_str())
                        .or_else(|| (rels.len() == 1).then(|| &rels[0]))
                        .map(|r| str_of(r, "ReferencingEntityNavigationPropertyName"))
                        .unwrap_or_default();
                    (t.clone(), nav)
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let mut raw = a.clone();
    if let Value::Object(m) = &mut raw {
        m.insert(
            "MetadataId".into(),
            Value::String(name_id(&format!("{table}.{}", str_of(a, "LogicalName"))).to_string()),
        );
    }
    Attribute {
        logical_name: str_of(a, "LogicalName"),
        kind,
        attribute_type,
        valid_for_create: a["IsValidForCreate"].as_bool().unwrap_or(false),
        valid_for_update: a["IsValidForUpdate"].as_bool().unwrap_or(false),
        max_length: a.get("MaxLength").and_then(Value::as_u64),
        min_value: a.get("MinValue").and_then(Value::as_f64),
        max_value: a.get("MaxValue").and_then(Value::as_f64),
        options,
        status_state,
        targets,
        raw,
    }
}

/// Parses one table of the compiled metadata.
pub fn parse_table(t: &Value) -> Table {
    let logical = str_of(t, "LogicalName");
    let attributes: Vec<Attribute> = t["Attributes"]
        .as_array()
        .map(|a| a.iter().map(|x| parse_attribute(&logical, x)).collect())
        .unwrap_or_default();
    let by_name = attributes
        .iter()
        .enumerate()
        .map(|(i, a)| (a.logical_name.clone(), i))
        .collect();
    let collection_navs = collection_navs(t, &logical);
    let alternate_keys = alternate_keys(t);
    let raw = table_raw(t);
    Table {
        schema_name: str_of(t, "SchemaName"),
        entity_set: str_of(t, "EntitySetName"),
        primary_id: str_of(t, "PrimaryIdAttribute"),
        primary_name: str_of(t, "PrimaryNameAttribute"),
        object_type_code: t["ObjectTypeCode"].as_i64().unwrap_or_default(),
        ownership: str_of(t, "OwnershipType"),
        metadata_id: name_id(&logical),
        logical_name: logical,
        attributes,
        by_name,
        collection_navs,
        alternate_keys,
        raw,
    }
}

/// The collection-valued navigation properties of a table: its
/// one-to-many relationships and its many-to-many ones.
fn collection_navs(t: &Value, logical: &str) -> Vec<CollectionNav> {
    let mut collection_navs: Vec<CollectionNav> = t
        .get("OneToManyRelationships")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .map(|x| CollectionNav {
                    name: str_of(x, "ReferencedEntityNavigationPropertyName"),
                    other: str_of(x, "ReferencingEntity"),
                    referencing_attribute: Some(str_of(x, "ReferencingAttribute")),
                    relationship: str_of(x, "SchemaName"),
                    intersect: None,
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(m2m) = t.get("ManyToManyRelationships").and_then(Value::as_array) {
        for x in m2m {
            let name = str_of(x, "NavigationPropertyName");
            let other = x
                .get("OtherEntity")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| {
                    let (e1, e2) = (
                        str_of(x, "Entity1LogicalName"),
                        str_of(x, "Entity2LogicalName"),
                    );
                    Some(if e1 == logical { e2 } else { e1 })
                })
                .unwrap_or_default();
            let name = if name.is_empty() {
                str_of(x, "Entity1NavigationPropertyName")
            } else {
                name
            };
            collection_navs.push(CollectionNav {
                name,
                other,
                referencing_attribute: None,
                relationship: str_of(x, "SchemaName"),
                intersect: x
                    .get("IntersectEntityName")
                    .and_then(Value::as_str)
                    .map(String::from),
            });
        }
    }
    collection_navs
}

/// A table's alternate keys, each a list of column logical names.
fn alternate_keys(t: &Value) -> Vec<Vec<String>> {
    t.get("AlternateKeys")
        .and_then(Value::as_array)
        .map(|k| {
            k.iter()
                .filter_map(|x| x.get("KeyAttributes").and_then(Value::as_array))
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The table's own metadata, without attributes, relationships and the
/// compiler's notes.
fn table_raw(t: &Value) -> Value {
    let mut raw = Map::new();
    if let Value::Object(m) = t {
        for (k, v) in m {
            if !matches!(
                k.as_str(),
                "Attributes"
                    | "notes"
                    | "sourceRefs"
                    | "inferredProperties"
                    | "ManyToOneRelationships"
                    | "OneToManyRelationships"
                    | "ManyToManyRelationships"
            ) {
                raw.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(raw)
}

fn label_of(name: &str) -> String {
    name.split_once('_')
        .map(|(_, n)| n)
        .unwrap_or(name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_load_with_lookups_and_navs() {
        let s = Schema::standard();
        let account = s.by_set("accounts").unwrap();
        assert_eq!(account.primary_id, "accountid");
        assert_eq!(account.attribute("name").unwrap().max_length, Some(160));
        let (attr, target) = account.single_nav("primarycontactid").unwrap();
        assert_eq!(
            (attr.logical_name.as_str(), target),
            ("primarycontactid", "contact")
        );
        let contact = s.by_set("contacts").unwrap();
        assert_eq!(
            contact.single_nav("parentcustomerid_account").unwrap().1,
            "account"
        );
        let su = s.by_set("systemusers").unwrap();
        assert_eq!(
            su.collection_nav("systemuserroles_association")
                .unwrap()
                .other,
            "role"
        );
        for t in [
            "accounts",
            "contacts",
            "leads",
            "systemusers",
            "businessunits",
            "roles",
        ] {
            assert!(s.by_set(t).is_some(), "{t}");
        }
    }
}
