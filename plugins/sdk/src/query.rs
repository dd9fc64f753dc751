//! The typed query builder and its pages. Conditions are structured (column,
//! operator, value): the host writes the `$filter` text, so no value a plugin
//! passes can change a query's meaning.

use serde::de::DeserializeOwned;

use crate::bindings::dvhost::plugin::records as wit;
use crate::error::Error;
use crate::raw::RawRecord;
use crate::records::{Expand, Record};

/// A comparison operator of [`Condition::compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

/// A text match of [`Condition::text`]; the text is matched literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextMatch {
    /// The column contains the text.
    Contains,
    /// The column starts with the text.
    StartsWith,
    /// The column ends with the text.
    EndsWith,
}

/// A value a column is compared with. Converts from `&str`/`String` (text),
/// integers, `f64` and `bool`; GUIDs and dates are explicit.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// `null`.
    Null,
    /// A text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A decimal or money amount.
    Number(f64),
    /// A yes/no value.
    Boolean(bool),
    /// A GUID (ids and lookups).
    Guid(String),
    /// An ISO 8601 date or date-time.
    DateTime(String),
}

impl From<&str> for FilterValue {
    fn from(text: &str) -> FilterValue {
        FilterValue::Text(text.to_owned())
    }
}

impl From<String> for FilterValue {
    fn from(text: String) -> FilterValue {
        FilterValue::Text(text)
    }
}

impl From<i64> for FilterValue {
    fn from(number: i64) -> FilterValue {
        FilterValue::Integer(number)
    }
}

impl From<i32> for FilterValue {
    fn from(number: i32) -> FilterValue {
        FilterValue::Integer(number.into())
    }
}

impl From<u32> for FilterValue {
    fn from(number: u32) -> FilterValue {
        FilterValue::Integer(number.into())
    }
}

impl From<f64> for FilterValue {
    fn from(number: f64) -> FilterValue {
        FilterValue::Number(number)
    }
}

impl From<bool> for FilterValue {
    fn from(flag: bool) -> FilterValue {
        FilterValue::Boolean(flag)
    }
}

impl FilterValue {
    fn to_wit(&self) -> wit::Value {
        match self {
            FilterValue::Null => wit::Value::Null,
            FilterValue::Text(text) => wit::Value::Text(text.clone()),
            FilterValue::Integer(number) => wit::Value::Integer(*number),
            FilterValue::Number(number) => wit::Value::Number(*number),
            FilterValue::Boolean(flag) => wit::Value::Boolean(*flag),
            FilterValue::Guid(id) => wit::Value::Guid(id.clone()),
            FilterValue::DateTime(when) => wit::Value::DateTime(when.clone()),
        }
    }
}

/// One condition of a query's filter; a query's conditions are ANDed.
///
/// A column may be a path through single-valued navigation properties
/// (`parentaccountid/name`); a lookup is compared as `_<column>_value` with a
/// [`FilterValue::Guid`].
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `column operator value`.
    Compare {
        /// The column (or navigation path).
        column: String,
        /// The comparison.
        operator: Operator,
        /// The value compared with.
        value: FilterValue,
    },
    /// `contains`/`startswith`/`endswith(column, text)`.
    Text {
        /// The kind of match.
        matching: TextMatch,
        /// The column (or navigation path).
        column: String,
        /// The text, matched literally.
        text: String,
    },
}

impl Condition {
    /// `column operator value`.
    pub fn compare(
        column: impl Into<String>,
        operator: Operator,
        value: impl Into<FilterValue>,
    ) -> Condition {
        Condition::Compare {
            column: column.into(),
            operator,
            value: value.into(),
        }
    }

    /// `column eq value`.
    pub fn eq(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Eq, value)
    }

    /// `column ne value`.
    pub fn ne(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Ne, value)
    }

    /// `column gt value`.
    pub fn gt(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Gt, value)
    }

    /// `column ge value`.
    pub fn ge(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Ge, value)
    }

    /// `column lt value`.
    pub fn lt(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Lt, value)
    }

    /// `column le value`.
    pub fn le(column: impl Into<String>, value: impl Into<FilterValue>) -> Condition {
        Condition::compare(column, Operator::Le, value)
    }

    /// `column eq null`.
    pub fn is_null(column: impl Into<String>) -> Condition {
        Condition::eq(column, FilterValue::Null)
    }

    /// `column ne null`.
    pub fn is_not_null(column: impl Into<String>) -> Condition {
        Condition::ne(column, FilterValue::Null)
    }

    /// A text match of `column` against `text`, taken literally.
    pub fn text(
        matching: TextMatch,
        column: impl Into<String>,
        text: impl Into<String>,
    ) -> Condition {
        Condition::Text {
            matching,
            column: column.into(),
            text: text.into(),
        }
    }

    /// `contains(column, text)`.
    pub fn contains(column: impl Into<String>, text: impl Into<String>) -> Condition {
        Condition::text(TextMatch::Contains, column, text)
    }

    /// `startswith(column, text)`.
    pub fn starts_with(column: impl Into<String>, text: impl Into<String>) -> Condition {
        Condition::text(TextMatch::StartsWith, column, text)
    }

    /// `endswith(column, text)`.
    pub fn ends_with(column: impl Into<String>, text: impl Into<String>) -> Condition {
        Condition::text(TextMatch::EndsWith, column, text)
    }

    fn to_wit(&self) -> wit::Condition {
        match self {
            Condition::Compare {
                column,
                operator,
                value,
            } => {
                let operator = match operator {
                    Operator::Eq => wit::Operator::Eq,
                    Operator::Ne => wit::Operator::Ne,
                    Operator::Gt => wit::Operator::Gt,
                    Operator::Ge => wit::Operator::Ge,
                    Operator::Lt => wit::Operator::Lt,
                    Operator::Le => wit::Operator::Le,
                };
                wit::Condition::Compare((column.clone(), operator, value.to_wit()))
            }
            Condition::Text {
                matching,
                column,
                text,
            } => {
                let matching = match matching {
                    TextMatch::Contains => wit::TextMatch::Contains,
                    TextMatch::StartsWith => wit::TextMatch::StartsWith,
                    TextMatch::EndsWith => wit::TextMatch::EndsWith,
                };
                wit::Condition::Text((matching, column.clone(), text.clone()))
            }
        }
    }
}

/// A query of one table, built from [`Table::query`](crate::Table::query).
///
/// [`run`](Query::run) returns the first [`Page`]; follow it with
/// [`Page::next`] until it returns `None`, or let [`pages`](Query::pages) or
/// [`all`](Query::all) do that.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a query does nothing until it is run"]
pub struct Query {
    table: String,
    select: Vec<String>,
    filter: Vec<Condition>,
    order_by: Vec<(String, bool)>,
    top: Option<u32>,
    page_size: Option<u32>,
    count: bool,
    expand: Vec<Expand>,
}

impl Query {
    /// A query of all rows of `table`, all columns, Dataverse's page size.
    pub fn new(table: impl Into<String>) -> Query {
        Query {
            table: table.into(),
            select: Vec::new(),
            filter: Vec::new(),
            order_by: Vec::new(),
            top: None,
            page_size: None,
            count: false,
            expand: Vec::new(),
        }
    }

    /// Only these columns (all when none are named).
    pub fn select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Query {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Only rows meeting `condition` too (conditions are ANDed).
    pub fn filter(mut self, condition: Condition) -> Query {
        self.filter.push(condition);
        self
    }

    /// Then by `column`, ascending.
    pub fn order_by(mut self, column: impl Into<String>) -> Query {
        self.order_by.push((column.into(), false));
        self
    }

    /// Then by `column`, descending.
    pub fn order_by_desc(mut self, column: impl Into<String>) -> Query {
        self.order_by.push((column.into(), true));
        self
    }

    /// At most `rows` rows in all.
    pub fn top(mut self, rows: u32) -> Query {
        self.top = Some(rows);
        self
    }

    /// `rows` rows per page (1 to 5000; the host refuses others).
    pub fn page_size(mut self, rows: u32) -> Query {
        self.page_size = Some(rows);
        self
    }

    /// Also counts the matching rows (up to 5000); see [`Page::count`].
    pub fn count(mut self) -> Query {
        self.count = true;
        self
    }

    /// Also the related rows behind a navigation property.
    pub fn expand(mut self, expand: Expand) -> Query {
        self.expand.push(expand);
        self
    }

    fn to_wit(&self) -> wit::QueryOptions {
        wit::QueryOptions {
            select: self.select.clone(),
            filter: self.filter.iter().map(Condition::to_wit).collect(),
            order_by: self
                .order_by
                .iter()
                .map(|(column, descending)| wit::Order {
                    column: column.clone(),
                    descending: *descending,
                })
                .collect(),
            top: self.top,
            page_size: self.page_size,
            count: self.count,
            expand: self.expand.iter().map(Expand::to_wit).collect(),
        }
    }

    /// Runs the query; returns its first page.
    pub fn run(&self) -> Result<Page, Error> {
        let page = wit::query(&self.table, &self.to_wit())?;
        Ok(Page { inner: page })
    }

    /// Runs the query lazily: each item is the rows of one page, the next page
    /// fetched only when asked for. After an error the iterator ends.
    pub fn pages(&self) -> Pages {
        Pages {
            state: PagesState::Start(self.clone()),
        }
    }

    /// Every matching row, following the pages to the end.
    pub fn all(&self) -> Result<Vec<Record>, Error> {
        self.all_as()
    }

    /// Every matching row as a type of the plugin's, following the pages to
    /// the end.
    pub fn all_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        let mut rows = Vec::new();
        let mut page = self.run()?;
        loop {
            rows.extend(page.rows_as::<T>()?);
            match page.next()? {
                Some(next) => page = next,
                None => return Ok(rows),
            }
        }
    }
}

/// One page of a query's answer. Its next link stays in the host: the page
/// can only be followed with [`next`](Page::next), and it dies with the
/// invocation.
#[derive(Debug)]
pub struct Page {
    inner: wit::Page,
}

impl Page {
    /// The rows of this page, as the host returned them (JSON object texts).
    pub fn rows_json(&self) -> Vec<String> {
        self.inner.rows()
    }

    /// The rows of this page.
    pub fn rows(&self) -> Result<Vec<Record>, Error> {
        self.rows_as()
    }

    /// The rows of this page, unparsed, to return or pass on unchanged.
    pub fn raw_rows(&self) -> Result<Vec<RawRecord>, Error> {
        self.inner
            .rows()
            .into_iter()
            .map(RawRecord::from_json)
            .collect()
    }

    /// The rows of this page as a type of the plugin's.
    pub fn rows_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.inner
            .rows()
            .iter()
            .map(|row| serde_json::from_str(row).map_err(Error::json))
            .collect()
    }

    /// The number of matching rows, when the query asked for it with
    /// [`Query::count`].
    pub fn count(&self) -> Option<u64> {
        self.inner.count()
    }

    /// Whether another page follows.
    pub fn has_more(&self) -> bool {
        self.inner.has_more()
    }

    /// The next page, or `None` after the last.
    pub fn next(&self) -> Result<Option<Page>, Error> {
        Ok(self.inner.next()?.map(|inner| Page { inner }))
    }
}

/// The pages of a query, from [`Query::pages`]: each item is one page's rows.
#[derive(Debug)]
pub struct Pages {
    state: PagesState,
}

#[derive(Debug)]
enum PagesState {
    Start(Query),
    After(Page),
    Done,
}

impl Iterator for Pages {
    type Item = Result<Vec<Record>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let page = match std::mem::replace(&mut self.state, PagesState::Done) {
            PagesState::Start(query) => query.run(),
            PagesState::After(page) => match page.next() {
                Ok(Some(next)) => Ok(next),
                Ok(None) => return None,
                Err(error) => Err(error),
            },
            PagesState::Done => return None,
        };
        match page.and_then(|page| page.rows().map(|rows| (page, rows))) {
            Ok((page, rows)) => {
                self.state = PagesState::After(page);
                Some(Ok(rows))
            }
            Err(error) => Some(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_maps_every_option_to_wit() {
        let query = Query::new("contact")
            .select(["fullname", "emailaddress1"])
            .filter(Condition::eq(
                "_parentcustomerid_value",
                FilterValue::Guid("g".to_owned()),
            ))
            .filter(Condition::starts_with("lastname", "O'B"))
            .filter(Condition::is_not_null("emailaddress1"))
            .order_by("lastname")
            .order_by_desc("createdon")
            .top(10)
            .page_size(5)
            .count()
            .expand(Expand::new("parentcustomerid_account").select(["name"]));
        let options = query.to_wit();
        assert_eq!(options.select, ["fullname", "emailaddress1"]);
        assert_eq!(
            options.filter,
            vec![
                wit::Condition::Compare((
                    "_parentcustomerid_value".to_owned(),
                    wit::Operator::Eq,
                    wit::Value::Guid("g".to_owned()),
                )),
                wit::Condition::Text((
                    wit::TextMatch::StartsWith,
                    "lastname".to_owned(),
                    "O'B".to_owned(),
                )),
                wit::Condition::Compare((
                    "emailaddress1".to_owned(),
                    wit::Operator::Ne,
                    wit::Value::Null,
                )),
            ]
        );
        assert_eq!(
            options.order_by,
            vec![
                wit::Order {
                    column: "lastname".to_owned(),
                    descending: false
                },
                wit::Order {
                    column: "createdon".to_owned(),
                    descending: true
                },
            ]
        );
        assert_eq!(
            (options.top, options.page_size, options.count),
            (Some(10), Some(5), true)
        );
        assert_eq!(options.expand[0].navigation, "parentcustomerid_account");
    }

    #[test]
    fn values_convert_by_type() {
        assert_eq!(FilterValue::from(3).to_wit(), wit::Value::Integer(3));
        assert_eq!(FilterValue::from(2.5).to_wit(), wit::Value::Number(2.5));
        assert_eq!(FilterValue::from(true).to_wit(), wit::Value::Boolean(true));
        assert_eq!(
            FilterValue::from("x").to_wit(),
            wit::Value::Text("x".to_owned())
        );
        assert_eq!(
            FilterValue::DateTime("2025-01-01".to_owned()).to_wit(),
            wit::Value::DateTime("2025-01-01".to_owned())
        );
        for (operator, expected) in [
            (Operator::Gt, wit::Operator::Gt),
            (Operator::Ge, wit::Operator::Ge),
            (Operator::Lt, wit::Operator::Lt),
            (Operator::Le, wit::Operator::Le),
        ] {
            let wit::Condition::Compare((_, got, _)) =
                Condition::compare("n", operator, 1).to_wit()
            else {
                panic!("a compare condition");
            };
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_new_query_asks_for_everything() {
        let options = Query::new("account").to_wit();
        assert!(options.select.is_empty() && options.filter.is_empty());
        assert_eq!(
            (options.top, options.page_size, options.count),
            (None, None, false)
        );
    }
}
