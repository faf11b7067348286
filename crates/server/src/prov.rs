//! Phone files: `/prov/yealink/{mac}.cfg`, `/prov/yealink/y0000000000{xx}.cfg`,
//! `/prov/linksys/spa{mac}.xml`. Names are parsed strictly; nothing from the URL is
//! ever used as a path. Every answer comes from one generation, held for the response.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::FileName;

use crate::AppState;

pub async fn phone_file(
    State(state): State<AppState>,
    Path((vendor, file)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = FileName::parse(&vendor, &file) else {
        state.metrics.fetched("unknown", 404);
        return not_found().await;
    };
    let generation = state.generations.current();
    let Some(found) = generation.get(name) else {
        state.metrics.fetched(name.vendor().as_str(), 404);
        return not_found().await;
    };

    if let Some(mac) = name.mac() {
        let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        state.fetches.record(PhoneFetch {
            mac,
            vendor: name.vendor(),
            at: state.clock.now(),
            generation: generation.number(),
            source: peer.ip(),
            user_agent: user_agent.chars().take(200).collect(),
            count: 1,
        });
    }

    let etag = HeaderValue::from_str(found.etag()).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| found.etag_matches(v));
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if not_modified {
        state.metrics.fetched(name.vendor().as_str(), 304);
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    state.metrics.fetched(name.vendor().as_str(), 200);
    let content_type = HeaderValue::from_static(found.content_type());
    (common, [(header::CONTENT_TYPE, content_type)], found.bytes().clone()).into_response()
}

/// A plain 404: an unknown phone, a wrong vendor path and a malformed name look alike.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
