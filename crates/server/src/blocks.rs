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

#[derive(Debug, Serialize)]
pub struct Blocks {
    pub blocks: Vec<BlockView>,
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Blocks>, ApiError> {
    state.auth.authorize_read(&headers, peer.ip())?;
    Ok(Json(Blocks { blocks: state.access.guard.blocks(Instant::now()) }))
}

#[derive(Debug, Serialize)]
pub struct Lifted {
    pub lifted: BlockView,
    pub actor: String,
}

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
