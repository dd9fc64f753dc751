//! Malformed filters: token soup, mutated valid filters, deep nesting.

use super::*;

/// Pieces of filters, valid and not.
pub(crate) const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    " ",
    "'",
    "''",
    "\"",
    " eq ",
    " ne ",
    " gt ",
    " le ",
    " and ",
    " or ",
    "not ",
    "'a'",
    "'O''Brien'",
    "'%x'",
    "'x%'",
    "\"b\"",
    "1",
    "-2.5",
    "1e400",
    "2024-05-01",
    "null",
    "true",
    "@p1",
    "name",
    "revenue",
    "numberofemployees",
    "creditonhold",
    "accountcategorycode",
    "address1_city",
    "accountid",
    "bogus",
    "primarycontactid/fullname",
    "contact_customer_accounts",
    "/any(",
    "/all(",
    "c:",
    "c/fullname",
    "=",
    "contains(",
    "startswith(",
    "endswith(",
    "tolower(",
    "toupper(",
    "Microsoft.Dynamics.CRM.In(",
    "Microsoft.Dynamics.CRM.NotIn(",
    "Microsoft.Dynamics.CRM.Between(",
    "Microsoft.Dynamics.CRM.LastXDays(",
    "Microsoft.Dynamics.CRM.Above(",
    "Microsoft.Dynamics.CRM.EqualUserId(",
    "PropertyName=",
    "PropertyValues=",
    "PropertyValue=",
    "'name'",
    "'revenue'",
    "0badf00d-0000-4000-8000-000000000001",
];

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mutation {
    /// Removes the characters between two positions.
    Delete(Index, Index),
    /// Inserts a character at a position.
    Insert(Index, char),
    /// Keeps only the text before a position.
    Truncate(Index),
    /// Repeats the text between two positions.
    Duplicate(Index, Index),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop::sample::select(
        &[
            '(', ')', '\'', '"', '[', ']', ',', '=', ' ', '/', '%', '@', '\\', '\u{0}', 'é',
        ][..],
    );
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Delete(a, b)),
        (any::<Index>(), ch).prop_map(|(a, c)| Mutation::Insert(a, c)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

pub(crate) fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in muts {
        let n = chars.len() + 1;
        let span = |a: &Index, b: &Index| {
            let (x, y) = (a.index(n), b.index(n));
            (x.min(y), x.max(y))
        };
        match m {
            Mutation::Delete(a, b) => {
                let (x, y) = span(a, b);
                chars.drain(x..y);
            }
            Mutation::Insert(a, c) => chars.insert(a.index(n), *c),
            Mutation::Truncate(a) => chars.truncate(a.index(n)),
            Mutation::Duplicate(a, b) => {
                let (x, y) = span(a, b);
                let copy: Vec<char> = chars[x..y].to_vec();
                chars.splice(y..y, copy);
            }
        }
    }
    chars.into_iter().collect()
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Nest {
    Parens,
    Not,
    Contains,
    In,
    List,
    Lambda,
}

/// `inner` nested `depth` times, closed `depth + extra - 2` times (so
/// sometimes unbalanced).
pub(crate) fn nest(kind: Nest, depth: usize, extra: usize, inner: &str) -> String {
    let close = (depth + extra).saturating_sub(2);
    match kind {
        Nest::Parens => "(".repeat(depth) + inner + &")".repeat(close),
        Nest::Not => "not (".repeat(depth) + inner + &")".repeat(close),
        Nest::Contains => "contains(".repeat(depth) + "name,'a'" + &",'b')".repeat(close),
        Nest::In => {
            "Microsoft.Dynamics.CRM.In(PropertyName=".repeat(depth)
                + "'name'"
                + &",PropertyValues=['a'])".repeat(close)
        }
        Nest::List => "name eq ".to_string() + &"[".repeat(depth) + "'a'" + &"]".repeat(close),
        Nest::Lambda => {
            "contact_customer_accounts/any(c:c/".repeat(depth)
                + "fullname eq 'x'"
                + &")".repeat(close)
        }
    }
}

/// A `$filter` value, already percent-encoded.
pub(crate) fn malformed(rows: std::sync::Arc<Vec<Account>>) -> impl Strategy<Value = String> {
    let valid = {
        let rows = rows.clone();
        filter().prop_map(move |f| filter_text(&f, &rows))
    };
    let soup = prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|t| t.concat());
    let nested = (
        prop::sample::select(
            &[
                Nest::Parens,
                Nest::Not,
                Nest::Contains,
                Nest::In,
                Nest::List,
                Nest::Lambda,
            ][..],
        ),
        1..200usize,
        0..5usize,
        valid.clone(),
    )
        .prop_map(|(k, d, e, inner)| nest(k, d, e, &inner));
    let text = prop_oneof![
        2 => ".{0,120}",
        2 => soup,
        4 => (valid, prop::collection::vec(mutation(), 1..4)).prop_map(|(t, m)| mutate(&t, &m)),
        2 => nested,
    ];
    prop_oneof![
        9 => text.prop_map(|t| encode(&t)),
        // Percent-encoded bytes that need not be UTF-8.
        1 => prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| {
            b.iter().map(|b| format!("%{b:02X}")).collect::<String>()
        }),
    ]
}
