//! `records`: the guest's row operations. Each import checks its arguments
//! and grants, passes the gate in [`calls`](crate::calls), then calls the
//! [`Records`](crate::backend::Records) backend. Pages are [`PageCursor`]s in
//! the invocation's handle table: the guest holds an index it can neither
//! read through nor forge, and every cursor dies with the store.

use serde_json::{Map, Value};
use uuid::Uuid;
use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::audit::Interface;
use crate::backend::{self, Continuation, PageData, Row, RowKey};
use crate::bindings::records::{self, Expand, Key, KeyValue, QueryOptions};
use crate::bindings::types;
use crate::calls::{CallError, DataverseState, table_name, to_wit_error, within};
use crate::grants::Operation;
use crate::guest_rows::{self, row_text, to_text};

/// A page of a query, held by the host.
pub struct PageCursor {
    rows: Vec<String>,
    count: Option<u64>,
    next: Option<Continuation>,
    table: String,
}

/// What `records` sees of the invocation.
pub(crate) struct RecordsView<'a> {
    pub(crate) state: &'a mut DataverseState,
    pub(crate) handles: &'a mut ResourceTable,
}

/// Selects [`RecordsView`] for the generated `add_to_linker`.
pub(crate) struct RecordsData;

impl HasData for RecordsData {
    type Data<'a> = RecordsView<'a>;
}

type Answer<T> = wasmtime::Result<Result<T, types::Error>>;

fn invalid(what: impl std::fmt::Display) -> CallError {
    CallError::InvalidInput(what.to_string())
}

fn parse_id(text: &str) -> Result<Uuid, CallError> {
    Uuid::parse_str(text).map_err(|_| {
        invalid(format!(
            "'{}' is not a GUID",
            text.chars().take(100).collect::<String>()
        ))
    })
}

fn parse_row(text: &str) -> Result<Row, CallError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("a row must be a JSON object")),
        Err(e) => Err(invalid(format!("a row is not valid JSON: {e}"))),
    }
}

fn row_key(key: Key) -> Result<RowKey, CallError> {
    Ok(match key {
        Key::Id(id) => RowKey::Id(parse_id(&id)?),
        Key::Alternate(parts) => RowKey::Alternate(
            parts
                .into_iter()
                .map(|(column, value)| {
                    let value = match value {
                        KeyValue::Text(s) => backend::KeyValue::Text(s),
                        KeyValue::Integer(n) => backend::KeyValue::Integer(n),
                        KeyValue::Guid(g) => backend::KeyValue::Guid(parse_id(&g)?),
                    };
                    Ok((column.to_ascii_lowercase(), value))
                })
                .collect::<Result<_, CallError>>()?,
        ),
    })
}

fn filter_value(v: records::Value) -> Result<backend::FilterValue, CallError> {
    use backend::FilterValue as F;
    Ok(match v {
        records::Value::Null => F::Null,
        records::Value::Text(s) => F::Text(s),
        records::Value::Integer(n) => F::Integer(n),
        records::Value::Number(n) if n.is_finite() => F::Number(n),
        records::Value::Number(_) => return Err(invalid("a number in a filter must be finite")),
        records::Value::Boolean(b) => F::Boolean(b),
        records::Value::Guid(g) => F::Guid(parse_id(&g)?),
        records::Value::DateTime(s) => F::DateTime(s),
    })
}

fn condition(c: records::Condition) -> Result<backend::Condition, CallError> {
    use records::{Operator, TextMatch};
    Ok(match c {
        records::Condition::Compare((column, op, value)) => backend::Condition::Compare {
            column,
            op: match op {
                Operator::Eq => backend::Comparison::Eq,
                Operator::Ne => backend::Comparison::Ne,
                Operator::Gt => backend::Comparison::Gt,
                Operator::Ge => backend::Comparison::Ge,
                Operator::Lt => backend::Comparison::Lt,
                Operator::Le => backend::Comparison::Le,
            },
            value: filter_value(value)?,
        },
        records::Condition::Text((function, column, text)) => backend::Condition::Text {
            function: match function {
                TextMatch::Contains => backend::TextMatch::Contains,
                TextMatch::StartsWith => backend::TextMatch::StartsWith,
                TextMatch::EndsWith => backend::TextMatch::EndsWith,
            },
            column,
            text,
        },
    })
}

fn expands(list: Vec<Expand>) -> Vec<backend::Expand> {
    list.into_iter()
        .map(|e| backend::Expand {
            navigation: e.navigation,
            select: e.select,
        })
        .collect()
}

fn query_spec(o: QueryOptions) -> Result<backend::QuerySpec, CallError> {
    if let Some(n) = o.page_size
        && !(1..=5000).contains(&n)
    {
        return Err(invalid(format!("page-size {n} is outside 1 to 5000")));
    }
    Ok(backend::QuerySpec {
        select: o.select,
        filter: o
            .filter
            .into_iter()
            .map(condition)
            .collect::<Result<_, _>>()?,
        order_by: o
            .order_by
            .into_iter()
            .map(|o| backend::Order {
                column: o.column,
                descending: o.descending,
            })
            .collect(),
        top: o.top,
        page_size: o.page_size,
        count: o.count,
        expand: expands(o.expand),
    })
}

fn json_len(rows: &[String]) -> u64 {
    rows.iter().map(|r| r.len() as u64).sum()
}

impl RecordsView<'_> {
    /// The checked table name, or a recorded refusal.
    fn table(&mut self, operation: &'static str, name: &str) -> Result<String, CallError> {
        table_name(name).map_err(|e| self.state.refuse(Interface::Records, operation, None, e))
    }

    /// Runs `check` on an argument; a failure is recorded as a refusal.
    fn arg<T>(
        &mut self,
        operation: &'static str,
        table: &str,
        check: Result<T, CallError>,
    ) -> Result<T, CallError> {
        check.map_err(|e| {
            self.state
                .refuse(Interface::Records, operation, Some(table), e)
        })
    }

    /// Related tables reached through `$expand` or a navigation path must
    /// be granted `read` too, or a plugin could read any table through a
    /// granted one.
    async fn check_navigations(
        &mut self,
        operation: &'static str,
        table: &str,
        navigations: &[&str],
    ) -> Result<(), CallError> {
        if navigations.is_empty() || self.state.grants.is_unbounded() {
            return Ok(());
        }
        let metadata = self.state.metadata.clone();
        let context = backend::CallContext::new(self.state.deadline);
        let described = within(
            self.state.deadline,
            metadata.describe_table(&context, table),
        )
        .await;
        let described = self.arg(operation, table, described.map_err(CallError::Backend))?;
        for nav in navigations {
            let nav = nav.to_ascii_lowercase();
            let target = described.columns.iter().find_map(|c| {
                if c.logical_name == nav && c.targets.len() == 1 {
                    return Some(c.targets[0].clone());
                }
                let rest = nav.strip_prefix(&c.logical_name)?.strip_prefix('_')?;
                c.targets.iter().find(|t| *t == rest).cloned()
            });
            let granted = target
                .as_deref()
                .is_some_and(|t| self.state.grants.allows(t, Operation::Read));
            if !granted {
                let e = CallError::NotGranted(format!(
                    "'{nav}' leads from '{table}' to a table this plugin is not granted read on"
                ));
                return Err(self
                    .state
                    .refuse(Interface::Records, operation, Some(table), e));
            }
        }
        Ok(())
    }

    async fn create_(
        &mut self,
        table: String,
        row: String,
        id: Option<String>,
    ) -> Result<String, CallError> {
        let table = self.table("create", &table)?;
        let id = self.arg("create", &table, id.as_deref().map(parse_id).transpose())?;
        let parsed = self.arg("create", &table, parse_row(&row))?;
        let call = self.state.admit(
            Interface::Records,
            "create",
            Some(&table),
            &[Operation::Create],
            row.len() as u64,
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.create(&call.context, &table, parsed, id),
        )
        .await;
        self.state.finish(call, r, |_| 36).map(|id| id.to_string())
    }

    async fn retrieve_(
        &mut self,
        table: String,
        key: Key,
        select: Vec<String>,
        expand: Vec<Expand>,
    ) -> Result<String, CallError> {
        let table = self.table("retrieve", &table)?;
        let key = self.arg("retrieve", &table, row_key(key))?;
        let navs: Vec<&str> = expand.iter().map(|e| e.navigation.as_str()).collect();
        self.check_navigations("retrieve", &table, &navs).await?;
        let call = self.state.admit(
            Interface::Records,
            "retrieve",
            Some(&table),
            &[Operation::Read],
            0,
        )?;
        let backend = self.state.records.clone();
        let expand = expands(expand);
        let r = within(
            call.context.deadline,
            backend.retrieve(&call.context, &table, &key, &select, &expand),
        )
        .await;
        let r = r.and_then(|row| guest_rows::text_without_urls(&row));
        self.state.finish(call, r, |s| s.len() as u64)
    }

    async fn update_(
        &mut self,
        table: String,
        id: String,
        changes: String,
        if_match: Option<String>,
    ) -> Result<(), CallError> {
        let table = self.table("update", &table)?;
        let id = self.arg("update", &table, parse_id(&id))?;
        let parsed = self.arg("update", &table, parse_row(&changes))?;
        let call = self.state.admit(
            Interface::Records,
            "update",
            Some(&table),
            &[Operation::Update],
            changes.len() as u64,
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.update(&call.context, &table, id, parsed, if_match.as_deref()),
        )
        .await;
        self.state.finish(call, r, |_| 0)
    }

    async fn upsert_(&mut self, table: String, key: Key, row: String) -> Result<(), CallError> {
        let table = self.table("upsert", &table)?;
        let key = self.arg("upsert", &table, row_key(key))?;
        let parsed = self.arg("upsert", &table, parse_row(&row))?;
        let ops = [Operation::Create, Operation::Update];
        let call = self.state.admit(
            Interface::Records,
            "upsert",
            Some(&table),
            &ops,
            row.len() as u64,
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.upsert(&call.context, &table, &key, parsed),
        )
        .await;
        self.state.finish(call, r, |_| 0)
    }

    async fn delete_(&mut self, table: String, id: String) -> Result<(), CallError> {
        let table = self.table("delete", &table)?;
        let id = self.arg("delete", &table, parse_id(&id))?;
        let call = self.state.admit(
            Interface::Records,
            "delete",
            Some(&table),
            &[Operation::Delete],
            0,
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.delete(&call.context, &table, id),
        )
        .await;
        self.state.finish(call, r, |_| 0)
    }

    /// Turns a backend page into a cursor in the handle table.
    fn open_page(
        &mut self,
        table: String,
        page: PageData,
    ) -> Result<Resource<PageCursor>, CallError> {
        if self.state.open_pages >= self.state.limits.open_pages {
            return Err(CallError::Quota(format!(
                "this invocation holds its {} open pages; drop one first",
                self.state.limits.open_pages
            )));
        }
        let cursor = PageCursor {
            rows: to_text(page.rows),
            count: page.count,
            next: page.next,
            table,
        };
        let handle = self
            .handles
            .push(cursor)
            .map_err(|e| CallError::Quota(format!("no room for another page: {e}")))?;
        self.state.open_pages += 1;
        Ok(handle)
    }

    async fn query_(
        &mut self,
        table: String,
        options: QueryOptions,
    ) -> Result<Resource<PageCursor>, CallError> {
        let table = self.table("query", &table)?;
        let spec = self.arg("query", &table, query_spec(options))?;
        let mut navs: Vec<&str> = spec.expand.iter().map(|e| e.navigation.as_str()).collect();
        for c in &spec.filter {
            let column = match c {
                backend::Condition::Compare { column, .. }
                | backend::Condition::Text { column, .. } => column,
            };
            if let Some((nav, _)) = column.split_once('/') {
                navs.push(nav);
            }
        }
        self.check_navigations("query", &table, &navs).await?;
        let size = format!("{spec:?}").len() as u64;
        let call = self.state.admit(
            Interface::Records,
            "query",
            Some(&table),
            &[Operation::Read],
            size,
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.query(&call.context, &table, &spec),
        )
        .await;
        let page = self.state.finish(call, r, |p| {
            p.rows.iter().map(|r| row_text(r).len() as u64).sum()
        })?;
        self.open_page(table, page)
    }

    async fn next_(
        &mut self,
        page: &Resource<PageCursor>,
    ) -> Result<Option<Resource<PageCursor>>, CallError> {
        let cursor = self
            .handles
            .get(page)
            .map_err(|e| invalid(format!("not a page of this invocation: {e}")))?;
        let table = cursor.table.clone();
        if cursor.next.is_none() {
            return Ok(None);
        }
        let call = self.state.admit(
            Interface::Records,
            "next",
            Some(&table),
            &[Operation::Read],
            0,
        )?;
        let backend = self.state.records.clone();
        let cursor = self
            .handles
            .get(page)
            .map_err(|e| invalid(format!("not a page of this invocation: {e}")))?;
        let Some(next) = cursor.next.as_ref() else {
            return Ok(None);
        };
        let r = within(
            call.context.deadline,
            backend.next_page(&call.context, next),
        )
        .await;
        let page = self.state.finish(call, r, |p| {
            p.rows.iter().map(|r| row_text(r).len() as u64).sum()
        })?;
        self.open_page(table, page).map(Some)
    }

    async fn create_many_(
        &mut self,
        table: String,
        rows: Vec<String>,
    ) -> Result<Vec<String>, CallError> {
        let table = self.table("create-many", &table)?;
        let parsed = self.arg(
            "create-many",
            &table,
            rows.iter()
                .map(|r| parse_row(r))
                .collect::<Result<Vec<_>, _>>(),
        )?;
        let call = self.state.admit(
            Interface::Records,
            "create-many",
            Some(&table),
            &[Operation::Create],
            json_len(&rows),
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.create_many(&call.context, &table, parsed),
        )
        .await;
        let ids = self.state.finish(call, r, |ids| 36 * ids.len() as u64)?;
        Ok(ids.into_iter().map(|id| id.to_string()).collect())
    }

    async fn update_many_(&mut self, table: String, rows: Vec<String>) -> Result<(), CallError> {
        let table = self.table("update-many", &table)?;
        let parsed = self.arg(
            "update-many",
            &table,
            rows.iter()
                .map(|r| parse_row(r))
                .collect::<Result<Vec<Map<_, _>>, _>>(),
        )?;
        let call = self.state.admit(
            Interface::Records,
            "update-many",
            Some(&table),
            &[Operation::Update],
            json_len(&rows),
        )?;
        let backend = self.state.records.clone();
        let r = within(
            call.context.deadline,
            backend.update_many(&call.context, &table, parsed),
        )
        .await;
        self.state.finish(call, r, |_| 0)
    }
}

impl records::Host for RecordsView<'_> {
    async fn create(&mut self, table: String, row: String, id: Option<String>) -> Answer<String> {
        Ok(self.create_(table, row, id).await.map_err(to_wit_error))
    }

    async fn retrieve(
        &mut self,
        table: String,
        key: Key,
        select: Vec<String>,
        expand: Vec<Expand>,
    ) -> Answer<String> {
        Ok(self
            .retrieve_(table, key, select, expand)
            .await
            .map_err(to_wit_error))
    }

    async fn update(
        &mut self,
        table: String,
        id: String,
        changes: String,
        if_match: Option<String>,
    ) -> Answer<()> {
        Ok(self
            .update_(table, id, changes, if_match)
            .await
            .map_err(to_wit_error))
    }

    async fn upsert(&mut self, table: String, key: Key, row: String) -> Answer<()> {
        Ok(self.upsert_(table, key, row).await.map_err(to_wit_error))
    }

    async fn delete(&mut self, table: String, id: String) -> Answer<()> {
        Ok(self.delete_(table, id).await.map_err(to_wit_error))
    }

    async fn query(
        &mut self,
        table: String,
        options: QueryOptions,
    ) -> Answer<Resource<PageCursor>> {
        Ok(self.query_(table, options).await.map_err(to_wit_error))
    }

    async fn create_many(&mut self, table: String, rows: Vec<String>) -> Answer<Vec<String>> {
        Ok(self.create_many_(table, rows).await.map_err(to_wit_error))
    }

    async fn update_many(&mut self, table: String, rows: Vec<String>) -> Answer<()> {
        Ok(self.update_many_(table, rows).await.map_err(to_wit_error))
    }
}

/// A handle that is not one of this invocation's live pages is a forged or
/// stale one: the call traps (wasmtime usually refuses it before we see it).
impl records::HostPage for RecordsView<'_> {
    async fn rows(&mut self, page: Resource<PageCursor>) -> wasmtime::Result<Vec<String>> {
        Ok(self.handles.get(&page)?.rows.clone())
    }

    async fn count(&mut self, page: Resource<PageCursor>) -> wasmtime::Result<Option<u64>> {
        Ok(self.handles.get(&page)?.count)
    }

    async fn has_more(&mut self, page: Resource<PageCursor>) -> wasmtime::Result<bool> {
        Ok(self.handles.get(&page)?.next.is_some())
    }

    async fn next(&mut self, page: Resource<PageCursor>) -> Answer<Option<Resource<PageCursor>>> {
        self.handles.get(&page)?;
        Ok(self.next_(&page).await.map_err(to_wit_error))
    }

    async fn drop(&mut self, page: Resource<PageCursor>) -> wasmtime::Result<()> {
        self.handles.delete(page)?;
        self.state.open_pages = self.state.open_pages.saturating_sub(1);
        Ok(())
    }
}

impl types::Host for RecordsView<'_> {}
