//! The layers every request goes through: tracing, a deadline, a body limit, and a
//! panic turned into a 500 instead of a dropped connection.

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// No request switchback serves needs more than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Phones send no body; operator actions send a short form.
const BODY_LIMIT: usize = 16 * 1024;

/// Every line logged while serving a request carries its method and path; never the
/// query (a login redirect's) or headers (credentials).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
}

pub fn stack(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::new())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // A 5xx is logged by whoever answered it, with the cause (a store fault at error);
        // logged here too, every refused dashboard stream would be an error line.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
}
