//! Sample rows for the emulated environment (`sample.json`, Web API
//! bodies): accounts, their contacts (two share an e-mail address, for
//! `find-duplicate-contacts`) and leads with the signals `score-leads`
//! weighs. Written once, through the dev connection and the Web API like
//! any client, with fixed ids: a run that finds the first account leaves
//! the rows as they are (the developer may have changed them).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use dvhost_dataverse::{ColumnName, EntitySet};
use dvhost_store::Connection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cli::context::Context;
use crate::serve::connection_client;

/// How long writing the rows may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The rows, by entity set, in the order they are created (contacts bind
/// to accounts).
const SAMPLE: &str = include_str!("sample.json");

/// The entity sets of [`SAMPLE`] with their primary id columns.
const SETS: &[(&str, &str)] = &[
    ("accounts", "accountid"),
    ("contacts", "contactid"),
    ("leads", "leadid"),
];

/// The rows of one entity set, each with its id taken out.
fn rows(set: &str, primary_id: &str) -> anyhow::Result<Vec<(Uuid, Map<String, Value>)>> {
    let sample: Value = serde_json::from_str(SAMPLE).context("sample.json")?;
    sample[set]
        .as_array()
        .with_context(|| format!("sample.json has no {set}"))?
        .iter()
        .map(|row| {
            let mut row = row
                .as_object()
                .context("a sample row is not an object")?
                .clone();
            let id = row
                .remove(primary_id)
                .and_then(|id| id.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .with_context(|| format!("a sample row of {set} has no {primary_id}"))?;
            Ok((id, row))
        })
        .collect()
}

/// The first sample account's id, for the printed examples.
pub fn first_account() -> Option<Uuid> {
    rows("accounts", "accountid")
        .ok()
        .and_then(|r| r.first().map(|(id, _)| *id))
}

/// Writes the sample rows through `connection` unless the first account
/// is there already. Returns how many rows were written.
pub async fn ensure_rows(cx: &Context, connection: &Connection) -> anyhow::Result<usize> {
    let client =
        connection_client(&cx.store, &cx.master, &cx.globals.services()?, connection).await?;
    let deadline = Instant::now() + SAMPLE_TIMEOUT;
    let first = first_account().context("sample.json has no account")?;
    let accounts = EntitySet::new("accounts")?;
    let account_id = ColumnName::new("accountid")?;
    match client
        .retrieve(
            &accounts,
            &first.into(),
            std::slice::from_ref(&account_id),
            deadline,
        )
        .await
    {
        Ok(_) => return Ok(0),
        Err(e) if e.status() == Some(404) => {}
        Err(e) => {
            return Err(e).context("reading the sample accounts through the dev connection");
        }
    }
    let mut written = 0;
    for (set, primary_id) in SETS {
        let entity_set = EntitySet::new(set)?;
        let id_column = ColumnName::new(primary_id)?;
        for (id, row) in rows(set, primary_id)? {
            client
                .create(&entity_set, &id_column, &row, Some(id), deadline)
                .await
                .with_context(|| format!("creating the sample row {set}({id})"))?;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_row_has_its_id_and_contacts_bind_to_sample_accounts() {
        let accounts: Vec<Uuid> = rows("accounts", "accountid")
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(first_account(), accounts.first().copied());
        for (set, primary_id) in SETS {
            assert!(!rows(set, primary_id).unwrap().is_empty(), "{set}");
        }
        for (_, contact) in rows("contacts", "contactid").unwrap() {
            let bind = contact["parentcustomerid_account@odata.bind"]
                .as_str()
                .unwrap();
            let id = bind.trim_start_matches("/accounts(").trim_end_matches(')');
            assert!(accounts.contains(&Uuid::parse_str(id).unwrap()), "{bind}");
        }
    }
}
