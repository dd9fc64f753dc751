//! Typed request targets: table, entity set and column names, record keys,
//! and the relative request path built from them. Nothing else can name
//! where a request goes, and every URL is checked to stay under the
//! environment's Web API before a token is attached to it.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::Url;
use uuid::Uuid;

/// Longest name accepted (Dataverse schema names are far shorter).
const MAX_NAME: usize = 128;

/// A name, key or link that cannot be used as a request target.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A table, entity set or column name that breaks Dataverse's naming rules.
    #[error("{name:?} is not a valid {what}: {why}")]
    InvalidName {
        /// Which kind of name (`entity set`, `table`, `column`).
        what: &'static str,
        /// The name as given (at most 100 characters of it).
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An alternate key without columns.
    #[error("an alternate key needs at least one column")]
    EmptyKey,
    /// A next link (or any URL from a server) that leaves the environment's
    /// Web API: another scheme, host or port, credentials, or another path.
    #[error("refused to follow a link that does not point into this environment's Web API ({why})")]
    ForeignLink {
        /// What is wrong with it.
        why: &'static str,
    },
}

fn check_identifier(what: &'static str, name: &str, lower_only: bool) -> Result<(), TargetError> {
    let fail = |why| {
        Err(TargetError::InvalidName {
            what,
            name: name.chars().take(100).collect(),
            why,
        })
    };
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return fail("it is empty");
    };
    if name.len() > MAX_NAME {
        return fail("it is longer than 128 characters");
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return fail("it must start with a letter or '_'");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return fail("only letters, digits and '_' are allowed");
    }
    if lower_only && name.chars().any(|c| c.is_ascii_uppercase()) {
        return fail("logical names are lower case");
    }
    if what == "column" && ODATA_WORDS.iter().any(|w| name.eq_ignore_ascii_case(w)) {
        // `true eq true` would turn a condition into a constant.
        return fail("it is an OData keyword or literal");
    }
    if what == "entity set" && name.ends_with("Definitions") {
        // Metadata is read through the metadata API, never written as records.
        return fail("it is a metadata collection, not a table");
    }
    Ok(())
}

/// Words a `$filter` reads as literals or operators, never as properties.
const ODATA_WORDS: &[&str] = &[
    "true", "false", "null", "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "has", "in",
    "add", "sub", "mul", "div", "mod", "inf", "nan", "any", "all", "it",
];

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $lower:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            #[doc = concat!("Checks a ", $what, " name.")]
            pub fn new(name: &str) -> Result<$ty, TargetError> {
                check_identifier($what, name, $lower).map(|()| $ty(name.to_string()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = TargetError;
            fn from_str(s: &str) -> Result<$ty, TargetError> {
                $ty::new(s)
            }
        }
    };
}

name_type!(
    /// An entity set name (`accounts`, `new_widgets`), the collection a
    /// table is served as.
    EntitySet,
    "entity set",
    false
);
name_type!(
    /// A table's logical name (`account`, `new_widget`): lower case.
    TableName,
    "table",
    true
);
name_type!(
    /// A column or navigation property name (`name`, `_parentaccountid_value`,
    /// `primarycontactid`).
    ColumnName,
    "column",
    false
);

/// A value of an alternate-key column.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// A string (quoted, `'` doubled).
    String(String),
    /// A whole number.
    Int(i64),
    /// A GUID.
    Guid(Uuid),
}

impl From<&str> for KeyValue {
    fn from(s: &str) -> Self {
        KeyValue::String(s.into())
    }
}
impl From<String> for KeyValue {
    fn from(s: String) -> Self {
        KeyValue::String(s)
    }
}
impl From<i64> for KeyValue {
    fn from(n: i64) -> Self {
        KeyValue::Int(n)
    }
}
impl From<Uuid> for KeyValue {
    fn from(g: Uuid) -> Self {
        KeyValue::Guid(g)
    }
}

/// An alternate key: one or more columns and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct AlternateKey(Vec<(ColumnName, KeyValue)>);

impl AlternateKey {
    /// A key of the given columns (checked) and values.
    pub fn new<C: AsRef<str>, V: Into<KeyValue>>(
        parts: impl IntoIterator<Item = (C, V)>,
    ) -> Result<AlternateKey, TargetError> {
        let parts: Vec<(ColumnName, KeyValue)> = parts
            .into_iter()
            .map(|(c, v)| Ok((ColumnName::new(c.as_ref())?, v.into())))
            .collect::<Result<_, TargetError>>()?;
        AlternateKey::from_parts(parts)
    }

    /// A key of already checked columns.
    pub fn from_parts(parts: Vec<(ColumnName, KeyValue)>) -> Result<AlternateKey, TargetError> {
        if parts.is_empty() {
            return Err(TargetError::EmptyKey);
        }
        Ok(AlternateKey(parts))
    }
}

/// Which record: its id, or an alternate key.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordKey {
    /// The primary key.
    Id(Uuid),
    /// An alternate key.
    Alternate(AlternateKey),
}

impl From<Uuid> for RecordKey {
    fn from(id: Uuid) -> Self {
        RecordKey::Id(id)
    }
}
impl From<AlternateKey> for RecordKey {
    fn from(k: AlternateKey) -> Self {
        RecordKey::Alternate(k)
    }
}

/// What must be escaped inside a key segment: anything that would end the
/// path segment, start a query or fragment, or be read as an escape.
const KEY_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl RecordKey {
    /// The text between the parentheses of `accounts(...)`, escaped for a path.
    fn segment(&self) -> String {
        match self {
            RecordKey::Id(id) => id.to_string(),
            RecordKey::Alternate(AlternateKey(parts)) => {
                let text: Vec<String> = parts
                    .iter()
                    .map(|(c, v)| {
                        let v = match v {
                            KeyValue::String(s) => format!("'{}'", s.replace('\'', "''")),
                            KeyValue::Int(n) => n.to_string(),
                            KeyValue::Guid(g) => g.to_string(),
                        };
                        format!("{c}={v}")
                    })
                    .collect();
                utf8_percent_encode(&text.join(","), KEY_ESCAPE).to_string()
            }
        }
    }
}

/// Where one request goes, relative to the environment's Web API. Built
/// only from checked names and fixed segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    path: String,
    query: Vec<(&'static str, String)>,
}

impl Target {
    /// A fixed resource (`WhoAmI`, `$batch`, `EntityDefinitions`).
    pub(crate) fn fixed(path: &'static str) -> Target {
        Target {
            path: path.into(),
            query: Vec::new(),
        }
    }

    /// A collection.
    pub(crate) fn set(set: &EntitySet) -> Target {
        Target {
            path: set.to_string(),
            query: Vec::new(),
        }
    }

    /// One record of a collection.
    pub(crate) fn record(set: &EntitySet, key: &RecordKey) -> Target {
        Target {
            path: format!("{set}({})", key.segment()),
            query: Vec::new(),
        }
    }

    /// A table's definition, `EntityDefinitions(LogicalName='account')`.
    pub(crate) fn definition(table: &TableName) -> Target {
        Target {
            path: format!("EntityDefinitions(LogicalName='{table}')"),
            query: Vec::new(),
        }
    }

    /// Adds a navigation property segment.
    pub(crate) fn nav(mut self, property: &ColumnName) -> Target {
        self.path = format!("{}/{property}", self.path);
        self
    }

    /// Adds a navigation property segment with a key, `nav(<id>)`.
    pub(crate) fn nav_record(mut self, property: &ColumnName, id: Uuid) -> Target {
        self.path = format!("{}/{property}({id})", self.path);
        self
    }

    /// Adds a fixed segment (`$ref`, `Attributes`, a bound action).
    pub(crate) fn then(mut self, segment: &'static str) -> Target {
        self.path = format!("{}/{segment}", self.path);
        self
    }

    /// Adds a query option; the value is URL-encoded.
    pub(crate) fn option(mut self, name: &'static str, value: impl Into<String>) -> Target {
        self.query.push((name, value.into()));
        self
    }

    /// The path and query relative to the Web API base.
    pub(crate) fn relative(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            pairs.append_pair(k, v);
        }
        format!("{}?{}", self.path, pairs.finish())
    }

    /// The absolute URL under `api`, checked to stay there.
    pub(crate) fn url(&self, api: &Url) -> Result<Url, TargetError> {
        let url = api
            .join(&self.relative())
            .map_err(|_| TargetError::ForeignLink {
                why: "it is not a valid URL",
            })?;
        check_within(api, &url)?;
        Ok(url)
    }
}

/// Whether `url` is under the Web API base `api`: same scheme, host and
/// port, no credentials, a path below the base. Every request passes here
/// just before its token is attached; next links are checked here when they
/// arrive.
pub(crate) fn check_within(api: &Url, url: &Url) -> Result<(), TargetError> {
    let why = if url.scheme() != api.scheme() {
        "another scheme"
    } else if !url.username().is_empty() || url.password().is_some() {
        "it carries credentials"
    } else if url.host() != api.host() {
        "another host"
    } else if url.port_or_known_default() != api.port_or_known_default() {
        "another port"
    } else if !url.path().starts_with(api.path()) {
        "a path outside the Web API"
    } else if url.fragment().is_some() {
        "it has a fragment"
    } else {
        return Ok(());
    };
    Err(TargetError::ForeignLink { why })
}

/// A next link from a server, resolved against the Web API base and checked.
pub(crate) fn continuation(api: &Url, link: &str) -> Result<Url, TargetError> {
    if link.chars().any(|c| c.is_ascii_control()) {
        return Err(TargetError::ForeignLink {
            why: "it contains control characters",
        });
    }
    let url = api.join(link).map_err(|_| TargetError::ForeignLink {
        why: "it is not a valid URL",
    })?;
    check_within(api, &url)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dataverse_rules() {
        for ok in ["accounts", "new_widgets", "_parentaccountid_value", "A1"] {
            EntitySet::new(ok).unwrap();
            ColumnName::new(ok).unwrap();
        }
        assert!(TableName::new("Account").is_err());
        for word in ["true", "NULL", "and", "INF", "NaN", "not"] {
            assert!(ColumnName::new(word).is_err(), "{word}");
        }
        assert!(EntitySet::new("EntityDefinitions").is_err());
        TableName::new("new_widget").unwrap();
        for bad in [
            "",
            "accounts?x=",
            "../",
            "https://evil.example/x",
            "a b",
            "a\r\nb",
            "1abc",
            "a/b",
            "a(b)",
            "ä",
            &"a".repeat(129),
        ] {
            assert!(EntitySet::new(bad).is_err(), "{bad:?}");
            assert!(TableName::new(bad).is_err(), "{bad:?}");
            assert!(ColumnName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_values_cannot_leave_their_segment() {
        let api = Url::parse("https://env.example/api/data/v9.2/").unwrap();
        let set = EntitySet::new("accounts").unwrap();
        let key = AlternateKey::new([("accountnumber", "A'1/../../x?y#z %41")]).unwrap();
        let url = Target::record(&set, &key.into()).url(&api).unwrap();
        assert_eq!(
            url.as_str(),
            "https://env.example/api/data/v9.2/accounts(accountnumber='A''1%2F..%2F..%2Fx%3Fy%23z%20%2541')"
        );
        assert!(url.query().is_none() && url.fragment().is_none());
        assert_eq!(AlternateKey::from_parts(vec![]), Err(TargetError::EmptyKey));
    }

    #[test]
    fn links_must_stay_under_the_web_api() {
        let api = Url::parse("https://env.example:8443/org/api/data/v9.2/").unwrap();
        continuation(
            &api,
            "https://env.example:8443/org/api/data/v9.2/accounts?$skiptoken=x",
        )
        .unwrap();
        continuation(&api, "accounts?$skiptoken=x").unwrap();
        for (bad, why) in [
            (
                "https://evil.example:8443/org/api/data/v9.2/accounts",
                "another host",
            ),
            (
                "https://env.example:9443/org/api/data/v9.2/accounts",
                "another port",
            ),
            (
                "https://env.example/org/api/data/v9.2/accounts",
                "another port",
            ),
            (
                "http://env.example:8443/org/api/data/v9.2/accounts",
                "another scheme",
            ),
            (
                "HTTPS://evil.example:8443/org/api/data/v9.2/",
                "another host",
            ),
            ("//evil.example:8443/org/api/data/v9.2/", "another host"),
            (
                "https://env.example:8443@evil.example:8443/org/api/data/v9.2/",
                "it carries credentials",
            ),
            (
                "https://u:p@env.example:8443/org/api/data/v9.2/",
                "it carries credentials",
            ),
            ("/org/api/data/v9.1/accounts", "a path outside the Web API"),
            ("../../../x", "a path outside the Web API"),
            ("%2e%2e/%2e%2e/x", "a path outside the Web API"),
            ("accounts#frag", "it has a fragment"),
            ("accounts\r\nHost: evil", "it contains control characters"),
        ] {
            assert_eq!(
                continuation(&api, bad),
                Err(TargetError::ForeignLink { why }),
                "{bad}"
            );
        }
    }
}
