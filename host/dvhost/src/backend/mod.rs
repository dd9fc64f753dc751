//! The runtime's Dataverse backend over the transport: [`DataverseBackend`]
//! implements [`Records`] and [`Metadata`] with one connection's
//! [`Client`]. A table's logical name becomes its entity set and primary id
//! column through the client's cached metadata (never by guessing a
//! plural); every name goes through the transport's typed constructors;
//! each call runs under the runtime's deadline and reports the repeats the
//! transport's retry policy made. The runtime gets rows, names and typed
//! errors: no token, no key, and no URL (messages are redacted).

mod convert;

use std::future::Future;
use std::sync::Arc;

use dvhost_dataverse::{
    BulkWrite, Client, ColumnName, DataverseError, EntitySet, Page, Query, TableName,
};
use dvhost_runtime::backend::{
    BackendError, CallContext, Continuation, Expand, PageData, QuerySpec, Row, RowKey, RowText,
    TableDescription, TableInfo,
};
use dvhost_runtime::{Metadata, Records};
use uuid::Uuid;

use convert::{backend_error, refused};

/// Where a table's rows are: what the Web API needs besides its name.
struct TableRef {
    name: TableName,
    entity_set: EntitySet,
    primary_id: ColumnName,
}

/// [`Records`] and [`Metadata`] for one connection's environment.
#[derive(Clone)]
pub struct DataverseBackend {
    client: Client,
    /// `host[:port]` of the environment, taken out of error messages.
    environment_host: Arc<str>,
}

/// `host[:port]` of a URL's text, without parsing it again.
fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Names the environment by host only: the client's own `Debug` shows more
/// than a log line about the backend needs.
impl std::fmt::Debug for DataverseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataverseBackend")
            .field("environment", &self.environment_host)
            .finish()
    }
}

impl DataverseBackend {
    /// A backend that sends every call through `client`.
    pub fn new(client: Client) -> DataverseBackend {
        let environment_host = authority_of(client.api_base()).into();
        DataverseBackend {
            client,
            environment_host,
        }
    }

    /// The client calls go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one transport call: counts its repeats into `call` and maps its
    /// error. Refusals made before the call (`Err` from `prepare`) pass
    /// through unchanged.
    async fn run<T>(
        &self,
        call: &CallContext,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, BackendError> {
        let (result, repeats) = dvhost_dataverse::counting_retries(work).await;
        call.add_retries(repeats);
        result.map_err(|f| match f {
            Failure::Refused(e) => e,
            Failure::Dataverse(e) => backend_error(e, &self.environment_host),
        })
    }

    /// The table named `name` in this environment, from cached metadata;
    /// a name the transport refuses is invalid input, an unknown one
    /// Dataverse's 404 for a missing table.
    async fn table(&self, call: &CallContext, name: &str) -> Result<TableRef, Failure> {
        let name = TableName::new(name).map_err(refused)?;
        let found = self.client.table(&name, call.deadline).await?;
        Ok(TableRef {
            entity_set: found.entity_set,
            primary_id: found.primary_id,
            name,
        })
    }
}

/// A failure inside one backend call, before it is mapped.
enum Failure {
    /// Refused here; nothing was sent.
    Refused(BackendError),
    /// The transport failed.
    Dataverse(DataverseError),
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Refused(e)
    }
}

impl From<DataverseError> for Failure {
    fn from(e: DataverseError) -> Self {
        Failure::Dataverse(e)
    }
}

/// A transport page as the runtime's: the rows move out, and the rest
/// (its checked next link and page size) becomes the opaque continuation.
fn page_data(mut page: Page) -> PageData {
    let rows = std::mem::take(&mut page.rows);
    let count = page.count;
    let next = page.has_more().then(|| Box::new(page) as Continuation);
    PageData { rows, count, next }
}

#[async_trait::async_trait]
impl Records for DataverseBackend {
    async fn create(
        &self,
        call: &CallContext,
        table: &str,
        row: Row,
        id: Option<Uuid>,
    ) -> Result<Uuid, BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            Ok(self
                .client
                .create(&t.entity_set, &t.primary_id, &row, id, call.deadline)
                .await?)
        })
        .await
    }

    async fn retrieve(
        &self,
        call: &CallContext,
        table: &str,
        key: &RowKey,
        select: &[String],
        expand: &[Expand],
    ) -> Result<RowText, BackendError> {
        self.run(call, async {
            let key = convert::record_key(key)?;
            let select = convert::columns(select)?;
            let expand = convert::expansions(expand)?;
            let t = self.table(call, table).await?;
            Ok(self
                .client
                .retrieve_text(&t.entity_set, &key, &select, &expand, call.deadline)
                .await?)
        })
        .await
    }

    async fn update(
        &self,
        call: &CallContext,
        table: &str,
        id: Uuid,
        changes: Row,
        if_match: Option<&str>,
    ) -> Result<(), BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            Ok(self
                .client
                .update(&t.entity_set, id, &changes, if_match, call.deadline)
                .await?)
        })
        .await
    }

    async fn upsert(
        &self,
        call: &CallContext,
        table: &str,
        key: &RowKey,
        row: Row,
    ) -> Result<(), BackendError> {
        self.run(call, async {
            let key = convert::record_key(key)?;
            let t = self.table(call, table).await?;
            Ok(self
                .client
                .upsert(&t.entity_set, &key, &row, call.deadline)
                .await?)
        })
        .await
    }

    async fn delete(&self, call: &CallContext, table: &str, id: Uuid) -> Result<(), BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            Ok(self.client.delete(&t.entity_set, id, call.deadline).await?)
        })
        .await
    }

    async fn query(
        &self,
        call: &CallContext,
        table: &str,
        spec: &QuerySpec,
    ) -> Result<PageData, BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            let query = convert::query(Query::new(&t.entity_set), spec)?;
            Ok(page_data(self.client.query(&query, call.deadline).await?))
        })
        .await
    }

    async fn next_page(
        &self,
        call: &CallContext,
        continuation: &Continuation,
    ) -> Result<PageData, BackendError> {
        let Some(page) = (**continuation).downcast_ref::<Page>() else {
            return Err(BackendError::InvalidInput(
                "not a page continuation of this connection".into(),
            ));
        };
        self.run(call, async {
            let next = self.client.next_page(page, call.deadline).await?;
            Ok(next.map(page_data).unwrap_or(PageData {
                rows: Vec::new(),
                count: None,
                next: None,
            }))
        })
        .await
    }

    async fn create_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<Vec<Uuid>, BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            let ids = self.client.create_multiple(
                &t.entity_set,
                &t.name,
                &t.primary_id,
                &rows,
                call.deadline,
            );
            Ok(ids.await?)
        })
        .await
    }

    async fn update_many(
        &self,
        call: &CallContext,
        table: &str,
        rows: Vec<Row>,
    ) -> Result<(), BackendError> {
        self.run(call, async {
            let t = self.table(call, table).await?;
            let done = self.client.write_multiple(
                BulkWrite::Update,
                &t.entity_set,
                &t.name,
                &rows,
                call.deadline,
            );
            Ok(done.await?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Metadata for DataverseBackend {
    async fn list_tables(&self, call: &CallContext) -> Result<Vec<TableInfo>, BackendError> {
        self.run(call, async {
            let tables = self.client.list_tables(call.deadline).await?;
            Ok(tables.iter().map(convert::table_info).collect())
        })
        .await
    }

    async fn describe_table(
        &self,
        call: &CallContext,
        table: &str,
    ) -> Result<TableDescription, BackendError> {
        self.run(call, async {
            let name = TableName::new(table).map_err(refused)?;
            let described = self.client.describe_table(&name, call.deadline).await?;
            Ok(convert::description(&described))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_authority_is_found_in_the_api_base() {
        assert_eq!(
            authority_of("https://org.crm.dynamics.com/api/data/v9.2/"),
            "org.crm.dynamics.com"
        );
        assert_eq!(
            authority_of("http://127.0.0.1:7401/api/data/v9.2/"),
            "127.0.0.1:7401"
        );
        assert_eq!(authority_of("https://h:1/org?x#y"), "h:1");
    }

    #[test]
    fn a_page_moves_its_rows_out_and_ends_without_a_continuation() {
        let data = page_data(Page::default());
        assert!(data.rows.is_empty() && data.count.is_none() && data.next.is_none());
    }
}
