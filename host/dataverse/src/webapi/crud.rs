//! Typed operations: create, retrieve, update, upsert, delete, associate,
//! queries with paging, FetchXML and the bulk messages.

use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::target::{ColumnName, EntitySet, RecordKey, TableName, Target, TargetError};
use super::{Client, DataverseError, Expand, Page, Query, Repeat};

/// Which bulk write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkWrite {
    /// `UpdateMultiple`: every record must exist.
    Update,
    /// `UpsertMultiple`: create or update each.
    Upsert,
}

/// Most rows [`Client::query_all`] collects.
const MAX_QUERY_ALL_ROWS: usize = 1_000_000;

/// The annotation naming the table a lookup's id belongs to
/// (`_<column>_value@Microsoft.Dynamics.CRM.lookuplogicalname`): without
/// it, the id of a customer or owner lookup does not say whether it is an
/// account or a contact, a user or a team.
const LOOKUP_TABLE_ANNOTATION: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";

/// The `Prefer` value of every read of rows: the lookups' tables, and the
/// page size when one is set.
fn prefer_reading(page_size: Option<u32>) -> String {
    let annotations = format!("odata.include-annotations=\"{LOOKUP_TABLE_ANNOTATION}\"");
    match page_size {
        Some(n) => format!("{annotations},odata.maxpagesize={n}"),
        None => annotations,
    }
}

impl Client {
    /// Creates a row and returns its id. The id is generated here (or taken
    /// from `id`) and sent in the body, so a retry cannot create a duplicate.
    ///
    /// When an attempt's answer is lost and the repeat finds the id taken,
    /// the row is read back: with a generated id, its existence proves the
    /// lost attempt created it; with the caller's id, the row counts as this
    /// create's only if it holds the values sent. Otherwise the duplicate
    /// error is returned.
    pub async fn create(
        &self,
        entity_set: &EntitySet,
        primary_id: &ColumnName,
        record: &Map<String, Value>,
        id: Option<Uuid>,
        deadline: Instant,
    ) -> Result<Uuid, DataverseError> {
        let generated = id.is_none();
        let id = id.unwrap_or_else(Uuid::new_v4);
        let mut body = record.clone();
        body.insert(primary_id.to_string(), json!(id));
        let reply = self
            .send(
                reqwest::Method::POST,
                &Target::set(entity_set),
                Some(&Value::Object(body)),
                &[],
                Repeat::CreateWithId,
                deadline,
            )
            .await?;
        let Some(duplicate) = reply.duplicate_after_ambiguity else {
            return Ok(id);
        };
        let (columns, expected) = if generated {
            (vec![primary_id.clone()], Map::new())
        } else {
            let scalars: Map<String, Value> = record
                .iter()
                .filter(|(k, v)| !k.contains('@') && !v.is_object() && !v.is_array())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let columns = scalars.keys().map(|k| ColumnName::new(k)).collect();
            match columns {
                Ok(c) => (c, scalars),
                Err(_) => return Err(duplicate),
            }
        };
        match self
            .retrieve(entity_set, &id.into(), &columns, deadline)
            .await
        {
            Ok(row) if expected.iter().all(|(k, v)| same_value(row.get(k), v)) => Ok(id),
            _ => Err(duplicate),
        }
    }

    /// Retrieves a row by id or alternate key, with only `select`ed columns
    /// when any are named.
    pub async fn retrieve(
        &self,
        entity_set: &EntitySet,
        key: &RecordKey,
        select: &[ColumnName],
        deadline: Instant,
    ) -> Result<Map<String, Value>, DataverseError> {
        self.retrieve_expanded(entity_set, key, select, &[], deadline)
            .await
    }

    /// [`Client::retrieve`] with related rows (`$expand`): a single-valued
    /// navigation property comes back as an object (or `null`), a
    /// collection-valued one as an array.
    pub async fn retrieve_expanded(
        &self,
        entity_set: &EntitySet,
        key: &RecordKey,
        select: &[ColumnName],
        expand: &[Expand],
        deadline: Instant,
    ) -> Result<Map<String, Value>, DataverseError> {
        let reply = self.get_row(entity_set, key, select, expand, deadline);
        match reply.await?.json() {
            Value::Object(m) => Ok(m),
            _ => Err(DataverseError::Transport(
                "the record body is not an object".into(),
            )),
        }
    }

    /// [`Client::retrieve_expanded`], the row as Dataverse wrote it: JSON
    /// text checked to be an object, never parsed into values. For a caller
    /// that hands the row on (a plugin's read), this saves building and
    /// writing out a map of every column.
    pub async fn retrieve_text(
        &self,
        entity_set: &EntitySet,
        key: &RecordKey,
        select: &[ColumnName],
        expand: &[Expand],
        deadline: Instant,
    ) -> Result<Box<RawValue>, DataverseError> {
        let reply = self.get_row(entity_set, key, select, expand, deadline);
        reply.await?.object_text()
    }

    /// One row's `GET`, with its `$select`, `$expand` and `Prefer`.
    async fn get_row(
        &self,
        entity_set: &EntitySet,
        key: &RecordKey,
        select: &[ColumnName],
        expand: &[Expand],
        deadline: Instant,
    ) -> Result<super::Reply, DataverseError> {
        let mut target = Target::record(entity_set, key);
        if !select.is_empty() {
            let cols: Vec<&str> = select.iter().map(ColumnName::as_str).collect();
            target = target.option("$select", cols.join(","));
        }
        if !expand.is_empty() {
            let items: Vec<String> = expand.iter().map(Expand::render).collect();
            target = target.option("$expand", items.join(","));
        }
        let prefer = prefer_reading(None);
        self.get_reply(&target, &[("Prefer", &prefer)], deadline)
            .await
    }

    /// Updates a row; with `if_match` the update only applies to that version
    /// (and is then never repeated after an ambiguous failure).
    pub async fn update(
        &self,
        entity_set: &EntitySet,
        id: Uuid,
        changes: &Map<String, Value>,
        if_match: Option<&str>,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let etag = if_match.unwrap_or("*");
        if etag.chars().any(|c| c.is_ascii_control()) {
            return Err(TargetError::InvalidName {
                what: "ETag",
                name: etag.chars().take(100).collect(),
                why: "it contains control characters",
            }
            .into());
        }
        let repeat = if if_match.is_some() {
            Repeat::Never
        } else {
            Repeat::Safe
        };
        self.send(
            reqwest::Method::PATCH,
            &Target::record(entity_set, &id.into()),
            Some(&Value::Object(changes.clone())),
            &[("If-Match", etag)],
            repeat,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Creates or updates the row at `key` (an id or an alternate key).
    pub async fn upsert(
        &self,
        entity_set: &EntitySet,
        key: &RecordKey,
        record: &Map<String, Value>,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.write(
            reqwest::Method::PATCH,
            &Target::record(entity_set, key),
            Some(&Value::Object(record.clone())),
            deadline,
        )
        .await
    }

    /// Deletes a row. After an attempt whose outcome is unknown, a repeat
    /// that finds nothing counts as done; otherwise a 404 is reported.
    pub async fn delete(
        &self,
        entity_set: &EntitySet,
        id: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.write(
            reqwest::Method::DELETE,
            &Target::record(entity_set, &id.into()),
            None,
            deadline,
        )
        .await
    }

    /// Associates `target` (an entity set and id) through a navigation property.
    pub async fn associate(
        &self,
        entity_set: &EntitySet,
        id: Uuid,
        navigation: &ColumnName,
        target_set: &EntitySet,
        target: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let reference = Target::record(target_set, &target.into()).url(&self.api)?;
        let body = json!({"@odata.id": reference.as_str()});
        self.write(
            reqwest::Method::POST,
            &Target::record(entity_set, &id.into())
                .nav(navigation)
                .then("$ref"),
            Some(&body),
            deadline,
        )
        .await
    }

    /// Removes an association made through a collection-valued navigation property.
    pub async fn disassociate(
        &self,
        entity_set: &EntitySet,
        id: Uuid,
        navigation: &ColumnName,
        target: Uuid,
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        self.write(
            reqwest::Method::DELETE,
            &Target::record(entity_set, &id.into())
                .nav_record(navigation, target)
                .then("$ref"),
            None,
            deadline,
        )
        .await
    }

    /// Runs a query; returns its first page.
    pub async fn query(&self, q: &Query, deadline: Instant) -> Result<Page, DataverseError> {
        let prefer = prefer_reading(q.page_size);
        let body = self
            .get(&q.target(), &[("Prefer", &prefer)], deadline)
            .await?;
        Page::from_body(body, q.page_size, &self.api)
    }

    /// The page after `page`, with the same page size; `None` after the last.
    pub async fn next_page(
        &self,
        page: &Page,
        deadline: Instant,
    ) -> Result<Option<Page>, DataverseError> {
        let Some(link) = &page.next else {
            return Ok(None);
        };
        let prefer = prefer_reading(page.page_size);
        let headers = [("Prefer", prefer.as_str())];
        let r = self
            .send_url(
                reqwest::Method::GET,
                link.clone(),
                None,
                &headers,
                Repeat::Safe,
                deadline,
            )
            .await?;
        let next = Page::from_body(r.json(), page.page_size, &self.api)?;
        if next.next.as_ref() == Some(link) {
            return Err(DataverseError::Unexpected(
                "the next links go round in a loop".into(),
            ));
        }
        Ok(Some(next))
    }

    /// Runs a query and follows next links to the end, up to 1,000,000 rows
    /// (page with [`Client::query`] and [`Client::next_page`] beyond that).
    /// A next link seen before is a loop, and an error.
    pub async fn query_all(
        &self,
        q: &Query,
        deadline: Instant,
    ) -> Result<Vec<Map<String, Value>>, DataverseError> {
        let mut page = self.query(q, deadline).await?;
        let mut rows = std::mem::take(&mut page.rows);
        let mut seen = std::collections::HashSet::new();
        while let Some(mut next) = self.next_page(&page, deadline).await? {
            if let Some(link) = &page.next
                && !seen.insert(link.clone())
            {
                return Err(DataverseError::Unexpected(
                    "the next links go round in a loop".into(),
                ));
            }
            rows.append(&mut next.rows);
            if rows.len() > MAX_QUERY_ALL_ROWS {
                return Err(DataverseError::Unexpected(format!(
                    "more than {MAX_QUERY_ALL_ROWS} rows; page through them instead"
                )));
            }
            page = next;
        }
        Ok(rows)
    }

    /// Runs FetchXML against an entity set (one page). The XML is sent as
    /// an encoded query option; Dataverse parses it.
    pub async fn fetch_xml(
        &self,
        entity_set: &EntitySet,
        fetch: &str,
        deadline: Instant,
    ) -> Result<Vec<Map<String, Value>>, DataverseError> {
        let target = Target::set(entity_set).option("fetchXml", fetch);
        let prefer = prefer_reading(None);
        let body = self.get(&target, &[("Prefer", &prefer)], deadline).await?;
        Ok(Page::from_body(body, None, &self.api)?.rows)
    }

    /// `CreateMultiple`: creates all or none; returns the ids. Each target
    /// gets a client-generated id first, so the caller knows them even if
    /// the answer is lost.
    pub async fn create_multiple(
        &self,
        entity_set: &EntitySet,
        table: &TableName,
        primary_id: &ColumnName,
        records: &[Map<String, Value>],
        deadline: Instant,
    ) -> Result<Vec<Uuid>, DataverseError> {
        let mut ids = Vec::with_capacity(records.len());
        let targets: Vec<Value> = records
            .iter()
            .map(|r| {
                let id = Uuid::new_v4();
                ids.push(id);
                let mut t = typed(r, table);
                t.insert(primary_id.to_string(), json!(id));
                Value::Object(t)
            })
            .collect();
        self.send(
            reqwest::Method::POST,
            &Target::set(entity_set).then("Microsoft.Dynamics.CRM.CreateMultiple"),
            Some(&json!({ "Targets": targets })),
            &[],
            Repeat::Never,
            deadline,
        )
        .await?;
        Ok(ids)
    }

    /// `UpdateMultiple` / `UpsertMultiple` (each record carries its key).
    pub async fn write_multiple(
        &self,
        message: BulkWrite,
        entity_set: &EntitySet,
        table: &TableName,
        records: &[Map<String, Value>],
        deadline: Instant,
    ) -> Result<(), DataverseError> {
        let targets: Vec<Value> = records
            .iter()
            .map(|r| Value::Object(typed(r, table)))
            .collect();
        let action = match message {
            BulkWrite::Update => "Microsoft.Dynamics.CRM.UpdateMultiple",
            BulkWrite::Upsert => "Microsoft.Dynamics.CRM.UpsertMultiple",
        };
        self.write(
            reqwest::Method::POST,
            &Target::set(entity_set).then(action),
            Some(&json!({"Targets": targets})),
            deadline,
        )
        .await
    }
}

/// Whether a stored value is the one sent (numbers compared as numbers).
fn same_value(stored: Option<&Value>, sent: &Value) -> bool {
    match (stored, sent) {
        (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Some(a), b) => a == b,
        (None, Value::Null) => true,
        (None, _) => false,
    }
}

/// A bulk-message target: the record with its `@odata.type`.
fn typed(record: &Map<String, Value>, table: &TableName) -> Map<String, Value> {
    let mut t = record.clone();
    t.insert(
        "@odata.type".into(),
        json!(format!("Microsoft.Dynamics.CRM.{table}")),
    );
    t
}
