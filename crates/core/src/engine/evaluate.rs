//! The automatic rules: fold a round of check results into the state, then move routes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{EngineState, Event, EventKind, Mode, RouteState, Rules, Step, MONITOR_ACTOR};
use crate::model::{CheckResult, Role, Route, ServiceId};

pub(super) fn step(state: &EngineState, results: &[CheckResult], rules: &Rules, now: DateTime<Utc>) -> Step {
    let mut next = state.clone();
    let mut changed: Vec<ServiceId> = Vec::new();
    for result in results {
        if record(&mut next, result) && !changed.contains(&result.service) {
            changed.push(result.service);
        }
    }
    // Several results of one service (the rounds a store refused, folded in) may flip it
    // and flip it back: only a health that differs from the step's start is news.
    changed.retain(|service| {
        let (was, is) = (state.service(*service).healthy, next.service(*service).healthy);
        match is {
            Some(false) => was != Some(false),
            Some(true) => was == Some(false),
            None => false,
        }
    });

    let mut events = Vec::new();
    let all_failing = ServiceId::all().all(|s| next.service(s).healthy == Some(false));
    if all_failing {
        // Six servers in two data centers do not fail in the same second: we are the
        // ones cut off. Say so once, and move nothing.
        if !next.blind {
            next.blind = true;
            events.push(notice(now, EventKind::MonitorBlind, None, None, "every probe of both sites failed"));
        }
        return Step { next, events };
    }

    if next.blind {
        next.blind = false;
        events.push(notice(now, EventKind::MonitorSighted, None, None, "probes answer again"));
        // What went down while blind was never announced; what "came back" never left.
        changed = ServiceId::all().filter(|s| next.service(*s).healthy == Some(false)).collect();
    }
    for service in changed {
        events.extend(service_event(&next, service, now));
    }
    for route in Route::ALL {
        evaluate_route(&mut next, route, rules, now, &mut events);
    }
    Step { next, events }
}

/// Folds one result into its service's run; true when the service's health flipped.
fn record(state: &mut EngineState, result: &CheckResult) -> bool {
    let track = state.services.entry(result.service).or_default();
    let was = track.healthy;
    track.healthy = Some(result.healthy);
    track.checked_at = Some(result.checked_at);
    track.latency_ms = result.latency.map(crate::model::latency_ms);
    track.reason = result.reason.clone();
    if result.healthy {
        track.failing_since = None;
        track.healthy_since.get_or_insert(result.checked_at);
        was == Some(false)
    } else {
        track.healthy_since = None;
        track.failing_since.get_or_insert(result.checked_at);
        was != Some(false)
    }
}

fn service_event(state: &EngineState, service: ServiceId, now: DateTime<Utc>) -> Option<Event> {
    let track = state.service(service);
    let reason = track.reason.clone().unwrap_or_default();
    let kind = match (track.healthy, service.role) {
        (Some(true), _) => EventKind::ServiceUp,
        (Some(false), Role::Primary) => EventKind::ServiceDown,
        (Some(false), Role::Backup) => {
            let safety_net = Route::depending_on(service.kind).all(|route| {
                let status = state.route(route);
                status.state == RouteState::Primary && status.active == Role::Primary
            });
            if safety_net {
                EventKind::SafetyNetGone
            } else {
                EventKind::ServiceDown
            }
        }
        (None, _) => return None,
    };
    let mut event = notice(now, kind, None, Some(service), &reason);
    if kind == EventKind::ServiceUp {
        event.reason = "healthy".to_owned();
    }
    Some(event)
}

/// How one site's services for one route are doing.
struct SideHealth {
    /// Every service passed its latest check.
    up: bool,
    /// Some service failed its latest check.
    down: bool,
    /// Longest failing run among failing services, first to latest failed check.
    down_for: Duration,
    /// Shortest healthy run among the services, first to latest healthy check.
    up_for: Duration,
    /// `softswitch timeout, database refused`.
    reason: String,
}

impl SideHealth {
    fn of(state: &EngineState, role: Role, route: Route) -> Self {
        let tracks: Vec<_> =
            route.services().iter().map(|&kind| (kind, state.service(ServiceId { role, kind }))).collect();
        let run = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| match (from, to) {
            (Some(from), Some(to)) => (to - from).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let failing: Vec<_> = tracks.iter().filter(|(_, t)| t.healthy == Some(false)).collect();
        Self {
            up: tracks.iter().all(|(_, t)| t.healthy == Some(true)),
            down: !failing.is_empty(),
            down_for: failing
                .iter()
                .map(|(_, t)| run(t.failing_since, t.checked_at))
                .max()
                .unwrap_or_default(),
            up_for: tracks.iter().map(|(_, t)| run(t.healthy_since, t.checked_at)).min().unwrap_or_default(),
            reason: failing
                .iter()
                .map(|(kind, t)| format!("{kind} {}", t.reason.as_deref().unwrap_or("down")))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

fn evaluate_route(
    state: &mut EngineState,
    route: Route,
    rules: &Rules,
    now: DateTime<Utc>,
    events: &mut Vec<Event>,
) {
    let primary = SideHealth::of(state, Role::Primary, route);
    let backup = SideHealth::of(state, Role::Backup, route);
    let mut mover = Mover { state, route, now, events };
    if mover.status().mode != Mode::Auto {
        return;
    }

    match mover.status().state {
        RouteState::Primary | RouteState::Failing if primary.down => {
            let confirmed = primary.down_for >= rules.failover_after;
            if confirmed && backup.up {
                let reason =
                    format!("primary {} for {}; backup healthy", primary.reason, human(primary.down_for));
                mover.transition(RouteState::FailedOver, Role::Backup, reason);
            } else if mover.status().state == RouteState::Primary {
                let reason = if confirmed {
                    format!("primary {}; no healthy backup to fail over to", primary.reason)
                } else {
                    format!("primary {}; confirming for {}", primary.reason, human(rules.failover_after))
                };
                mover.transition(RouteState::Failing, Role::Primary, reason);
            }
            if confirmed && backup.down {
                mover.both_down(&primary, &backup);
            }
        }
        RouteState::Failing if primary.up => {
            mover.transition(
                RouteState::Primary,
                Role::Primary,
                "primary recovered before failover".to_owned(),
            );
        }
        RouteState::FailedOver | RouteState::Recovering if primary.down => {
            if mover.status().state == RouteState::Recovering {
                let reason = format!("primary {} during hold-down", primary.reason);
                mover.transition(RouteState::FailedOver, Role::Backup, reason);
            }
            if backup.down {
                mover.both_down(&primary, &backup);
            }
        }
        RouteState::FailedOver | RouteState::Recovering if primary.up => {
            if mover.status().state == RouteState::FailedOver {
                let reason =
                    format!("primary healthy; failback after {} hold-down", human(rules.failback_after));
                mover.transition(RouteState::Recovering, Role::Backup, reason);
            }
            let held = primary.up_for >= rules.failback_after;
            // A flapping primary still beats a dead backup.
            if held || backup.down {
                mover.fail_back(rules, &primary, &backup);
            }
        }
        _ => {}
    }
    if !(primary.down && backup.down) {
        mover.status_mut().both_down = false;
    }
}

/// Applies decisions to one route and records them.
struct Mover<'a> {
    state: &'a mut EngineState,
    route: Route,
    now: DateTime<Utc>,
    events: &'a mut Vec<Event>,
}

impl Mover<'_> {
    fn status(&self) -> &super::RouteStatus {
        self.state.route(self.route)
    }

    fn status_mut(&mut self) -> &mut super::RouteStatus {
        // Infallible: both routes always have a status (see EngineState::route).
        #[allow(clippy::expect_used)]
        self.state.routes.get_mut(&self.route).expect("every route has a status")
    }

    fn transition(&mut self, to: RouteState, active: Role, reason: String) {
        let (route, now) = (self.route, self.now);
        let status = self.status_mut();
        let from = status.state;
        status.state = to;
        status.active = active;
        status.since = now;
        status.reason = reason.clone();
        status.failback_ready = false;
        self.events.push(Event {
            at: now,
            kind: EventKind::Transition,
            route: Some(route),
            service: None,
            from: Some(from),
            to: Some(to),
            active: Some(active),
            reason,
            actor: MONITOR_ACTOR.to_owned(),
        });
    }

    fn both_down(&mut self, primary: &SideHealth, backup: &SideHealth) {
        if self.status().both_down {
            return;
        }
        self.status_mut().both_down = true;
        let reason = format!("primary {}; backup {}", primary.reason, backup.reason);
        self.events.push(notice(self.now, EventKind::BothDown, Some(self.route), None, &reason));
    }

    fn fail_back(&mut self, rules: &Rules, primary: &SideHealth, backup: &SideHealth) {
        let reason = if backup.down {
            format!("backup {}; primary healthy for {}", backup.reason, human(primary.up_for))
        } else {
            format!("primary healthy for {}", human(primary.up_for))
        };
        if rules.auto_failback {
            self.transition(RouteState::Primary, Role::Primary, reason);
        } else if !self.status().failback_ready {
            self.status_mut().failback_ready = true;
            let reason = format!("{reason}; auto_failback is off, waiting for an operator");
            self.events.push(notice(self.now, EventKind::FailbackReady, Some(self.route), None, &reason));
        }
    }
}

fn notice(
    at: DateTime<Utc>,
    kind: EventKind,
    route: Option<Route>,
    service: Option<ServiceId>,
    reason: &str,
) -> Event {
    Event {
        at,
        kind,
        route,
        service,
        from: None,
        to: None,
        active: None,
        reason: reason.to_owned(),
        actor: MONITOR_ACTOR.to_owned(),
    }
}

/// `3m 20s`: whole seconds are plenty for an operator.
pub(super) fn human(d: Duration) -> String {
    let rounded = if d >= Duration::from_secs(1) { Duration::from_secs(d.as_secs()) } else { d };
    humantime::format_duration(rounded).to_string()
}
