//! A query builder that refuses what it does not understand: operators and
//! text functions are enums, every column is checked, and values are
//! escaped, so a caller-supplied string can never change a filter's meaning.

use uuid::Uuid;

use super::target::{ColumnName, EntitySet, Target, TargetError};

/// A single-quoted OData string literal (`'` doubled).
pub(crate) fn escape_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A comparison operator of `$filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

impl std::str::FromStr for Op {
    type Err = TargetError;

    /// `eq ne gt ge lt le`; anything else is an error naming it.
    fn from_str(s: &str) -> Result<Op, TargetError> {
        Ok(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => {
                return Err(TargetError::InvalidName {
                    what: "comparison operator",
                    name: s.chars().take(100).collect(),
                    why: "it must be one of eq, ne, gt, ge, lt, le",
                });
            }
        })
    }
}

/// Text for `contains`/`startswith`/`endswith`, matched literally: Dataverse
/// reads `%`, `_` and `[` in these values as LIKE wildcards ("Filter rows
/// using OData", use wildcard characters), so each is escaped as a
/// one-character set (`[%]`, `[_]`, `[[]`).
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | '_' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A text function of `$filter`; the text is matched literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// `contains(column,'text')`
    Contains,
    /// `startswith(column,'text')`
    StartsWith,
    /// `endswith(column,'text')`
    EndsWith,
}

impl TextMatch {
    fn as_str(self) -> &'static str {
        match self {
            TextMatch::Contains => "contains",
            TextMatch::StartsWith => "startswith",
            TextMatch::EndsWith => "endswith",
        }
    }
}

impl std::str::FromStr for TextMatch {
    type Err = TargetError;

    /// `contains startswith endswith`; anything else is an error naming it.
    fn from_str(s: &str) -> Result<TextMatch, TargetError> {
        Ok(match s {
            "contains" => TextMatch::Contains,
            "startswith" => TextMatch::StartsWith,
            "endswith" => TextMatch::EndsWith,
            _ => {
                return Err(TargetError::InvalidName {
                    what: "text function",
                    name: s.chars().take(100).collect(),
                    why: "it must be one of contains, startswith, endswith",
                });
            }
        })
    }
}

/// A `$filter` value.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A string, quoted and escaped.
    String(String),
    /// A whole number, written exactly.
    Int(i64),
    /// A number; must be finite.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A GUID.
    Guid(Uuid),
    /// A date-time, written in RFC 3339.
    DateTime(time::OffsetDateTime),
    /// `null`.
    Null,
}

impl FilterValue {
    fn render(&self) -> Result<String, TargetError> {
        Ok(match self {
            FilterValue::String(s) => escape_string(s),
            FilterValue::Int(n) => n.to_string(),
            FilterValue::Number(n) if n.is_finite() => n.to_string(),
            FilterValue::Number(_) => {
                return Err(TargetError::InvalidName {
                    what: "number",
                    name: "NaN or infinity".into(),
                    why: "OData numbers are finite",
                });
            }
            FilterValue::Bool(b) => b.to_string(),
            FilterValue::Guid(g) => g.to_string(),
            FilterValue::DateTime(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|_| TargetError::InvalidName {
                    what: "date-time",
                    name: t.to_string(),
                    why: "it cannot be written in RFC 3339",
                })?,
            FilterValue::Null => "null".into(),
        })
    }
}

impl From<&str> for FilterValue {
    fn from(s: &str) -> Self {
        FilterValue::String(s.into())
    }
}
impl From<String> for FilterValue {
    fn from(s: String) -> Self {
        FilterValue::String(s)
    }
}
impl From<f64> for FilterValue {
    fn from(n: f64) -> Self {
        FilterValue::Number(n)
    }
}
impl From<i64> for FilterValue {
    fn from(n: i64) -> Self {
        FilterValue::Int(n)
    }
}
impl From<bool> for FilterValue {
    fn from(b: bool) -> Self {
        FilterValue::Bool(b)
    }
}
impl From<Uuid> for FilterValue {
    fn from(g: Uuid) -> Self {
        FilterValue::Guid(g)
    }
}

/// A column, or a path through single-valued navigation properties
/// (`parentaccountid/name`), each segment checked.
fn property_path(path: &str) -> Result<String, TargetError> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > 4 {
        return Err(TargetError::InvalidName {
            what: "column path",
            name: path.chars().take(100).collect(),
            why: "at most four segments",
        });
    }
    for s in &segments {
        ColumnName::new(s)?;
    }
    Ok(path.to_string())
}

/// A navigation property to expand (`$expand=nav($select=a,b)`), its
/// names checked; used by queries and by single-row retrieves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    navigation: ColumnName,
    select: Vec<ColumnName>,
}

impl Expand {
    /// Expands `navigation`, with only the `select`ed columns of the related
    /// rows when any are named.
    pub fn new(navigation: &str, select: &[&str]) -> Result<Expand, TargetError> {
        Ok(Expand {
            navigation: ColumnName::new(navigation)?,
            select: select
                .iter()
                .map(|c| ColumnName::new(c))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The navigation property.
    pub fn navigation(&self) -> &ColumnName {
        &self.navigation
    }

    /// The item of `$expand`.
    pub(crate) fn render(&self) -> String {
        if self.select.is_empty() {
            return self.navigation.to_string();
        }
        let cols: Vec<&str> = self.select.iter().map(ColumnName::as_str).collect();
        format!("{}($select={})", self.navigation, cols.join(","))
    }
}

/// A collection query. Every method that takes a name checks it and
/// returns an error naming what it refused.
#[derive(Debug, Clone)]
pub struct Query {
    entity_set: EntitySet,
    select: Vec<String>,
    filters: Vec<String>,
    orderby: Vec<String>,
    top: Option<u32>,
    count: bool,
    expand: Vec<String>,
    pub(super) page_size: Option<u32>,
}

impl Query {
    /// A query of every row of `entity_set`.
    pub fn new(entity_set: &EntitySet) -> Self {
        Query {
            entity_set: entity_set.clone(),
            select: Vec::new(),
            filters: Vec::new(),
            orderby: Vec::new(),
            top: None,
            count: false,
            expand: Vec::new(),
            page_size: None,
        }
    }

    /// The collection queried.
    pub fn entity_set(&self) -> &EntitySet {
        &self.entity_set
    }

    /// `$select` these columns.
    pub fn select(mut self, columns: &[&str]) -> Result<Self, TargetError> {
        for c in columns {
            self.select.push(ColumnName::new(c)?.to_string());
        }
        Ok(self)
    }

    /// Adds `column op value`, ANDed with the other conditions.
    pub fn filter(
        mut self,
        column: &str,
        op: Op,
        value: impl Into<FilterValue>,
    ) -> Result<Self, TargetError> {
        let cond = format!(
            "{} {} {}",
            property_path(column)?,
            op.as_str(),
            value.into().render()?
        );
        self.filters.push(cond);
        Ok(self)
    }

    /// Adds `contains`/`startswith`/`endswith(column, 'text')`, ANDed.
    pub fn filter_text(
        mut self,
        function: TextMatch,
        column: &str,
        text: &str,
    ) -> Result<Self, TargetError> {
        let cond = format!(
            "{}({},{})",
            function.as_str(),
            property_path(column)?,
            escape_string(&escape_like(text))
        );
        self.filters.push(cond);
        Ok(self)
    }

    /// Adds an `$orderby` column.
    pub fn order_by(mut self, column: &str, descending: bool) -> Result<Self, TargetError> {
        let col = property_path(column)?;
        self.orderby
            .push(format!("{col}{}", if descending { " desc" } else { "" }));
        Ok(self)
    }

    /// `$top`.
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    /// `$count=true`.
    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    /// `$expand=nav($select=a,b)`.
    pub fn expand(self, navigation: &str, select: &[&str]) -> Result<Self, TargetError> {
        Ok(self.expand_with(&Expand::new(navigation, select)?))
    }

    /// Adds an already checked [`Expand`].
    pub fn expand_with(mut self, expand: &Expand) -> Self {
        self.expand.push(expand.render());
        self
    }

    /// Page size (`Prefer: odata.maxpagesize`), between 1 and 5000.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.clamp(1, 5000));
        self
    }

    /// The `$filter` text, if any condition was added.
    pub fn rendered_filter(&self) -> Option<String> {
        (!self.filters.is_empty()).then(|| self.filters.join(" and "))
    }

    /// The request target with its query options.
    pub(crate) fn target(&self) -> Target {
        let mut t = Target::set(&self.entity_set);
        if !self.select.is_empty() {
            t = t.option("$select", self.select.join(","));
        }
        if let Some(f) = self.rendered_filter() {
            t = t.option("$filter", f);
        }
        if !self.orderby.is_empty() {
            t = t.option("$orderby", self.orderby.join(","));
        }
        if let Some(n) = self.top {
            t = t.option("$top", n.to_string());
        }
        if self.count {
            t = t.option("$count", "true");
        }
        if !self.expand.is_empty() {
            t = t.option("$expand", self.expand.join(","));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> EntitySet {
        EntitySet::new("accounts").unwrap()
    }

    #[test]
    fn caller_strings_cannot_change_a_filter() {
        let q = Query::new(&accounts())
            .filter("name", Op::Eq, "x' or name ne 'y")
            .unwrap()
            .filter_text(TextMatch::StartsWith, "name", "O'B")
            .unwrap();
        assert_eq!(
            q.rendered_filter().unwrap(),
            "name eq 'x'' or name ne ''y' and startswith(name,'O''B')"
        );
        let id = Uuid::nil();
        let q = Query::new(&accounts())
            .filter("_parentaccountid_value", Op::Eq, id)
            .unwrap();
        assert!(
            q.target()
                .relative()
                .contains("00000000-0000-0000-0000-000000000000")
        );
    }

    #[test]
    fn whole_numbers_are_written_exactly() {
        let q = Query::new(&accounts())
            .filter("versionnumber", Op::Eq, 9_007_199_254_740_993i64)
            .unwrap();
        assert_eq!(
            q.rendered_filter().unwrap(),
            "versionnumber eq 9007199254740993"
        );
    }

    #[test]
    fn text_is_matched_literally() {
        let q = Query::new(&accounts())
            .filter_text(TextMatch::Contains, "name", "50%_[x]")
            .unwrap();
        assert_eq!(
            q.rendered_filter().unwrap(),
            "contains(name,'50[%][_][[]x]')"
        );
    }

    #[test]
    fn what_is_not_understood_is_refused_by_name() {
        let e = Query::new(&accounts())
            .filter("name) or (1 eq 1", Op::Eq, 1)
            .unwrap_err();
        assert!(e.to_string().contains("name) or (1 eq 1"), "{e}");
        let e = "neq".parse::<Op>().unwrap_err();
        assert!(e.to_string().contains("\"neq\""), "{e}");
        assert!("drop".parse::<Op>().is_err());
        assert!("substringof".parse::<TextMatch>().is_err());
        assert!(Query::new(&accounts()).select(&["name", "a,b"]).is_err());
        assert!(
            Query::new(&accounts())
                .order_by("name desc", false)
                .is_err()
        );
        assert!(Query::new(&accounts()).expand("x($top=1)", &[]).is_err());
        assert!(
            Query::new(&accounts())
                .filter("revenue", Op::Gt, f64::NAN)
                .is_err()
        );
        assert!(
            Query::new(&accounts())
                .filter("a/b/c/d/e", Op::Eq, 1)
                .is_err()
        );
        Query::new(&accounts())
            .filter("parentaccountid/name", Op::Eq, "x")
            .unwrap();
    }
}
