//! What the environment's tables look like: the tables this plugin is
//! granted, what it may do with each, and their columns. A plugin uses it to
//! adapt to the columns an environment actually has, rather than assuming
//! them.

use serde::Serialize;

use crate::bindings::dvhost::plugin::metadata as wit;
use crate::error::Error;

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    /// Logical name, such as `account`.
    pub logical_name: String,
    /// Display name in the environment's language.
    pub display_name: Option<String>,
    /// The primary key column, such as `accountid`.
    pub primary_id: String,
    /// The primary name column, such as `name`.
    pub primary_name: Option<String>,
    /// Whether it is a custom table.
    pub is_custom: bool,
    /// What this plugin is granted on it; a call of another operation fails
    /// with [`ErrorKind::NotGranted`](crate::ErrorKind::NotGranted).
    pub granted: Operations,
}

/// What a plugin may do with a table's rows, as its grants say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Operations {
    /// Retrieve, query and describe (`expand` to the table needs it too).
    pub read: bool,
    /// Create and create-many (upsert needs it, with `update`).
    pub create: bool,
    /// Update and update-many (upsert needs it, with `create`).
    pub update: bool,
    /// Delete.
    pub delete: bool,
}

/// How much a column is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequiredLevel {
    /// Optional.
    #[default]
    None,
    /// Recommended on forms, not enforced.
    Recommended,
    /// Required by the application.
    ApplicationRequired,
    /// Required by the system.
    SystemRequired,
}

/// An option of a choice, state or status column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionValue {
    /// The stored value.
    pub value: i64,
    /// Its label in the environment's language.
    pub label: Option<String>,
}

/// How a lookup column is set to a row of one target table: the row carries
/// `<navigation>@odata.bind` = `/<entity_set>(<id>)` (see
/// [`LookupTarget::bind`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupTarget {
    /// The target table's logical name, such as `account`.
    pub table: String,
    /// The single-valued navigation property for this target, such as
    /// `parentcustomerid_account`.
    pub navigation: String,
    /// The target table's entity set, such as `accounts`.
    pub entity_set: String,
}

impl LookupTarget {
    /// The key and value that set the lookup to row `id` of this target:
    /// `("<navigation>@odata.bind", "/<entity_set>(<id>)")`.
    pub fn bind(&self, id: &str) -> (String, String) {
        (
            format!("{}@odata.bind", self.navigation),
            format!("/{}({id})", self.entity_set),
        )
    }
}

/// A column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// Logical name.
    pub logical_name: String,
    /// `AttributeType`: `String`, `Integer`, `Money`, `Lookup`, `Picklist`...
    pub kind: String,
    /// Display name in the environment's language.
    pub display_name: Option<String>,
    /// How much it is required.
    pub required: RequiredLevel,
    /// Longest value, for text columns.
    pub max_length: Option<u32>,
    /// Tables a lookup may point to.
    pub targets: Vec<String>,
    /// Options of a choice, state or status column.
    pub options: Vec<OptionValue>,
    /// Whether a create may set it.
    pub valid_for_create: bool,
    /// Whether an update may set it.
    pub valid_for_update: bool,
    /// `AttributeTypeName`, such as `StringType`; tells `Virtual` columns
    /// apart (`MultiSelectPicklistType`, `ImageType`, `FileType`).
    pub type_name: Option<String>,
    /// Smallest value of a number column.
    pub min_value: Option<f64>,
    /// Largest value of a number column.
    pub max_value: Option<f64>,
    /// Digits after the decimal point of a decimal, float or money column.
    pub precision: Option<u32>,
    /// Whether a date-time column holds a date only (`YYYY-MM-DD`).
    pub date_only: bool,
    /// For a lookup, how to set it to each target, in the order of
    /// `targets` (a target without a navigation property is absent).
    pub lookup_targets: Vec<LookupTarget>,
}

impl ColumnInfo {
    /// The value of the option labelled `label` (compared without case).
    pub fn option_value(&self, label: &str) -> Option<i64> {
        self.options
            .iter()
            .find(|option| {
                option
                    .label
                    .as_deref()
                    .is_some_and(|text| text.eq_ignore_ascii_case(label))
            })
            .map(|option| option.value)
    }

    /// How to set this lookup to a row of `table`, when it can point there.
    pub fn lookup_target(&self, table: &str) -> Option<&LookupTarget> {
        self.lookup_targets.iter().find(|t| t.table == table)
    }

    /// The label of option `value`.
    pub fn option_label(&self, value: i64) -> Option<&str> {
        self.options
            .iter()
            .find(|option| option.value == value)
            .and_then(|option| option.label.as_deref())
    }
}

/// A table with its columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDescription {
    /// The table.
    pub table: TableInfo,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

impl TableDescription {
    /// The column with logical name `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns
            .iter()
            .find(|column| column.logical_name == name)
    }
}

/// The tables this plugin is granted, sorted by logical name.
pub fn list_tables() -> Result<Vec<TableInfo>, Error> {
    Ok(wit::list_tables()?
        .into_iter()
        .map(TableInfo::from)
        .collect())
}

/// The columns of granted table `table`.
pub fn describe_table(table: &str) -> Result<TableDescription, Error> {
    let description = wit::describe_table(table)?;
    Ok(TableDescription {
        table: description.table.into(),
        columns: description
            .columns
            .into_iter()
            .map(ColumnInfo::from)
            .collect(),
    })
}

impl From<wit::TableInfo> for TableInfo {
    fn from(table: wit::TableInfo) -> TableInfo {
        TableInfo {
            logical_name: table.logical_name,
            display_name: table.display_name,
            primary_id: table.primary_id,
            primary_name: table.primary_name,
            is_custom: table.is_custom,
            granted: table.granted.into(),
        }
    }
}

impl From<wit::Operations> for Operations {
    fn from(granted: wit::Operations) -> Operations {
        // The generated flags (without wit-bindgen's `bitflags` feature)
        // have no `contains`.
        let has = |flag: wit::Operations| granted.bits() & flag.bits() != 0;
        Operations {
            read: has(wit::Operations::READ),
            create: has(wit::Operations::CREATE),
            update: has(wit::Operations::UPDATE),
            delete: has(wit::Operations::DELETE),
        }
    }
}

impl From<wit::ColumnInfo> for ColumnInfo {
    fn from(column: wit::ColumnInfo) -> ColumnInfo {
        let required = match column.required {
            wit::RequiredLevel::None => RequiredLevel::None,
            wit::RequiredLevel::Recommended => RequiredLevel::Recommended,
            wit::RequiredLevel::ApplicationRequired => RequiredLevel::ApplicationRequired,
            wit::RequiredLevel::SystemRequired => RequiredLevel::SystemRequired,
        };
        ColumnInfo {
            logical_name: column.logical_name,
            kind: column.kind,
            display_name: column.display_name,
            required,
            max_length: column.max_length,
            targets: column.targets,
            options: column
                .options
                .into_iter()
                .map(|option| OptionValue {
                    value: option.value,
                    label: option.label,
                })
                .collect(),
            valid_for_create: column.valid_for_create,
            valid_for_update: column.valid_for_update,
            type_name: column.type_name,
            min_value: column.min_value,
            max_value: column.max_value,
            precision: column.precision,
            date_only: column.date_only,
            lookup_targets: column
                .lookup_targets
                .into_iter()
                .map(|target| LookupTarget {
                    table: target.table,
                    navigation: target.navigation,
                    entity_set: target.entity_set,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating() -> wit::ColumnInfo {
        wit::ColumnInfo {
            logical_name: "leadqualitycode".to_owned(),
            kind: "Picklist".to_owned(),
            display_name: Some("Rating".to_owned()),
            required: wit::RequiredLevel::ApplicationRequired,
            max_length: None,
            targets: Vec::new(),
            options: vec![
                wit::OptionValue {
                    value: 1,
                    label: Some("Hot".to_owned()),
                },
                wit::OptionValue {
                    value: 3,
                    label: None,
                },
            ],
            valid_for_create: true,
            valid_for_update: false,
            type_name: Some("PicklistType".to_owned()),
            min_value: None,
            max_value: None,
            precision: None,
            date_only: false,
            lookup_targets: Vec::new(),
        }
    }

    #[test]
    fn columns_convert_and_find_options() {
        let column = ColumnInfo::from(rating());
        assert_eq!(column.required, RequiredLevel::ApplicationRequired);
        assert_eq!(
            (column.valid_for_create, column.valid_for_update),
            (true, false)
        );
        assert_eq!(column.option_value("hot"), Some(1));
        assert_eq!(column.option_value("Cold"), None);
        assert_eq!(column.option_label(1), Some("Hot"));
        assert_eq!(column.option_label(3), None);
        let description = TableDescription {
            table: TableInfo {
                logical_name: "lead".to_owned(),
                display_name: None,
                primary_id: "leadid".to_owned(),
                primary_name: Some("fullname".to_owned()),
                is_custom: false,
                granted: Operations::default(),
            },
            columns: vec![column],
        };
        assert!(description.column("leadqualitycode").is_some());
        assert!(description.column("revenue").is_none());
    }

    #[test]
    fn granted_flags_convert_to_bools() {
        let granted = Operations::from(wit::Operations::READ | wit::Operations::DELETE);
        assert_eq!(
            granted,
            Operations {
                read: true,
                create: false,
                update: false,
                delete: true,
            }
        );
        assert_eq!(
            Operations::from(wit::Operations::empty()),
            Operations::default()
        );
    }
}
