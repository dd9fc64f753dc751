//! Resource paths after `/api/data/v9.2/`: `accounts`, `accounts(<guid>)`,
//! `contacts(firstname='Joe',emailaddress1='j@x.com')`, `accounts(<id>)/name`,
//! `accounts(<id>)/Account_Tasks/$ref`.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::DvError;

/// How a segment addresses a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Id(Uuid),
    /// Alternate key: column (Web API name) = value.
    Alternate(Vec<(String, Value)>),
}

impl Key {
    /// For a row created at this key (upsert): the id it gets (`None`: a
    /// new one); an alternate key's values become column values of the
    /// new row, unless `values` sets them.
    pub fn creation_id(&self, values: &mut Map<String, Value>) -> Option<Uuid> {
        match self {
            Key::Id(id) => Some(*id),
            Key::Alternate(pairs) => {
                for (k, v) in pairs {
                    values.entry(k.clone()).or_insert_with(|| v.clone());
                }
                None
            }
        }
    }
}

/// One path segment: a name and an optional key in parentheses.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    pub key: Option<Key>,
}

/// Why a resource path does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PathError {
    /// Empty segments, unbalanced parentheses or quotes, or a key that is
    /// neither a GUID nor `name=value` pairs.
    #[error("Bad Request - Error in query syntax: the path '{path}' is not valid.")]
    Invalid {
        /// The path as requested.
        path: String,
    },
}

/// 0x80060888, as an unknown segment.
impl From<PathError> for DvError {
    fn from(e: PathError) -> Self {
        DvError::segment(e.to_string())
    }
}

fn bad(path: &str) -> PathError {
    PathError::Invalid {
        path: path.to_string(),
    }
}

/// Splits on `/` outside quotes and parentheses.
fn split(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let (mut start, mut depth, mut quoted) = (0usize, 0i32, false);
    for (i, c) in path.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '/' if !quoted && depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    if quoted || depth != 0 {
        return None;
    }
    out.push(&path[start..]);
    Some(out)
}

fn key_value(raw: &str) -> Option<Value> {
    let raw = raw.trim();
    if let Some(s) = raw.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Value::String(s.replace("''", "'")));
    }
    if let Ok(g) = Uuid::parse_str(raw) {
        return Some(Value::String(g.to_string()));
    }
    match raw {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    raw.parse::<i64>().ok().map(Value::from).or_else(|| {
        raw.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    })
}

fn parse_key(inner: &str) -> Option<Key> {
    if let Ok(id) = Uuid::parse_str(inner.trim()) {
        return Some(Key::Id(id));
    }
    let pairs = crate::odata::split_unquoted(inner, '\'')
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let k = k.trim();
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then_some(())?;
            Some((k.to_string(), key_value(v)?))
        })
        .collect::<Option<Vec<_>>>()?;
    (!pairs.is_empty()).then_some(Key::Alternate(pairs))
}

/// Parses the resource path (without a leading `/`).
pub fn parse(path: &str) -> Result<Vec<Segment>, PathError> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let parts = split(path).ok_or_else(|| bad(path))?;
    parts
        .into_iter()
        .map(|p| {
            if p.is_empty() {
                return Err(bad(path));
            }
            match p.find('(') {
                // `WhoAmI()` is a function call, not a key.
                Some(i) if p.ends_with(')') && i + 2 == p.len() => Ok(Segment {
                    name: p.to_string(),
                    key: None,
                }),
                Some(i) if p.ends_with(')') => {
                    let key = parse_key(&p[i + 1..p.len() - 1]).ok_or_else(|| bad(path))?;
                    Ok(Segment {
                        name: p[..i].to_string(),
                        key: Some(key),
                    })
                }
                Some(_) => Err(bad(path)),
                None => Ok(Segment {
                    name: p.to_string(),
                    key: None,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_segments() {
        let id = "9a3c5e2b-0000-0000-0000-000000000001";
        let s = parse(&format!("accounts({id})/name")).unwrap();
        assert_eq!(s[0].key, Some(Key::Id(id.parse().unwrap())));
        assert_eq!(s[1].name, "name");
        let s = parse("contacts(firstname='Jo''e',emailaddress1='a/b@x.com')").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].key,
            Some(Key::Alternate(vec![
                ("firstname".into(), "Jo'e".into()),
                ("emailaddress1".into(), "a/b@x.com".into())
            ]))
        );
        assert_eq!(parse("WhoAmI()").unwrap()[0].name, "WhoAmI()");
        assert_eq!(parse("").unwrap(), vec![]);
        for bad in [
            "accounts(",
            "accounts('x)",
            "accounts(a=)",
            "a//b",
            "accounts(=1)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,120}") {
            crate::test_support::must_not_panic(parse(&s));
        }
    }
}
