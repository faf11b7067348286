//! Which events alert, to which formats, and what PagerDuty gets.

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use switchback_core::config::{AlertConfig, AlertFormat};
use switchback_core::{EngineState, Event, EventKind, Role, Route, RouteState, ServiceId, ServiceKind};
use switchback_store::{AlertStatus, OutboxAlert, StoredEvent};

use super::*;
use crate::kind::IncidentAction;

fn webhook(name: &str, format: AlertFormat) -> AlertConfig {
    AlertConfig {
        name: name.to_owned(),
        url: url_of("http://127.0.0.1:9/hook"),
        format,
        secret: None,
        routing_key: Some(SecretString::from("R0UT1NG")),
    }
}

fn url_of(text: &str) -> reqwest::Url {
    reqwest::Url::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn transition(route: Route, from: RouteState, to: RouteState, active: Role) -> Event {
    Event {
        at: Utc.timestamp_opt(1_795_316_400, 0).single().unwrap_or_default(),
        kind: EventKind::Transition,
        route: Some(route),
        service: None,
        from: Some(from),
        to: Some(to),
        active: Some(active),
        reason: "primary softswitch timeout for 3s; backup healthy".to_owned(),
        actor: "monitor".to_owned(),
    }
}

fn service_event(kind: EventKind, role: Role, service: ServiceKind) -> Event {
    Event {
        kind,
        service: Some(ServiceId::new(role, service)),
        route: None,
        from: None,
        to: None,
        active: None,
        reason: "timeout".to_owned(),
        ..transition(Route::Sip, RouteState::Primary, RouteState::Primary, Role::Primary)
    }
}

fn message(event: &Event) -> AlertMessage {
    let alert = OutboxAlert {
        id: 7,
        webhook: "pd".to_owned(),
        generation: 2,
        status: AlertStatus::Pending,
        attempts: 0,
        next_attempt_at: event.at,
        last_status: None,
        last_error: None,
        created_at: event.at,
        finished_at: None,
        event: StoredEvent { id: 3, event: event.clone() },
    };
    AlertMessage::from_outbox(&alert, &switchback_core::SiteNames::new("chicago", "virginia"))
        .unwrap_or_else(|| panic!("{event:?} should alert"))
}

#[test]
fn a_failover_goes_to_every_webhook_a_blip_only_closes_pagerduty_and_a_hold_down_goes_to_people() {
    let hooks = [
        webhook("ops", AlertFormat::Generic),
        webhook("chat", AlertFormat::Slack),
        webhook("pd", AlertFormat::Pagerduty),
    ];
    let state = EngineState::new(Utc::now());
    let events = [
        transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup),
        transition(Route::Stun, RouteState::Failing, RouteState::Primary, Role::Primary),
        transition(Route::Sip, RouteState::FailedOver, RouteState::Recovering, Role::Backup),
    ];
    let rows = plan(&state, 2, &events, &hooks);
    let got: Vec<(usize, &str)> = rows.iter().map(|r| (r.event_index, r.webhook.as_str())).collect();
    assert_eq!(got, [(0, "ops"), (0, "chat"), (0, "pd"), (1, "pd"), (2, "ops"), (2, "chat")]);
}

#[test]
fn a_primary_service_failing_again_during_an_outage_is_not_news() {
    let hooks = [webhook("ops", AlertFormat::Generic)];
    let mut failed_over = EngineState::new(Utc::now());
    if let Some(sip) = failed_over.routes.get_mut(&Route::Sip) {
        sip.active = Role::Backup;
        sip.state = RouteState::Recovering;
    }
    let down = [service_event(EventKind::ServiceDown, Role::Primary, ServiceKind::Softswitch)];
    assert!(plan(&failed_over, 2, &down, &hooks).is_empty());
    assert_eq!(plan(&EngineState::new(Utc::now()), 1, &down, &hooks).len(), 1);
    let stun_down = [service_event(EventKind::ServiceDown, Role::Primary, ServiceKind::Stun)];
    assert_eq!(plan(&failed_over, 2, &stun_down, &hooks).len(), 1, "stun is on its primary");
}

#[test]
fn the_failback_resolves_what_the_failover_triggered() {
    let key = SecretString::from("R0UT1NG");
    let over = transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup);
    let back = transition(Route::Sip, RouteState::Recovering, RouteState::Primary, Role::Primary);
    let down = service_event(EventKind::ServiceDown, Role::Primary, ServiceKind::Database);
    let body = |event: &Event| -> serde_json::Value {
        let prepared =
            pagerduty::prepare(&message(event), &key).ok().flatten().unwrap_or_else(|| panic!("no body"));
        serde_json::from_str(&prepared.body).unwrap_or_default()
    };
    let (trigger, resolve, early) = (body(&over), body(&back), body(&down));
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(early["dedup_key"], trigger["dedup_key"], "the database failing is the same incident");
    assert_eq!(trigger["routing_key"], "R0UT1NG");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "switchback");
    assert!(trigger["payload"]["summary"].as_str().unwrap_or_default().contains("virginia"));
    assert!(trigger["payload"]["custom_details"]["reason"].is_string());
    assert_eq!(
        IncidentAction::Resolve,
        AlertKind::Failback.incident(&back).map(|i| i.action).unwrap_or(IncidentAction::Trigger)
    );
}

#[test]
fn the_generic_body_carries_the_fields_receivers_need() {
    let over = transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup);
    let prepared = generic::prepare(&message(&over), None, Utc::now()).unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = serde_json::from_str(&prepared.body).unwrap_or_default();
    for field in ["id", "type", "route", "site", "service", "reason", "generation", "time", "active_site"] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    assert_eq!(body["type"], "failover");
    assert_eq!(body["active_site"], "virginia");
    assert_eq!(body["generation"], 2);
    assert_eq!(body["id"], "msg_sb7");
    assert!(prepared.headers.iter().any(|(name, value)| *name == "webhook-id" && value == "msg_sb7"));
}

#[test]
fn slack_text_says_what_happened() {
    let over = transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup);
    let prepared = slack::prepare(&message(&over));
    let body: serde_json::Value = serde_json::from_str(&prepared.body).unwrap_or_default();
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.contains("FAILOVER") && text.contains("virginia") && text.contains("timeout"), "{text}");
}

#[test]
fn every_transition_alerts_people() {
    use RouteState::*;
    for (from, to) in [(Primary, Failing), (FailedOver, Recovering), (Recovering, FailedOver)] {
        let event = transition(Route::Sip, from, to, Role::Backup);
        assert_eq!(AlertKind::of(&event), Some(AlertKind::StateChange), "{from:?} -> {to:?}");
        let text = message(&event).summary;
        assert!(text.contains(from.as_str()) && text.contains(to.as_str()), "{text}");
    }
}

fn scan(source: &str) -> Event {
    let at = transition(Route::Sip, RouteState::Primary, RouteState::Primary, Role::Primary).at;
    Event::note(
        at,
        EventKind::ProvisioningScan,
        source,
        "20 bad phone-file requests within 10m; blocked for 1h",
    )
}

fn slack_text(message: &AlertMessage) -> String {
    let body: serde_json::Value = serde_json::from_str(&slack::prepare(message).body).unwrap_or_default();
    body["text"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_blocked_scan_goes_to_people_and_triggers_its_own_pagerduty_incident() {
    let hooks = [
        webhook("ops", AlertFormat::Generic),
        webhook("chat", AlertFormat::Slack),
        webhook("pd", AlertFormat::Pagerduty),
    ];
    let events = [scan("127.0.0.9"), scan("2001:db8:1:2::/64")];
    let rows = plan(&EngineState::new(Utc::now()), 2, &events, &hooks);
    let got: Vec<(usize, &str)> = rows.iter().map(|r| (r.event_index, r.webhook.as_str())).collect();
    assert_eq!(got, [(0, "ops"), (0, "chat"), (0, "pd"), (1, "ops"), (1, "chat"), (1, "pd")]);

    let v4 = message(&events[0]);
    assert_eq!(v4.kind, AlertKind::ProvisioningScan);
    let generic = generic::prepare(&v4, None, Utc::now()).unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = serde_json::from_str(&generic.body).unwrap_or_default();
    assert_eq!(body["type"], "provisioning_scan");
    assert_eq!(body["actor"], "127.0.0.9");
    assert!(body["summary"].as_str().unwrap_or_default().contains("127.0.0.9"), "{body}");
    assert!(body["route"].is_null() && body["site"].is_null(), "{body}");
    let text = slack_text(&v4);
    assert!(text.contains(":warning:") && text.contains("127.0.0.9") && text.contains("blocked"), "{text}");

    let key = SecretString::from("R0UT1NG");
    for (event, dedup_key) in [
        (&events[0], "switchback/provisioning/127.0.0.9"),
        (&events[1], "switchback/provisioning/2001:db8:1:2::/64"),
    ] {
        let prepared =
            pagerduty::prepare(&message(event), &key).ok().flatten().unwrap_or_else(|| panic!("no body"));
        let body: serde_json::Value = serde_json::from_str(&prepared.body).unwrap_or_default();
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], dedup_key);
        assert_eq!(body["payload"]["severity"], "warning");
        assert_eq!(body["payload"]["class"], "provisioning_scan");
    }
}

#[test]
fn slack_text_from_outside_cannot_mention_or_link() {
    let mut operator = transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup);
    operator.kind = EventKind::Operator;
    operator.actor = "<!here> & <@U024BE7LH>".to_owned();
    operator.reason = "<!channel> see <https://evil|click>".to_owned();
    let alert = OutboxAlert {
        id: 8,
        webhook: "chat".to_owned(),
        generation: 2,
        status: AlertStatus::Pending,
        attempts: 0,
        next_attempt_at: operator.at,
        last_status: None,
        last_error: None,
        created_at: operator.at,
        finished_at: None,
        event: StoredEvent { id: 4, event: operator.clone() },
    };
    let names = switchback_core::SiteNames::new("<!everyone>", "vir<gin>ia");
    let hostile = AlertMessage::from_outbox(&alert, &names).unwrap_or_else(|| panic!("no alert"));
    let text = slack_text(&hostile);
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(text.contains("&lt;https://evil|click&gt;"), "{text}");
    assert!(text.contains("&lt;!here&gt; &amp; &lt;@U024BE7LH&gt;"), "{text}");

    let mut down = service_event(EventKind::ServiceDown, Role::Primary, ServiceKind::Softswitch);
    down.reason = "<!channel>".to_owned();
    let alert = OutboxAlert { event: StoredEvent { id: 5, event: down }, ..alert };
    let text = slack_text(&AlertMessage::from_outbox(&alert, &names).unwrap_or_else(|| panic!("no alert")));
    assert!(text.contains("&lt;!everyone&gt; softswitch is DOWN (&lt;!channel&gt;)"), "{text}");
    assert!(!text.contains('<'), "{text}");

    // A state change's own arrow is escaped too, and reads as an arrow in Slack.
    let change = transition(Route::Sip, RouteState::Primary, RouteState::Failing, Role::Primary);
    assert!(slack_text(&message(&change)).contains("primary -&gt; failing"));
}

#[test]
fn an_operator_failback_resolves_the_routes_incident_and_a_forced_failover_pages_nobody() {
    let key = SecretString::from("R0UT1NG");
    let mut home = transition(Route::Sip, RouteState::FailedOver, RouteState::Primary, Role::Primary);
    home.kind = EventKind::Operator;
    home.actor = "alice".to_owned();
    let prepared =
        pagerduty::prepare(&message(&home), &key).ok().flatten().unwrap_or_else(|| panic!("no body"));
    let body: serde_json::Value = serde_json::from_str(&prepared.body).unwrap_or_default();
    assert_eq!(body["event_action"], "resolve");
    assert_eq!(body["dedup_key"], "switchback/route/sip", "the key the failover triggered");

    let mut away = transition(Route::Sip, RouteState::Primary, RouteState::FailedOver, Role::Backup);
    away.kind = EventKind::Operator;
    assert!(pagerduty::prepare(&message(&away), &key).ok().flatten().is_none());
}
