//! The scoring rules: which signals the `lead` table of this environment can
//! give (read from its metadata), and a lead's score from its fields.
//!
//! Each signal adds points; a lead's score is its points as a share of the
//! points the environment's columns make possible, 0 to 100, so an
//! environment without `revenue` does not cap every lead below the others'.
//!
//! | signal | column (kind) | points |
//! | --- | --- | --- |
//! | reachable by e-mail | `emailaddress1` (String), unless `donotemail` | 15 |
//! | reachable by phone | `telephone1` or `mobilephone` (String), unless `donotphone` | 10 |
//! | names a company | `companyname` (String) | 10 |
//! | senior job title | `jobtitle` (String): chief, director, head, VP, owner... | 15 (any title: 5) |
//! | revenue | `revenue` (Money): at least 10 M / 1 M | 20 / 10 |
//! | company size | `numberofemployees` (Integer): at least 500 / 50 | 15 / 8 |
//! | referred | `leadsourcecode` (Picklist) labelled Employee Referral, External Referral or Partner | 10 |

use std::collections::BTreeSet;

use dvhost_sdk::Record;
use dvhost_sdk::metadata::{ColumnInfo, TableDescription};
use serde_json::Value;

/// Words in a job title that mark someone who can buy.
const SENIOR_TITLES: [&str; 9] = [
    "chief",
    "ceo",
    "cto",
    "cfo",
    "director",
    "head",
    "vp",
    "vice president",
    "owner",
];

/// Lead sources whose leads convert best: someone vouched for them.
const REFERRAL_SOURCES: [&str; 3] = ["Employee Referral", "External Referral", "Partner"];

/// A score of at least this is rated Hot.
pub const HOT: u32 = 60;
/// A score of at least this (and below [`HOT`]) is rated Warm; below, Cold.
pub const WARM: u32 = 30;

/// The signals this environment's `lead` table supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    email: Option<&'static str>,
    do_not_email: Option<&'static str>,
    phones: Vec<&'static str>,
    do_not_phone: Option<&'static str>,
    company: Option<&'static str>,
    job_title: Option<&'static str>,
    revenue: Option<&'static str>,
    employees: Option<&'static str>,
    /// The lead source column and its values that count as referrals.
    referral: Option<(&'static str, BTreeSet<i64>)>,
}

/// `name` if the table has it with type `kind`.
fn column(description: &TableDescription, name: &'static str, kind: &str) -> Option<&'static str> {
    description
        .column(name)
        .filter(|column| column.kind.eq_ignore_ascii_case(kind))
        .map(|_| name)
}

fn referral_values(column: &ColumnInfo) -> BTreeSet<i64> {
    REFERRAL_SOURCES
        .iter()
        .filter_map(|label| column.option_value(label))
        .collect()
}

impl Signals {
    /// The signals the table described by `description` can give.
    pub fn from_metadata(description: &TableDescription) -> Signals {
        let referral = description
            .column("leadsourcecode")
            .filter(|column| column.kind.eq_ignore_ascii_case("Picklist"))
            .map(|column| ("leadsourcecode", referral_values(column)))
            .filter(|(_, values)| !values.is_empty());
        Signals {
            email: column(description, "emailaddress1", "String"),
            do_not_email: column(description, "donotemail", "Boolean"),
            phones: ["telephone1", "mobilephone"]
                .into_iter()
                .filter_map(|name| column(description, name, "String"))
                .collect(),
            do_not_phone: column(description, "donotphone", "Boolean"),
            company: column(description, "companyname", "String"),
            job_title: column(description, "jobtitle", "String"),
            revenue: column(description, "revenue", "Money"),
            employees: column(description, "numberofemployees", "Integer"),
            referral,
        }
    }

    /// The columns a query must select to score leads.
    pub fn columns(&self) -> Vec<&'static str> {
        let mut columns: Vec<&'static str> = [
            self.email,
            self.do_not_email,
            self.do_not_phone,
            self.company,
            self.job_title,
            self.revenue,
            self.employees,
            self.referral.as_ref().map(|(name, _)| *name),
        ]
        .into_iter()
        .flatten()
        .collect();
        columns.extend(&self.phones);
        columns
    }

    /// The most points a lead can get here.
    pub fn max_points(&self) -> u32 {
        let mut points = 0;
        points += if self.email.is_some() { 15 } else { 0 };
        points += if self.phones.is_empty() { 0 } else { 10 };
        points += if self.company.is_some() { 10 } else { 0 };
        points += if self.job_title.is_some() { 15 } else { 0 };
        points += if self.revenue.is_some() { 20 } else { 0 };
        points += if self.employees.is_some() { 15 } else { 0 };
        points += if self.referral.is_some() { 10 } else { 0 };
        points
    }

    /// A lead's score (0 to 100) and the reasons for its points.
    pub fn score(&self, lead: &Record) -> (u32, Vec<&'static str>) {
        let mut points = 0;
        let mut reasons = Vec::new();
        let mut add = |gained: u32, reason: &'static str| {
            points += gained;
            reasons.push(reason);
        };
        if self.email.is_some_and(|name| has_text(lead, name)) && !flag(lead, self.do_not_email) {
            add(15, "reachable by e-mail");
        }
        if self.phones.iter().any(|name| has_text(lead, name)) && !flag(lead, self.do_not_phone) {
            add(10, "reachable by phone");
        }
        if self.company.is_some_and(|name| has_text(lead, name)) {
            add(10, "names a company");
        }
        if let Some(title) = self.job_title.and_then(|name| text(lead, name)) {
            let title = title.to_lowercase();
            if SENIOR_TITLES.iter().any(|word| title.contains(word)) {
                add(15, "senior job title");
            } else {
                add(5, "has a job title");
            }
        }
        match self.revenue.and_then(|name| number(lead, name)) {
            Some(revenue) if revenue >= 10_000_000.0 => add(20, "revenue of 10 M or more"),
            Some(revenue) if revenue >= 1_000_000.0 => add(10, "revenue of 1 M or more"),
            _ => {}
        }
        match self.employees.and_then(|name| number(lead, name)) {
            Some(employees) if employees >= 500.0 => add(15, "500 employees or more"),
            Some(employees) if employees >= 50.0 => add(8, "50 employees or more"),
            _ => {}
        }
        if let Some((name, values)) = &self.referral
            && lead
                .get(*name)
                .and_then(Value::as_i64)
                .is_some_and(|value| values.contains(&value))
        {
            add(10, "referred");
        }
        let max = self.max_points();
        let score = (points * 100).checked_div(max).unwrap_or(0);
        (score, reasons)
    }
}

/// The rating label for a score.
pub fn rating(score: u32) -> &'static str {
    if score >= HOT {
        "Hot"
    } else if score >= WARM {
        "Warm"
    } else {
        "Cold"
    }
}

fn text<'a>(lead: &'a Record, name: &str) -> Option<&'a str> {
    lead.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

fn has_text(lead: &Record, name: &str) -> bool {
    text(lead, name).is_some()
}

fn number(lead: &Record, name: &str) -> Option<f64> {
    lead.get(name).and_then(Value::as_f64)
}

fn flag(lead: &Record, name: Option<&str>) -> bool {
    name.and_then(|name| lead.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvhost_sdk::metadata::{Operations, OptionValue, RequiredLevel, TableInfo};
    use serde_json::json;

    fn column_of(name: &str, kind: &str, options: &[(i64, &str)]) -> ColumnInfo {
        ColumnInfo {
            logical_name: name.to_owned(),
            kind: kind.to_owned(),
            display_name: None,
            required: RequiredLevel::None,
            max_length: None,
            targets: Vec::new(),
            options: options
                .iter()
                .map(|(value, label)| OptionValue {
                    value: *value,
                    label: Some((*label).to_owned()),
                })
                .collect(),
            valid_for_create: true,
            valid_for_update: true,
            ..ColumnInfo::default()
        }
    }

    fn lead_table(columns: Vec<ColumnInfo>) -> TableDescription {
        TableDescription {
            table: TableInfo {
                logical_name: "lead".to_owned(),
                display_name: None,
                primary_id: "leadid".to_owned(),
                primary_name: Some("fullname".to_owned()),
                is_custom: false,
                granted: Operations::default(),
            },
            columns,
        }
    }

    fn full_table() -> TableDescription {
        lead_table(vec![
            column_of("emailaddress1", "String", &[]),
            column_of("donotemail", "Boolean", &[]),
            column_of("telephone1", "String", &[]),
            column_of("companyname", "String", &[]),
            column_of("jobtitle", "String", &[]),
            column_of("revenue", "Money", &[]),
            column_of("numberofemployees", "Integer", &[]),
            column_of(
                "leadsourcecode",
                "Picklist",
                &[(2, "Employee Referral"), (8, "Web")],
            ),
        ])
    }

    fn record(value: serde_json::Value) -> Record {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_perfect_lead_scores_100() {
        let signals = Signals::from_metadata(&full_table());
        assert_eq!(signals.max_points(), 95);
        let lead = record(json!({
            "emailaddress1": "a@b.c", "telephone1": "1", "companyname": "C",
            "jobtitle": "Head of IT", "revenue": 20_000_000.0, "numberofemployees": 900,
            "leadsourcecode": 2
        }));
        let (score, reasons) = signals.score(&lead);
        assert_eq!(score, 100);
        assert_eq!(reasons.len(), 7);
        assert_eq!(rating(score), "Hot");
    }

    #[test]
    fn opt_outs_and_thresholds_lower_the_score() {
        let signals = Signals::from_metadata(&full_table());
        let lead = record(json!({
            "emailaddress1": "a@b.c", "donotemail": true, "jobtitle": "Analyst",
            "revenue": 2_000_000, "numberofemployees": 49, "leadsourcecode": 8
        }));
        let (score, reasons) = signals.score(&lead);
        assert_eq!(reasons, ["has a job title", "revenue of 1 M or more"]);
        assert_eq!(score, 15 * 100 / 95);
        assert_eq!(rating(score), "Cold");
        assert_eq!(rating(WARM), "Warm");
    }

    #[test]
    fn missing_or_mistyped_columns_are_not_signals() {
        let table = lead_table(vec![
            column_of("emailaddress1", "String", &[]),
            // A revenue column that is not Money is not trusted.
            column_of("revenue", "String", &[]),
        ]);
        let signals = Signals::from_metadata(&table);
        assert_eq!(signals.columns(), ["emailaddress1"]);
        assert_eq!(signals.max_points(), 15);
        let (score, _) = signals.score(&record(json!({"emailaddress1": " x@y.z "})));
        assert_eq!(score, 100);
        let (score, _) = signals.score(&record(json!({"emailaddress1": "  "})));
        assert_eq!(score, 0);
        assert_eq!(
            Signals::from_metadata(&lead_table(vec![]))
                .score(&Record::new())
                .0,
            0
        );
    }
}
