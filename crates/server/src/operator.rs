//! Operator actions (`POST /api/routes/{route}/{action}`) and the dashboard's login and
//! logout. Every action is checked by [`Auth::authorize_action`](crate::auth::Auth::authorize_action)
//! before anything else.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use switchback_core::{Action, Route};

use crate::control::ControlError;
use crate::error::ApiError;
use crate::AppState;

/// The longest reason kept in the event history (the dashboard's box takes 200).
const MAX_REASON: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActReply {
    #[schema(value_type = String)]
    pub route: Route,
    #[schema(value_type = String)]
    pub action: Action,
    pub actor: String,
    pub state: &'static str,
    pub active_site: String,
    pub mode: &'static str,
}

#[utoipa::path(post, path = "/api/routes/{route}/{action}", tag = "act",
    params(("route" = String, Path, description = "`sip` or `stun`"),
        ("action" = String, Path, description = "`failover`, `failback`, `pause` or `resume`")),
    security(("adminToken" = []), ("session" = [])),
    responses((status = 200, body = ActReply), (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn act(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((route, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ActReply>, ApiError> {
    let actor = state.auth.authorize_action(&headers, peer.ip())?;
    let route: Route = route.parse().map_err(|e| ApiError::NotFound(format!("{e}; routes: sip, stun")))?;
    let action: Action = action
        .parse()
        .map_err(|e| ApiError::NotFound(format!("{e}; actions: failover, failback, pause, resume")))?;
    let body: ActBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        // serde reads a struct from a JSON array too (`["why"]`); only an object is a body.
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::BadRequest("body: expected a JSON object like {\"reason\": \"…\"}".into()));
        }
        serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let reason = crate::auth::clean_text(&body.reason, MAX_REASON);
    state.control.operate(route, action, &actor, &reason).await.map_err(|err| match err {
        ControlError::Refused(why) => ApiError::Conflict(why),
        ControlError::Unavailable(why) => ApiError::Unavailable(why),
        ControlError::NoLeader(why) => ApiError::NoLeader(why),
    })?;
    let engine = state.engine.borrow().clone();
    let status = engine.route(route);
    Ok(Json(ActReply {
        route,
        action,
        actor,
        state: status.state.as_str(),
        active_site: state.site_name(status.active).to_owned(),
        mode: status.mode.as_str(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    token: String,
}

/// The dashboard's login form: back to the dashboard, with a session cookie or a reason.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    match state.auth.login(peer.ip(), &form.name, &form.token) {
        Ok(cookie) => redirect("/", Some(cookie)),
        Err(ApiError::TooManyRequests) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/?login=limited")]).into_response()
        }
        Err(_) => redirect("/?login=failed", None),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    redirect("/", Some(state.auth.logout(&headers)))
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(value) = cookie.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
