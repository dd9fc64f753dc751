//! `GET <set>?fetchXml=<fetch>…</fetch>` ("Use FetchXml to query data",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-fetchxml-web-api>):
//! the XML is parsed with quick-xml and turned into the same filter
//! and ordering the OData options use. Nulls are omitted from results;
//! `page`/`count` paging with `fetchxmlpagingcookie`/`morerecords` when
//! annotations are requested. `link-entity` joins are in [`link`].

mod link;

pub use link::{Link, join, render_links};

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::Value;

use super::error::DvError;
use super::metadata::{Kind, Schema, Table};
use super::query::QueryOptions;
use crate::odata::filter::{CmpOp, Expr, Literal};

/// A parsed `<fetch>`.
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    /// `None` = all attributes.
    pub attributes: Option<Vec<String>>,
    pub options: QueryOptions,
    pub top: Option<usize>,
    pub page: Option<usize>,
    pub count: Option<usize>,
    /// The `<link-entity>` joins, in document order.
    pub links: Vec<Link>,
}

/// Why a FetchXML query is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchXmlError {
    /// The XML does not parse (`what`: the part that failed).
    #[error("Invalid FetchXML{what}: {message}")]
    Xml {
        /// `""`, `" attribute"`, `" attribute value"` or `" text"`.
        what: &'static str,
        /// The XML reader's message.
        message: String,
    },
    /// Elements nested deeper than 64 levels.
    #[error("FetchXML is nested too deeply.")]
    TooDeep,
    /// Start and end tags do not match.
    #[error("Unbalanced FetchXML.")]
    Unbalanced,
    /// Not exactly one `<fetch>` at the top.
    #[error("FetchXML must have one <fetch> element.")]
    NoFetch,
    /// `<fetch>` without `<entity>`.
    #[error("<fetch> needs an <entity>.")]
    NoEntity,
    /// `<entity name>` is not the table of the entity set requested.
    #[error(
        "The entity name specified in FetchXml '{name}' does not match the entity name in the request '{entity_set}'."
    )]
    EntityMismatch {
        /// The `<entity name>`.
        name: String,
        /// The entity set requested.
        entity_set: String,
    },
    /// A column the table does not have.
    #[error("'{entity}' entity doesn't contain attribute with Name = '{name}'.")]
    UnknownAttribute {
        /// The table's logical name.
        entity: String,
        /// The attribute as written.
        name: String,
    },
    /// An element without its required `attribute`.
    #[error("<{element}> needs an attribute.")]
    MissingAttribute {
        /// `condition` or `order`.
        element: &'static str,
    },
    /// `in`/`not-in` without `<value>` children.
    #[error("'{operator}' needs <value> children.")]
    NoValues {
        /// The operator.
        operator: &'static str,
    },
    /// An element where it is not allowed.
    #[error("Unexpected <{element}> in <{parent}>.")]
    Unexpected {
        /// The element.
        element: String,
        /// Its parent.
        parent: &'static str,
    },
    /// `top`, `page` or `count` that is not a non-negative integer.
    #[error("'{attribute}' must be a positive integer.")]
    NotANumber {
        /// The attribute.
        attribute: String,
    },
    /// `top` with `page` or `count`.
    #[error("The top attribute can't be specified with paging attribute page or count.")]
    TopWithPaging,
    /// A condition operator the emulator does not implement (501).
    #[error("The FetchXML operator '{0}' is not implemented by the emulator.")]
    UnsupportedOperator(String),
    /// A `<link-entity>` naming a table the environment does not have.
    #[error(
        "The entity with a name = '{0}' with namemapping = 'Logical' was not found in the MetadataCache."
    )]
    UnknownEntity(String),
    /// A `<link-entity>` without its `name`, `from` or `to`.
    #[error("<link-entity> needs the attribute '{0}'.")]
    LinkAttribute(&'static str),
    /// A `link-type` other than `inner` and `outer`.
    #[error("The link-type '{0}' is not implemented by the emulator.")]
    UnsupportedLinkType(String),
    /// An `entityname` on a condition that names no `<link-entity>` alias.
    #[error("No link-entity has the alias '{0}'.")]
    UnknownAlias(String),
}

/// 0x80041103 (400), or 0x80040219 (501) for what the emulator lacks.
impl From<FetchXmlError> for DvError {
    fn from(e: FetchXmlError) -> Self {
        match e {
            FetchXmlError::UnsupportedOperator(_) | FetchXmlError::UnsupportedLinkType(_) => {
                DvError::new(
                    axum::http::StatusCode::NOT_IMPLEMENTED,
                    "0x80040219",
                    e.to_string(),
                )
            }
            _ => DvError::bad_request("0x80041103", e.to_string()),
        }
    }
}

type FxResult<T> = Result<T, FetchXmlError>;

fn xml_error(what: &'static str) -> impl Fn(quick_xml::Error) -> FetchXmlError {
    move |e| FetchXmlError::Xml {
        what,
        message: e.to_string(),
    }
}

#[derive(Debug)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_tree(xml: &str) -> FxResult<Node> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node {
        name: String::new(),
        attrs: Vec::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    let node = |e: &quick_xml::events::BytesStart| -> FxResult<Node> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| FetchXmlError::Xml {
                what: " attribute",
                message: err.to_string(),
            })?;
            let v = a.unescape_value().map_err(xml_error(" attribute value"))?;
            attrs.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                v.into_owned(),
            ));
        }
        Ok(Node {
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
        })
    };
    loop {
        match reader.read_event().map_err(xml_error(""))? {
            Event::Start(e) => {
                if stack.len() > 64 {
                    return Err(FetchXmlError::TooDeep);
                }
                stack.push(node(&e)?);
            }
            Event::Empty(e) => {
                let n = node(&e)?;
                stack.last_mut().expect("root").children.push(n);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| FetchXmlError::Xml {
                    what: " text",
                    message: e.to_string(),
                })?;
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::End(_) => {
                let n = stack.pop().expect("balanced");
                let parent = stack.last_mut().ok_or(FetchXmlError::Unbalanced)?;
                parent.children.push(n);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(FetchXmlError::Unbalanced);
    }
    let mut root = stack.pop().expect("root");
    match root.children.len() {
        1 if root.children[0].name == "fetch" => Ok(root.children.remove(0)),
        _ => Err(FetchXmlError::NoFetch),
    }
}

/// Maps a FetchXML attribute (logical name) to the Web API property.
fn property(table: &Table, name: &str) -> FxResult<String> {
    let a = table
        .attribute(name)
        .filter(|a| a.kind != Kind::Other)
        .ok_or_else(|| FetchXmlError::UnknownAttribute {
            entity: table.logical_name.clone(),
            name: name.to_string(),
        })?;
    Ok(a.web_api_name())
}

fn literal(table: &Table, attr: &str, v: &str) -> Literal {
    let kind = table.attribute(attr).map(|a| a.kind);
    match kind {
        Some(
            Kind::Integer
            | Kind::BigInt
            | Kind::Decimal
            | Kind::Double
            | Kind::Money
            | Kind::Choice,
        ) => v
            .parse()
            .map(Literal::Number)
            .unwrap_or_else(|_| Literal::String(v.into())),
        Some(Kind::Boolean) => Literal::Bool(v == "1" || v.eq_ignore_ascii_case("true")),
        Some(Kind::Lookup | Kind::Uniqueidentifier) => {
            uuid::Uuid::parse_str(v.trim_matches(|c| c == '{' || c == '}'))
                .map(Literal::Guid)
                .unwrap_or_else(|_| Literal::String(v.into()))
        }
        _ => Literal::String(v.into()),
    }
}

fn call(name: &str, prop: &str, value: &str) -> Expr {
    Expr::Call(
        name.into(),
        vec![
            (None, Expr::Property(prop.into())),
            (None, Expr::Lit(Literal::String(value.into()))),
        ],
    )
}

/// The tables a condition can name: the one its filter belongs to and,
/// through `entityname`, the aliases of the query's `<link-entity>`s
/// ("Filter on columns of joined tables" in "Filter rows using FetchXml",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/fetchxml/filter-rows>).
struct Scope<'s> {
    table: &'s Table,
    aliases: &'s [(String, std::sync::Arc<Table>)],
}

fn condition(scope: &Scope, c: &Node) -> FxResult<Expr> {
    let attr = c.attr("attribute").ok_or(FetchXmlError::MissingAttribute {
        element: "condition",
    })?;
    // A joined table's column is read at `alias/column` of the joined record.
    let (table, prefix) = match c.attr("entityname") {
        Some(alias) => {
            let (_, t) = scope
                .aliases
                .iter()
                .find(|(a, _)| a == alias)
                .ok_or_else(|| FetchXmlError::UnknownAlias(alias.to_string()))?;
            (&**t, format!("{alias}/"))
        }
        None => (scope.table, String::new()),
    };
    let prop = format!("{prefix}{}", property(table, attr)?);
    let op = c.attr("operator").unwrap_or("eq");
    let value = c.attr("value").unwrap_or_default();
    let lit = || Expr::Lit(literal(table, attr, value));
    let cmp = |o: CmpOp| Expr::Cmp(o, Box::new(Expr::Property(prop.clone())), Box::new(lit()));
    let values: Vec<Expr> = c
        .children
        .iter()
        .filter(|n| n.name == "value")
        .map(|n| Expr::Lit(literal(table, attr, n.text.trim())))
        .collect();
    let any_of = |vals: &[Expr]| {
        vals.iter()
            .map(|v| {
                Expr::Cmp(
                    CmpOp::Eq,
                    Box::new(Expr::Property(prop.clone())),
                    Box::new(v.clone()),
                )
            })
            .reduce(|a, b| Expr::Or(Box::new(a), Box::new(b)))
    };
    // FetchXML `like` uses % wildcards at the ends.
    let like = |v: &str| -> Expr {
        match (v.strip_prefix('%'), v.strip_suffix('%')) {
            (Some(_), Some(_)) if v.len() >= 2 => call("contains", &prop, &v[1..v.len() - 1]),
            (None, Some(p)) => call("startswith", &prop, p),
            (Some(s), None) => call("endswith", &prop, s),
            _ => Expr::Cmp(
                CmpOp::Eq,
                Box::new(Expr::Property(prop.clone())),
                Box::new(Expr::Lit(Literal::String(v.into()))),
            ),
        }
    };
    Ok(match op {
        "eq" => cmp(CmpOp::Eq),
        "ne" | "neq" => cmp(CmpOp::Ne),
        "gt" => cmp(CmpOp::Gt),
        "ge" => cmp(CmpOp::Ge),
        "lt" => cmp(CmpOp::Lt),
        "le" => cmp(CmpOp::Le),
        "null" => Expr::Cmp(
            CmpOp::Eq,
            Box::new(Expr::Property(prop.clone())),
            Box::new(Expr::Lit(Literal::Null)),
        ),
        "not-null" => Expr::Cmp(
            CmpOp::Ne,
            Box::new(Expr::Property(prop.clone())),
            Box::new(Expr::Lit(Literal::Null)),
        ),
        "like" => like(value),
        "not-like" => Expr::Not(Box::new(like(value))),
        "begins-with" => call("startswith", &prop, value),
        "ends-with" => call("endswith", &prop, value),
        "in" => any_of(&values).ok_or(FetchXmlError::NoValues { operator: "in" })?,
        "not-in" => Expr::Not(Box::new(
            any_of(&values).ok_or(FetchXmlError::NoValues { operator: "not-in" })?,
        )),
        other => return Err(FetchXmlError::UnsupportedOperator(other.to_string())),
    })
}

fn filter(scope: &Scope, f: &Node) -> FxResult<Option<Expr>> {
    let or = f.attr("type") == Some("or");
    let mut parts = Vec::new();
    for c in &f.children {
        match c.name.as_str() {
            "condition" => parts.push(condition(scope, c)?),
            "filter" => parts.extend(filter(scope, c)?),
            other => {
                return Err(FetchXmlError::Unexpected {
                    element: other.to_string(),
                    parent: "filter",
                });
            }
        }
    }
    Ok(parts.into_iter().reduce(|a, b| {
        if or {
            Expr::Or(Box::new(a), Box::new(b))
        } else {
            Expr::And(Box::new(a), Box::new(b))
        }
    }))
}

fn number(n: &Node, k: &str) -> FxResult<Option<usize>> {
    n.attr(k)
        .map(|v| {
            v.parse().map_err(|_| FetchXmlError::NotANumber {
                attribute: k.to_string(),
            })
        })
        .transpose()
}

/// Parses a FetchXML query against the entity set's table; `schema`
/// resolves the tables `<link-entity>` joins.
pub fn parse(schema: &Schema, table: &Table, xml: &str) -> Result<Fetch, FetchXmlError> {
    let fetch = parse_tree(xml)?;
    let entity = fetch
        .children
        .iter()
        .find(|c| c.name == "entity")
        .ok_or(FetchXmlError::NoEntity)?;
    let name = entity.attr("name").unwrap_or_default();
    if name != table.logical_name {
        return Err(FetchXmlError::EntityMismatch {
            name: name.to_string(),
            entity_set: table.entity_set.clone(),
        });
    }
    let mut out = Fetch {
        top: number(&fetch, "top")?,
        page: number(&fetch, "page")?,
        count: number(&fetch, "count")?,
        ..Fetch::default()
    };
    if out.top.is_some() && (out.page.is_some() || out.count.is_some()) {
        return Err(FetchXmlError::TopWithPaging);
    }
    // Links first: conditions anywhere may name their aliases.
    let mut aliases = Vec::new();
    let mut link_orders = Vec::new();
    for c in entity.children.iter().filter(|c| c.name == "link-entity") {
        out.links.push(link::parse_link(
            schema,
            table,
            c,
            &mut aliases,
            &mut link_orders,
        )?);
    }
    let scope = Scope {
        table,
        aliases: &aliases,
    };
    let (attrs, all) = entity_children(&scope, entity, &mut out.options)?;
    // Orders on joined tables come after the entity's own ("Order rows
    // using FetchXml", https://learn.microsoft.com/power-apps/developer/data-platform/fetchxml/order-rows).
    out.options.orderby.extend(link_orders);
    out.attributes = (!all && !attrs.is_empty()).then_some(attrs);
    Ok(out)
}

/// The `<attribute>`s, `<order>`s and `<filter>` of `<entity>`; returns the
/// selected columns and whether `<all-attributes>` was given.
fn entity_children(
    scope: &Scope,
    entity: &Node,
    options: &mut QueryOptions,
) -> FxResult<(Vec<String>, bool)> {
    let table = scope.table;
    let mut attrs = Vec::new();
    let mut all = false;
    for c in &entity.children {
        match c.name.as_str() {
            "attribute" => attrs.push(property(table, c.attr("name").unwrap_or_default())?),
            "all-attributes" => all = true,
            "order" => {
                let a = c
                    .attr("attribute")
                    .ok_or(FetchXmlError::MissingAttribute { element: "order" })?;
                options
                    .orderby
                    .push((property(table, a)?, c.attr("descending") == Some("true")));
            }
            "filter" => options.filter = filter(scope, c)?,
            "link-entity" => {}
            other => {
                return Err(FetchXmlError::Unexpected {
                    element: other.to_string(),
                    parent: "entity",
                });
            }
        }
    }
    Ok((attrs, all))
}

/// Drops null members: FetchXML results omit them ("Use FetchXml to query
/// data").
pub fn strip_nulls(v: &mut serde_json::Map<String, Value>) {
    v.retain(|_, x| !x.is_null());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions_orders_and_rejects_garbage() {
        let t = Schema::standard().by_set("accounts").unwrap().clone();
        let f = parse(
            Schema::standard(),
            &t,
            r#"<fetch count="2" page="1"><entity name="account"><attribute name="name"/><order attribute="revenue" descending="true"/>
               <filter type="or"><condition attribute="name" operator="like" value="Con%"/><condition attribute="primarycontactid" operator="null"/>
               <filter><condition attribute="accountcategorycode" operator="in"><value>1</value><value>2</value></condition></filter></filter></entity></fetch>"#,
        )
        .unwrap();
        assert_eq!(f.count, Some(2));
        assert_eq!(f.attributes, Some(vec!["name".to_string()]));
        assert_eq!(f.options.orderby, vec![("revenue".to_string(), true)]);
        assert!(f.options.filter.is_some());
        for bad in [
            "<fetch>",
            "<fetch><entity name=\"contact\"/></fetch>",
            "not xml",
            "<fetch><entity name=\"account\"><attribute name=\"nosuch\"/></entity></fetch>",
            "<a/><b/>",
        ] {
            assert!(parse(Schema::standard(), &t, bad).is_err(), "{bad}");
        }
    }
}
