//! `metadata`: tables and columns of the environment, limited to the tables
//! the plugin is granted, each with the operations granted on it. Goes
//! through the same gate as `records` (grants, quotas, deadline, audit) to
//! the [`Metadata`](crate::backend::Metadata) backend.

use wasmtime::component::HasData;

use crate::audit::Interface;
use crate::backend::{self, RequiredLevel};
use crate::bindings::metadata::{
    self, ColumnInfo, LookupTarget, Operations, OptionValue, TableDescription, TableInfo,
};
use crate::bindings::types;
use crate::calls::{CallError, DataverseState, table_name, to_wit_error, within};
use crate::grants::{Grants, Operation};

/// What `metadata` sees of the invocation.
pub(crate) struct MetadataView<'a> {
    pub(crate) state: &'a mut DataverseState,
}

/// Selects [`MetadataView`] for the generated `add_to_linker`.
pub(crate) struct MetadataData;

impl HasData for MetadataData {
    type Data<'a> = MetadataView<'a>;
}

/// The table as the guest sees it, with what `grants` allow on it.
fn table_info(t: backend::TableInfo, grants: &Grants) -> TableInfo {
    TableInfo {
        granted: granted(grants, &t.logical_name),
        logical_name: t.logical_name,
        display_name: t.display_name,
        primary_id: t.primary_id,
        primary_name: t.primary_name,
        is_custom: t.is_custom,
    }
}

/// The operations `grants` allow on `table`, as the WIT's flags.
fn granted(grants: &Grants, table: &str) -> Operations {
    [
        (Operation::Read, Operations::READ),
        (Operation::Create, Operations::CREATE),
        (Operation::Update, Operations::UPDATE),
        (Operation::Delete, Operations::DELETE),
    ]
    .into_iter()
    .filter(|(operation, _)| grants.allows(table, *operation))
    .fold(Operations::empty(), |all, (_, flag)| all | flag)
}

fn column_info(c: backend::ColumnInfo) -> ColumnInfo {
    ColumnInfo {
        logical_name: c.logical_name,
        kind: c.kind,
        display_name: c.display_name,
        required: match c.required {
            RequiredLevel::None => metadata::RequiredLevel::None,
            RequiredLevel::Recommended => metadata::RequiredLevel::Recommended,
            RequiredLevel::ApplicationRequired => metadata::RequiredLevel::ApplicationRequired,
            RequiredLevel::SystemRequired => metadata::RequiredLevel::SystemRequired,
        },
        max_length: c.max_length,
        targets: c.targets,
        options: c
            .options
            .into_iter()
            .map(|(value, label)| OptionValue { value, label })
            .collect(),
        valid_for_create: c.valid_for_create,
        valid_for_update: c.valid_for_update,
        type_name: c.type_name,
        min_value: c.min_value,
        max_value: c.max_value,
        precision: c.precision,
        date_only: c.date_only,
        lookup_targets: c
            .lookup_targets
            .into_iter()
            .map(|t| LookupTarget {
                table: t.table,
                navigation: t.navigation,
                entity_set: t.entity_set,
            })
            .collect(),
    }
}

impl MetadataView<'_> {
    async fn list_tables_(&mut self) -> Result<Vec<TableInfo>, CallError> {
        let call = self
            .state
            .admit(Interface::Metadata, "list-tables", None, &[], 0)?;
        let grants = self.state.grants.clone();
        // Nothing granted, nothing to list: the backend is not asked (so a
        // plugin described with no connection and no grants sees `[]`).
        let r = if grants.is_empty() {
            Ok(Vec::new())
        } else {
            let backend = self.state.metadata.clone();
            within(call.context.deadline, backend.list_tables(&call.context)).await
        };
        let r = r.map(|tables| {
            let mut granted: Vec<_> = tables
                .into_iter()
                .filter(|t| grants.touches(&t.logical_name))
                .collect();
            granted.sort_by(|a, b| a.logical_name.cmp(&b.logical_name));
            granted
        });
        let tables = self.state.finish(call, r, |t| 200 * t.len() as u64)?;
        Ok(tables.into_iter().map(|t| table_info(t, &grants)).collect())
    }

    async fn describe_table_(&mut self, table: String) -> Result<TableDescription, CallError> {
        let table = table_name(&table).map_err(|e| {
            self.state
                .refuse(Interface::Metadata, "describe-table", None, e)
        })?;
        if !self.state.grants.touches(&table) {
            let e = CallError::NotGranted(format!("this plugin is not granted table '{table}'"));
            return Err(self
                .state
                .refuse(Interface::Metadata, "describe-table", Some(&table), e));
        }
        let call = self
            .state
            .admit(Interface::Metadata, "describe-table", Some(&table), &[], 0)?;
        let backend = self.state.metadata.clone();
        let r = within(
            call.context.deadline,
            backend.describe_table(&call.context, &table),
        )
        .await;
        let d = self
            .state
            .finish(call, r, |d| 200 * d.columns.len() as u64)?;
        Ok(TableDescription {
            table: table_info(d.table, &self.state.grants),
            columns: d.columns.into_iter().map(column_info).collect(),
        })
    }
}

impl metadata::Host for MetadataView<'_> {
    async fn list_tables(&mut self) -> wasmtime::Result<Result<Vec<TableInfo>, types::Error>> {
        Ok(self.list_tables_().await.map_err(to_wit_error))
    }

    async fn describe_table(
        &mut self,
        table: String,
    ) -> wasmtime::Result<Result<TableDescription, types::Error>> {
        Ok(self.describe_table_(table).await.map_err(to_wit_error))
    }
}

impl types::Host for MetadataView<'_> {}
