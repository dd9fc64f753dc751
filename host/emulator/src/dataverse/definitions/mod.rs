//! Metadata through the Web API: `EntityDefinitions`, their `Attributes`,
//! and derived-type casts such as `PicklistAttributeMetadata` ("Query table
//! definitions using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api>). No paging: every match comes in one response.

use serde_json::{Map, Value, json};

use super::error::{DvError, DvResult};
use super::metadata::{Schema, Table};
use super::path::{Key, Segment};
use super::query;
use crate::odata::filter;
use rows::{
    ATTRIBUTE_PROPERTIES, ENTITY_PROPERTIES, attribute_json, derived_properties, derived_type,
    entity_json,
};

mod relationships;
mod rows;

const NS: &str = "Microsoft.Dynamics.CRM.";

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

/// A metadata type: its name and the property names it defines.
struct MetaType<'k> {
    name: &'k str,
    properties: Vec<&'k str>,
}

impl<'k> MetaType<'k> {
    fn entity() -> Self {
        MetaType {
            name: "EntityMetadata",
            properties: ENTITY_PROPERTIES.to_vec(),
        }
    }

    /// `AttributeMetadata`, or the derived type a path casts to.
    fn attribute(cast: Option<&'k str>) -> Self {
        let mut properties = ATTRIBUTE_PROPERTIES.to_vec();
        properties.extend_from_slice(cast.map(derived_properties).unwrap_or_default());
        MetaType {
            name: cast.unwrap_or("AttributeMetadata"),
            properties,
        }
    }

    /// 0x80060888 for a property the type does not define, whether or not
    /// any row would match: the check is on the type, not on the rows.
    fn check(&self, property: &str) -> DvResult<()> {
        // `RequiredLevel/Value`, `IsCustomizable/Value`: the first segment names the property.
        let first = property.split('/').next().unwrap_or(property);
        if self.properties.contains(&first) {
            Ok(())
        } else {
            Err(DvError::segment(format!(
                "Could not find a property named '{first}' on type '{NS}{}'.",
                self.name
            )))
        }
    }
}

/// The parsed `$select` and `$filter` of a metadata query, their
/// properties checked against the type.
struct MetaQuery {
    filter: Option<filter::Expr>,
    select: Option<Vec<String>>,
}

fn parse_meta_query(pairs: &[(String, String)], ty: &MetaType) -> DvResult<MetaQuery> {
    let mut q = MetaQuery {
        filter: None,
        select: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "$filter" => {
                let f = filter::parse(&enum_literals(v))
                    .map_err(|e| DvError::segment(format!("Invalid $filter: {e}")))?;
                let mut props = Vec::new();
                query::filter_properties(&f, &mut props);
                props.iter().try_for_each(|p| ty.check(p))?;
                q.filter = Some(f);
            }
            "$select" => {
                let cols: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                cols.iter().try_for_each(|c| ty.check(c))?;
                q.select = Some(cols);
            }
            "$orderby" => {
                for part in v.split(',') {
                    ty.check(part.split_whitespace().next().unwrap_or_default())?;
                }
                return Err(DvError::segment(format!(
                    "The query parameter {k} is not supported on {}.",
                    ty.name
                )));
            }
            "$expand" => {}
            "$top" | "$skip" | "$count" => {
                return Err(DvError::segment(format!(
                    "The query parameter {k} is not supported on {}.",
                    ty.name
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
    Ok(q)
}

/// `$select`/`$filter` over metadata rows; `MetadataId` is always kept.
fn shape(
    rows: Vec<Map<String, Value>>,
    pairs: &[(String, String)],
    ty: &MetaType,
) -> DvResult<Vec<Value>> {
    let q = parse_meta_query(pairs, ty)?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(f) = &q.filter {
            let rv = Value::Object(r.clone());
            if !filter::eval(f, &rv).map_err(DvError::from)? {
                continue;
            }
        }
        let r = match &q.select {
            Some(cols) => selected(&r, cols, pairs),
            None => r,
        };
        out.push(Value::Object(r));
    }
    Ok(out)
}

/// The `cols` of a metadata row (null where the row's derived type has no
/// value), plus `@odata.type`, `MetadataId` and the expanded navigation
/// properties, which survive `$select` as in OData.
fn selected(
    r: &Map<String, Value>,
    cols: &[String],
    pairs: &[(String, String)],
) -> Map<String, Value> {
    let mut m = Map::new();
    for c in cols {
        m.insert(c.clone(), r.get(c).cloned().unwrap_or(Value::Null));
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
    m
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
            let rows = schema
                .tables
                .iter()
                .map(|t| with_attributes(schema, t, entity_json(t), pairs))
                .collect::<DvResult<Vec<_>>>()?;
            let value = shape(rows, pairs, &MetaType::entity())?;
            Ok(
                json!({"@odata.context": format!("{base}$metadata#EntityDefinitions"), "value": value}),
            )
        }
        [Segment { key: Some(key), .. }] => {
            let t = find_table(schema, key)?;
            let m = with_attributes(schema, t, entity_json(t), pairs)?;
            let mut v = shape(vec![m], pairs, &MetaType::entity())?
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

/// An `EntityMetadata` row with the navigation properties `$expand` asks
/// for (`Attributes`, the relationships), each shaped by the expansion's
/// own `$select` and `$filter` (`$expand=Attributes($select=LogicalName;$filter=...)`).
fn with_attributes(
    schema: &Schema,
    t: &Table,
    mut m: Map<String, Value>,
    pairs: &[(String, String)],
) -> DvResult<Map<String, Value>> {
    let Some((_, v)) = pairs.iter().find(|(k, _)| k == "$expand") else {
        return Ok(m);
    };
    for e in query::parse_expand(v)? {
        let (rows, ty) = match relationships::relationships(schema, t, &e.nav) {
            Some(found) => found,
            None if e.nav == "Attributes" => (
                t.attributes
                    .iter()
                    .map(|a| attribute_json(t, a, false))
                    .collect(),
                MetaType::attribute(None),
            ),
            // Keys are always in the row.
            None if e.nav == "Keys" => continue,
            None => {
                return Err(DvError::segment(format!(
                    "Could not find a property named '{}' on type '{NS}EntityMetadata'.",
                    e.nav
                )));
            }
        };
        m.insert(e.nav.clone(), Value::Array(shape(rows, &e.options, &ty)?));
    }
    Ok(m)
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
    let mut value = shape(rows, pairs, &MetaType::attribute(cast))?;
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
