//! `events`: the event history, paged newest first by id.

use sqlx::{AnyConnection, AnyPool, FromRow};
use switchback_core::engine::Event;
use switchback_core::model::ServiceId;

use crate::codec::{micros, Column};
use crate::error::StoreError;
use crate::StoredEvent;

const TABLE: &str = "events";

/// Inserts events in order and returns their ids, which increase in the same order.
pub(crate) async fn insert(conn: &mut AnyConnection, events: &[Event]) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events \
             (at, kind, route, service_role, service_kind, from_state, to_state, active, reason, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(micros(event.at))
        .bind(event.kind.as_str())
        .bind(event.route.map(|r| r.as_str()))
        .bind(event.service.map(|s| s.role.as_str()))
        .bind(event.service.map(|s| s.kind.as_str()))
        .bind(event.from.map(|s| s.as_str()))
        .bind(event.to.map(|s| s.as_str()))
        .bind(event.active.map(|r| r.as_str()))
        .bind(event.reason.as_str())
        .bind(event.actor.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::query("insert event"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Newest first: the `limit` events with ids below `before_id` (all ids when `None`).
pub(crate) async fn page(
    pool: &AnyPool,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id AS event_id, at, kind, route, service_role, service_kind, from_state, to_state, active, reason, actor \
         FROM events WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before_id.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load events"))?;
    rows.into_iter().map(EventRow::decode).collect()
}

/// Oldest first: up to `limit` events at or after `since`.
pub(crate) async fn since(
    pool: &AnyPool,
    since: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id AS event_id, at, kind, route, service_role, service_kind, from_state, to_state, active, reason, actor \
         FROM events WHERE at >= $1 ORDER BY id LIMIT $2",
    )
    .bind(micros(since))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("load events since"))?;
    rows.into_iter().map(EventRow::decode).collect()
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    #[sqlx(rename = "event_id")]
    id: i64,
    at: i64,
    kind: String,
    route: Option<String>,
    service_role: Option<String>,
    service_kind: Option<String>,
    from_state: Option<String>,
    to_state: Option<String>,
    active: Option<String>,
    reason: String,
    actor: String,
}

impl EventRow {
    pub(crate) fn decode(self) -> Result<StoredEvent, StoreError> {
        let col = |name| Column::new(TABLE, name);
        let service = match (self.service_role.as_deref(), self.service_kind.as_deref()) {
            (Some(role), Some(kind)) => {
                Some(ServiceId::new(col("service_role").parse(role)?, col("service_kind").parse(kind)?))
            }
            (None, None) => None,
            _ => return Err(col("service_kind").corrupt("service role and kind must both be set or unset")),
        };
        let event = Event {
            at: col("at").time(self.at)?,
            kind: col("kind").parse(&self.kind)?,
            route: col("route").parse_opt(self.route.as_deref())?,
            service,
            from: col("from_state").parse_opt(self.from_state.as_deref())?,
            to: col("to_state").parse_opt(self.to_state.as_deref())?,
            active: col("active").parse_opt(self.active.as_deref())?,
            reason: self.reason,
            actor: self.actor,
        };
        Ok(StoredEvent { id: self.id, event })
    }
}
