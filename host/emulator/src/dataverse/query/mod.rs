//! Query options (`$select`, `$filter`, `$orderby`, `$top`, `$count`,
//! paging) and record serialisation with optional annotations
//! ("Query data using the Web API", <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview>,
//! and its pages on filtering, paging and aggregation).

mod apply;
mod options;
mod render;
mod run;

pub use apply::{Apply, aggregate};
pub use options::{encode_skiptoken, filter_properties, parse_expand, parse_options};
pub use render::{check_expand, expand_into, render, render_aliased};
pub use run::{collection_related, order_values, page, run, select_rows, single_related};

use crate::odata::filter::Expr;

/// Largest page and largest `$count` ("Page results",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results>; "Count rows",
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/count-rows>).
pub const MAX_PAGE: usize = 5000;

/// Which `@`-annotations the client asked for with `Prefer: odata.include-annotations`.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    patterns: Vec<String>,
}

impl Annotations {
    /// Parses the preference value (`"*"`, or a comma list with wildcards).
    pub fn parse(value: Option<&str>) -> Self {
        let patterns = value
            .map(|v| {
                v.trim_matches('"')
                    .split(',')
                    .map(|p| p.trim().trim_matches('"').to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Annotations { patterns }
    }

    pub fn any(&self) -> bool {
        !self.patterns.is_empty()
    }

    pub fn wants(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| {
            p == "*"
                || p == name
                || p.strip_suffix('*')
                    .is_some_and(|prefix| name.starts_with(prefix))
        })
    }
}

/// The parsed system query options of a request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    pub select: Option<Vec<String>>,
    pub filter: Option<Expr>,
    pub orderby: Vec<(String, bool)>,
    pub top: Option<usize>,
    pub count: bool,
    pub skiptoken: Option<usize>,
    /// Navigation properties the filter walks.
    pub filter_navs: Vec<String>,
    pub expand: Vec<Expand>,
    pub apply: Option<Apply>,
}

/// One `$expand` item: a navigation property and its nested options.
#[derive(Debug, Clone, Default)]
pub struct Expand {
    pub nav: String,
    pub options: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::options::decode_skiptoken;
    use super::render::{format_datetime, formatted_number};
    use super::*;

    #[test]
    fn skiptoken_round_trips_and_numbers_format() {
        let t = encode_skiptoken(250, 2);
        assert_eq!(decode_skiptoken(&t), Some(250));
        assert_eq!(decode_skiptoken("garbage"), None);
        assert_eq!(formatted_number(1234567.5, 2), "1,234,567.50");
        assert_eq!(formatted_number(-12.0, 0), "-12");
        assert_eq!(
            format_datetime("2023-04-07T14:59:01Z").unwrap(),
            "4/7/2023 2:59 PM"
        );
    }

    #[test]
    fn annotation_patterns() {
        let a = Annotations::parse(Some("\"OData.Community.Display.V1.*\""));
        assert!(a.wants("OData.Community.Display.V1.FormattedValue"));
        assert!(!a.wants("Microsoft.Dynamics.CRM.lookuplogicalname"));
        assert!(Annotations::parse(Some("\"*\"")).wants("anything"));
        assert!(!Annotations::parse(None).any());
    }
}
