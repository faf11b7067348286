//! The engine's resumable state: `engine_state` (one row), `route_states` and
//! `service_tracks`.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, FromRow};
use switchback_core::engine::{EngineState, RouteStatus, ServiceTrack};
use switchback_core::model::{Route, ServiceId};

use crate::codec::{micros, micros_opt, signed, Column, Flag};
use crate::error::StoreError;

/// Writes the whole state. Routes and services absent from `state` keep their rows; the
/// engine always holds every route and service, so a load returns what was saved.
pub(crate) async fn save(conn: &mut AnyConnection, state: &EngineState) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO engine_state (id, blind, generation) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET blind = excluded.blind, generation = excluded.generation",
    )
    .bind(state.blind)
    .bind(signed(state.generation))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("save engine state"))?;
    for (route, status) in &state.routes {
        save_route(conn, *route, status).await?;
    }
    for (service, track) in &state.services {
        save_service(conn, *service, track).await?;
    }
    Ok(())
}

async fn save_route(conn: &mut AnyConnection, route: Route, s: &RouteStatus) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO route_states (route, state, active, since, reason, mode, both_down, failback_ready) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (route) DO UPDATE SET state = excluded.state, active = excluded.active, \
         since = excluded.since, reason = excluded.reason, mode = excluded.mode, \
         both_down = excluded.both_down, failback_ready = excluded.failback_ready",
    )
    .bind(route.as_str())
    .bind(s.state.as_str())
    .bind(s.active.as_str())
    .bind(micros(s.since))
    .bind(s.reason.as_str())
    .bind(s.mode.as_str())
    .bind(s.both_down)
    .bind(s.failback_ready)
    .execute(conn)
    .await
    .map_err(StoreError::query("save route state"))?;
    Ok(())
}

async fn save_service(conn: &mut AnyConnection, id: ServiceId, t: &ServiceTrack) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO service_tracks \
         (role, kind, healthy, checked_at, latency_ms, reason, failing_since, healthy_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (role, kind) DO UPDATE SET healthy = excluded.healthy, \
         checked_at = excluded.checked_at, latency_ms = excluded.latency_ms, reason = excluded.reason, \
         failing_since = excluded.failing_since, healthy_since = excluded.healthy_since",
    )
    .bind(id.role.as_str())
    .bind(id.kind.as_str())
    .bind(t.healthy)
    .bind(micros_opt(t.checked_at))
    .bind(t.latency_ms.map(signed))
    .bind(t.reason.as_deref())
    .bind(micros_opt(t.failing_since))
    .bind(micros_opt(t.healthy_since))
    .execute(conn)
    .await
    .map_err(StoreError::query("save service track"))?;
    Ok(())
}

/// Reads the state back; `None` until the first save.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Option<EngineState>, StoreError> {
    let head: Option<(Flag, i64)> = sqlx::query_as("SELECT blind, generation FROM engine_state WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::query("load engine state"))?;
    let Some((Flag(blind), generation)) = head else { return Ok(None) };
    let generation = u64::try_from(generation)
        .map_err(|_| StoreError::corrupt("engine_state", "generation", format!("negative: {generation}")))?;

    let rows: Vec<RouteRow> = sqlx::query_as(
        "SELECT route, state, active, since, reason, mode, both_down, failback_ready FROM route_states",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::query("load route states"))?;
    let routes = rows.into_iter().map(RouteRow::decode).collect::<Result<BTreeMap<_, _>, _>>()?;
    if let Some(missing) = Route::ALL.into_iter().find(|r| !routes.contains_key(r)) {
        // Every save writes every route in one transaction, so a gap is damage, not a fresh store.
        return Err(StoreError::corrupt("route_states", "route", format!("no row for route `{missing}`")));
    }

    let rows: Vec<ServiceRow> = sqlx::query_as(
        "SELECT role, kind, healthy, checked_at, latency_ms, reason, failing_since, healthy_since \
         FROM service_tracks",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::query("load service tracks"))?;
    let services = rows.into_iter().map(ServiceRow::decode).collect::<Result<BTreeMap<_, _>, _>>()?;

    Ok(Some(EngineState { routes, services, blind, generation }))
}

const ROUTES: &str = "route_states";
const SERVICES: &str = "service_tracks";

#[derive(FromRow)]
struct RouteRow {
    route: String,
    state: String,
    active: String,
    since: i64,
    reason: String,
    mode: String,
    both_down: Flag,
    failback_ready: Flag,
}

impl RouteRow {
    fn decode(self) -> Result<(Route, RouteStatus), StoreError> {
        let status = RouteStatus {
            state: Column::new(ROUTES, "state").parse(&self.state)?,
            active: Column::new(ROUTES, "active").parse(&self.active)?,
            since: Column::new(ROUTES, "since").time(self.since)?,
            reason: self.reason,
            mode: Column::new(ROUTES, "mode").parse(&self.mode)?,
            both_down: self.both_down.0,
            failback_ready: self.failback_ready.0,
        };
        Ok((Column::new(ROUTES, "route").parse(&self.route)?, status))
    }
}

#[derive(FromRow)]
struct ServiceRow {
    role: String,
    kind: String,
    healthy: Option<Flag>,
    checked_at: Option<i64>,
    latency_ms: Option<i64>,
    reason: Option<String>,
    failing_since: Option<i64>,
    healthy_since: Option<i64>,
}

impl ServiceRow {
    fn decode(self) -> Result<(ServiceId, ServiceTrack), StoreError> {
        let id = ServiceId::new(
            Column::new(SERVICES, "role").parse(&self.role)?,
            Column::new(SERVICES, "kind").parse(&self.kind)?,
        );
        let latency = Column::new(SERVICES, "latency_ms");
        let track = ServiceTrack {
            healthy: self.healthy.map(|f| f.0),
            checked_at: Column::new(SERVICES, "checked_at").time_opt(self.checked_at)?,
            latency_ms: self.latency_ms.map(|ms| latency.unsigned(ms)).transpose()?,
            reason: self.reason,
            failing_since: Column::new(SERVICES, "failing_since").time_opt(self.failing_since)?,
            healthy_since: Column::new(SERVICES, "healthy_since").time_opt(self.healthy_since)?,
        };
        Ok((id, track))
    }
}
