//! Operator overrides: force a site, or stop and restart automation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EngineState, Event, EventKind, Mode, RouteState, Step};
use crate::model::{Role, Route};

/// What an operator can do to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Point phones at the backup and hold there until `resume`.
    Failover,
    /// Point phones at the primary and hold there until `resume`.
    Failback,
    /// Stop automation where the route is, until `resume`.
    Pause,
    /// Hand the route back to the rules.
    Resume,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failover => "failover",
            Action::Failback => "failback",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

crate::model::text_enum!(Action, "action", [Failover, Failback, Pause, Resume]);

/// An action that makes no sense for the route as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    #[error("route {0} is already paused")]
    AlreadyPaused(Route),
    #[error("route {0} is under automatic control; there is nothing to resume")]
    NotHeld(Route),
}

pub(super) fn operate(
    state: &EngineState,
    route: Route,
    action: Action,
    actor: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Step, OperatorError> {
    let mut next = state.clone();
    let before = state.route(route).clone();
    // Infallible: both routes always have a status (see EngineState::route).
    #[allow(clippy::expect_used)]
    let status = next.routes.get_mut(&route).expect("every route has a status");
    let why = if why.trim().is_empty() { "no reason given" } else { why.trim() };

    match action {
        Action::Failover | Action::Failback => {
            let (state, active) = match action {
                Action::Failover => (RouteState::FailedOver, Role::Backup),
                _ => (RouteState::Primary, Role::Primary),
            };
            status.state = state;
            status.active = active;
            status.mode = Mode::Forced;
        }
        Action::Pause if before.mode == Mode::Paused => return Err(OperatorError::AlreadyPaused(route)),
        Action::Pause => status.mode = Mode::Paused,
        Action::Resume if before.mode == Mode::Auto => return Err(OperatorError::NotHeld(route)),
        Action::Resume => status.mode = Mode::Auto,
    }
    status.since = now;
    status.reason = format!("{action} by {actor}: {why}");
    status.both_down = false;
    status.failback_ready = false;

    let event = Event {
        at: now,
        kind: EventKind::Operator,
        route: Some(route),
        service: None,
        from: Some(before.state),
        to: Some(status.state),
        active: Some(status.active),
        reason: status.reason.clone(),
        actor: actor.to_owned(),
    };
    Ok(Step { next, events: vec![event] })
}
