//! What an event means to an operator, said once: its label and its tone. The log, the
//! API (and through it the dashboard) and the alerts' wording read it from here.

use serde::Serialize;

use super::{Event, EventKind, RouteState};

/// How an event reads: bad news, a warning, neutral progress, good news, or a person's act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Something is down or phones were moved away from the primary.
    Bad,
    /// Something may be about to go wrong (an outage being confirmed, a scan).
    Warn,
    /// Progress an operator may want to know about (a hold-down running, failback waiting).
    Info,
    /// Good news: service back, phones home, phones converged.
    Good,
    /// An operator acted.
    Operator,
}

impl Tone {
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Bad => "bad",
            Tone::Warn => "warn",
            Tone::Info => "info",
            Tone::Good => "good",
            Tone::Operator => "operator",
        }
    }

    /// Whether a log line about it is a warning (bad news and warnings) or information.
    pub fn is_trouble(self) -> bool {
        matches!(self, Tone::Bad | Tone::Warn)
    }
}

impl Event {
    /// A short lowercase label, stable enough to grep a log for.
    pub fn label(&self) -> &'static str {
        match (self.kind, self.from, self.to) {
            (EventKind::Transition, _, Some(RouteState::FailedOver)) => "route failed over",
            (EventKind::Transition, Some(RouteState::Failing), Some(RouteState::Primary)) => {
                "route blip over"
            }
            (EventKind::Transition, _, Some(RouteState::Primary)) => "route failed back",
            (EventKind::Transition, _, Some(RouteState::Failing)) => "route failing",
            (EventKind::Transition, _, _) => "route recovering",
            (EventKind::ServiceDown, _, _) => "service down",
            (EventKind::ServiceUp, _, _) => "service up",
            (EventKind::SafetyNetGone, _, _) => "backup down, no safety net",
            (EventKind::BothDown, _, _) => "primary and backup both down",
            (EventKind::MonitorBlind, _, _) => "monitor blind",
            (EventKind::MonitorSighted, _, _) => "monitor sees again",
            (EventKind::FailbackReady, _, _) => "failback waiting for an operator",
            (EventKind::Operator, _, _) => "operator action",
            (EventKind::Converged, _, _) => "phones converged",
            (EventKind::ProvisioningScan, _, _) => "source blocked for scanning",
            (EventKind::LeaderElected, _, _) => "leader elected",
        }
    }

    pub fn tone(&self) -> Tone {
        match (self.kind, self.to) {
            (EventKind::Transition, Some(RouteState::FailedOver)) => Tone::Bad,
            (EventKind::Transition, Some(RouteState::Failing)) => Tone::Warn,
            (EventKind::Transition, Some(RouteState::Primary)) => Tone::Good,
            (EventKind::Transition, _) => Tone::Info,
            (
                EventKind::ServiceDown
                | EventKind::SafetyNetGone
                | EventKind::BothDown
                | EventKind::MonitorBlind,
                _,
            ) => Tone::Bad,
            (EventKind::ProvisioningScan, _) => Tone::Warn,
            (EventKind::FailbackReady | EventKind::LeaderElected, _) => Tone::Info,
            (EventKind::ServiceUp | EventKind::MonitorSighted | EventKind::Converged, _) => Tone::Good,
            (EventKind::Operator, _) => Tone::Operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::Route;

    fn transition(from: RouteState, to: RouteState) -> Event {
        let mut event = Event::note(Utc::now(), EventKind::Transition, "monitor", "test");
        event.route = Some(Route::Sip);
        (event.from, event.to) = (Some(from), Some(to));
        event
    }

    #[test]
    fn transitions_read_as_what_happened_to_the_phones() {
        use RouteState::*;
        let cases = [
            (Primary, Failing, "route failing", Tone::Warn),
            (Failing, FailedOver, "route failed over", Tone::Bad),
            (Failing, Primary, "route blip over", Tone::Good),
            (FailedOver, Recovering, "route recovering", Tone::Info),
            (Recovering, FailedOver, "route failed over", Tone::Bad),
            (Recovering, Primary, "route failed back", Tone::Good),
        ];
        for (from, to, label, tone) in cases {
            let event = transition(from, to);
            assert_eq!((event.label(), event.tone()), (label, tone), "{from:?} → {to:?}");
        }
    }

    #[test]
    fn only_bad_news_and_warnings_are_trouble() {
        let good = Event::note(Utc::now(), EventKind::Converged, "monitor", "95 of 100");
        let scan = Event::note(Utc::now(), EventKind::ProvisioningScan, "192.0.2.7", "20 bad");
        assert!(!good.tone().is_trouble());
        assert!(scan.tone().is_trouble());
    }
}
