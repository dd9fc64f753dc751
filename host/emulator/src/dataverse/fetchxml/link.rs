//! `<link-entity>`: inner and outer joins, aliases, columns and conditions
//! of joined tables ("Join tables using FetchXml",
//! <https://learn.microsoft.com/power-apps/developer/data-platform/fetchxml/join-tables>).
//! A joined row's columns come back as `alias.column`; an outer join
//! without a match adds nothing, since FetchXML results omit nulls.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Fetch, FetchXmlError, FxResult, Node, Scope, filter, property};
use crate::dataverse::error::DvResult;
use crate::dataverse::metadata::{Attribute, Kind, Schema, Table};
use crate::dataverse::query::{self, Annotations};
use crate::dataverse::store::{EnvData, Row};
use crate::odata::filter::{self as odata_filter, EvalContext, Expr};

/// One `<link-entity>`.
#[derive(Debug, Clone)]
pub struct Link {
    /// The joined table.
    pub table: Arc<Table>,
    /// `alias`, or `<name><n>` for the n-th unaliased link to `name`.
    pub alias: String,
    /// The joined table's column (`from`), as its Web API property.
    pub from: String,
    /// The parent's column (`to`), as its Web API property.
    pub to: String,
    /// `link-type="outer"`: keep parents without a match.
    pub outer: bool,
    /// The joined table's columns to return.
    pub attributes: Vec<Attribute>,
    /// The link's own `<filter>`, on the joined table's columns.
    pub filter: Option<Expr>,
    /// Nested `<link-entity>`s, joined to this one.
    pub links: Vec<Link>,
    /// Set when the join goes through a many-to-many intersect table.
    pub via: Option<Via>,
}

/// A join through an intersect table (`<link-entity name="systemuserroles"
/// intersect="true">` around the link to the other table), answered from
/// the relationship's associations ("Many-to-many relationships" in "Join
/// tables using FetchXml").
#[derive(Debug, Clone)]
pub struct Via {
    /// The relationship's schema name.
    pub relationship: String,
    /// The parent table's logical name and primary key.
    pub parent: (String, String),
}

fn required<'n>(node: &'n Node, k: &'static str) -> FxResult<&'n str> {
    node.attr(k).ok_or(FetchXmlError::LinkAttribute(k))
}

/// Parses a `<link-entity>` under `parent`. Its alias (and its nested
/// links' aliases) are added to `aliases`; its `<order>`s to `orders`.
pub(super) fn parse_link(
    schema: &Schema,
    parent: &Table,
    node: &Node,
    aliases: &mut Vec<(String, Arc<Table>)>,
    orders: &mut Vec<(String, bool)>,
) -> FxResult<Link> {
    let name = required(node, "name")?;
    let Some(table) = schema.table(name).cloned() else {
        return intersect_link(schema, parent, node, aliases, orders);
    };
    let from = property(&table, required(node, "from")?)?;
    let to = property(parent, required(node, "to")?)?;
    let outer = match node.attr("link-type").unwrap_or("inner") {
        "inner" => false,
        "outer" => true,
        other => return Err(FetchXmlError::UnsupportedLinkType(other.to_string())),
    };
    let alias = match node.attr("alias") {
        Some(a) => a.to_string(),
        None => {
            let n = aliases
                .iter()
                .filter(|(_, t)| t.logical_name == name)
                .count();
            format!("{name}{}", n + 1)
        }
    };
    aliases.push((alias.clone(), table.clone()));
    let mut link = Link {
        table: table.clone(),
        alias,
        from,
        to,
        outer,
        attributes: Vec::new(),
        filter: None,
        links: Vec::new(),
        via: None,
    };
    for c in node.children.iter().filter(|c| c.name == "link-entity") {
        link.links
            .push(parse_link(schema, &table, c, aliases, orders)?);
    }
    link_children(&mut link, node, aliases, orders)?;
    Ok(link)
}

/// A `<link-entity>` naming the intersect table of one of `parent`'s
/// many-to-many relationships, with one `<link-entity>` inside to the
/// other table: parsed as that inner link, joined through the relationship.
fn intersect_link(
    schema: &Schema,
    parent: &Table,
    node: &Node,
    aliases: &mut Vec<(String, Arc<Table>)>,
    orders: &mut Vec<(String, bool)>,
) -> FxResult<Link> {
    let name = required(node, "name")?;
    let unknown = || FetchXmlError::UnknownEntity(name.to_string());
    let nav = parent
        .collection_navs
        .iter()
        .find(|c| c.intersect.as_deref() == Some(name))
        .ok_or_else(unknown)?;
    let inner: Vec<&Node> = node
        .children
        .iter()
        .filter(|c| c.name == "link-entity")
        .collect();
    let [inner] = inner[..] else {
        return Err(FetchXmlError::Unexpected {
            element: "link-entity".into(),
            parent: "link-entity intersect",
        });
    };
    if required(inner, "name")? != nav.other {
        return Err(unknown());
    }
    // The inner link's `to` names an intersect column; the relationship
    // stands in for it, so it is parsed against the other table itself.
    let other = schema.table(&nav.other).ok_or_else(unknown)?;
    let mut link = parse_link(schema, other, inner, aliases, orders)?;
    link.outer |= node.attr("link-type") == Some("outer");
    link.via = Some(Via {
        relationship: nav.relationship.clone(),
        parent: (parent.logical_name.clone(), parent.primary_id.clone()),
    });
    Ok(link)
}

/// The `<attribute>`s, `<all-attributes>`, `<order>`s and `<filter>` of a link.
fn link_children(
    link: &mut Link,
    node: &Node,
    aliases: &[(String, Arc<Table>)],
    orders: &mut Vec<(String, bool)>,
) -> FxResult<()> {
    let table = link.table.clone();
    let column = |n: &str| -> FxResult<Attribute> {
        property(&table, n)?;
        Ok(table.attribute(n).cloned().expect("property checked it"))
    };
    for c in &node.children {
        match c.name.as_str() {
            "attribute" => link
                .attributes
                .push(column(c.attr("name").unwrap_or_default())?),
            "all-attributes" => {
                link.attributes = table
                    .attributes
                    .iter()
                    .filter(|a| a.kind != Kind::Other)
                    .cloned()
                    .collect()
            }
            "order" => {
                let a = c
                    .attr("attribute")
                    .ok_or(FetchXmlError::MissingAttribute { element: "order" })?;
                let web = property(&table, a)?;
                orders.push((
                    format!("{}/{web}", link.alias),
                    c.attr("descending") == Some("true"),
                ));
            }
            "filter" => {
                let scope = Scope {
                    table: &table,
                    aliases,
                };
                link.filter = filter(&scope, c)?;
            }
            "link-entity" => {}
            other => {
                return Err(FetchXmlError::Unexpected {
                    element: other.to_string(),
                    parent: "link-entity",
                });
            }
        }
    }
    Ok(())
}

/// A result row: the entity's row and, for each link in document order
/// (depth first), its joined row (`None`: an outer join without a match).
#[derive(Debug, Clone)]
pub struct Joined<'d> {
    /// The row of the queried table.
    pub row: &'d Row,
    /// The joined rows.
    pub linked: Vec<Option<&'d Row>>,
}

/// How many links `links` holds, nested ones included.
fn link_count(links: &[Link]) -> usize {
    links.iter().map(|l| 1 + link_count(&l.links)).sum()
}

/// The rows of `link` joined to `parent`, its own filter applied.
fn matches<'d>(
    env: &'d EnvData,
    link: &Link,
    parent: &Row,
    ctx: &EvalContext,
) -> DvResult<Vec<&'d Row>> {
    let t = &link.table;
    if let Some(via) = &link.via {
        let ids = parent
            .values
            .get(&via.parent.1)
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|id| env.linked(&via.relationship, &via.parent.0, &t.logical_name, id))
            .unwrap_or_default();
        let rows = ids.iter().filter_map(|id| env.get(&t.logical_name, id));
        return filtered(rows, link, ctx);
    }
    let Some(key) = parent.values.get(&link.to).and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    // A join on the joined table's primary key reads one row.
    let candidates: Vec<&Row> = if link.from == t.primary_id {
        uuid::Uuid::parse_str(key)
            .ok()
            .and_then(|id| env.get(&t.logical_name, &id))
            .into_iter()
            .collect()
    } else {
        env.rows(&t.logical_name)
            .map(|rows| {
                rows.rows
                    .values()
                    .filter(|r| {
                        r.values
                            .get(&link.from)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.eq_ignore_ascii_case(key))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    filtered(candidates.into_iter(), link, ctx)
}

/// The rows passing the link's own filter.
fn filtered<'d>(
    rows: impl Iterator<Item = &'d Row>,
    link: &Link,
    ctx: &EvalContext,
) -> DvResult<Vec<&'d Row>> {
    let mut out = Vec::new();
    for r in rows {
        let keep = match &link.filter {
            Some(f) => odata_filter::eval_with(f, r.values.as_value(), ctx)?,
            None => true,
        };
        if keep {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every combination of joined rows for `links` under `parent`; empty
/// when an inner join finds nothing, which drops the parent.
fn combinations<'d>(
    env: &'d EnvData,
    parent: Option<&Row>,
    links: &[Link],
    ctx: &EvalContext,
) -> DvResult<Vec<Vec<Option<&'d Row>>>> {
    let mut out: Vec<Vec<Option<&Row>>> = vec![Vec::new()];
    for link in links {
        let found = match parent {
            Some(p) => matches(env, link, p, ctx)?,
            None => Vec::new(),
        };
        let mut choices: Vec<Vec<Option<&Row>>> = Vec::new();
        for r in found {
            for nested in combinations(env, Some(r), &link.links, ctx)? {
                choices.push(std::iter::once(Some(r)).chain(nested).collect());
            }
        }
        if choices.is_empty() {
            if !link.outer {
                return Ok(Vec::new());
            }
            choices.push(vec![None; 1 + link_count(&link.links)]);
        }
        out = out
            .iter()
            .flat_map(|prefix| {
                choices
                    .iter()
                    .map(move |c| prefix.iter().copied().chain(c.iter().copied()).collect())
            })
            .collect();
    }
    Ok(out)
}

/// The record a joined row's filter and order read: the entity's columns,
/// and each alias as an object of its row's columns (null without a match).
fn merged(row: &Row, links: &[Link], linked: &[Option<&Row>]) -> Value {
    let mut v = row.values.as_value().clone();
    let mut aliases = Vec::new();
    flat_aliases(links, &mut aliases);
    if let Value::Object(m) = &mut v {
        for (alias, r) in aliases.into_iter().zip(linked) {
            m.insert(
                alias.to_string(),
                r.map(|r| r.values.as_value().clone())
                    .unwrap_or(Value::Null),
            );
        }
    }
    v
}

fn flat_aliases<'l>(links: &'l [Link], out: &mut Vec<&'l str>) {
    for l in links {
        out.push(&l.alias);
        flat_aliases(&l.links, out);
    }
}

fn flat_links<'l>(links: &'l [Link], out: &mut Vec<&'l Link>) {
    for l in links {
        out.push(l);
        flat_links(&l.links, out);
    }
}

/// Runs a FetchXML query: filter, joins, order. Without links this is the
/// OData path; with them the entity's filter and the order read the
/// joined record, so conditions may name an alias (`entityname`).
pub fn join<'d>(
    env: &'d EnvData,
    table: &Table,
    f: &Fetch,
    ctx: &EvalContext,
) -> DvResult<Vec<Joined<'d>>> {
    let all = env
        .rows(&table.logical_name)
        .map(|t| t.rows.values().collect::<Vec<_>>())
        .unwrap_or_default();
    if f.links.is_empty() {
        let rows = query::select_rows(env, table, all.into_iter(), &f.options, ctx)?;
        return Ok(rows
            .into_iter()
            .map(|row| Joined {
                row,
                linked: Vec::new(),
            })
            .collect());
    }
    let mut out: Vec<(Value, Joined)> = Vec::new();
    for row in all {
        for linked in combinations(env, Some(row), &f.links, ctx)? {
            let record = merged(row, &f.links, &linked);
            let keep = match &f.options.filter {
                Some(e) => odata_filter::eval_with(e, &record, ctx)?,
                None => true,
            };
            if keep {
                out.push((record, Joined { row, linked }));
            }
        }
    }
    let path = |v: &Value, p: &str| p.split('/').try_fold(v, |v, s| v.get(s)).cloned();
    out.sort_by(|(a, _), (b, _)| {
        f.options
            .orderby
            .iter()
            .map(|(col, desc)| {
                let (x, y) = (
                    path(a, col).unwrap_or(Value::Null),
                    path(b, col).unwrap_or(Value::Null),
                );
                let o = query::order_values(&x, &y);
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(out.into_iter().map(|(_, j)| j).collect())
}

/// Adds the joined rows' columns to a rendered row as `alias.column`.
pub fn render_links(
    env: &EnvData,
    links: &[Link],
    joined: &Joined,
    ann: &Annotations,
    out: &mut Map<String, Value>,
) {
    let mut flat = Vec::new();
    flat_links(links, &mut flat);
    for (link, row) in flat.into_iter().zip(&joined.linked) {
        if let Some(r) = row {
            query::render_aliased(env, r, &link.alias, &link.attributes, ann, out);
        }
    }
}
