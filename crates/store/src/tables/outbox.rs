//! `alert_outbox`: alerts waiting for (or done with) delivery to each webhook.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, FromRow};

use crate::codec::{micros, signed, Column};
use crate::error::StoreError;
use crate::{AlertCounts, AlertDelivery, AlertStatus, Enqueue, OutboxAlert, StoredEvent};

const TABLE: &str = "alert_outbox";
const SELECT: &str = "SELECT o.id, o.webhook, o.generation, o.status, o.attempts, o.next_attempt_at, \
     o.last_status, o.last_error, o.created_at, o.finished_at, \
     e.id AS event_id, e.at, e.kind, e.route, e.service_role, e.service_kind, e.from_state, e.to_state, \
     e.active, e.reason, e.actor \
     FROM alert_outbox o JOIN events e ON e.id = o.event_id";

/// Queues alerts for events inserted in the same transaction (`event_ids[i]` is the id of event `i`).
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    event_ids: &[i64],
    alerts: &[Enqueue],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for alert in alerts {
        let Some(event_id) = event_ids.get(alert.event_index) else {
            return Err(StoreError::corrupt(
                TABLE,
                "event_id",
                format!("no event #{} in this step", alert.event_index),
            ));
        };
        sqlx::query(
            "INSERT INTO alert_outbox (event_id, webhook, generation, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
        )
        .bind(*event_id)
        .bind(alert.webhook.as_str())
        .bind(signed(alert.generation))
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("queue alert"))?;
    }
    Ok(())
}

/// Pending alerts due by `now`, oldest first. Each webhook gets its alerts in order: a
/// later alert waits while an earlier one to the same webhook waits for its retry, so a
/// retried trigger can never overtake the resolve that followed it.
pub(crate) async fn due(
    pool: &AnyPool,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<OutboxAlert>, StoreError> {
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM alert_outbox p WHERE p.webhook = o.webhook \
         AND p.status = 'pending' AND p.id < o.id AND p.next_attempt_at > $1) \
         ORDER BY o.id LIMIT $2"
    ))
    .bind(micros(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load due alerts"))?;
    rows.into_iter().map(OutboxRow::decode).collect()
}

/// The latest alerts in any status, newest first.
pub(crate) async fn recent(pool: &AnyPool, limit: u32) -> Result<Vec<OutboxAlert>, StoreError> {
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!("{SELECT} ORDER BY o.id DESC LIMIT $1"))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("load recent alerts"))?;
    rows.into_iter().map(OutboxRow::decode).collect()
}

pub(crate) async fn next_due(pool: &AnyPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM alert_outbox WHERE status = 'pending'")
            .fetch_one(pool)
            .await
            .map_err(StoreError::query("find next alert"))?;
    next.map(|m| Column::new(TABLE, "next_attempt_at").time(m)).transpose()
}

/// Records one delivery attempt. Only a pending row changes: a row already delivered
/// stays delivered, so an acknowledged alert is never sent again.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    id: i64,
    delivery: &AlertDelivery,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (status, next, http, error, finished) = match delivery {
        AlertDelivery::Delivered { status } => ("delivered", now, Some(*status), None, Some(now)),
        AlertDelivery::Retry { status, error, next_attempt_at } => {
            ("pending", *next_attempt_at, *status, Some(error.as_str()), None)
        }
        AlertDelivery::Failed { status, error } => ("failed", now, *status, Some(error.as_str()), Some(now)),
    };
    sqlx::query(
        "UPDATE alert_outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
         last_status = $3, last_error = $4, finished_at = $5 WHERE id = $6 AND status = 'pending'",
    )
    .bind(status)
    .bind(micros(next))
    .bind(http.map(i64::from))
    .bind(error)
    .bind(finished.map(micros))
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("record alert delivery"))?;
    Ok(())
}

pub(crate) async fn counts(pool: &AnyPool) -> Result<AlertCounts, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM alert_outbox GROUP BY status")
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("count alerts"))?;
    let mut counts = AlertCounts::default();
    for (status, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "pending" => counts.pending = n,
            "delivered" => counts.delivered = n,
            "failed" => counts.failed = n,
            other => return Err(StoreError::corrupt(TABLE, "status", format!("unknown status `{other}`"))),
        }
    }
    Ok(counts)
}

#[derive(FromRow)]
struct OutboxRow {
    id: i64,
    webhook: String,
    generation: i64,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
    #[sqlx(flatten)]
    event: super::events::EventRow,
}

impl OutboxRow {
    fn decode(self) -> Result<OutboxAlert, StoreError> {
        let col = |name| Column::new(TABLE, name);
        let status = match self.status.as_str() {
            "pending" => AlertStatus::Pending,
            "delivered" => AlertStatus::Delivered,
            "failed" => AlertStatus::Failed,
            other => return Err(col("status").corrupt(format!("unknown status `{other}`"))),
        };
        let event: StoredEvent = self.event.decode()?;
        Ok(OutboxAlert {
            id: self.id,
            webhook: self.webhook,
            generation: col("generation").unsigned(self.generation)?,
            status,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: col("next_attempt_at").time(self.next_attempt_at)?,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            created_at: col("created_at").time(self.created_at)?,
            finished_at: col("finished_at").time_opt(self.finished_at)?,
            event,
        })
    }
}
