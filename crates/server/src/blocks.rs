//! `GET /api/provisioning/blocks` (who is blocked from phone files for scanning) and
//! `DELETE /api/provisioning/blocks/{source}` (an operator lifts one).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::prov::guard::{BlockView, Source};
use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Blocks {
    pub blocks: Vec<BlockView>,
}

#[utoipa::path(get, path = "/api/provisioning/blocks", tag = "read",
    security(("adminToken" = []), ("readToken" = []), ("session" = [])),
    responses((status = 200, body = Blocks), (status = 401, body = crate::openapi::ErrorBody),
        (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Blocks>, ApiError> {
    state.auth.authorize_read(&headers, peer.ip())?;
    Ok(Json(Blocks { blocks: state.access.guard.blocks(Instant::now()) }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Lifted {
    pub lifted: BlockView,
    pub actor: String,
}

#[utoipa::path(delete, path = "/api/provisioning/blocks/{source}", tag = "act",
    params(("source" = String, Path, description = "the blocked source as listed, e.g. `192.0.2.7` or `2001:db8:1:2::/64`")),
    security(("adminToken" = []), ("session" = [])),
    responses((status = 200, body = Lifted), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn lift(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(source): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Lifted>, ApiError> {
    let actor = state.auth.authorize_action(&headers, peer.ip())?;
    let source: Source = source.parse().map_err(ApiError::BadRequest)?;
    let lifted = state
        .access
        .guard
        .lift(source)
        .ok_or_else(|| ApiError::NotFound(format!("{source} is not blocked")))?;
    tracing::info!(source = %source, actor = %actor, "provisioning block lifted");
    Ok(Json(Lifted { lifted, actor }))
}
