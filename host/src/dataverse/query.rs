//! A query builder whose values are escaped so a caller-supplied string
//! can never change the meaning of a filter.

use uuid::Uuid;

/// A single-quoted OData string literal (`'` doubled).
pub fn escape_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A `$filter` value.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    String(String),
    Number(f64),
    Bool(bool),
    Guid(Uuid),
    /// ISO date or date-time.
    DateTime(time::OffsetDateTime),
    Null,
}

impl FilterValue {
    fn render(&self) -> String {
        match self {
            FilterValue::String(s) => escape_string(s),
            FilterValue::Number(n) => n.to_string(),
            FilterValue::Bool(b) => b.to_string(),
            FilterValue::Guid(g) => g.to_string(),
            FilterValue::DateTime(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            FilterValue::Null => "null".into(),
        }
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
        FilterValue::Number(n as f64)
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

/// Column names are checked so they cannot carry an expression either.
fn column(name: &str) -> String {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
    if ok {
        name.to_string()
    } else {
        "invalid_column_name".to_string()
    }
}

/// A collection query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub entity_set: String,
    select: Vec<String>,
    filters: Vec<String>,
    orderby: Vec<String>,
    top: Option<u32>,
    count: bool,
    expand: Vec<String>,
    pub(super) page_size: Option<u32>,
}

impl Query {
    pub fn new(entity_set: &str) -> Self {
        Query {
            entity_set: entity_set.into(),
            ..Default::default()
        }
    }

    pub fn select(mut self, columns: &[&str]) -> Self {
        self.select.extend(columns.iter().map(|c| column(c)));
        self
    }

    /// Adds `column op value` (ANDed with the other conditions); `op` is
    /// one of `eq ne gt ge lt le`.
    pub fn filter(mut self, col: &str, op: &str, value: impl Into<FilterValue>) -> Self {
        let op = match op {
            "eq" | "ne" | "gt" | "ge" | "lt" | "le" => op,
            _ => "eq",
        };
        self.filters
            .push(format!("{} {op} {}", column(col), value.into().render()));
        self
    }

    /// Adds `contains`/`startswith`/`endswith(column, 'text')`.
    pub fn filter_text(mut self, function: &str, col: &str, text: &str) -> Self {
        let f = match function {
            "contains" | "startswith" | "endswith" => function,
            _ => "contains",
        };
        self.filters
            .push(format!("{f}({},{})", column(col), escape_string(text)));
        self
    }

    pub fn order_by(mut self, col: &str, descending: bool) -> Self {
        self.orderby.push(format!(
            "{}{}",
            column(col),
            if descending { " desc" } else { "" }
        ));
        self
    }

    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    /// `$expand=nav($select=a,b)`.
    pub fn expand(mut self, navigation: &str, select: &[&str]) -> Self {
        let cols: Vec<String> = select.iter().map(|c| column(c)).collect();
        self.expand.push(if cols.is_empty() {
            column(navigation)
        } else {
            format!("{}($select={})", column(navigation), cols.join(","))
        });
        self
    }

    /// Page size (`Prefer: odata.maxpagesize`), at most 5000.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.clamp(1, 5000));
        self
    }

    /// The request path with its URL-encoded query string.
    pub fn to_path(&self) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        if !self.select.is_empty() {
            pairs.append_pair("$select", &self.select.join(","));
        }
        if !self.filters.is_empty() {
            pairs.append_pair("$filter", &self.filters.join(" and "));
        }
        if !self.orderby.is_empty() {
            pairs.append_pair("$orderby", &self.orderby.join(","));
        }
        if let Some(t) = self.top {
            pairs.append_pair("$top", &t.to_string());
        }
        if self.count {
            pairs.append_pair("$count", "true");
        }
        if !self.expand.is_empty() {
            pairs.append_pair("$expand", &self.expand.join(","));
        }
        let qs = pairs.finish();
        if qs.is_empty() {
            self.entity_set.clone()
        } else {
            format!("{}?{qs}", self.entity_set)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_strings_cannot_change_a_filter() {
        let q = Query::new("accounts")
            .filter("name", "eq", "x' or name ne 'y")
            .filter_text("startswith", "name", "O'B");
        let decoded: Vec<(String, String)> =
            url::form_urlencoded::parse(q.to_path().split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            decoded[0].1,
            "name eq 'x'' or name ne ''y' and startswith(name,'O''B')"
        );
        let q = Query::new("accounts")
            .filter("name) or (1 eq 1", "eq", 1)
            .filter("x", "drop", true);
        assert!(q.to_path().contains("invalid_column_name") && q.to_path().contains("x+eq+true"));
        let id = Uuid::nil();
        assert!(
            Query::new("a")
                .filter("_parentaccountid_value", "eq", id)
                .to_path()
                .contains("00000000-0000-0000-0000-000000000000")
        );
    }
}
