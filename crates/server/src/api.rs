//! `/api/status` (the JSON of SPEC.md) and `/healthz`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchback_core::{Route, ServiceId};

use crate::AppState;

#[derive(Debug, Serialize)]
pub struct Status {
    pub generation: u64,
    pub routes: Routes,
    pub services: Vec<ServiceStatus>,
    pub phones: Phones,
    /// Every probe of both sites failed in the latest round.
    pub monitor_blind: bool,
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
}

#[derive(Debug, Serialize)]
pub struct Phones {
    pub total: usize,
    pub on_current_generation: usize,
}

pub async fn status(State(state): State<AppState>) -> Json<Status> {
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
    let services = ServiceId::all()
        .map(|service| {
            let track = engine.service(service);
            ServiceStatus {
                site: state.site_name(service.role).to_owned(),
                role: service.role.as_str(),
                kind: service.kind.as_str(),
                healthy: track.healthy,
                checked_at: track.checked_at,
                latency_ms: track.latency_ms,
                reason: track.reason.clone(),
            }
        })
        .collect();
    Json(Status {
        generation: generation.number(),
        routes: Routes { sip: route(Route::Sip), stun: route(Route::Stun) },
        services,
        phones: Phones {
            total: generation.phone_count(),
            on_current_generation: state.fetches.on_generation(generation.number()),
        },
        monitor_blind: engine.blind,
    })
}

pub async fn healthz() -> &'static str {
    "ok\n"
}
