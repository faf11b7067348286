//! `check_results`: the history of every check, bounded by pruning.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, FromRow};
use switchback_core::model::{CheckResult, ServiceId};

use crate::codec::{duration_micros, micros, Column, Flag};
use crate::error::StoreError;

const TABLE: &str = "check_results";

pub(crate) async fn insert(conn: &mut AnyConnection, checks: &[CheckResult]) -> Result<(), StoreError> {
    for check in checks {
        sqlx::query(
            "INSERT INTO check_results (role, kind, healthy, latency_us, reason, checked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(check.service.role.as_str())
        .bind(check.service.kind.as_str())
        .bind(check.healthy)
        .bind(check.latency.map(duration_micros))
        .bind(check.reason.as_deref())
        .bind(micros(check.checked_at))
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
    rows.into_iter().map(CheckRow::decode).collect()
}

pub(crate) async fn prune(pool: &AnyPool, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM check_results WHERE checked_at < $1")
        .bind(micros(older_than))
        .execute(pool)
        .await
        .map_err(StoreError::query("prune check results"))?;
    Ok(done.rows_affected())
}

#[derive(FromRow)]
struct CheckRow {
    role: String,
    kind: String,
    healthy: Flag,
    latency_us: Option<i64>,
    reason: Option<String>,
    checked_at: i64,
}

impl CheckRow {
    fn decode(self) -> Result<CheckResult, StoreError> {
        let latency = Column::new(TABLE, "latency_us");
        Ok(CheckResult {
            service: ServiceId::new(
                Column::new(TABLE, "role").parse(&self.role)?,
                Column::new(TABLE, "kind").parse(&self.kind)?,
            ),
            healthy: self.healthy.0,
            latency: self.latency_us.map(|us| latency.unsigned(us).map(Duration::from_micros)).transpose()?,
            reason: self.reason,
            checked_at: Column::new(TABLE, "checked_at").time(self.checked_at)?,
        })
    }
}
