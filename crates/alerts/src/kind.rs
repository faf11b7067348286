//! Which events alert, and as what. Decided from the event alone (so the sender can
//! re-derive it from the stored event), plus a context filter at queueing time that
//! damps floods: a primary service failing again while its route is already on the
//! backup is news to nobody.

use serde::Serialize;
use switchback_core::{EngineState, Event, EventKind, Role, Route, RouteState, ServiceKind};

/// What an alert tells on-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    PrimaryServiceDown,
    Failover,
    Failback,
    /// The primary came back before its outage was confirmed: closes the incident only.
    BlipOver,
    BothDown,
    MonitorBlind,
    MonitorSighted,
    SafetyNetGone,
    /// A backup service is back: closes its incident only.
    BackupRecovered,
    FailbackReady,
    /// Any other route transition (failing, recovering, back to failed_over): the README
    /// alerts every transition; people see these, PagerDuty's incidents do not change.
    StateChange,
    Operator,
    Converged,
    /// A source was blocked from phone files for scanning (`actor` is the source).
    ProvisioningScan,
    Test,
}

/// What PagerDuty should do with an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub action: IncidentAction,
    /// One per incident: what the failover triggered, the failback resolves.
    pub dedup_key: String,
    pub severity: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentAction {
    Trigger,
    Resolve,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::PrimaryServiceDown => "primary_service_down",
            AlertKind::Failover => "failover",
            AlertKind::Failback => "failback",
            AlertKind::BlipOver => "blip_over",
            AlertKind::BothDown => "both_down",
            AlertKind::MonitorBlind => "monitor_blind",
            AlertKind::MonitorSighted => "monitor_sighted",
            AlertKind::SafetyNetGone => "safety_net_gone",
            AlertKind::BackupRecovered => "backup_recovered",
            AlertKind::FailbackReady => "failback_ready",
            AlertKind::StateChange => "state_change",
            AlertKind::Operator => "operator",
            AlertKind::Converged => "converged",
            AlertKind::ProvisioningScan => "provisioning_scan",
            AlertKind::Test => "test",
        }
    }

    /// The alert an event makes, if any, judging by the event alone.
    pub fn of(event: &Event) -> Option<Self> {
        let service = event.service;
        Some(match event.kind {
            EventKind::Transition => match (event.from, event.to) {
                (Some(RouteState::Primary | RouteState::Failing), Some(RouteState::FailedOver)) => {
                    AlertKind::Failover
                }
                (Some(RouteState::Failing), Some(RouteState::Primary)) => AlertKind::BlipOver,
                (Some(RouteState::Recovering | RouteState::FailedOver), Some(RouteState::Primary)) => {
                    AlertKind::Failback
                }
                _ => AlertKind::StateChange,
            },
            EventKind::ServiceDown if service.is_some_and(|s| s.role == Role::Primary) => {
                AlertKind::PrimaryServiceDown
            }
            EventKind::ServiceUp if service.is_some_and(|s| s.role == Role::Backup) => {
                AlertKind::BackupRecovered
            }
            // A change of leader is the group at work, not news for on-call.
            EventKind::ServiceDown | EventKind::ServiceUp | EventKind::LeaderElected => return None,
            EventKind::SafetyNetGone => AlertKind::SafetyNetGone,
            EventKind::BothDown => AlertKind::BothDown,
            EventKind::MonitorBlind => AlertKind::MonitorBlind,
            EventKind::MonitorSighted => AlertKind::MonitorSighted,
            EventKind::FailbackReady => AlertKind::FailbackReady,
            EventKind::Operator => AlertKind::Operator,
            EventKind::Converged => AlertKind::Converged,
            EventKind::ProvisioningScan => AlertKind::ProvisioningScan,
        })
    }

    /// Whether the alert is worth sending given the state before the step that caused
    /// it. A primary service failing while its route is already off the primary is part
    /// of an outage on-call already knows about.
    pub fn worth_sending(self, event: &Event, before: &EngineState) -> bool {
        match (self, event.service) {
            (AlertKind::PrimaryServiceDown, Some(service)) => route_of(service.kind)
                .map(|route| before.route(route).active == Role::Primary)
                .unwrap_or(true),
            _ => true,
        }
    }

    /// Whether a person reads this (generic and Slack webhooks), beyond PagerDuty's bookkeeping.
    pub fn for_people(self) -> bool {
        !matches!(self, AlertKind::BlipOver | AlertKind::BackupRecovered)
    }

    /// What PagerDuty does with it; `None`: not sent to PagerDuty at all.
    pub fn incident(self, event: &Event) -> Option<Incident> {
        let route_key =
            |route: Option<Route>| format!("switchback/route/{}", route.map_or("unknown", Route::as_str));
        let backup_key =
            || format!("switchback/backup/{}", event.service.map_or("unknown", |s| s.kind.as_str()));
        let route = event.route.or_else(|| event.service.and_then(|s| route_of(s.kind)));
        let (action, dedup_key, severity) = match self {
            AlertKind::PrimaryServiceDown => (IncidentAction::Trigger, route_key(route), "error"),
            AlertKind::Failover | AlertKind::BothDown => {
                (IncidentAction::Trigger, route_key(route), "critical")
            }
            AlertKind::FailbackReady => (IncidentAction::Trigger, route_key(route), "warning"),
            AlertKind::Failback | AlertKind::BlipOver => (IncidentAction::Resolve, route_key(route), "info"),
            AlertKind::MonitorBlind => (IncidentAction::Trigger, "switchback/monitor".to_owned(), "critical"),
            AlertKind::MonitorSighted => (IncidentAction::Resolve, "switchback/monitor".to_owned(), "info"),
            AlertKind::SafetyNetGone => (IncidentAction::Trigger, backup_key(), "warning"),
            AlertKind::BackupRecovered => (IncidentAction::Resolve, backup_key(), "info"),
            AlertKind::Test => (IncidentAction::Trigger, "switchback/test".to_owned(), "info"),
            AlertKind::ProvisioningScan => {
                (IncidentAction::Trigger, format!("switchback/provisioning/{}", event.actor), "warning")
            }
            // An operator bringing a route home ends its outage as a failback does.
            AlertKind::Operator if brought_home(event) => (IncidentAction::Resolve, route_key(route), "info"),
            AlertKind::StateChange | AlertKind::Operator | AlertKind::Converged => return None,
        };
        Some(Incident { action, dedup_key, severity })
    }
}

/// An operator's failback: the route left the backup for the primary.
fn brought_home(event: &Event) -> bool {
    event.to == Some(RouteState::Primary) && event.from.is_some_and(|from| from != RouteState::Primary)
}

/// The one route a primary service's failure moves (sip: softswitch and database; stun: stun).
pub(crate) fn route_of(kind: ServiceKind) -> Option<Route> {
    Route::depending_on(kind).next()
}
