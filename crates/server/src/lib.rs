//! switchback's one HTTP listener: phone files under `/prov/`, the status API and
//! liveness. Reads the current generation and engine state; knows no SQL.

mod api;
mod middleware;
mod prov;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use switchback_core::{Clock, EngineState, Role};
use switchback_provisioning::fetch::FetchLog;
use switchback_provisioning::Generations;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What every handler can see. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub generations: Arc<Generations>,
    pub fetches: Arc<FetchLog>,
    pub engine: watch::Receiver<EngineState>,
    /// Site names, primary first.
    pub site_names: Arc<[String; 2]>,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    pub fn site_name(&self, role: Role) -> &str {
        &self.site_names[usize::from(role == Role::Backup)]
    }
}

/// Every route, plus `extra` ones (the demo's), behind the common middleware.
pub fn router(state: AppState, extra: Router) -> Router {
    let routes = Router::new()
        .route("/prov/{vendor}/{file}", get(prov::phone_file))
        .route("/api/status", get(api::status))
        .route("/healthz", get(api::healthz))
        .fallback(prov::not_found)
        .with_state(state)
        .merge(extra);
    middleware::stack(routes)
}

/// Serves `router` until `shutdown`, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
