//! The read API: `/api/status` (routes, services, phones, convergence and recent
//! checks), `/api/events`, `/api/phones`, `/api/alerts` and `/api/openapi.json`.
//! Status and the description hold no phone data and are open; events, phones and alerts need [`Auth::authorize_read`](crate::auth::Auth::authorize_read).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchback_core::{Route, ServiceId};
use switchback_provisioning::{Mac, Vendor};

use crate::error::ApiError;
use crate::AppState;

/// How many recent checks each service shows.
const RECENT_CHECKS: u32 = 20;

#[derive(Debug, Serialize)]
pub struct Status {
    pub generation: u64,
    /// Whether the store takes writes: while it does not, nothing is decided.
    pub store: StoreView,
    pub routes: Routes,
    pub services: Vec<ServiceStatus>,
    pub phones: Phones,
    /// Every probe of both sites failed in the latest round.
    pub monitor_blind: bool,
    /// `switchback demo` is running: the dashboard offers break and mend buttons.
    pub demo: bool,
    /// Webhook deliveries by status.
    pub alerts: switchback_store::AlertCounts,
}

#[derive(Debug, Serialize)]
pub struct Routes {
    pub sip: RouteStatus,
    pub stun: RouteStatus,
}

#[derive(Debug, Serialize)]
pub struct RouteStatus {
    pub state: &'static str,
    pub active_site: String,
    pub active_role: &'static str,
    pub since: DateTime<Utc>,
    pub reason: String,
    pub mode: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub site: String,
    pub role: &'static str,
    pub kind: &'static str,
    pub healthy: Option<bool>,
    pub checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
    /// The latest checks, newest first.
    pub recent: Vec<RecentCheck>,
}

#[derive(Debug, Serialize)]
pub struct RecentCheck {
    pub healthy: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Phones {
    pub total: usize,
    pub on_current_generation: usize,
    pub by_vendor: HashMap<Vendor, VendorCount>,
    /// Phones not seen for more than three poll intervals (or never).
    pub stale: usize,
    pub stale_after_seconds: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct VendorCount {
    pub total: usize,
    pub on_current_generation: usize,
}

pub async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let engine = state.engine.borrow().clone();
    let generation = state.generations.current();
    let route = |route: Route| {
        let r = engine.route(route);
        RouteStatus {
            state: r.state.as_str(),
            active_site: state.site_name(r.active).to_owned(),
            active_role: r.active.as_str(),
            since: r.since,
            reason: r.reason.clone(),
            mode: r.mode.as_str(),
        }
    };
    let mut services = Vec::new();
    for service in ServiceId::all() {
        let track = engine.service(service);
        // History is a nicety: while the store is away the live state still shows.
        let recent = state
            .store_health
            .read(state.store.recent_checks(service, RECENT_CHECKS))
            .await
            .unwrap_or_default();
        services.push(ServiceStatus {
            site: state.site_name(service.role).to_owned(),
            role: service.role.as_str(),
            kind: service.kind.as_str(),
            healthy: track.healthy,
            checked_at: track.checked_at,
            latency_ms: track.latency_ms,
            reason: track.reason.clone(),
            recent: recent
                .into_iter()
                .map(|c| RecentCheck {
                    healthy: c.healthy,
                    checked_at: c.checked_at,
                    latency_ms: c.latency.map(switchback_core::model::latency_ms),
                    reason: c.reason,
                })
                .collect(),
        });
    }
    Ok(Json(Status {
        generation: generation.number(),
        routes: Routes { sip: route(Route::Sip), stun: route(Route::Stun) },
        services,
        phones: convergence(&state, &generation),
        monitor_blind: engine.blind,
        demo: state.demo,
        alerts: state.store_health.read(state.store.alert_counts()).await.unwrap_or_default(),
        store: StoreView::of(&state),
    }))
}

#[derive(Debug, Serialize)]
pub struct StoreView {
    pub up: bool,
    /// The database's own message for the latest refused write.
    pub error: Option<String>,
}

impl StoreView {
    fn of(state: &AppState) -> Self {
        let error = state.store_health.fault();
        Self { up: error.is_none(), error }
    }
}

fn stale_before(state: &AppState) -> DateTime<Utc> {
    state.clock.now() - chrono::Duration::from_std(state.poll_interval * 3).unwrap_or(chrono::TimeDelta::MAX)
}

fn convergence(state: &AppState, generation: &switchback_provisioning::Generation) -> Phones {
    let current = generation.number();
    let stale_before = stale_before(state);
    let mut by_vendor: HashMap<Vendor, VendorCount> =
        Vendor::ALL.into_iter().map(|v| (v, VendorCount::default())).collect();
    let mut stale = 0;
    for (name, _) in generation.phone_files() {
        let Some(mac) = name.mac() else { continue };
        let last = state.fetches.latest(mac);
        let count = by_vendor.entry(name.vendor()).or_default();
        count.total += 1;
        if last.is_some_and(|l| l.generation == current) {
            count.on_current_generation += 1;
        }
        if last.is_none_or(|l| l.at < stale_before) {
            stale += 1;
        }
    }
    Phones {
        total: generation.phone_count(),
        on_current_generation: by_vendor.values().map(|c| c.on_current_generation).sum(),
        by_vendor,
        stale,
        stale_after_seconds: (state.poll_interval * 3).as_secs(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with ids below this one (the `next_before` of the previous page).
    pub(crate) before: Option<i64>,
    pub(crate) limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub route: Option<Route>,
    pub site: Option<String>,
    pub service: Option<&'static str>,
    pub from: Option<&'static str>,
    pub to: Option<&'static str>,
    pub active_site: Option<String>,
    pub reason: String,
    pub actor: String,
}

#[derive(Debug, Serialize)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

const MAX_PAGE: u32 = 500;

/// Whether the caller may read, then the query: a bad query from a stranger is a 401.
fn authorized<Q>(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<Q, ApiError> {
    state.auth.authorize_read(headers, peer.ip())?;
    query.map(|Query(q)| q).map_err(|e| ApiError::BadRequest(e.body_text()))
}

pub async fn events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let query = authorized(&state, peer, &headers, query)?;
    events_page(&state, query).await.map(Json)
}

/// A page of the event history, for a caller already authorized.
pub(crate) async fn events_page(state: &AppState, query: EventsQuery) -> Result<EventsPage, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let stored = state.store.events(query.before, limit).await?;
    let next_before = if stored.len() == limit as usize { stored.last().map(|e| e.id) } else { None };
    let events = stored
        .into_iter()
        .map(|stored| {
            let e = stored.event;
            EventView {
                id: stored.id,
                at: e.at,
                kind: e.kind.as_str(),
                route: e.route,
                site: e.service.map(|s| state.site_name(s.role).to_owned()),
                service: e.service.map(|s| s.kind.as_str()),
                from: e.from.map(|s| s.as_str()),
                to: e.to.map(|s| s.as_str()),
                active_site: e.active.map(|r| state.site_name(r).to_owned()),
                reason: e.reason,
                actor: e.actor,
            }
        })
        .collect();
    Ok(EventsPage { events, next_before })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhonesQuery {
    /// `true`: only phones not seen for more than three poll intervals.
    pub(crate) stale: Option<bool>,
    /// Only phones whose latest fetch was of this generation.
    pub(crate) generation: Option<u64>,
    /// At most [`MAX_OFFSET`].
    pub(crate) offset: Option<usize>,
    pub(crate) limit: Option<usize>,
}

/// Ten times the inventory one instance is built for (1,000,000 phones): a larger offset
/// is a mistake, and each skipped phone costs the store a step.
const MAX_OFFSET: usize = 10_000_000;

#[derive(Debug, Serialize)]
pub struct PhoneView {
    pub mac: Mac,
    pub vendor: Vendor,
    pub model: String,
    pub display_name: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_generation: Option<u64>,
    pub source: Option<String>,
    pub user_agent: Option<String>,
    pub on_current_generation: bool,
    pub stale: bool,
}

#[derive(Debug, Serialize)]
pub struct PhonesPage {
    /// Phones matching the filter, before paging.
    pub total: usize,
    pub offset: usize,
    pub phones: Vec<PhoneView>,
}

pub async fn phones(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<PhonesQuery>, QueryRejection>,
) -> Result<Json<PhonesPage>, ApiError> {
    let query = authorized(&state, peer, &headers, query)?;
    phones_page(&state, query).await.map(Json)
}

/// A page of the inventory, for a caller already authorized: filtered, counted and paged
/// by the store, which never hands over credentials this way.
///
/// `last_seen`, `last_generation`, `source` and `user_agent` are the store's fetch
/// records, which the fetch log flushes every 2 s, and the `stale` and `generation`
/// filters select on them: a phone that fetched within the last flush interval may still
/// be listed by its previous fetch (or as never seen). `/api/status` counts from memory
/// and so can be up to that much ahead of this list.
pub(crate) async fn phones_page(state: &AppState, query: PhonesQuery) -> Result<PhonesPage, ApiError> {
    let offset = query.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::BadRequest(format!("offset: at most {MAX_OFFSET}")));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE as usize);
    let current = state.generations.current().number();
    let stale_before = stale_before(state);
    let seen = query.stale.map(|stale| {
        if stale {
            switchback_store::Seen::Before(stale_before)
        } else {
            switchback_store::Seen::Since(stale_before)
        }
    });
    let page = state
        .store
        .phone_page(&switchback_store::PhoneQuery {
            seen,
            generation: query.generation,
            offset: offset as u64,
            // At most MAX_PAGE, clamped above.
            limit: u32::try_from(limit).unwrap_or(MAX_PAGE),
        })
        .await?;
    let phones = page
        .phones
        .into_iter()
        .map(|phone| {
            let last = phone.fetch;
            PhoneView {
                mac: phone.mac,
                vendor: phone.vendor,
                model: phone.model,
                display_name: phone.display_name,
                last_seen: last.as_ref().map(|l| l.at),
                last_generation: last.as_ref().map(|l| l.generation),
                on_current_generation: last.as_ref().is_some_and(|l| l.generation == current),
                stale: last.as_ref().is_none_or(|l| l.at < stale_before),
                source: last.as_ref().map(|l| l.source.to_string()),
                user_agent: last.map(|l| l.user_agent),
            }
        })
        .collect();
    // A count of stored rows fits a usize on every platform switchback builds for.
    Ok(PhonesPage { total: usize::try_from(page.total).unwrap_or(usize::MAX), offset, phones })
}

/// The machine-readable description of this API.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub webhook: String,
    pub status: switchback_store::AlertStatus,
    pub kind: &'static str,
    pub event_id: i64,
    pub reason: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The latest webhook deliveries, newest first: pending, delivered and failed.
pub async fn alerts(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let query = authorized(&state, peer, &headers, query)?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let alerts = state.store.recent_alerts(limit).await?;
    Ok(Json(
        alerts
            .into_iter()
            .map(|a| AlertView {
                id: a.id,
                webhook: a.webhook,
                status: a.status,
                kind: a.event.event.kind.as_str(),
                event_id: a.event.id,
                reason: a.event.event.reason,
                attempts: a.attempts,
                last_status: a.last_status,
                last_error: a.last_error,
                created_at: a.created_at,
                next_attempt_at: a.next_attempt_at,
                finished_at: a.finished_at,
            })
            .collect(),
    ))
}
