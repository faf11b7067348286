//! How Rust values become column values and back, identically on both backends.
//!
//! Times are BIGINT microseconds since the Unix epoch, UTC. sqlx's Any driver (one set of
//! queries for SQLite and PostgreSQL) carries no date type, and an integer sorts, compares
//! and indexes the same way everywhere. Microseconds are what PostgreSQL's TIMESTAMPTZ
//! keeps, so a later move to it loses nothing; finer parts of a time (and of a latency)
//! are truncated on save, so a value read back equals the saved one truncated to the µs.
//!
//! Enums are stored as their `as_str` spelling and parsed back with `FromStr`; a spelling
//! the code does not know is a [`StoreError::Corrupt`] naming the table and column.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyTypeInfo, AnyTypeInfoKind, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Type, ValueRef};

use crate::error::StoreError;

/// A flag column: BOOLEAN in PostgreSQL, INTEGER 0/1 in SQLite (whose Any driver has no
/// boolean). Decodes from either; binding a plain `bool` already encodes right for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <bool as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind() == AnyTypeInfoKind::Bool || ty.kind().is_integer()
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.type_info().kind() == AnyTypeInfoKind::Bool {
            return <bool as Decode<Any>>::decode(value).map(Flag);
        }
        match <i64 as Decode<Any>>::decode(value)? {
            0 => Ok(Flag(false)),
            1 => Ok(Flag(true)),
            other => Err(format!("flag holds {other}, not 0 or 1").into()),
        }
    }
}

/// Names the column a value came from, for [`StoreError::Corrupt`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub table: &'static str,
    pub column: &'static str,
}

impl Column {
    pub(crate) const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }

    pub(crate) fn corrupt(self, detail: impl Into<String>) -> StoreError {
        StoreError::corrupt(self.table, self.column, detail)
    }

    /// Parses an enum's text spelling.
    pub(crate) fn parse<T>(self, text: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        text.parse().map_err(|err: T::Err| self.corrupt(err.to_string()))
    }

    pub(crate) fn parse_opt<T>(self, text: Option<&str>) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        text.map(|t| self.parse(t)).transpose()
    }

    pub(crate) fn time(self, micros: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| self.corrupt(format!("{micros} µs is out of range for a time")))
    }

    pub(crate) fn time_opt(self, micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
        micros.map(|m| self.time(m)).transpose()
    }

    pub(crate) fn unsigned(self, value: i64) -> Result<u64, StoreError> {
        u64::try_from(value).map_err(|_| self.corrupt(format!("{value} is negative")))
    }
}

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn micros_opt(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(micros)
}

/// A duration in µs, saturating: a probe latency beyond 292,000 years cannot happen.
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Saturating, like [`duration_micros`]: no latency in ms comes near `i64::MAX`.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
