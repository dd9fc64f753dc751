//! Parsing the system query options: `$select`, `$filter`, `$orderby`,
//! `$top`, `$count`, `$expand`, `$apply`, `$skiptoken`.

use std::collections::HashMap;

use super::apply::parse_apply;
use super::{Expand, QueryOptions};
use crate::dataverse::error::{DvError, DvResult};
use crate::dataverse::metadata::{Kind, Table};
use crate::odata::filter::{self, Expr};

pub(super) fn check_column(table: &Table, name: &str) -> DvResult<()> {
    let known = table
        .attributes
        .iter()
        .any(|a| a.kind != Kind::Other && a.web_api_name() == name);
    if known {
        Ok(())
    } else {
        Err(DvError::segment(format!(
            "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{}'.",
            table.logical_name
        )))
    }
}

/// Property paths used by a filter, to reject unknown columns up front.
pub fn filter_properties<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    match e {
        Expr::Property(p) => out.push(p),
        Expr::Or(a, b) | Expr::And(a, b) | Expr::Cmp(_, a, b) => {
            filter_properties(a, out);
            filter_properties(b, out);
        }
        Expr::Not(a) => filter_properties(a, out),
        Expr::Call(_, args) => args.iter().for_each(|(_, a)| filter_properties(a, out)),
        // Lambda bodies name the collection's columns, checked by their own table.
        Expr::Lambda { path, .. } => out.push(path),
        _ => {}
    }
}

/// Splits on `sep` outside parentheses and quotes.
pub(super) fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses `$expand=nav($select=a,b;$filter=...;$top=5),other`.
pub fn parse_expand(value: &str) -> DvResult<Vec<Expand>> {
    let mut out = Vec::new();
    for item in split_top(value, ',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (nav, opts) = match item.find('(') {
            Some(i) if item.ends_with(')') => (&item[..i], &item[i + 1..item.len() - 1]),
            Some(_) => return Err(DvError::segment(format!("Invalid $expand item '{item}'."))),
            None => (item, ""),
        };
        let mut options = Vec::new();
        for o in split_top(opts, ';')
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| DvError::segment(format!("Invalid $expand option '{o}'.")))?;
            if !matches!(k, "$select" | "$filter" | "$orderby" | "$top" | "$expand") {
                return Err(DvError::segment(format!(
                    "The option {k} is not supported inside $expand."
                )));
            }
            options.push((k.to_string(), v.to_string()));
        }
        nested_expand_options(&options)?;
        out.push(Expand {
            nav: nav.trim().to_string(),
            options,
        });
    }
    Ok(out)
}

/// `$orderby` and `$top` are not supported next to a nested `$expand`
/// ("Nested $expand on collection-valued navigation properties" in "Join
/// tables using OData",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/join-tables>).
fn nested_expand_options(options: &[(String, String)]) -> DvResult<()> {
    let nested = options.iter().any(|(k, _)| k == "$expand");
    match options
        .iter()
        .find(|(k, _)| nested && (k == "$orderby" || k == "$top"))
    {
        Some((k, _)) => Err(DvError::segment(format!(
            "The option {k} is not supported with a nested $expand."
        ))),
        None => Ok(()),
    }
}

/// Parses the query string pairs (already percent- and `+`-decoded).
pub fn parse_options(table: &Table, pairs: &[(String, String)]) -> DvResult<QueryOptions> {
    let mut o = QueryOptions::default();
    let aliases: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k.starts_with('@'))
        .cloned()
        .collect();
    for (k, v) in pairs {
        match k.as_str() {
            "$select" => o.select = Some(parse_select(table, v)?),
            "$filter" => o.filter = Some(parse_filter(table, v, &aliases, &mut o.filter_navs)?),
            "$orderby" => o.orderby.extend(parse_orderby(table, v, &aliases)?),
            "$top" => {
                o.top = Some(v.parse().map_err(|_| {
                    DvError::segment(format!(
                        "Invalid value '{v}' for $top: a non-negative integer is required."
                    ))
                })?)
            }
            "$count" => {
                o.count = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(DvError::segment(format!("Invalid value '{v}' for $count."))),
                }
            }
            "$skiptoken" => {
                o.skiptoken = Some(
                    decode_skiptoken(v)
                        .ok_or_else(|| DvError::segment("The $skiptoken is not valid."))?,
                )
            }
            "$skip" | "$search" | "$format" => {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!("The query parameter {k} is not supported."),
                ));
            }
            "$expand" => o.expand = parse_table_expand(table, v)?,
            "$apply" => o.apply = Some(parse_apply(table, v, &aliases)?),
            "fetchXml" | "$levels" => {
                return Err(DvError::new(
                    axum::http::StatusCode::NOT_IMPLEMENTED,
                    "0x80040219",
                    format!("The query option {k} is not implemented by the emulator yet."),
                ));
            }
            other if other.starts_with('$') => {
                return Err(DvError::bad_request(
                    "0x80060888",
                    format!(
                        "The query parameter {other} is not supported. Query option names are case-sensitive."
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// `$select`: known columns, comma-separated.
fn parse_select(table: &Table, v: &str) -> DvResult<Vec<String>> {
    let cols: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for c in &cols {
        check_column(table, c)?;
    }
    Ok(cols)
}

/// `$filter`, its columns checked; the navigation properties it walks are
/// added to `navs`.
fn parse_filter(
    table: &Table,
    v: &str,
    aliases: &HashMap<String, String>,
    navs: &mut Vec<String>,
) -> DvResult<Expr> {
    let expr = filter::parse_with_aliases(v, aliases)
        .map_err(|e| DvError::segment(format!("Invalid $filter: {e}")))?;
    let mut props = Vec::new();
    filter_properties(&expr, &mut props);
    for p in props {
        // Navigation paths (`primarycontactid/fullname`) are checked on their first hop.
        let first = p.split('/').next().unwrap_or(p);
        if table.single_nav(first).is_some() || table.collection_nav(first).is_some() {
            if !navs.iter().any(|n| n == first) {
                navs.push(first.to_string());
            }
        } else {
            check_column(table, first)?;
        }
    }
    Ok(expr)
}

/// `$orderby`: `column [asc|desc]`, comma-separated; `true` = descending.
/// A column may be a parameter alias (`$orderby=@p1 asc&@p1=name`); an
/// alias without a value is null, which orders nothing.
fn parse_orderby(
    table: &Table,
    v: &str,
    aliases: &HashMap<String, String>,
) -> DvResult<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut words = part.split_whitespace();
        let mut col = words.next().unwrap_or_default();
        if col.starts_with('@') {
            match aliases.get(col) {
                Some(c) => col = c.trim(),
                None => continue,
            }
        }
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(DvError::segment(format!(
                    "Invalid $orderby direction '{other}'."
                )));
            }
        };
        check_column(table, col)?;
        out.push((col.to_string(), desc));
    }
    Ok(out)
}

/// `$expand` of navigation properties `table` has.
fn parse_table_expand(table: &Table, v: &str) -> DvResult<Vec<Expand>> {
    let items = parse_expand(v)?;
    for e in &items {
        if table.single_nav(&e.nav).is_none() && table.collection_nav(&e.nav).is_none() {
            return Err(DvError::segment(format!(
                "Could not find a property named '{}' on type 'Microsoft.Dynamics.CRM.{}'.",
                e.nav, table.logical_name
            )));
        }
    }
    Ok(items)
}

/// `$skiptoken` is the URL-encoded paging cookie Dataverse uses; ours
/// carries the offset of the next page.
pub fn encode_skiptoken(offset: usize, page: usize) -> String {
    format!(
        "<cookie pagenumber=\"{page}\" pagingcookie=\"%253ccookie%2520page%253d%2522{}%2522%253e%253c%252fcookie%253e\" istracking=\"False\" />",
        offset
    )
}

pub(super) fn decode_skiptoken(token: &str) -> Option<usize> {
    let rest = token.split("%2522").nth(1)?;
    rest.parse().ok()
}
