//! An in-memory backend that counts the requests it receives, so tests can
//! prove a refused call sent nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use dvhost_runtime::backend::*;
use parking_lot::Mutex;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Default)]
pub struct Fake {
    pub requests: AtomicU32,
    pub tables: Mutex<BTreeMap<String, BTreeMap<Uuid, Row>>>,
    /// Descriptions that replace the generic one, by table.
    pub descriptions: Mutex<BTreeMap<String, TableDescription>>,
    /// Every query the backend received.
    pub queries: Mutex<Vec<(String, QuerySpec)>>,
}

struct Cursor {
    table: String,
    offset: usize,
    page_size: usize,
}

impl Fake {
    pub fn seeded() -> Fake {
        let fake = Fake::default();
        {
            let mut t = fake.tables.lock();
            let accounts = t.entry("account".into()).or_default();
            for i in 0..5 {
                let id = Uuid::from_u128(0xa000 + i);
                accounts.insert(
                    id,
                    json!({"accountid": id, "name": format!("Account {i}")})
                        .as_object()
                        .unwrap()
                        .clone(),
                );
            }
            t.entry("contact".into()).or_default();
        }
        fake
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    fn page(&self, table: &str, offset: usize, page_size: usize) -> PageData {
        let tables = self.tables.lock();
        let rows: Vec<Row> = tables
            .get(table)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        let end = (offset + page_size).min(rows.len());
        let next: Option<Continuation> = (end < rows.len()).then(|| {
            Box::new(Cursor {
                table: table.into(),
                offset: end,
                page_size,
            }) as Continuation
        });
        PageData {
            rows: rows[offset.min(end)..end].to_vec(),
            count: Some(rows.len() as u64),
            next,
        }
    }
}

fn not_found(table: &str) -> BackendError {
    BackendError::Dataverse {
        status: 404,
        code: Some("0x80040217".into()),
        message: format!("{table} With Id = ... Does Not Exist"),
        retry_after: None,
    }
}

#[async_trait::async_trait]
impl Records for Fake {
    async fn create(
        &self,
        _: &CallContext,
        table: &str,
        mut row: Row,
        id: Option<Uuid>,
    ) -> Result<Uuid, BackendError> {
        self.count();
        let id = id.unwrap_or_else(Uuid::new_v4);
        row.insert(format!("{table}id"), json!(id));
        self.tables
            .lock()
            .entry(table.into())
            .or_default()
            .insert(id, row);
        Ok(id)
    }
    async fn retrieve(
        &self,
        _: &CallContext,
        table: &str,
        key: &RowKey,
        _: &[String],
        _: &[Expand],
    ) -> Result<RowText, BackendError> {
        self.count();
        let RowKey::Id(id) = key else {
            return Err(BackendError::InvalidInput("fake: ids only".into()));
        };
        let row = self
            .tables
            .lock()
            .get(table)
            .and_then(|t| t.get(id).cloned())
            .ok_or_else(|| not_found(table))?;
        Ok(serde_json::value::to_raw_value(&row).expect("a map writes as JSON"))
    }
    async fn update(
        &self,
        _: &CallContext,
        table: &str,
        id: Uuid,
        changes: Row,
        _: Option<&str>,
    ) -> Result<(), BackendError> {
        self.count();
        let mut tables = self.tables.lock();
        let row = tables
            .get_mut(table)
            .and_then(|t| t.get_mut(&id))
            .ok_or_else(|| not_found(table))?;
        row.extend(changes);
        Ok(())
    }
    async fn upsert(
        &self,
        _: &CallContext,
        table: &str,
        key: &RowKey,
        row: Row,
    ) -> Result<(), BackendError> {
        self.count();
        let RowKey::Id(id) = key else {
            return Err(BackendError::InvalidInput("fake: ids only".into()));
        };
        self.tables
            .lock()
            .entry(table.into())
            .or_default()
            .entry(*id)
            .or_default()
            .extend(row);
        Ok(())
    }
    async fn delete(&self, _: &CallContext, table: &str, id: Uuid) -> Result<(), BackendError> {
        self.count();
        self.tables
            .lock()
            .get_mut(table)
            .and_then(|t| t.remove(&id))
            .map(|_| ())
            .ok_or_else(|| not_found(table))
    }
    async fn query(
        &self,
        _: &CallContext,
        table: &str,
        q: &QuerySpec,
    ) -> Result<PageData, BackendError> {
        self.count();
        self.queries.lock().push((table.to_owned(), q.clone()));
        Ok(self.page(table, 0, q.page_size.unwrap_or(5000) as usize))
    }
    async fn next_page(&self, _: &CallContext, c: &Continuation) -> Result<PageData, BackendError> {
        self.count();
        let c = c
            .downcast_ref::<Cursor>()
            .ok_or_else(|| BackendError::Unavailable("fake: foreign cursor".into()))?;
        Ok(self.page(&c.table, c.offset, c.page_size))
    }
    async fn create_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<Vec<Uuid>, BackendError> {
        let mut ids = Vec::new();
        for r in rows {
            ids.push(self.create(call, table, r, None).await?);
        }
        Ok(ids)
    }
    async fn update_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<(), BackendError> {
        for r in rows {
            let id = r
                .get(&format!("{table}id"))
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            let id = id.ok_or_else(|| BackendError::InvalidInput("a row has no id".into()))?;
            self.update(call, table, id, r, None).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Metadata for Fake {
    async fn list_tables(&self, _: &CallContext) -> Result<Vec<TableInfo>, BackendError> {
        self.count();
        Ok(["account", "contact", "lead"]
            .iter()
            .map(|t| TableInfo {
                logical_name: t.to_string(),
                display_name: Some(t.to_uppercase()),
                primary_id: format!("{t}id"),
                primary_name: Some("name".into()),
                is_custom: false,
            })
            .collect())
    }
    async fn describe_table(
        &self,
        call: &CallContext,
        table: &str,
    ) -> Result<TableDescription, BackendError> {
        let tables = self.list_tables(call).await?;
        if let Some(d) = self.descriptions.lock().get(table) {
            return Ok(d.clone());
        }
        let table = tables
            .into_iter()
            .find(|t| t.logical_name == table)
            .ok_or_else(|| not_found(table))?;
        Ok(TableDescription {
            columns: vec![
                ColumnInfo {
                    logical_name: "name".into(),
                    kind: "String".into(),
                    display_name: Some("Name".into()),
                    required: RequiredLevel::ApplicationRequired,
                    max_length: Some(160),
                    targets: vec![],
                    options: vec![],
                    valid_for_create: true,
                    valid_for_update: true,
                    ..Default::default()
                },
                ColumnInfo {
                    logical_name: "primarycontactid".into(),
                    kind: "Lookup".into(),
                    display_name: None,
                    required: RequiredLevel::None,
                    max_length: None,
                    targets: vec!["contact".into()],
                    options: vec![],
                    valid_for_create: true,
                    valid_for_update: true,
                    ..Default::default()
                },
            ],
            table,
        })
    }
}
