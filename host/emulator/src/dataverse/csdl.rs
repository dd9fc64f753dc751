//! The CSDL `$metadata` document ("Web API service documents",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/web-api-service-documents>),
//! generated from the same schema the service routes with, so the two
//! cannot disagree.

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

use super::metadata::{Kind, Schema, Table};

const NS: &str = "Microsoft.Dynamics.CRM";

fn edm_type(kind: Kind) -> &'static str {
    match kind {
        Kind::String | Kind::Memo => "Edm.String",
        Kind::Integer | Kind::Choice => "Edm.Int32",
        Kind::BigInt => "Edm.Int64",
        Kind::Decimal | Kind::Money => "Edm.Decimal",
        Kind::Double => "Edm.Double",
        Kind::Boolean => "Edm.Boolean",
        Kind::DateTime => "Edm.DateTimeOffset",
        Kind::Lookup | Kind::Uniqueidentifier => "Edm.Guid",
        Kind::Other => "Edm.String",
    }
}

type W = Writer<Vec<u8>>;

fn empty(w: &mut W, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, *v));
    }
    w.write_event(Event::Empty(e))
}

fn open(w: &mut W, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, *v));
    }
    w.write_event(Event::Start(e))
}

fn close(w: &mut W, name: &str) -> io::Result<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn entity_type(w: &mut W, schema: &Schema, t: &Table) -> io::Result<()> {
    open(
        w,
        "EntityType",
        &[
            ("Name", &t.logical_name),
            ("BaseType", "mscrm.crmbaseentity"),
        ],
    )?;
    open(w, "Key", &[])?;
    empty(w, "PropertyRef", &[("Name", &t.primary_id)])?;
    close(w, "Key")?;
    for a in t.attributes.iter().filter(|a| a.kind != Kind::Other) {
        let name = a.web_api_name();
        let mut attrs = vec![("Name", name.as_str()), ("Type", edm_type(a.kind))];
        if matches!(a.kind, Kind::String | Kind::Memo) {
            attrs.push(("Unicode", "false"));
        }
        empty(w, "Property", &attrs)?;
    }
    for a in t.attributes.iter().filter(|a| a.kind == Kind::Lookup) {
        for (target, nav) in &a.targets {
            let Some(tt) = schema.table(target) else {
                continue;
            };
            if nav.is_empty() {
                continue;
            }
            let ty = format!("mscrm.{}", tt.logical_name);
            open(
                w,
                "NavigationProperty",
                &[("Name", nav), ("Type", &ty), ("Nullable", "false")],
            )?;
            empty(
                w,
                "ReferentialConstraint",
                &[
                    ("Property", &a.web_api_name()),
                    ("ReferencedProperty", &tt.primary_id),
                ],
            )?;
            close(w, "NavigationProperty")?;
        }
    }
    for c in &t.collection_navs {
        if schema.table(&c.other).is_some() {
            let ty = format!("Collection(mscrm.{})", c.other);
            empty(w, "NavigationProperty", &[("Name", &c.name), ("Type", &ty)])?;
        }
    }
    close(w, "EntityType")
}

/// The `$metadata` XML. Writing goes to memory, so an error (which would
/// come from the XML writer itself) is unexpected.
pub fn document(schema: &Schema) -> io::Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    open(
        &mut w,
        "edmx:Edmx",
        &[
            ("Version", "4.0"),
            ("xmlns:edmx", "http://docs.oasis-open.org/odata/ns/edmx"),
        ],
    )?;
    open(&mut w, "edmx:DataServices", &[])?;
    open(
        &mut w,
        "Schema",
        &[
            ("Namespace", NS),
            ("Alias", "mscrm"),
            ("xmlns", "http://docs.oasis-open.org/odata/ns/edm"),
        ],
    )?;
    empty(
        &mut w,
        "EntityType",
        &[("Name", "crmbaseentity"), ("Abstract", "true")],
    )?;
    for t in &schema.tables {
        entity_type(&mut w, schema, t)?;
    }
    operations(&mut w)?;
    entity_container(&mut w, schema)?;
    close(&mut w, "Schema")?;
    close(&mut w, "edmx:DataServices")?;
    close(&mut w, "edmx:Edmx")?;
    String::from_utf8(w.into_inner()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `WhoAmI` and the bulk actions, with the complex types they return.
fn operations(w: &mut W) -> io::Result<()> {
    open(w, "ComplexType", &[("Name", "WhoAmIResponse")])?;
    for p in ["BusinessUnitId", "UserId", "OrganizationId"] {
        empty(
            w,
            "Property",
            &[("Name", p), ("Type", "Edm.Guid"), ("Nullable", "false")],
        )?;
    }
    close(w, "ComplexType")?;
    open(w, "ComplexType", &[("Name", "CreateMultipleResponse")])?;
    empty(
        w,
        "Property",
        &[
            ("Name", "Ids"),
            ("Type", "Collection(Edm.Guid)"),
            ("Nullable", "false"),
        ],
    )?;
    close(w, "ComplexType")?;
    open(w, "Function", &[("Name", "WhoAmI")])?;
    empty(
        w,
        "ReturnType",
        &[("Type", "mscrm.WhoAmIResponse"), ("Nullable", "false")],
    )?;
    close(w, "Function")?;
    for (name, returns) in [
        ("CreateMultiple", Some("mscrm.CreateMultipleResponse")),
        ("UpdateMultiple", None),
        ("UpsertMultiple", None),
    ] {
        open(w, "Action", &[("Name", name), ("IsBound", "true")])?;
        empty(
            w,
            "Parameter",
            &[
                ("Name", "entityset"),
                ("Type", "Collection(mscrm.crmbaseentity)"),
                ("Nullable", "false"),
            ],
        )?;
        empty(
            w,
            "Parameter",
            &[
                ("Name", "Targets"),
                ("Type", "Collection(mscrm.crmbaseentity)"),
                ("Nullable", "false"),
            ],
        )?;
        if let Some(r) = returns {
            empty(w, "ReturnType", &[("Type", r), ("Nullable", "false")])?;
        }
        close(w, "Action")?;
    }
    Ok(())
}

/// The entity sets with their navigation bindings, and `WhoAmI`.
fn entity_container(w: &mut W, schema: &Schema) -> io::Result<()> {
    open(w, "EntityContainer", &[("Name", "System")])?;
    for t in &schema.tables {
        let ty = format!("{NS}.{}", t.logical_name);
        open(
            w,
            "EntitySet",
            &[("Name", &t.entity_set), ("EntityType", &ty)],
        )?;
        for a in t.attributes.iter().filter(|a| a.kind == Kind::Lookup) {
            for (target, nav) in &a.targets {
                if let Some(tt) = schema.table(target).filter(|_| !nav.is_empty()) {
                    empty(
                        w,
                        "NavigationPropertyBinding",
                        &[("Path", nav), ("Target", &tt.entity_set)],
                    )?;
                }
            }
        }
        close(w, "EntitySet")?;
    }
    empty(
        w,
        "FunctionImport",
        &[
            ("Name", "WhoAmI"),
            ("Function", "Microsoft.Dynamics.CRM.WhoAmI"),
            ("IncludeInServiceDocument", "false"),
        ],
    )?;
    close(w, "EntityContainer")
}
