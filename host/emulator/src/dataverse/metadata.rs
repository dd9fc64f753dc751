//! Table metadata: the standard tables' real metadata (compiled from
//! Microsoft's documentation into `data/standard-tables.json`), parsed into
//! the model the Web API emulator routes, validates and serialises with.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// The standard tables served by every environment.
pub const STANDARD_TABLES_JSON: &str = include_str!("../../data/standard-tables.json");

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
            });
        }
    }
    let alternate_keys = t
        .get("AlternateKeys")
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
        .unwrap_or_default();
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
        raw: Value::Object(raw),
    }
}

fn label_of(name: &str) -> String {
    name.split_once('_')
        .map(|(_, n)| n)
        .unwrap_or(name)
        .to_string()
}

/// The compiled-metadata JSON of a custom table, so it goes through the
/// same parser as the standard tables.
fn custom_table_json(
    t: &crate::seed::TableSeed,
    known: &dyn Fn(&str) -> bool,
) -> Result<Value, String> {
    use serde_json::json;
    let ln = t.logical_name.trim();
    let valid = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && n.contains('_')
    };
    if !valid(ln) {
        return Err(format!(
            "table name '{ln}' must be lowercase with a publisher prefix, like new_project"
        ));
    }
    let prefix = ln.split('_').next().unwrap_or("new");
    let primary_id = format!("{ln}id");
    let primary_name = t
        .primary_name
        .clone()
        .unwrap_or_else(|| format!("{prefix}_name"));
    let schema_name = ln.to_string();
    let sys = |name: &str, ty: &str, create: bool, update: bool| json!({"LogicalName": name, "SchemaName": name, "AttributeType": ty, "AttributeTypeName": format!("{ty}Type"), "DisplayName": label_of(name), "RequiredLevel": "None", "IsValidForCreate": create, "IsValidForUpdate": update, "IsValidForRead": true});
    let lookup = |name: &str, target: &str, ty: &str, create: bool| {
        let mut a = sys(name, ty, create, create);
        a["Targets"] = json!([target]);
        a["Relationships"] = json!([{"Target": target, "RelationshipSchemaName": format!("{ln}_{name}"), "ReferencingEntityNavigationPropertyName": name}]);
        a
    };
    let mut attrs = vec![sys(&primary_id, "Uniqueidentifier", true, false)];
    let mut name_attr = sys(&primary_name, "String", true, true);
    name_attr["MaxLength"] = json!(100);
    name_attr["RequiredLevel"] = json!("ApplicationRequired");
    attrs.push(name_attr);
    for c in &t.columns {
        if !valid(&c.logical_name)
            && !c
                .logical_name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Err(format!(
                "column name '{}' must be lowercase letters, digits and _",
                c.logical_name
            ));
        }
        let ty = match c.kind.as_str() {
            k @ ("String" | "Memo" | "Integer" | "BigInt" | "Decimal" | "Double" | "Money"
            | "Boolean" | "DateTime" | "Picklist" | "Lookup" | "Uniqueidentifier") => k,
            other => {
                return Err(format!(
                    "column '{}' has unsupported type '{other}'",
                    c.logical_name
                ));
            }
        };
        let mut a = if ty == "Lookup" {
            let target = match &c.targets[..] {
                [one] => one.as_str(),
                _ => {
                    return Err(format!(
                        "lookup column '{}' needs exactly one target",
                        c.logical_name
                    ));
                }
            };
            if !known(target) && target != ln {
                return Err(format!(
                    "lookup column '{}' targets unknown table '{target}'",
                    c.logical_name
                ));
            }
            lookup(&c.logical_name, target, "Lookup", true)
        } else {
            sys(&c.logical_name, ty, true, true)
        };
        a["DisplayName"] = json!(
            c.display_name
                .clone()
                .unwrap_or_else(|| label_of(&c.logical_name))
        );
        if let Some(r) = &c.required {
            a["RequiredLevel"] = json!(r);
        }
        if matches!(ty, "String" | "Memo") {
            a["MaxLength"] = json!(
                c.max_length
                    .unwrap_or(if ty == "Memo" { 2000 } else { 100 })
            );
        }
        if let Some(v) = c.min_value {
            a["MinValue"] = json!(v);
        }
        if let Some(v) = c.max_value {
            a["MaxValue"] = json!(v);
        }
        if ty == "Picklist" {
            if c.options.is_empty() {
                return Err(format!("choice column '{}' needs options", c.logical_name));
            }
            a["Options"] = json!(
                c.options
                    .iter()
                    .map(|o| json!({"Value": o.value, "Label": o.label}))
                    .collect::<Vec<_>>()
            );
        }
        if ty == "Boolean" {
            a["DefaultValue"] = json!(false);
            a["OptionSet"] = json!({"TrueOption": {"Value": 1, "Label": "Yes"}, "FalseOption": {"Value": 0, "Label": "No"}});
        }
        attrs.push(a);
    }
    attrs.push(lookup("ownerid", "systemuser", "Owner", true));
    attrs.push(lookup(
        "owningbusinessunit",
        "businessunit",
        "Lookup",
        false,
    ));
    attrs.push(lookup("createdby", "systemuser", "Lookup", false));
    attrs.push(lookup("modifiedby", "systemuser", "Lookup", false));
    attrs.push(sys("createdon", "DateTime", false, false));
    attrs.push(sys("modifiedon", "DateTime", false, false));
    let mut state = sys("statecode", "State", false, true);
    state["Options"] = json!([{"Value": 0, "Label": "Active", "DefaultStatus": 1}, {"Value": 1, "Label": "Inactive", "DefaultStatus": 2}]);
    let mut status = sys("statuscode", "Status", true, true);
    status["Options"] = json!([{"Value": 1, "Label": "Active", "State": 0}, {"Value": 2, "Label": "Inactive", "State": 1}]);
    attrs.extend([state, status, sys("versionnumber", "BigInt", false, false)]);
    let names: Vec<&str> = attrs
        .iter()
        .filter_map(|a| a["LogicalName"].as_str())
        .collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(format!("column '{n}' is defined twice in '{ln}'"));
        }
    }
    for key in &t.alternate_keys {
        if let Some(missing) = key.iter().find(|k| !names.contains(&k.as_str())) {
            return Err(format!(
                "alternate key column '{missing}' is not a column of '{ln}'"
            ));
        }
    }
    let set = t.entity_set.clone().unwrap_or_else(|| format!("{ln}s"));
    Ok(json!({
        "LogicalName": ln, "SchemaName": schema_name, "EntitySetName": set, "LogicalCollectionName": set, "CollectionSchemaName": set,
        "ObjectTypeCode": 10000, "PrimaryIdAttribute": primary_id, "PrimaryNameAttribute": primary_name,
        "DisplayName": t.display_name.clone().unwrap_or_else(|| label_of(ln)), "DisplayCollectionName": t.display_name.clone().unwrap_or_else(|| label_of(ln)),
        "OwnershipType": "UserOwned", "TableType": "Standard", "IsCustomEntity": true, "IsIntersect": false,
        "AlternateKeys": t.alternate_keys.iter().map(|k| json!({"KeyAttributes": k})).collect::<Vec<_>>(),
        "Attributes": attrs,
    }))
}

/// An environment's schema: the standard tables, its custom tables (with a
/// collection-valued navigation property on each lookup's target) and its
/// extra alternate keys.
pub fn build_schema(
    custom: &[crate::seed::TableSeed],
    keys: &std::collections::BTreeMap<String, Vec<Vec<String>>>,
) -> Result<Schema, String> {
    let mut tables: Vec<Table> = Schema::standard()
        .tables
        .iter()
        .map(|t| (**t).clone())
        .collect();
    let standard: Vec<String> = tables.iter().map(|t| t.logical_name.clone()).collect();
    let custom_names: Vec<String> = custom.iter().map(|t| t.logical_name.clone()).collect();
    let known = |n: &str| standard.iter().chain(custom_names.iter()).any(|k| k == n);
    for t in custom {
        if standard.contains(&t.logical_name)
            || custom_names
                .iter()
                .filter(|n| **n == t.logical_name)
                .count()
                > 1
        {
            return Err(format!("table '{}' is defined twice", t.logical_name));
        }
        tables.push(parse_table(&custom_table_json(t, &known)?));
    }
    let sets: Vec<&String> = tables.iter().map(|t| &t.entity_set).collect();
    if let Some((i, _)) = sets
        .iter()
        .enumerate()
        .find(|(i, s)| sets[..*i].contains(s))
    {
        return Err(format!("entity set '{}' is used twice", sets[i]));
    }
    // Inverse navigation: the target of a custom lookup lists the rows pointing at it.
    let mut inverse = Vec::new();
    for t in tables
        .iter()
        .filter(|t| custom_names.contains(&t.logical_name))
    {
        for a in t
            .attributes
            .iter()
            .filter(|a| a.kind == Kind::Lookup && a.raw.get("Relationships").is_some())
        {
            if matches!(
                a.logical_name.as_str(),
                "ownerid" | "owningbusinessunit" | "createdby" | "modifiedby"
            ) {
                continue;
            }
            for (target, _) in &a.targets {
                let rel = format!("{}_{}", t.logical_name, a.logical_name);
                inverse.push((
                    target.clone(),
                    CollectionNav {
                        name: rel.clone(),
                        other: t.logical_name.clone(),
                        referencing_attribute: Some(a.logical_name.clone()),
                        relationship: rel,
                    },
                ));
            }
        }
    }
    for (target, nav) in inverse {
        if let Some(t) = tables.iter_mut().find(|t| t.logical_name == target) {
            t.collection_navs.push(nav);
        }
    }
    for (table, list) in keys {
        let t = tables
            .iter_mut()
            .find(|t| &t.logical_name == table)
            .ok_or_else(|| format!("alternate keys for unknown table '{table}'"))?;
        for key in list {
            if let Some(missing) = key.iter().find(|k| t.attribute(k).is_none()) {
                return Err(format!(
                    "alternate key column '{missing}' is not a column of '{table}'"
                ));
            }
            t.alternate_keys.push(key.clone());
        }
    }
    Ok(Schema::new(tables))
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
