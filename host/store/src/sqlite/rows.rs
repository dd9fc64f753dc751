//! Reading columns into the store's types, and the stored form of times.
//! A column that does not read back (a hand-edited row) is an error naming
//! the column, never a panic.

use serde_json::Value;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Name, StoreError};

/// A time as stored: milliseconds since 1970 UTC.
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn malformed(column: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        action: "reading a row",
        detail: format!("column {column} does not hold what dvhost wrote there: {why}"),
    }
}

/// Typed access to the columns of one row.
pub(crate) struct Cols<'r>(pub(crate) &'r SqliteRow);

impl Cols<'_> {
    fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'a> sqlx::Decode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.0.try_get(column).map_err(|e| malformed(column, e))
    }

    pub(crate) fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column)
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }

    pub(crate) fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column)
    }

    pub(crate) fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }

    pub(crate) fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.get(column)
    }

    pub(crate) fn hash(&self, column: &str) -> Result<[u8; 32], StoreError> {
        let bytes = self.blob(column)?;
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| malformed(column, format!("{} bytes, not 32", bytes.len())))
    }

    pub(crate) fn uuid(&self, column: &str) -> Result<Uuid, StoreError> {
        let text = self.text(column)?;
        Uuid::parse_str(&text).map_err(|e| malformed(column, e))
    }

    pub(crate) fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(column)?
            .map(|text| Uuid::parse_str(&text).map_err(|e| malformed(column, e)))
            .transpose()
    }

    pub(crate) fn name(&self, column: &str) -> Result<Name, StoreError> {
        Name::parse(&self.text(column)?).map_err(|e| malformed(column, e))
    }

    pub(crate) fn time(&self, column: &str) -> Result<OffsetDateTime, StoreError> {
        from_millis(column, self.int(column)?)
    }

    pub(crate) fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_int(column)?
            .map(|ms| from_millis(column, ms))
            .transpose()
    }

    pub(crate) fn json(&self, column: &str) -> Result<Value, StoreError> {
        serde_json::from_str(&self.text(column)?).map_err(|e| malformed(column, e))
    }

    /// A column holding one of the store's text enums.
    pub(crate) fn parsed<T>(
        &self,
        column: &str,
        parse: impl Fn(&str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        parse(&self.text(column)?).map_err(|e| malformed(column, e))
    }
}

fn from_millis(column: &str, ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| malformed(column, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_milliseconds() {
        let at = crate::now();
        assert_eq!(from_millis("at", millis(at)).unwrap(), at);
        assert!(from_millis("at", i64::MAX).is_err());
    }
}
