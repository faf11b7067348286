//! switchback's one HTTP listener: phone files under `/prov/`, the ops dashboard and
//! its live status stream, the operator and read APIs, metrics and liveness. Reads the
//! current generation and engine state, asks the [`Control`] to act, and the [`Store`]
//! trait for history; knows no SQL.

mod api;
mod auth;
mod blocks;
mod control;
mod dashboard;
mod error;
pub mod group;
pub mod health;
pub mod listen;
mod live;
mod metrics;
mod middleware;
mod openapi;
mod operator;
mod per_source;
pub mod pictures;
pub mod prov;
mod recent;
#[cfg(test)]
mod routes_tests;
mod status;
#[cfg(test)]
mod testing;
pub mod tls;
mod window;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use axum::Router;
use switchback_core::{Clock, EngineState, Role, SiteNames};
use switchback_provisioning::fetch::FetchLog;
use switchback_provisioning::Generations;
use switchback_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use auth::Auth;
pub use control::{Control, ControlError};
pub use live::MAX_STREAMS;
pub use metrics::Metrics;
pub use recent::RecentChecks;
pub use status::stale_before_at;

/// What every handler can see. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub generations: Arc<Generations>,
    pub fetches: Arc<FetchLog>,
    pub engine: watch::Receiver<EngineState>,
    pub site_names: Arc<SiteNames>,
    pub clock: Arc<dyn Clock>,
    pub control: Arc<dyn Control>,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    /// Whether the store takes writes (for `/healthz`, the dashboard and metrics).
    pub store_health: Arc<health::StoreHealth>,
    /// Each service's latest checks, fed by the rounds.
    pub recent_checks: Arc<RecentChecks>,
    /// Who may fetch phone files, and the sources blocked for scanning.
    pub access: Arc<prov::Access>,
    /// How often phones poll; a phone unseen for three of these is stale.
    pub poll_interval: Duration,
    /// `switchback demo`: the dashboard shows break and mend buttons.
    pub demo: bool,
    /// In a group (`[cluster]`): the leader, the instances, what each vantage sees.
    pub group: Option<tokio::sync::watch::Receiver<group::GroupView>>,
}

impl AppState {
    pub fn site_name(&self, role: Role) -> &str {
        self.site_names.get(role)
    }
}

/// What the routes below see: the state, and the status snapshot's readers' side.
#[derive(Debug, Clone)]
struct Served {
    app: AppState,
    live: live::Live,
}

impl FromRef<Served> for AppState {
    fn from_ref(served: &Served) -> Self {
        served.app.clone()
    }
}

impl FromRef<Served> for live::Live {
    fn from_ref(served: &Served) -> Self {
        served.live.clone()
    }
}

/// Every route, plus `extra` ones (the demo's), behind the common middleware. The status
/// snapshot's hub runs until `shutdown` (or until the router is dropped), and the
/// dashboard streams end with it.
pub fn router(state: AppState, extra: Router, shutdown: &CancellationToken) -> Router {
    let live = live::Live::start(state.clone(), shutdown);
    // Phone files take their state behind one Arc: one reference count per request,
    // not one per field of the state.
    let phone_files = Router::new()
        .route("/prov/{vendor}/{file}", get(prov::phone_file))
        .with_state(Arc::new(state.clone()));
    let routes = Router::new()
        .route("/", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/login", post(operator::login))
        .route("/logout", post(operator::logout))
        .route("/api/status", get(live::status))
        .route("/api/stream", get(live::stream))
        .route("/api/events", get(api::events))
        .route("/api/phones", get(api::phones))
        .route("/api/alerts", get(api::alerts))
        .route("/api/generations/{n}/convergence", get(pictures::convergence))
        .route("/api/timeline", get(pictures::timeline))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/routes/{route}/{action}", post(operator::act))
        .route("/api/provisioning/blocks", get(blocks::list))
        .route("/api/provisioning/blocks/{*source}", delete(blocks::lift))
        .route("/metrics", get(metrics::scrape))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(Served { app: state, live })
        .merge(phone_files)
        .merge(extra);
    middleware::stack(routes)
}

pub use listen::{serve, Limits, Listeners};
