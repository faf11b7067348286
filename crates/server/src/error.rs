//! The API's one error type: a JSON body `{"error": "…"}` with the right status.
//! 5xx details are logged, never shown to the client.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that may not do this (the read token asked to act).
    #[error("{0}")]
    Forbidden(String),
    /// A known path asked with a method it does not take (the `Allow` header lists those).
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins or wrong tokens from the source within a minute.
    #[error("too many failed attempts from this address; try again in a minute")]
    TooManyRequests,
    #[error("{0}")]
    Unavailable(String),
    /// In a group, no leader took an operator action in time (safe to show: no detail
    /// of the store in it).
    #[error("{0}")]
    NoLeader(String),
    /// Every one of [`crate::live::MAX_STREAMS`] dashboard streams is taken.
    #[error("too many dashboard streams are open; poll /api/status instead")]
    TooManyStreams,
    #[error(transparent)]
    Store(#[from] switchback_store::StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_)
            | ApiError::Store(_)
            | ApiError::TooManyStreams
            | ApiError::NoLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = if matches!(self, ApiError::Unavailable(_) | ApiError::Store(_)) {
            tracing::error!(error = %self, "api request failed");
            "the store is unavailable; nothing changed".to_owned()
        } else {
            self.to_string()
        };
        let mut response = (status, Json(crate::openapi::ErrorBody { error: message })).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::TooManyStreams) {
            // Dashboards come and go; a slot is likely free by then.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The most it can take: the oldest counted failure leaves the minute by then.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        response
    }
}

/// Whether `uri` is under `/api`, where every answer is JSON.
fn is_api(uri: &Uri) -> bool {
    let path = uri.path();
    path == "/api" || path.starts_with("/api/")
}

/// A path no route matches: JSON 404 under `/api`, plain text elsewhere (phones and
/// scanners get no JSON).
pub async fn not_found(uri: Uri) -> Response {
    if is_api(&uri) {
        ApiError::NotFound("no such API endpoint; GET /api/openapi.json lists them".to_owned())
            .into_response()
    } else {
        crate::prov::not_found().await
    }
}

/// A known path asked with another method: 405, with a JSON body under `/api`. The router
/// adds the `Allow` header.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    if is_api(&uri) {
        let message = format!("{method} is not allowed here; the Allow header lists the methods that are");
        ApiError::MethodNotAllowed(message).into_response()
    } else {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    }
}
