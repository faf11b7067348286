//! The read API: `/api/events`, `/api/phones`, `/api/alerts` and `/api/openapi.json`
//! (`/api/status` and its stream are in [`crate::live`]). The description holds no phone
//! data and is open; events, phones and alerts need [`Auth::authorize_read`](crate::auth::Auth::authorize_read).

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchback_core::engine::Tone;
use switchback_core::{Event, EventKind, Route, RouteState, ServiceKind, SiteNames};
use switchback_provisioning::{Mac, Vendor};

use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with ids below this one (the `next_before` of the previous page).
    pub(crate) before: Option<i64>,
    pub(crate) limit: Option<u32>,
}

/// An event as the API and the dashboard show it: the stored fields, plus how it reads
/// (`label`, `tone`, `summary`), so that no client keeps its own copy of the wording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub kind: EventKind,
    /// `route failed over`, `service down`, `phones converged`, …
    pub label: &'static str,
    #[schema(value_type = String)]
    pub tone: Tone,
    /// One line: route, site and service, the change, where phones are.
    pub summary: String,
    #[schema(value_type = Option<String>)]
    pub route: Option<Route>,
    pub site: Option<String>,
    #[schema(value_type = Option<String>)]
    pub service: Option<ServiceKind>,
    #[schema(value_type = Option<String>)]
    pub from: Option<RouteState>,
    #[schema(value_type = Option<String>)]
    pub to: Option<RouteState>,
    pub active_site: Option<String>,
    pub reason: String,
    pub actor: String,
}

impl EventView {
    pub(crate) fn new(id: i64, e: Event, names: &SiteNames) -> Self {
        let site = e.service.map(|s| names.get(s.role).to_owned());
        let active_site = e.active.map(|r| names.get(r).to_owned());
        let scan = e.kind == EventKind::ProvisioningScan;
        let mut parts = Vec::new();
        if scan {
            parts.push(format!("{} blocked from phone files", e.actor));
        }
        if e.kind == EventKind::LeaderElected {
            parts.push(format!("{} leads ({})", e.actor, e.reason));
        }
        if let Some(route) = e.route {
            parts.push(route.as_str().to_owned());
        }
        if let (Some(site), Some(service)) = (&site, e.service) {
            parts.push(format!("{site} {}", service.kind.as_str()));
        }
        // An operator holding a route where it is changes its mode, not its state.
        match (e.from, e.to) {
            (Some(from), Some(to)) if from != to => {
                parts.push(format!("{} → {}", from.as_str(), to.as_str()))
            }
            _ => {}
        }
        if let (Some(site), Some(_)) = (&active_site, e.route) {
            parts.push(format!("phones on {site}"));
        }
        Self {
            id,
            at: e.at,
            kind: e.kind,
            label: e.label(),
            tone: e.tone(),
            summary: parts.join(" · "),
            route: e.route,
            site,
            service: e.service.map(|s| s.kind),
            from: e.from,
            to: e.to,
            active_site,
            reason: e.reason,
            actor: e.actor,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

const MAX_PAGE: u32 = 500;

/// Whether the caller may read, then the query: a bad query from a stranger is a 401.
pub(crate) fn authorized<Q>(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<Q, ApiError> {
    state.auth.authorize_read(headers, peer.ip())?;
    query.map(|Query(q)| q).map_err(|e| ApiError::BadRequest(e.body_text()))
}

#[utoipa::path(get, path = "/api/events", tag = "read", params(EventsQuery),
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = EventsPage), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
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
    let events =
        stored.into_iter().map(|stored| EventView::new(stored.id, stored.event, &state.site_names)).collect();
    Ok(EventsPage { events, next_before })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhoneView {
    #[schema(value_type = String)]
    pub mac: Mac,
    #[schema(value_type = String)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhonesPage {
    /// Phones matching the filter, before paging.
    pub total: usize,
    pub offset: usize,
    pub phones: Vec<PhoneView>,
}

#[utoipa::path(get, path = "/api/phones", tag = "read", params(PhonesQuery),
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = PhonesPage), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
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
    let stale_before = crate::status::stale_before(state);
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
            known_total: known_total(state, &query, stale_before),
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

/// The total of a list the fetch log already counts in memory (the dashboard's stale
/// list, a generation's phones), so that no request counts the whole inventory in SQL.
/// It may be up to one flush (2 s) ahead of the stored records the page comes from.
fn known_total(state: &AppState, query: &PhonesQuery, stale_before: DateTime<Utc>) -> Option<u64> {
    // The first page only (the dashboard's): the fetch log may still count phones since
    // removed, which a later, emptier page would show up.
    if query.offset.unwrap_or(0) > 0 {
        return None;
    }
    let total = state.generations.current().phone_count();
    let seen = || state.fetches.seen_since(stale_before).min(total);
    let known = match (query.stale, query.generation) {
        (None, None) => total,
        (Some(true), None) => total - seen(),
        (Some(false), None) => seen(),
        (None, Some(generation)) => state.fetches.on_generation(generation).min(total),
        (Some(_), Some(_)) => return None,
    };
    u64::try_from(known).ok()
}

/// The machine-readable description of this API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "open",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::json())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: i64,
    pub webhook: String,
    #[schema(value_type = String)]
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
#[utoipa::path(get, path = "/api/alerts", tag = "read", params(AlertsQuery),
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = Vec<AlertView>), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
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
