//! The ops dashboard at `/` (placeholder until the dashboard work lands).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Html<String> {
    let who = state.auth.session(&headers).map(|s| s.name).unwrap_or_default();
    Html(format!("<!doctype html><title>switchback</title><p>switchback {who}</p>"))
}

pub async fn asset(Path(_file): Path<String>) -> Response {
    crate::prov::not_found().await.into_response()
}
