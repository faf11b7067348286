//! One alert as every format sees it: the event it tells of, in words and fields.

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchback_core::{Event, EventKind, Role, Route, RouteState, ServiceKind, SiteNames};
use switchback_store::OutboxAlert;

use crate::kind::AlertKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertMessage {
    /// Stable across retries, so receivers can drop duplicates.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub route: Option<Route>,
    /// The site of the service the alert is about.
    pub site: Option<String>,
    pub service: Option<ServiceKind>,
    /// Where the route points phones after the event.
    pub active_site: Option<String>,
    pub from: Option<RouteState>,
    pub to: Option<RouteState>,
    pub reason: String,
    pub actor: String,
    pub generation: u64,
    pub time: DateTime<Utc>,
    pub summary: String,
    #[serde(skip)]
    pub event: Event,
}

impl AlertMessage {
    /// The message for an outbox row; `None` if its event no longer makes an alert.
    pub fn from_outbox(alert: &OutboxAlert, site_names: &SiteNames) -> Option<Self> {
        let kind = AlertKind::of(&alert.event.event)?;
        Some(Self::new(format!("msg_sb{}", alert.id), kind, &alert.event.event, alert.generation, site_names))
    }

    /// A test alert, sent by `switchback alerts test`.
    pub fn test(id: String, now: DateTime<Utc>, generation: u64, site_names: &SiteNames) -> Self {
        let event = Event {
            at: now,
            kind: EventKind::Operator,
            route: None,
            service: None,
            from: None,
            to: None,
            active: None,
            reason: "test alert from `switchback alerts test`; no action needed".to_owned(),
            actor: "switchback".to_owned(),
        };
        Self::new(id, AlertKind::Test, &event, generation, site_names)
    }

    fn new(id: String, kind: AlertKind, event: &Event, generation: u64, names: &SiteNames) -> Self {
        let name = |role: Role| names.get(role).to_owned();
        let mut message = Self {
            id,
            kind,
            // A primary service failing is news about the route it moves.
            route: event.route.or_else(|| event.service.and_then(|s| crate::kind::route_of(s.kind))),
            site: event.service.map(|s| name(s.role)),
            service: event.service.map(|s| s.kind),
            active_site: event.active.map(name),
            from: event.from,
            to: event.to,
            reason: event.reason.clone(),
            actor: event.actor.clone(),
            generation,
            time: event.at,
            summary: String::new(),
            event: event.clone(),
        };
        message.summary = message.headline();
        message
    }

    /// One line a person understands at 3 a.m.
    fn headline(&self) -> String {
        let route = self.route.map_or("?", Route::as_str);
        let site = self.site.as_deref().unwrap_or("?");
        let service = self.service.map_or("?", ServiceKind::as_str);
        let active = self.active_site.as_deref().unwrap_or("?");
        match self.kind {
            AlertKind::PrimaryServiceDown => format!("{site} {service} is DOWN ({})", self.reason),
            AlertKind::Failover => format!("FAILOVER: {route} route moved to {active}: {}", self.reason),
            AlertKind::Failback => format!("FAILBACK: {route} route back on {active}: {}", self.reason),
            AlertKind::BlipOver => format!("{route} route: primary recovered before failover"),
            AlertKind::BothDown => {
                format!("BOTH SITES DOWN for the {route} route, phones stay put: {}", self.reason)
            }
            AlertKind::MonitorBlind => {
                format!("MONITOR BLIND, nothing moves: {}", self.reason)
            }
            AlertKind::MonitorSighted => "monitor sees the sites again".to_owned(),
            AlertKind::SafetyNetGone => {
                format!("backup {site} {service} is DOWN: no failover possible for it ({})", self.reason)
            }
            AlertKind::BackupRecovered => format!("backup {site} {service} is back"),
            AlertKind::FailbackReady => {
                format!("{route} route ready to fail back; waiting for an operator: {}", self.reason)
            }
            AlertKind::StateChange => {
                let state = |s: Option<RouteState>| s.map_or("?", RouteState::as_str);
                format!(
                    "{route} route {} -> {}, phones on {active}: {}",
                    state(self.from),
                    state(self.to),
                    self.reason
                )
            }
            AlertKind::Operator => format!("operator {} on the {route} route: {}", self.actor, self.reason),
            AlertKind::Converged => format!("phones converged: {}", self.reason),
            AlertKind::ProvisioningScan => {
                format!("phone-file scan from {} blocked: {}", self.actor, self.reason)
            }
            AlertKind::Test => "switchback test alert: no action needed".to_owned(),
        }
    }
}
