//! The route state machine: a pure function of (state, check results, now).
//!
//! [`EngineState`] holds everything needed to resume after a restart: each route's
//! state and mode, and each service's current run of healthy or failed checks. The
//! caller persists the [`Step`]'s next state and events before acting on them.

mod evaluate;
mod meaning;
mod operator;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::MonitorConfig;
use crate::model::{CheckResult, Role, Route, ServiceId};

pub use meaning::Tone;
pub use operator::{Action, OperatorError};

/// Where a route is in its failover cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Phones use the primary; everything is fine.
    Primary,
    /// A primary service is down; not yet confirmed (or no healthy backup to go to).
    Failing,
    /// Phones are pointed at the backup.
    FailedOver,
    /// The primary is healthy again; the failback hold-down is running.
    Recovering,
}

/// Whether the rules drive the route, or an operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Auto,
    /// Automation stopped (maintenance); the route holds until `resume`.
    Paused,
    /// An operator forced the active site; the route holds until `resume`.
    Forced,
}

/// One route's persisted status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub state: RouteState,
    /// The site phones are told to use for this route.
    pub active: Role,
    /// When `state` (or `mode`) last changed.
    pub since: DateTime<Utc>,
    pub reason: String,
    pub mode: Mode,
    /// Set while both sites' services for the route are down, so the alert fires once.
    pub both_down: bool,
    /// Set once the hold-down has passed with `auto_failback = false`, so the notice fires once.
    pub failback_ready: bool,
}

/// One service's latest check and the run of identical outcomes it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTrack {
    /// `None` until the first check.
    pub healthy: Option<bool>,
    pub checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
    /// First failed check of the current failing run.
    pub failing_since: Option<DateTime<Utc>>,
    /// First healthy check of the current healthy run.
    pub healthy_since: Option<DateTime<Utc>>,
}

/// Everything the engine knows; persisted after every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    pub routes: BTreeMap<Route, RouteStatus>,
    #[serde(with = "entries")]
    pub services: BTreeMap<ServiceId, ServiceTrack>,
    /// Every probe of both sites failed in the latest round: the monitor is cut off.
    pub blind: bool,
    /// Bumped whenever a route's active site changes: the generation of phone files
    /// that matches these active sites.
    pub generation: u64,
}

/// The timers of the failover rules (a view of `[monitor]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub failover_after: Duration,
    pub failback_after: Duration,
    pub auto_failback: bool,
}

impl From<&MonitorConfig> for Rules {
    fn from(m: &MonitorConfig) -> Self {
        Self {
            failover_after: m.failover_after,
            failback_after: m.failback_after,
            auto_failback: m.auto_failback,
        }
    }
}

/// What happened, for the event history and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A route changed state (failover, failback, confirmation, hold-down…).
    Transition,
    /// A primary service failed a check after passing (or on its first check).
    ServiceDown,
    /// A service passed a check after failing.
    ServiceUp,
    /// A backup service failed while its routes were on a healthy primary: the safety net is gone.
    SafetyNetGone,
    /// A route's primary is down and so is its backup: nowhere to go.
    BothDown,
    /// Every probe of both sites failed at once: the monitor itself is cut off.
    MonitorBlind,
    /// The monitor sees at least one service again.
    MonitorSighted,
    /// The hold-down has passed but `auto_failback = false`: waiting for an operator.
    FailbackReady,
    /// An operator forced, paused or resumed a route.
    Operator,
    /// Most phones (see the orchestrator) fetched the generation of a route's new site.
    Converged,
    /// A source made too many bad phone-file requests and is blocked; `actor` is the source.
    ProvisioningScan,
    /// An instance of the group became its leader; `actor` is the node, `reason` the term.
    LeaderElected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::ServiceDown => "service_down",
            EventKind::ServiceUp => "service_up",
            EventKind::SafetyNetGone => "safety_net_gone",
            EventKind::BothDown => "both_down",
            EventKind::MonitorBlind => "monitor_blind",
            EventKind::MonitorSighted => "monitor_sighted",
            EventKind::FailbackReady => "failback_ready",
            EventKind::Operator => "operator",
            EventKind::Converged => "converged",
            EventKind::ProvisioningScan => "provisioning_scan",
            EventKind::LeaderElected => "leader_elected",
        }
    }
}

impl RouteState {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Primary => "primary",
            RouteState::Failing => "failing",
            RouteState::FailedOver => "failed_over",
            RouteState::Recovering => "recovering",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Paused => "paused",
            Mode::Forced => "forced",
        }
    }
}

crate::model::text_enum!(
    EventKind,
    "event kind",
    [
        Transition,
        ServiceDown,
        ServiceUp,
        SafetyNetGone,
        BothDown,
        MonitorBlind,
        MonitorSighted,
        FailbackReady,
        Operator,
        Converged,
        ProvisioningScan,
        LeaderElected
    ]
);
crate::model::text_enum!(RouteState, "route state", [Primary, Failing, FailedOver, Recovering]);
crate::model::text_enum!(Mode, "mode", [Auto, Paused, Forced]);

/// One entry of the event history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub route: Option<Route>,
    pub service: Option<ServiceId>,
    pub from: Option<RouteState>,
    pub to: Option<RouteState>,
    /// The route's active site after the event, for route events.
    pub active: Option<Role>,
    pub reason: String,
    /// Who caused it: `monitor` for the rules, the operator's name otherwise.
    pub actor: String,
}

impl Event {
    /// An event about no route or service (convergence, a scan block).
    pub fn note(
        at: DateTime<Utc>,
        kind: EventKind,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            at,
            kind,
            route: None,
            service: None,
            from: None,
            to: None,
            active: None,
            reason: reason.into(),
            actor: actor.into(),
        }
    }
}

/// The actor recorded on events the rules cause.
pub const MONITOR_ACTOR: &str = "monitor";

/// The outcome of feeding results (or an operator action) to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub next: EngineState,
    pub events: Vec<Event>,
}

impl Step {
    /// True when a route's active site changed, which calls for a new generation of phone files.
    pub fn moves_phones(&self, before: &EngineState) -> bool {
        Route::ALL.into_iter().any(|r| self.next.active(r) != before.active(r))
    }
}

impl EngineState {
    /// A fresh install: every route on the primary, nothing checked yet.
    pub fn new(now: DateTime<Utc>) -> Self {
        let routes = Route::ALL
            .into_iter()
            .map(|route| {
                let status = RouteStatus {
                    state: RouteState::Primary,
                    active: Role::Primary,
                    since: now,
                    reason: "started".to_owned(),
                    mode: Mode::Auto,
                    both_down: false,
                    failback_ready: false,
                };
                (route, status)
            })
            .collect();
        let services = ServiceId::all().map(|s| (s, ServiceTrack::default())).collect();
        Self { routes, services, blind: false, generation: 1 }
    }

    pub fn route(&self, route: Route) -> &RouteStatus {
        // Infallible: every constructor (new, and the store's loader) fills both routes.
        #[allow(clippy::expect_used)]
        self.routes.get(&route).expect("every route has a status")
    }

    pub fn active(&self, route: Route) -> Role {
        self.route(route).active
    }

    pub fn service(&self, service: ServiceId) -> &ServiceTrack {
        static UNCHECKED: ServiceTrack = ServiceTrack {
            healthy: None,
            checked_at: None,
            latency_ms: None,
            reason: None,
            failing_since: None,
            healthy_since: None,
        };
        self.services.get(&service).unwrap_or(&UNCHECKED)
    }

    /// True while anything is failing, unknown, or off its primary: the scheduler then
    /// re-checks every `recheck_interval` instead of every `interval`.
    pub fn unsettled(&self) -> bool {
        self.blind
            || ServiceId::all().any(|s| self.service(s).healthy != Some(true))
            || self.routes.values().any(|r| r.state != RouteState::Primary || r.active != Role::Primary)
    }

    /// Feeds one round of check results to the rules.
    pub fn step(&self, results: &[CheckResult], rules: &Rules, now: DateTime<Utc>) -> Step {
        self.next_generation(evaluate::step(self, results, rules, now))
    }

    /// A round in which too few vantage points could see: nothing moves, and the
    /// monitor counts as blind (said once, as when one monitor's probes all fail).
    pub fn step_blind(&self, reason: &str, now: DateTime<Utc>) -> Step {
        let mut next = self.clone();
        let mut events = Vec::new();
        if !next.blind {
            next.blind = true;
            events.push(Event::note(now, EventKind::MonitorBlind, MONITOR_ACTOR, reason));
        }
        Step { next, events }
    }

    /// Applies an operator action.
    pub fn operate(
        &self,
        route: Route,
        action: Action,
        actor: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Step, OperatorError> {
        operator::operate(self, route, action, actor, why, now).map(|step| self.next_generation(step))
    }

    /// A step that moves phones starts a new generation.
    fn next_generation(&self, mut step: Step) -> Step {
        if step.moves_phones(self) {
            step.next.generation = self.generation + 1;
        }
        step
    }
}

/// Serialises a map with struct keys as a list of `{key, value}` entries, which JSON can hold.
mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Entry<K, V> {
        key: K,
        value: V,
    }

    pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        serializer.collect_seq(map.iter().map(|(key, value)| Entry { key, value }))
    }

    pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        let entries = Vec::<Entry<K, V>>::deserialize(deserializer)?;
        Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
    }
}

#[cfg(test)]
mod tests;
