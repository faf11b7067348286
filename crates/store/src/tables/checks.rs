//! `check_results`: the history of every check, bounded by pruning.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, FromRow};
use switchback_core::model::{CheckResult, ServiceId};

use crate::codec::{duration_micros, micros, Column, Flag};
use crate::error::StoreError;

const TABLE: &str = "check_results";

/// Adds `checks` to the history; in a group, tagged with the `vantage` that made them.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    checks: &[CheckResult],
    vantage: Option<&str>,
) -> Result<(), StoreError> {
    for check in checks {
        sqlx::query(
            "INSERT INTO check_results (role, kind, healthy, latency_us, reason, checked_at, vantage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(check.service.role.as_str())
        .bind(check.service.kind.as_str())
        .bind(check.healthy)
        .bind(check.latency.map(duration_micros))
        .bind(check.reason.as_deref())
        .bind(micros(check.checked_at))
        .bind(vantage)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("insert check result"))?;
    }
    Ok(())
}

/// Newest first (by check time, then insertion order).
pub(crate) async fn recent(
    pool: &AnyPool,
    service: ServiceId,
    limit: u32,
) -> Result<Vec<CheckResult>, StoreError> {
    let rows: Vec<CheckRow> = sqlx::query_as(
        "SELECT role, kind, healthy, latency_us, reason, checked_at FROM check_results \
         WHERE role = $1 AND kind = $2 ORDER BY checked_at DESC, id DESC LIMIT $3",
    )
    .bind(service.role.as_str())
    .bind(service.kind.as_str())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load recent checks"))?;
    rows.into_iter().map(|row| row.decode(TABLE)).collect()
}

pub(crate) async fn prune(pool: &AnyPool, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM check_results WHERE checked_at < $1")
        .bind(micros(older_than))
        .execute(pool)
        .await
        .map_err(StoreError::query("prune check results"))?;
    Ok(done.rows_affected())
}

/// A check as `check_results` and `vantage_checks` keep it.
#[derive(FromRow)]
pub(crate) struct CheckRow {
    role: String,
    kind: String,
    healthy: Flag,
    latency_us: Option<i64>,
    reason: Option<String>,
    checked_at: i64,
}

impl CheckRow {
    /// The check, read from `table` (named in a corrupt row's error).
    pub(crate) fn decode(self, table: &'static str) -> Result<CheckResult, StoreError> {
        let latency = Column::new(table, "latency_us");
        Ok(CheckResult {
            service: ServiceId::new(
                Column::new(table, "role").parse(&self.role)?,
                Column::new(table, "kind").parse(&self.kind)?,
            ),
            healthy: self.healthy.0,
            latency: self.latency_us.map(|us| latency.unsigned(us).map(Duration::from_micros)).transpose()?,
            reason: self.reason,
            checked_at: Column::new(table, "checked_at").time(self.checked_at)?,
        })
    }
}
