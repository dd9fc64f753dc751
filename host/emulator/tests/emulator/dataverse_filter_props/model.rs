//! Values, columns and filters, how a filter is written, and the
//! reference evaluation that says which rows it selects.

use super::*;

// ---------------------------------------------------------------------------
// Values and columns
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
    Guid(String),
}

impl Val {
    /// The OData literal.
    pub(crate) fn render(&self) -> String {
        match self {
            Val::Null => "null".into(),
            Val::Str(s) => quote(s),
            Val::Num(n) => format!("{n}"),
            Val::Bool(b) => b.to_string(),
            Val::Guid(g) => g.clone(),
        }
    }

    /// An item of `PropertyValues`: a JSON string (`"O'Brien"`, `"5"`) as
    /// in the Dataverse documentation, or a quoted OData string.
    pub(crate) fn render_item(&self, json_style: bool) -> String {
        let text = match self {
            Val::Str(s) | Val::Guid(s) => s.clone(),
            Val::Num(n) => format!("{n}"),
            Val::Bool(b) => b.to_string(),
            Val::Null => return "null".into(),
        };
        if json_style {
            Value::String(text).to_string()
        } else {
            quote(&text)
        }
    }
}

pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How two non-null values order: text case-insensitively, numbers by value.
pub(crate) fn order(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Guid(x), Val::Guid(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Name,
    City,
    Revenue,
    Employees,
    Credit,
    Category,
    Id,
}

pub(crate) const COLS: &[Col] = &[
    Col::Name,
    Col::City,
    Col::Revenue,
    Col::Employees,
    Col::Credit,
    Col::Category,
    Col::Id,
];

impl Col {
    pub(crate) fn web_name(self) -> &'static str {
        match self {
            Col::Name => "name",
            Col::City => "address1_city",
            Col::Revenue => "revenue",
            Col::Employees => "numberofemployees",
            Col::Credit => "creditonhold",
            Col::Category => "accountcategorycode",
            Col::Id => "accountid",
        }
    }

    pub(crate) fn value(self, a: &Account) -> Val {
        let num = |n: Option<f64>| n.map_or(Val::Null, Val::Num);
        match self {
            Col::Name => Val::Str(a.name.clone()),
            Col::City => a.city.clone().map_or(Val::Null, Val::Str),
            Col::Revenue => num(a.revenue),
            Col::Employees => num(a.employees.map(|n| n as f64)),
            Col::Credit => Val::Bool(a.credit),
            Col::Category => num(a.category.map(|n| n as f64)),
            Col::Id => Val::Guid(a.id.clone()),
        }
    }

    /// Only equality makes sense (and is generated) on booleans and ids.
    pub(crate) fn ordered(self) -> bool {
        !matches!(self, Col::Credit | Col::Id)
    }

    pub(crate) fn is_text(self) -> bool {
        matches!(self, Col::Name | Col::City)
    }
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// A literal, resolved against the rows when the filter is rendered and
/// evaluated (so that literals hit values that exist).
#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Null,
    /// The column's value in a row (the next row with a value if null),
    /// text in another case.
    FromRow(Index, Case),
    Text(&'static str, Case),
    Num(f64),
    Bool(bool),
    /// An id no row has.
    OtherId,
}

impl Lit {
    pub(crate) fn resolve(&self, col: Col, rows: &[Account]) -> Val {
        match self {
            Lit::Null => Val::Null,
            Lit::FromRow(i, c) => {
                let start = i.index(rows.len());
                let found = (0..rows.len())
                    .map(|k| col.value(&rows[(start + k) % rows.len()]))
                    .find(|v| *v != Val::Null);
                match found {
                    Some(Val::Str(s)) => Val::Str(c.apply(&s)),
                    Some(v) => v,
                    None if col.is_text() => Val::Str(c.apply(WORDS[0])),
                    None => Val::Num(1.0),
                }
            }
            Lit::Text(t, c) => Val::Str(c.apply(t)),
            Lit::Num(n) => Val::Num(*n),
            Lit::Bool(b) => Val::Bool(*b),
            Lit::OtherId => Val::Guid("0badf00d-0000-4000-8000-000000000001".into()),
        }
    }
}

/// A needle of `contains`/`startswith`/`endswith`: never empty, never with
/// `%`, `_` or `[` (LIKE wildcards in Dataverse) nor blanks at its ends.
#[derive(Debug, Clone)]
pub(crate) enum Needle {
    /// Part of a row's name or city: start and length (1-4).
    FromRow(Index, Index, usize, Case),
    Text(&'static str, Case),
    Chars(String),
}

impl Needle {
    pub(crate) fn resolve(&self, col: Col, rows: &[Account]) -> String {
        let s = match self {
            Needle::FromRow(row, start, len, c) => {
                let text = match col.value(&rows[row.index(rows.len())]) {
                    Val::Str(s) => s,
                    _ => WORDS[row.index(WORDS.len())].to_string(),
                };
                let chars: Vec<char> = text.chars().collect();
                let from = start.index(chars.len());
                let to = (from + len).min(chars.len());
                c.apply(&chars[from..to].iter().collect::<String>())
            }
            Needle::Text(t, c) => c.apply(t),
            Needle::Chars(s) => s.clone(),
        };
        let s = s.trim();
        if s.is_empty() {
            "a".into()
        } else {
            s.to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }

    pub(crate) fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFn {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
pub(crate) enum Filter {
    Cmp(Col, Op, Lit),
    Text(TextFn, Col, Needle),
    /// `Microsoft.Dynamics.CRM.In`/`NotIn`.
    In {
        col: Col,
        negate: bool,
        values: Vec<Lit>,
        json_style: bool,
    },
    /// `Microsoft.Dynamics.CRM.Between`/`NotBetween` (bounds included).
    Between {
        col: Col,
        negate: bool,
        lo: Lit,
        hi: Lit,
    },
    /// `Microsoft.Dynamics.CRM.Null`/`NotNull`.
    IsNull {
        col: Col,
        negate: bool,
    },
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    /// Redundant parentheses.
    Group(Box<Filter>),
}

impl Filter {
    /// Binding strength: `or` 1, `and` 2, everything else 3.
    pub(crate) fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    pub(crate) fn is_call(&self) -> bool {
        matches!(
            self,
            Filter::Text(..) | Filter::In { .. } | Filter::Between { .. } | Filter::IsNull { .. }
        )
    }
}

/// The filter as OData text, with only the parentheses precedence needs
/// (and the redundant ones of `Group`); `not` takes parentheses unless it
/// negates a function call.
pub(crate) fn render(f: &Filter, rows: &[Account], out: &mut String) {
    let child = |c: &Filter, min: u8, out: &mut String| {
        if c.precedence() < min {
            out.push('(');
            render(c, rows, out);
            out.push(')');
        } else {
            render(c, rows, out);
        }
    };
    match f {
        Filter::Not(e) => {
            out.push_str("not ");
            child(e, if e.is_call() { 3 } else { 4 }, out);
        }
        Filter::And(a, b) => {
            child(a, 2, out);
            out.push_str(" and ");
            child(b, 2, out);
        }
        Filter::Or(a, b) => {
            child(a, 1, out);
            out.push_str(" or ");
            child(b, 1, out);
        }
        Filter::Group(e) => {
            out.push('(');
            render(e, rows, out);
            out.push(')');
        }
        condition => out.push_str(&condition_text(condition, rows)),
    }
}

/// One condition (a comparison or a function call) as OData text.
fn condition_text(f: &Filter, rows: &[Account]) -> String {
    match f {
        Filter::Cmp(col, op, lit) => format!(
            "{} {} {}",
            col.web_name(),
            op.text(),
            lit.resolve(*col, rows).render()
        ),
        Filter::Text(func, col, needle) => {
            let name = match func {
                TextFn::Contains => "contains",
                TextFn::StartsWith => "startswith",
                TextFn::EndsWith => "endswith",
            };
            format!(
                "{name}({},{})",
                col.web_name(),
                quote(&needle.resolve(*col, rows))
            )
        }
        Filter::In {
            col,
            negate,
            values,
            json_style,
        } => {
            let items: Vec<String> = values
                .iter()
                .map(|l| l.resolve(*col, rows).render_item(*json_style))
                .collect();
            format!(
                "Microsoft.Dynamics.CRM.{}(PropertyName='{}',PropertyValues=[{}])",
                if *negate { "NotIn" } else { "In" },
                col.web_name(),
                items.join(",")
            )
        }
        Filter::Between {
            col,
            negate,
            lo,
            hi,
        } => format!(
            "Microsoft.Dynamics.CRM.{}(PropertyName='{}',PropertyValues=[{},{}])",
            if *negate { "NotBetween" } else { "Between" },
            col.web_name(),
            lo.resolve(*col, rows).render_item(true),
            hi.resolve(*col, rows).render_item(true)
        ),
        Filter::IsNull { col, negate } => format!(
            "Microsoft.Dynamics.CRM.{}(PropertyName='{}')",
            if *negate { "NotNull" } else { "Null" },
            col.web_name()
        ),
        Filter::Not(_) | Filter::And(..) | Filter::Or(..) | Filter::Group(_) => {
            unreachable!("render writes the combinations")
        }
    }
}

pub(crate) fn filter_text(f: &Filter, rows: &[Account]) -> String {
    let mut s = String::new();
    render(f, rows, &mut s);
    s
}

/// Three-valued truth: `None` is SQL's UNKNOWN.
pub(crate) type Truth = Option<bool>;

/// The reference evaluation, SQL Server style (see the module comment).
///
/// `ne` with a non-null literal on a null column: when this test was
/// written the emulator said TRUE (`address1_city ne 'Paris'` matched rows
/// without a city: its `compare` gives no ordering and `ne` is "not
/// equal"), and `not` turned every UNKNOWN into TRUE. Dataverse turns `ne`
/// into SQL `<>`, which is UNKNOWN on NULL, so such rows are not returned
/// (the familiar "Does Not Equal leaves out blank rows" of Advanced Find).
/// The reference follows Dataverse: UNKNOWN.
pub(crate) fn eval(f: &Filter, a: &Account, rows: &[Account]) -> Truth {
    match f {
        Filter::Cmp(col, op, lit) => {
            let v = col.value(a);
            match lit.resolve(*col, rows) {
                // `eq null`/`ne null` are IS NULL/IS NOT NULL (only those
                // two operators are generated with null).
                Val::Null => Some((v == Val::Null) == (*op == Op::Eq)),
                _ if v == Val::Null => None,
                l => order(&v, &l).map(|o| op.holds(o)),
            }
        }
        Filter::Text(func, col, needle) => {
            let Val::Str(hay) = col.value(a) else {
                return None;
            };
            let (hay, needle) = (
                hay.to_lowercase(),
                needle.resolve(*col, rows).to_lowercase(),
            );
            Some(match func {
                TextFn::Contains => hay.contains(&needle),
                TextFn::StartsWith => hay.starts_with(&needle),
                TextFn::EndsWith => hay.ends_with(&needle),
            })
        }
        Filter::In {
            col,
            negate,
            values,
            ..
        } => {
            let v = col.value(a);
            if v == Val::Null {
                return None;
            }
            let hit = values
                .iter()
                .any(|l| order(&v, &l.resolve(*col, rows)) == Some(Ordering::Equal));
            Some(hit != *negate)
        }
        Filter::Between {
            col,
            negate,
            lo,
            hi,
        } => {
            let v = col.value(a);
            let from = order(&v, &lo.resolve(*col, rows))?;
            let to = order(&v, &hi.resolve(*col, rows))?;
            Some((from != Ordering::Less && to != Ordering::Greater) != *negate)
        }
        Filter::IsNull { col, negate } => Some((col.value(a) == Val::Null) != *negate),
        Filter::Not(e) => eval(e, a, rows).map(|b| !b),
        Filter::And(x, y) => match (eval(x, a, rows), eval(y, a, rows)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Filter::Or(x, y) => match (eval(x, a, rows), eval(y, a, rows)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Filter::Group(e) => eval(e, a, rows),
    }
}
