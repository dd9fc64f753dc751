//! Pure conversions between the runtime's backend types and the
//! transport's: every table and column name goes through the transport's
//! typed constructors, so a name it refuses becomes
//! [`BackendError::InvalidInput`] before anything is sent; and the one
//! mapping from a [`DataverseError`] to the [`BackendError`] a guest may
//! see, with URLs and the environment's host taken out of every message.

use dvhost_dataverse::{
    AlternateKey, ColumnName, DataverseError, Expand, FilterValue, KeyValue, Op, Query, RecordKey,
    TargetError, TextMatch,
};
use dvhost_runtime::backend::{
    self, BackendError, ColumnInfo, Comparison, Condition, QuerySpec, RequiredLevel, RowKey,
    TableDescription, TableInfo,
};

/// A name or value the transport refused: nothing was sent.
pub(crate) fn refused(e: TargetError) -> BackendError {
    BackendError::InvalidInput(e.to_string())
}

/// Checked column names.
pub(crate) fn columns(names: &[String]) -> Result<Vec<ColumnName>, BackendError> {
    names
        .iter()
        .map(|n| ColumnName::new(n).map_err(refused))
        .collect()
}

/// A row key: an id, or an alternate key of checked columns.
pub(crate) fn record_key(key: &RowKey) -> Result<RecordKey, BackendError> {
    Ok(match key {
        RowKey::Id(id) => RecordKey::Id(*id),
        RowKey::Alternate(parts) => {
            let parts = parts.iter().map(|(column, value)| {
                let value = match value {
                    backend::KeyValue::Text(s) => KeyValue::String(s.clone()),
                    backend::KeyValue::Integer(n) => KeyValue::Int(*n),
                    backend::KeyValue::Guid(g) => KeyValue::Guid(*g),
                };
                (column.as_str(), value)
            });
            RecordKey::Alternate(AlternateKey::new(parts).map_err(refused)?)
        }
    })
}

/// Checked `$expand` items.
pub(crate) fn expansions(list: &[backend::Expand]) -> Result<Vec<Expand>, BackendError> {
    list.iter()
        .map(|e| {
            let select: Vec<&str> = e.select.iter().map(String::as_str).collect();
            Expand::new(&e.navigation, &select).map_err(refused)
        })
        .collect()
}

/// An ISO 8601 date-time (RFC 3339, with an offset) or a date (midnight
/// UTC); anything else is refused rather than sent for Dataverse to guess.
pub(crate) fn date_time(text: &str) -> Result<time::OffsetDateTime, BackendError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(text, &date_only) {
        Ok(d) => Ok(d.midnight().assume_utc()),
        Err(_) => Err(BackendError::InvalidInput(format!(
            "'{}' is not a date (2024-05-31) or an RFC 3339 date-time (2024-05-31T08:00:00Z)",
            text.chars().take(100).collect::<String>()
        ))),
    }
}

fn filter_value(v: &backend::FilterValue) -> Result<FilterValue, BackendError> {
    use backend::FilterValue as F;
    Ok(match v {
        F::Null => FilterValue::Null,
        F::Text(s) => FilterValue::String(s.clone()),
        F::Integer(n) => FilterValue::Int(*n),
        F::Number(n) => FilterValue::Number(*n),
        F::Boolean(b) => FilterValue::Bool(*b),
        F::Guid(g) => FilterValue::Guid(*g),
        F::DateTime(s) => FilterValue::DateTime(date_time(s)?),
    })
}

fn op(c: Comparison) -> Op {
    match c {
        Comparison::Eq => Op::Eq,
        Comparison::Ne => Op::Ne,
        Comparison::Gt => Op::Gt,
        Comparison::Ge => Op::Ge,
        Comparison::Lt => Op::Lt,
        Comparison::Le => Op::Le,
    }
}

fn text_match(t: backend::TextMatch) -> TextMatch {
    match t {
        backend::TextMatch::Contains => TextMatch::Contains,
        backend::TextMatch::StartsWith => TextMatch::StartsWith,
        backend::TextMatch::EndsWith => TextMatch::EndsWith,
    }
}

/// A [`QuerySpec`] as the transport's query builder, every name checked and
/// every value escaped by it.
pub(crate) fn query(mut q: Query, spec: &QuerySpec) -> Result<Query, BackendError> {
    if !spec.select.is_empty() {
        let select: Vec<&str> = spec.select.iter().map(String::as_str).collect();
        q = q.select(&select).map_err(refused)?;
    }
    for condition in &spec.filter {
        q = match condition {
            Condition::Compare {
                column,
                op: o,
                value,
            } => q.filter(column, op(*o), filter_value(value)?),
            Condition::Text {
                function,
                column,
                text,
            } => q.filter_text(text_match(*function), column, text),
        }
        .map_err(refused)?;
    }
    for order in &spec.order_by {
        q = q
            .order_by(&order.column, order.descending)
            .map_err(refused)?;
    }
    if let Some(n) = spec.top {
        q = q.top(n);
    }
    if let Some(n) = spec.page_size {
        q = q.page_size(n);
    }
    if spec.count {
        q = q.count();
    }
    for e in expansions(&spec.expand)? {
        q = q.expand_with(&e);
    }
    Ok(q)
}

/// A table as the runtime sees it.
pub(crate) fn table_info(t: &dvhost_dataverse::TableInfo) -> TableInfo {
    TableInfo {
        logical_name: t.logical_name.to_string(),
        display_name: t.display_name.clone(),
        primary_id: t.primary_id.to_string(),
        primary_name: t.primary_name.clone(),
        is_custom: t.is_custom,
    }
}

fn required_level(level: Option<&str>) -> RequiredLevel {
    match level {
        Some("SystemRequired") => RequiredLevel::SystemRequired,
        Some("ApplicationRequired") => RequiredLevel::ApplicationRequired,
        Some("Recommended") => RequiredLevel::Recommended,
        _ => RequiredLevel::None,
    }
}

fn column_info(c: &dvhost_dataverse::ColumnInfo) -> ColumnInfo {
    ColumnInfo {
        logical_name: c.logical_name.clone(),
        kind: c.kind.clone(),
        display_name: c.display_name.clone(),
        required: required_level(c.required.as_deref()),
        max_length: c.max_length.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        targets: c.targets.clone(),
        options: c
            .options
            .iter()
            .map(|o| (o.value, o.label.clone()))
            .collect(),
        valid_for_create: c.valid_for_create,
        valid_for_update: c.valid_for_update,
        type_name: c.type_name.clone(),
        min_value: c.min_value,
        max_value: c.max_value,
        precision: c.precision,
        date_only: c.date_time_behavior.as_deref() == Some("DateOnly"),
        lookup_targets: c
            .lookup_targets
            .iter()
            .map(|t| backend::LookupTarget {
                table: t.table.clone(),
                navigation: t.navigation.clone(),
                entity_set: t.entity_set.to_string(),
            })
            .collect(),
    }
}

/// A table's description as the runtime sees it.
pub(crate) fn description(d: &dvhost_dataverse::TableDescription) -> TableDescription {
    TableDescription {
        table: table_info(&d.table),
        columns: d.columns.iter().map(column_info).collect(),
    }
}

/// Takes URLs and the environment's host out of a message that may reach a
/// guest: `http(s)://...` up to the next space or quote becomes `<url>`,
/// and `environment_host` (with or without its port) `<environment>`.
pub(crate) fn redact(message: &str, environment_host: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = find_scheme(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = url_end(tail);
        out.push_str("<url>");
        rest = &tail[end..];
    }
    out.push_str(rest);
    if environment_host.is_empty() {
        return out;
    }
    let host = environment_host
        .split(':')
        .next()
        .unwrap_or(environment_host);
    out.replace(environment_host, "<environment>")
        .replace(host, "<environment>")
}

/// Where a URL at the start of `text` ends: at a space, a quote or an
/// angle bracket, or at a `)` it did not open (Web API paths hold keys in
/// parentheses, and messages put URLs in them).
fn url_end(text: &str) -> usize {
    let mut depth = 0u32;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return i,
            ')' => depth -= 1,
            c if c.is_whitespace() || "'\"<>".contains(c) => return i,
            _ => {}
        }
    }
    text.len()
}

/// Where the first `http://` or `https://` starts, in any case.
fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

/// The one mapping from a transport failure to what the runtime (and so a
/// guest) sees. `environment_host` is redacted from every message.
pub(crate) fn backend_error(e: DataverseError, environment_host: &str) -> BackendError {
    let clean = |text: String| redact(&text, environment_host);
    match e {
        DataverseError::Api {
            status,
            code,
            message,
            retry_after,
        } => BackendError::Dataverse {
            status,
            code: (!code.is_empty()).then_some(code),
            message: clean(message),
            retry_after: retry_after.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        },
        DataverseError::Target(t) => BackendError::InvalidInput(clean(t.to_string())),
        DataverseError::Deadline(_) => BackendError::Deadline,
        DataverseError::Identity(i) => BackendError::Unavailable(clean(format!(
            "the connection could not sign in to Dataverse: {i}"
        ))),
        other => BackendError::Unavailable(clean(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvhost_dataverse::EntitySet;
    use dvhost_runtime::backend::{Expand as Wanted, FilterValue as F, Order};
    use uuid::Uuid;

    fn accounts() -> Query {
        Query::new(&EntitySet::new("accounts").unwrap())
    }

    fn invalid(r: Result<impl std::fmt::Debug, BackendError>) -> String {
        match r {
            Err(BackendError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_query_spec_becomes_the_same_filter_the_builder_writes() {
        let id = Uuid::from_u128(7);
        let spec = QuerySpec {
            select: vec!["name".into(), "revenue".into()],
            filter: vec![
                Condition::Compare {
                    column: "name".into(),
                    op: Comparison::Ne,
                    value: F::Text("O'Neil".into()),
                },
                Condition::Compare {
                    column: "revenue".into(),
                    op: Comparison::Ge,
                    value: F::Number(1.5),
                },
                Condition::Compare {
                    column: "numberofemployees".into(),
                    op: Comparison::Lt,
                    value: F::Integer(9),
                },
                Condition::Compare {
                    column: "donotemail".into(),
                    op: Comparison::Eq,
                    value: F::Boolean(false),
                },
                Condition::Compare {
                    column: "_parentaccountid_value".into(),
                    op: Comparison::Eq,
                    value: F::Guid(id),
                },
                Condition::Compare {
                    column: "telephone1".into(),
                    op: Comparison::Eq,
                    value: F::Null,
                },
                Condition::Compare {
                    column: "createdon".into(),
                    op: Comparison::Gt,
                    value: F::DateTime("2024-05-31".into()),
                },
                Condition::Compare {
                    column: "modifiedon".into(),
                    op: Comparison::Le,
                    value: F::DateTime("2024-05-31T08:00:00+02:00".into()),
                },
                Condition::Text {
                    function: backend::TextMatch::StartsWith,
                    column: "parentaccountid/name".into(),
                    text: "50%".into(),
                },
            ],
            order_by: vec![Order {
                column: "name".into(),
                descending: true,
            }],
            top: Some(10),
            page_size: Some(3),
            count: true,
            expand: vec![Wanted {
                navigation: "primarycontactid".into(),
                select: vec!["fullname".into()],
            }],
        };
        let q = query(accounts(), &spec).unwrap();
        assert_eq!(
            q.rendered_filter().unwrap(),
            "name ne 'O''Neil' and revenue ge 1.5 and numberofemployees lt 9 and donotemail eq false \
             and _parentaccountid_value eq 00000000-0000-0000-0000-000000000007 and telephone1 eq null \
             and createdon gt 2024-05-31T00:00:00Z and modifiedon le 2024-05-31T08:00:00+02:00 \
             and startswith(parentaccountid/name,'50[%]')"
        );
        // Everything but the filter, compared with the builder used directly.
        let unfiltered = query(
            accounts(),
            &QuerySpec {
                filter: vec![],
                ..spec
            },
        )
        .unwrap();
        let expected = accounts()
            .select(&["name", "revenue"])
            .unwrap()
            .order_by("name", true)
            .unwrap()
            .top(10)
            .page_size(3)
            .count()
            .expand("primarycontactid", &["fullname"])
            .unwrap();
        assert_eq!(format!("{unfiltered:?}"), format!("{expected:?}"));
    }

    #[test]
    fn names_the_transport_refuses_are_invalid_input() {
        let spec = |column: &str| QuerySpec {
            filter: vec![Condition::Compare {
                column: column.into(),
                op: Comparison::Eq,
                value: F::Integer(1),
            }],
            ..QuerySpec::default()
        };
        for bad in [
            "name) or (1 eq 1",
            "true",
            "a/b/c/d/e",
            "https://evil.example/x",
        ] {
            let m = invalid(query(accounts(), &spec(bad)));
            assert!(m.contains("not a valid"), "{m}");
        }
        invalid(query(
            accounts(),
            &QuerySpec {
                select: vec!["a,b".into()],
                ..QuerySpec::default()
            },
        ));
        let order = Order {
            column: "name desc".into(),
            descending: false,
        };
        invalid(query(
            accounts(),
            &QuerySpec {
                order_by: vec![order],
                ..QuerySpec::default()
            },
        ));
        let expand = Wanted {
            navigation: "x($top=1)".into(),
            select: vec![],
        };
        invalid(query(
            accounts(),
            &QuerySpec {
                expand: vec![expand],
                ..QuerySpec::default()
            },
        ));
        let nan = Condition::Compare {
            column: "revenue".into(),
            op: Comparison::Gt,
            value: F::Number(f64::NAN),
        };
        invalid(query(
            accounts(),
            &QuerySpec {
                filter: vec![nan],
                ..QuerySpec::default()
            },
        ));
        invalid(columns(&["name".into(), "na me".into()]));
        invalid(expansions(&[Wanted {
            navigation: "primarycontactid".into(),
            select: vec!["a b".into()],
        }]));
        invalid(record_key(&RowKey::Alternate(vec![])));
        invalid(record_key(&RowKey::Alternate(vec![(
            "accountnumber)?x=".into(),
            backend::KeyValue::Integer(1),
        )])));
    }

    #[test]
    fn date_times_are_rfc_3339_or_dates_and_nothing_else() {
        assert_eq!(
            date_time("2024-05-31").unwrap(),
            time::macros::datetime!(2024-05-31 0:00 UTC)
        );
        assert_eq!(
            date_time("2024-05-31T08:00:00Z").unwrap(),
            time::macros::datetime!(2024-05-31 8:00 UTC)
        );
        for bad in [
            "yesterday",
            "2024-13-01",
            "2024-05-31T08:00:00",
            "31/05/2024",
            "2024-05-31 or 1 eq 1",
            "",
        ] {
            assert!(invalid(date_time(bad)).contains("not a date"), "{bad}");
        }
    }

    #[test]
    fn row_keys_become_record_keys() {
        let id = Uuid::from_u128(42);
        assert_eq!(record_key(&RowKey::Id(id)).unwrap(), RecordKey::Id(id));
        let key = RowKey::Alternate(vec![
            (
                "accountnumber".into(),
                backend::KeyValue::Text("A-1".into()),
            ),
            ("new_n".into(), backend::KeyValue::Integer(3)),
            ("new_g".into(), backend::KeyValue::Guid(id)),
        ]);
        let expected = AlternateKey::new([
            ("accountnumber", KeyValue::String("A-1".into())),
            ("new_n", KeyValue::Int(3)),
            ("new_g", KeyValue::Guid(id)),
        ])
        .unwrap();
        assert_eq!(record_key(&key).unwrap(), RecordKey::Alternate(expected));
    }

    #[test]
    fn dataverse_errors_map_to_backend_errors_without_urls() {
        let host = "org.crm.example:8443";
        let api = DataverseError::Api {
            status: 404,
            code: "0x80040217".into(),
            message: "account With Id = 1 Does Not Exist at https://org.crm.example:8443/api/data/v9.2/accounts(1)".into(),
            retry_after: Some(u64::MAX),
        };
        assert_eq!(
            backend_error(api, host),
            BackendError::Dataverse {
                status: 404,
                code: Some("0x80040217".into()),
                message: "account With Id = 1 Does Not Exist at <url>".into(),
                retry_after: Some(u32::MAX),
            }
        );
        let no_code = DataverseError::Api {
            status: 500,
            code: String::new(),
            message: "boom".into(),
            retry_after: None,
        };
        assert!(matches!(
            backend_error(no_code, host),
            BackendError::Dataverse { code: None, .. }
        ));
        assert_eq!(
            backend_error(DataverseError::Deadline(" (last error: x)".into()), host),
            BackendError::Deadline
        );
        let target = DataverseError::Target(TargetError::EmptyKey);
        assert!(matches!(
            backend_error(target, host),
            BackendError::InvalidInput(_)
        ));
        for e in [
            DataverseError::Unreachable(
                "error sending request for url (https://org.crm.example:8443/api/data/v9.2/x)"
                    .into(),
            ),
            DataverseError::Transport("connection reset by org.crm.example".into()),
            DataverseError::Unexpected("HTTP://ORG.CRM.EXAMPLE:8443/api".into()),
            DataverseError::Identity(dvhost_dataverse::IdentityError::Transport(
                "POST http://127.0.0.1:9/tenant/oauth2/v2.0/token failed".into(),
            )),
        ] {
            let shown = format!("{e}");
            match backend_error(e, host) {
                BackendError::Unavailable(m) => {
                    assert!(!m.to_ascii_lowercase().contains("org.crm.example"), "{m}");
                    assert!(
                        !m.contains("http") && !m.contains("HTTP:") && !m.contains("/api/"),
                        "{m}"
                    );
                    assert!(
                        m.contains("<url>") || m.contains("<environment>"),
                        "{shown} -> {m}"
                    );
                }
                other => panic!("{shown}: {other:?}"),
            }
        }
    }

    #[test]
    fn redaction_keeps_the_words_around_a_url() {
        let host = "env.example:7401";
        assert_eq!(
            redact("see (https://env.example:7401/api/accounts(1)) now", host),
            "see (<url>) now"
        );
        assert_eq!(
            redact("'HTTP://x/y' and http://z", host),
            "'<url>' and <url>"
        );
        assert_eq!(
            redact("env.example:7401 and env.example refused", host),
            "<environment> and <environment> refused"
        );
        assert_eq!(redact("nothing to hide", ""), "nothing to hide");
    }

    #[test]
    fn metadata_levels_and_lengths_convert() {
        assert_eq!(
            required_level(Some("SystemRequired")),
            RequiredLevel::SystemRequired
        );
        assert_eq!(
            required_level(Some("ApplicationRequired")),
            RequiredLevel::ApplicationRequired
        );
        assert_eq!(
            required_level(Some("Recommended")),
            RequiredLevel::Recommended
        );
        assert_eq!(required_level(Some("None")), RequiredLevel::None);
        assert_eq!(required_level(Some("Sideways")), RequiredLevel::None);
        assert_eq!(required_level(None), RequiredLevel::None);
        let column = dvhost_dataverse::ColumnInfo {
            logical_name: "name".into(),
            kind: "String".into(),
            type_name: Some("StringType".into()),
            display_name: Some("Name".into()),
            required: Some("ApplicationRequired".into()),
            max_length: Some(u64::MAX),
            targets: vec![],
            options: vec![dvhost_dataverse::OptionValue {
                value: 1,
                label: Some("One".into()),
            }],
            valid_for_create: true,
            valid_for_update: false,
            date_time_behavior: Some("DateOnly".into()),
            lookup_targets: vec![dvhost_dataverse::LookupTarget {
                table: "account".into(),
                navigation: "parentcustomerid_account".into(),
                entity_set: dvhost_dataverse::EntitySet::new("accounts").unwrap(),
            }],
            ..Default::default()
        };
        let c = column_info(&column);
        assert!(c.date_only);
        assert_eq!(c.type_name.as_deref(), Some("StringType"));
        assert_eq!(c.lookup_targets[0].navigation, "parentcustomerid_account");
        assert_eq!(c.lookup_targets[0].entity_set, "accounts");
        assert_eq!(c.max_length, Some(u32::MAX));
        assert_eq!(c.required, RequiredLevel::ApplicationRequired);
        assert_eq!(c.options, vec![(1, Some("One".into()))]);
        assert!(c.valid_for_create && !c.valid_for_update);
    }
}
