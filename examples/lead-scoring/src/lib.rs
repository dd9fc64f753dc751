//! A realistic dvhost plugin: scores open leads from their fields and flags
//! duplicate contacts by e-mail. Both read the tables' metadata first, so
//! they use only the columns this environment has, with the types they
//! expect (see `scoring.rs` for the rules, `duplicates.rs` for matching).

mod duplicates;
mod scoring;

use dvhost_sdk::metadata::{self, ColumnInfo, TableDescription};
use dvhost_sdk::{ActionError, Condition, Empty, Record, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use duplicates::{Finder, Group};
use scoring::Signals;

/// Rows per page read from Dataverse.
const PAGE_SIZE: u32 = 500;
/// Ratings written per `update-many` call.
const WRITE_BATCH: usize = 100;
/// Leads in the ranking when the caller does not say.
const DEFAULT_LIMIT: usize = 25;

/// Input of `score-leads`.
#[derive(Deserialize, JsonSchema)]
struct ScoreLeads {
    /// How many leads the ranking shows (default 25); every open lead is
    /// scored.
    #[serde(default)]
    limit: Option<usize>,
    /// Also writes each lead's rating (Hot, Warm, Cold) to its rating column
    /// (`leadqualitycode`) when this environment has a writable one.
    #[serde(default)]
    write_back: bool,
}

/// One lead of the ranking.
#[derive(Serialize, JsonSchema)]
struct Ranked {
    /// The lead's id.
    id: String,
    /// Its primary name.
    name: Option<String>,
    /// Its score, 0 to 100.
    score: u32,
    /// Hot (60 and up), Warm (30 and up) or Cold.
    rating: &'static str,
    /// What earned its points.
    reasons: Vec<&'static str>,
}

/// Output of `score-leads`.
#[derive(Serialize, JsonSchema)]
struct Scores {
    /// The best leads, highest score first.
    ranking: Vec<Ranked>,
    /// How many open leads were scored.
    scored: usize,
    /// The columns the scoring read (those this environment has).
    columns_used: Vec<&'static str>,
    /// The column ratings were written to, when they were.
    rating_column: Option<String>,
    /// How many leads' ratings changed.
    updated: usize,
}

fn score_leads(input: ScoreLeads) -> Result<Scores, ActionError> {
    let lead = metadata::describe_table("lead")?;
    let signals = Signals::from_metadata(&lead);
    let id_column = lead.table.primary_id.clone();
    let name_column = lead.table.primary_name.clone();
    let rating_column = input.write_back.then(|| rating_column(&lead)).flatten();
    if input.write_back && rating_column.is_none() {
        dvhost_sdk::log::warn("lead has no writable Hot/Warm/Cold rating column; nothing written");
    }

    let mut select: Vec<String> = signals.columns().into_iter().map(str::to_owned).collect();
    select.push(id_column.clone());
    select.extend(name_column.clone());
    select.extend(rating_column.map(|column| column.logical_name.clone()));
    let mut query = Table::new("lead")
        .query()
        .select(select)
        .page_size(PAGE_SIZE);
    if lead
        .column("statecode")
        .is_some_and(|column| column.kind == "State")
    {
        // Open leads only: qualified and disqualified ones are done.
        query = query.filter(Condition::eq("statecode", 0));
    }

    let mut ranking = Vec::new();
    let mut changes = Vec::new();
    for rows in query.pages() {
        for row in rows? {
            let Some(id) = row.get(&id_column).and_then(Value::as_str) else {
                continue;
            };
            let (score, reasons) = signals.score(&row);
            let rating = scoring::rating(score);
            if let Some(change) =
                rating_column.and_then(|column| rating_change(column, &id_column, id, &row, rating))
            {
                changes.push(change);
            }
            ranking.push(Ranked {
                id: id.to_owned(),
                name: name_column
                    .as_ref()
                    .and_then(|name| row.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                score,
                rating,
                reasons,
            });
        }
    }
    for batch in changes.chunks(WRITE_BATCH) {
        Table::new("lead").update_many(batch)?;
    }

    let scored = ranking.len();
    ranking.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    ranking.truncate(input.limit.unwrap_or(DEFAULT_LIMIT));
    Ok(Scores {
        ranking,
        scored,
        columns_used: signals.columns(),
        rating_column: rating_column.map(|column| column.logical_name.clone()),
        updated: changes.len(),
    })
}

/// The lead's rating column, if it is a writable choice with Hot, Warm and
/// Cold options.
fn rating_column(lead: &TableDescription) -> Option<&ColumnInfo> {
    lead.column("leadqualitycode").filter(|column| {
        column.kind == "Picklist"
            && column.valid_for_update
            && ["Hot", "Warm", "Cold"]
                .iter()
                .all(|label| column.option_value(label).is_some())
    })
}

/// The row to send to change a lead's rating, or `None` if it already has it.
fn rating_change(
    column: &ColumnInfo,
    id_column: &str,
    id: &str,
    row: &Record,
    rating: &str,
) -> Option<Record> {
    let value = column.option_value(rating)?;
    if row.get(&column.logical_name).and_then(Value::as_i64) == Some(value) {
        return None;
    }
    let mut change = Record::new();
    change.insert(id_column.to_owned(), Value::from(id));
    change.insert(column.logical_name.clone(), Value::from(value));
    Some(change)
}

/// Output of `find-duplicate-contacts`.
#[derive(Serialize, JsonSchema)]
struct Duplicates {
    /// Addresses shared by two contacts or more.
    groups: Vec<Group>,
    /// How many contacts were read.
    contacts_scanned: usize,
    /// The e-mail columns compared.
    email_columns: Vec<String>,
}

fn find_duplicate_contacts(_: Empty) -> Result<Duplicates, ActionError> {
    let contact = metadata::describe_table("contact")?;
    let email_columns = duplicates::email_columns(&contact);
    if email_columns.is_empty() {
        return Err(ActionError::failed("contact has no e-mail column"));
    }
    let id_column = contact.table.primary_id.as_str();
    let name_column = contact.table.primary_name.as_deref();
    let mut select: Vec<&str> = vec![id_column];
    select.extend(name_column);
    select.extend(email_columns.iter().map(String::as_str));

    let mut finder = Finder::default();
    let mut contacts_scanned = 0;
    let query = Table::new("contact")
        .query()
        .select(select)
        .page_size(PAGE_SIZE);
    for rows in query.pages() {
        for row in rows? {
            contacts_scanned += 1;
            finder.add(&row, id_column, name_column, &email_columns);
        }
    }
    Ok(Duplicates {
        groups: finder.groups(),
        contacts_scanned,
        email_columns,
    })
}

dvhost_sdk::export_actions! {
    /// Scores every open lead from 0 to 100 with the signals this
    /// environment's lead columns support, returns the best ones and, with
    /// `write_back`, writes each lead's Hot/Warm/Cold rating.
    "score-leads" => score_leads,
    /// Finds contacts that share an e-mail address (case and spaces ignored).
    "find-duplicate-contacts" => find_duplicate_contacts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvhost_sdk::metadata::{OptionValue, RequiredLevel};
    use serde_json::json;

    fn rating_info(valid_for_update: bool) -> ColumnInfo {
        ColumnInfo {
            logical_name: "leadqualitycode".to_owned(),
            kind: "Picklist".to_owned(),
            display_name: None,
            required: RequiredLevel::None,
            max_length: None,
            targets: Vec::new(),
            options: [(1, "Hot"), (2, "Warm"), (3, "Cold")]
                .into_iter()
                .map(|(value, label)| OptionValue {
                    value,
                    label: Some(label.to_owned()),
                })
                .collect(),
            valid_for_create: true,
            valid_for_update,
            ..ColumnInfo::default()
        }
    }

    #[test]
    fn a_rating_is_written_only_when_it_changes() {
        let column = rating_info(true);
        let row = json!({"leadid": "L", "leadqualitycode": 2})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(rating_change(&column, "leadid", "L", &row, "Warm"), None);
        let change = rating_change(&column, "leadid", "L", &row, "Hot").unwrap();
        assert_eq!(
            Value::Object(change),
            json!({"leadid": "L", "leadqualitycode": 1})
        );
    }
}
