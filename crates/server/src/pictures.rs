//! Pictures of a failover: `/api/generations/{n}/convergence` (how phones came to a
//! generation, per vendor, against seconds since it started) and `/api/timeline` (each
//! route's states over a window, with the events). Both read the store; the dashboard
//! draws them, and `switchback report` prints the same data as text.
//!
//! A generation starts when the step that created it is saved (the store's
//! `generations` table, the time of the step's earliest event); a generation the store
//! has no start for (one older than that table) starts at its earliest first fetch.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchback_core::{EngineState, EventKind, Role, Route, RouteState, SiteNames};
use switchback_provisioning::Vendor;
use switchback_store::{Convergence, StoredEvent};

use crate::api::{authorized, EventView};
use crate::error::ApiError;
use crate::AppState;

/// The most points a vendor's curve has: seconds are bucketed wider for a long span.
pub const MAX_POINTS: i64 = 600;
/// The widest window the timeline covers.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The most events the timeline reads (the newest ones of its window).
const MAX_EVENTS: usize = 5000;
/// The most events it lists (its intervals are made from all it read).
const MAX_LISTED: usize = 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConvergenceView {
    pub generation: u64,
    /// When the generation started; `null` when the store knows neither its start nor
    /// any fetch of it.
    pub started_at: Option<DateTime<Utc>>,
    pub poll_interval_seconds: u64,
    /// Phones in the inventory.
    pub total: usize,
    /// The width of a point, in seconds: 1, or wider so that a curve has at most 600 points.
    pub bucket_seconds: i64,
    #[schema(value_type = BTreeMap<String, VendorCurve>)]
    pub by_vendor: BTreeMap<Vendor, VendorCurve>,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct VendorCurve {
    /// Phones of this vendor in the inventory.
    pub total: usize,
    /// `[seconds_since_start, phones_so_far]`, by time: each bucket's start and how many
    /// phones of the vendor had fetched the generation by its end.
    #[schema(value_type = Vec<Vec<i64>>)]
    pub points: Vec<[i64; 2]>,
}

/// Where the curve starts: the generation's start, else its earliest first fetch.
pub fn start_of(convergence: &Convergence) -> Option<DateTime<Utc>> {
    convergence.started_at.or_else(|| {
        let first = convergence.steps.iter().map(|s| s.second).min()?;
        DateTime::from_timestamp(first, 0)
    })
}

/// Each vendor's cumulative curve, `[seconds since start, phones so far]`, per bucket of
/// `bucket` seconds (at least 1, so that no curve has more than [`MAX_POINTS`] points).
pub fn curves(convergence: &Convergence, start: DateTime<Utc>) -> (i64, BTreeMap<Vendor, Vec<[i64; 2]>>) {
    let offset = |second: i64| (second - start.timestamp()).max(0);
    let span = convergence.steps.iter().map(|s| offset(s.second)).max().unwrap_or(0);
    let bucket = (span / MAX_POINTS + 1).max(1);
    let mut by_vendor: BTreeMap<Vendor, Vec<[i64; 2]>> = BTreeMap::new();
    let mut so_far: BTreeMap<Vendor, i64> = BTreeMap::new();
    for step in &convergence.steps {
        let total = so_far.entry(step.vendor).or_default();
        *total += i64::try_from(step.phones).unwrap_or(i64::MAX);
        let x = offset(step.second) / bucket * bucket;
        let points = by_vendor.entry(step.vendor).or_default();
        match points.last_mut() {
            Some(last) if last[0] == x => last[1] = *total,
            _ => points.push([x, *total]),
        }
    }
    (bucket, by_vendor)
}

/// How phones came to generation `n`.
#[utoipa::path(get, path = "/api/generations/{n}/convergence", tag = "read",
    params(("n" = u64, Path, description = "the generation")),
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = ConvergenceView), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn convergence(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<u64>, PathRejection>,
) -> Result<Json<ConvergenceView>, ApiError> {
    state.auth.authorize_read(&headers, peer.ip())?;
    let Path(generation) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let convergence = state.store.generation_convergence(generation).await?;
    let current = state.generations.current();
    let started_at = start_of(&convergence);
    let (bucket_seconds, mut points) = match started_at {
        Some(start) => curves(&convergence, start),
        None => (1, BTreeMap::new()),
    };
    let by_vendor = Vendor::ALL
        .into_iter()
        .map(|vendor| {
            let curve = VendorCurve {
                total: current.phone_count_of(vendor),
                points: points.remove(&vendor).unwrap_or_default(),
            };
            (vendor, curve)
        })
        .collect();
    Ok(Json(ConvergenceView {
        generation,
        started_at,
        poll_interval_seconds: state.poll_interval.as_secs(),
        total: current.phone_count(),
        bucket_seconds,
        by_vendor,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// How far back: `90m`, `24h`, `7d` (at most 7 days; 24 h when absent).
    pub(crate) since: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub routes: TimelineRoutes,
    /// The window's events, oldest first (the newest 1,000).
    pub events: Vec<EventView>,
    /// The window held more events than were read: its oldest part may be missing.
    pub truncated: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineRoutes {
    pub sip: Vec<Interval>,
    pub stun: Vec<Interval>,
}

/// A stretch of time a route spent in one state, on one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Interval {
    #[schema(value_type = String)]
    pub state: RouteState,
    pub active_site: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// How an event reads, as the API and the dashboard show it: its label and one-line summary.
pub fn describe(event: &switchback_core::Event, names: &SiteNames) -> (&'static str, String) {
    let view = EventView::new(0, event.clone(), names);
    (view.label, view.summary)
}

/// `90s`, `30m`, `24h`, `7d`, `1w`: a whole number and a unit.
pub fn parse_window(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("since: {text:?} is not like 24h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("since: {text:?} is not like 24h (units s, m, h, d, w)")),
    };
    let window = std::time::Duration::from_secs(number.saturating_mul(seconds));
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!("since: {text:?} must be more than 0 and at most 7d"));
    }
    Ok(window)
}

/// Each route's intervals between `from` and `to`, from its transition and operator
/// events (oldest first) and its state now. Before the window's first event of a route,
/// the route was in that event's `from` state, on the site that state implies (the
/// backup while failed over or recovering).
pub fn intervals(
    route: Route,
    events: &[StoredEvent],
    now: &EngineState,
    names: &SiteNames,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Interval> {
    let moves: Vec<_> = events
        .iter()
        .map(|e| &e.event)
        .filter(|e| e.route == Some(route) && matches!(e.kind, EventKind::Transition | EventKind::Operator))
        .filter(|e| e.to.is_some())
        .collect();
    let current = now.route(route);
    let implied = |state: RouteState| match state {
        RouteState::FailedOver | RouteState::Recovering => Role::Backup,
        RouteState::Primary | RouteState::Failing => Role::Primary,
    };
    let (mut state, mut active) = match moves.first() {
        Some(first) => {
            let state = first.from.or(first.to).unwrap_or(current.state);
            (state, implied(state))
        }
        None => (current.state, current.active),
    };
    let mut changes = vec![(from, state, active)];
    for event in moves {
        state = event.to.unwrap_or(state);
        active = event.active.unwrap_or(active);
        changes.push((event.at.clamp(from, to), state, active));
    }
    // The state now is the truth: events missing from the window do not outlive it.
    if (state, active) != (current.state, current.active) {
        let at = current.since.clamp(from, to).max(changes.last().map_or(from, |c| c.0));
        changes.push((at, current.state, current.active));
    }
    let mut out: Vec<Interval> = Vec::new();
    for (i, &(at, state, active)) in changes.iter().enumerate() {
        let end = changes.get(i + 1).map_or(to, |next| next.0);
        if end <= at && i + 1 < changes.len() {
            continue;
        }
        let site = names.get(active);
        match out.last_mut() {
            Some(last) if last.state == state && last.active_site == site => last.to = end,
            _ => out.push(Interval { state, active_site: site.to_owned(), from: at, to: end }),
        }
    }
    out
}

/// Each route's states and the events over the last `since` (24 h by default, at most 7 days).
#[utoipa::path(get, path = "/api/timeline", tag = "read", params(TimelineQuery),
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = Timeline), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Timeline>, ApiError> {
    let query = authorized(&state, peer, &headers, query)?;
    let window = match query.since.as_deref() {
        Some(text) => parse_window(text).map_err(ApiError::BadRequest)?,
        None => std::time::Duration::from_secs(24 * 3600),
    };
    let to = state.clock.now();
    let from = to - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    // Newest first, page by page, until the window's start: a cut keeps the newest.
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut before = None;
    let mut truncated = false;
    'pages: loop {
        let page = state.store.events(before, 500).await?;
        let last_page = page.len() < 500;
        before = page.last().map(|e| e.id);
        for stored in page {
            if stored.event.at < from {
                break 'pages;
            }
            if events.len() == MAX_EVENTS {
                truncated = true;
                break 'pages;
            }
            events.push(stored);
        }
        if last_page {
            break;
        }
    }
    events.reverse();
    let engine = state.engine.borrow().clone();
    let names = &state.site_names;
    let routes = TimelineRoutes {
        sip: intervals(Route::Sip, &events, &engine, names, from, to),
        stun: intervals(Route::Stun, &events, &engine, names, from, to),
    };
    let skip = events.len().saturating_sub(MAX_LISTED);
    let events = events.into_iter().skip(skip).map(|e| EventView::new(e.id, e.event, names)).collect();
    Ok(Json(Timeline { from, to, routes, events, truncated }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded() {
        assert_eq!(parse_window("24h"), Ok(std::time::Duration::from_secs(86_400)));
        assert_eq!(parse_window("7d"), Ok(MAX_WINDOW));
        for bad in ["", "h", "8d", "0h", "24", "24 h", "1y", "-1h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_spans_are_bucketed_to_at_most_600_points() {
        let start = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let steps = (0..3600)
            .map(|s| switchback_store::ConvergenceStep {
                vendor: Vendor::Yealink,
                second: 1_000_000 + s,
                phones: 1,
            })
            .collect();
        let convergence = Convergence { generation: 2, started_at: Some(start), steps };
        let (bucket, curves) = curves(&convergence, start);
        let points = &curves[&Vendor::Yealink];
        assert_eq!(bucket, 6);
        assert!(points.len() <= 600, "{}", points.len());
        assert_eq!(points.last(), Some(&[3594, 3600]));
        assert!(points.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]));
    }
}
