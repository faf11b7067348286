//! Table-driven scenarios for the route rules. Each row is one moment: a round of
//! checks (the listed services fail, the rest pass), an operator action or a restart,
//! followed by the state both routes must be in. Time is whatever the row says.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::model::{ServiceKind, ServiceKind::*};

const PSW: ServiceId = ServiceId { role: Role::Primary, kind: Softswitch };
const PDB: ServiceId = ServiceId { role: Role::Primary, kind: Database };
const PST: ServiceId = ServiceId { role: Role::Primary, kind: Stun };
const BSW: ServiceId = ServiceId { role: Role::Backup, kind: Softswitch };
const BDB: ServiceId = ServiceId { role: Role::Backup, kind: Database };
const BST: ServiceId = ServiceId { role: Role::Backup, kind: Stun };
const ALL: &[ServiceId] = &[PSW, PDB, PST, BSW, BDB, BST];

use RouteState::{FailedOver as F, Failing as G, Primary as P, Recovering as R};

#[derive(Clone, Copy)]
enum Input {
    /// A round of checks of all six services; the listed ones fail with `timeout`.
    Down(&'static [ServiceId]),
    Op(Route, Action),
    /// Persist, drop and reload the state, as a restart of switchback does.
    Restart,
}
use Input::*;

struct Row {
    t: i64,
    input: Input,
    sip: RouteState,
    stun: RouteState,
}

const fn row(t: i64, input: Input, sip: RouteState, stun: RouteState) -> Row {
    Row { t, input, sip, stun }
}

const UP: Input = Down(&[]);

fn rules(failover_after: u64, failback_after: u64) -> Rules {
    Rules {
        failover_after: Duration::from_secs(failover_after),
        failback_after: Duration::from_secs(failback_after),
        auto_failback: true,
    }
}

fn at(t: i64) -> DateTime<Utc> {
    // 2026-11-22T03:00:00Z plus t seconds.
    Utc.timestamp_opt(1_795_316_400 + t, 0).single().unwrap_or_default()
}

fn round(down: &[ServiceId], now: DateTime<Utc>) -> Vec<CheckResult> {
    ALL.iter()
        .map(|&s| {
            if down.contains(&s) {
                CheckResult::failed(s, "timeout", now)
            } else {
                CheckResult::healthy(s, Duration::from_millis(3), now)
            }
        })
        .collect()
}

/// Plays a table; returns the final state and every event, for further assertions.
fn play(name: &str, rules: Rules, rows: &[Row]) -> (EngineState, Vec<Event>) {
    let mut state = EngineState::new(at(0));
    let mut events = Vec::new();
    for row in rows {
        let now = at(row.t);
        let step = match row.input {
            Down(down) => state.step(&round(down, now), &rules, now),
            Op(route, action) => state
                .operate(route, action, "alice", "drill", now)
                .unwrap_or_else(|e| panic!("{name} t={}: {e}", row.t)),
            Restart => {
                let saved = serde_json::to_string(&state).unwrap_or_else(|e| panic!("{name}: save: {e}"));
                let reloaded: EngineState =
                    serde_json::from_str(&saved).unwrap_or_else(|e| panic!("{name}: reload: {e}"));
                assert_eq!(reloaded, state, "{name} t={}: a restart must not change the state", row.t);
                Step { next: reloaded, events: vec![] }
            }
        };
        state = step.next;
        events.extend(step.events);
        for (route, want) in [(Route::Sip, row.sip), (Route::Stun, row.stun)] {
            let got = state.route(route);
            assert_eq!(got.state, want, "{name} t={}: {route} state (reason: {})", row.t, got.reason);
            let want_active = if matches!(want, F | R) { Role::Backup } else { Role::Primary };
            assert_eq!(got.active, want_active, "{name} t={}: {route} active site", row.t);
        }
    }
    (state, events)
}

fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

#[test]
fn a_single_failed_check_confirms_nothing() {
    let (_, events) = play(
        "single failed check",
        rules(30, 60),
        &[row(0, UP, P, P), row(60, Down(&[PSW]), G, P), row(75, UP, P, P), row(135, UP, P, P)],
    );
    assert_eq!(count(&events, EventKind::ServiceDown), 1);
    assert_eq!(count(&events, EventKind::ServiceUp), 1);
}

#[test]
fn a_blip_shorter_than_failover_after_does_not_fail_over() {
    play(
        "blip",
        rules(30, 60),
        &[
            row(0, UP, P, P),
            row(60, Down(&[PSW]), G, P),
            row(75, Down(&[PSW]), G, P),
            row(89, UP, P, P),
            row(149, UP, P, P),
        ],
    );
}

#[test]
fn a_real_outage_fails_over_once_confirmed() {
    let (state, events) = play(
        "real outage",
        rules(30, 60),
        &[
            row(0, UP, P, P),
            row(60, Down(&[PSW]), G, P),
            row(75, Down(&[PSW]), G, P),
            row(90, Down(&[PSW]), F, P),
            row(105, Down(&[PSW]), F, P),
        ],
    );
    let failover: Vec<_> = events.iter().filter(|e| e.to == Some(F)).collect();
    assert_eq!(failover.len(), 1, "one failover event");
    assert_eq!(failover[0].route, Some(Route::Sip));
    assert_eq!(failover[0].active, Some(Role::Backup));
    assert!(failover[0].reason.contains("softswitch timeout"), "reason: {}", failover[0].reason);
    assert_eq!(state.route(Route::Sip).since, at(90));
}

#[test]
fn failover_after_zero_fails_over_on_the_first_failed_check() {
    play("zero", rules(0, 60), &[row(0, UP, P, P), row(60, Down(&[PSW]), F, P)]);
}

#[test]
fn the_database_drags_the_sip_route_and_stun_moves_alone() {
    play(
        "database",
        rules(0, 60),
        &[row(0, UP, P, P), row(60, Down(&[PDB]), F, P), row(75, Down(&[PDB, PST]), F, F)],
    );
    play("stun", rules(0, 60), &[row(0, UP, P, P), row(60, Down(&[PST]), P, F)]);
}

#[test]
fn failback_waits_for_the_hold_down() {
    play(
        "hold-down",
        rules(0, 60),
        &[
            row(0, Down(&[PSW]), F, P),
            row(15, UP, R, P),
            row(30, UP, R, P),
            row(60, UP, R, P),
            row(74, UP, R, P),
            row(75, UP, P, P),
        ],
    );
}

#[test]
fn a_failure_during_the_hold_down_restarts_it() {
    play(
        "hold-down restart",
        rules(0, 60),
        &[
            row(0, Down(&[PSW]), F, P),
            row(15, UP, R, P),
            row(70, Down(&[PDB]), F, P),
            row(85, UP, R, P),
            row(140, UP, R, P),
            row(145, UP, P, P),
        ],
    );
}

#[test]
fn a_flapping_primary_is_never_failed_back_to() {
    let mut rows = vec![row(0, Down(&[PSW]), F, P)];
    // A day of a primary that answers every other check, at a 15 s recheck.
    for i in 1..5760 {
        let (input, sip) = if i % 2 == 1 { (UP, R) } else { (Down(&[PSW]), F) };
        rows.push(row(i * 15, input, sip, P));
    }
    let (_, events) = play("flapping", rules(0, 60), &rows);
    assert!(events.iter().all(|e| e.to != Some(P)), "never back on the primary");
}

#[test]
fn a_dead_backup_is_never_failed_over_to() {
    let (_, events) = play(
        "dead backup",
        rules(0, 60),
        &[
            row(0, UP, P, P),
            row(60, Down(&[PSW, BSW]), G, P),
            row(75, Down(&[PSW, BDB]), G, P),
            row(90, Down(&[PSW, BSW]), G, P),
            row(105, Down(&[PSW]), F, P),
        ],
    );
    assert_eq!(count(&events, EventKind::BothDown), 1, "both down is said once per episode");
}

#[test]
fn a_backup_that_dies_during_the_hold_down_brings_phones_home_early() {
    play(
        "backup dies",
        rules(0, 600),
        &[row(0, Down(&[PSW]), F, P), row(15, UP, R, P), row(30, Down(&[BSW]), P, P)],
    );
}

#[test]
fn a_backup_down_under_a_healthy_primary_is_a_lost_safety_net() {
    let (_, events) = play("safety net", rules(0, 60), &[row(0, UP, P, P), row(60, Down(&[BST]), P, P)]);
    let lost: Vec<_> = events.iter().filter(|e| e.kind == EventKind::SafetyNetGone).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].service, Some(BST));
}

#[test]
fn a_blind_monitor_moves_nothing_and_says_so_once() {
    let (state, events) = play(
        "blind",
        rules(0, 60),
        &[
            row(0, UP, P, P),
            row(60, Down(ALL), P, P),
            row(75, Down(ALL), P, P),
            row(90, Down(ALL), P, P),
            row(105, UP, P, P),
        ],
    );
    assert_eq!(count(&events, EventKind::MonitorBlind), 1);
    assert_eq!(count(&events, EventKind::MonitorSighted), 1);
    assert_eq!(count(&events, EventKind::ServiceDown), 0, "no flood of per-service alerts");
    assert!(!state.blind);
}

#[test]
fn sight_restored_onto_a_real_outage_announces_it_and_fails_over() {
    let (_, events) = play(
        "blind then outage",
        rules(0, 60),
        &[row(0, UP, P, P), row(60, Down(ALL), P, P), row(75, Down(&[PSW]), F, P)],
    );
    let downs: Vec<_> = events.iter().filter(|e| e.kind == EventKind::ServiceDown).collect();
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0].service, Some(PSW));
    assert_eq!(count(&events, EventKind::ServiceUp), 0);
}

#[test]
fn a_forced_failover_holds_until_resume() {
    play(
        "forced",
        rules(0, 60),
        &[
            row(0, UP, P, P),
            row(10, Op(Route::Sip, Action::Failover), F, P),
            row(30, UP, F, P),
            row(200, UP, F, P),
            row(210, Op(Route::Sip, Action::Resume), F, P),
            row(225, UP, P, P),
        ],
    );
}

#[test]
fn a_forced_failback_holds_even_while_the_primary_is_down() {
    play(
        "forced failback",
        rules(0, 60),
        &[
            row(0, Down(&[PST]), P, F),
            row(10, Op(Route::Stun, Action::Failback), P, P),
            row(25, Down(&[PST]), P, P),
            row(40, Op(Route::Stun, Action::Resume), P, P),
            row(55, Down(&[PST]), P, F),
        ],
    );
}

#[test]
fn a_paused_route_holds_where_it_is() {
    play(
        "paused",
        rules(0, 60),
        &[
            row(0, UP, P, P),
            row(10, Op(Route::Sip, Action::Pause), P, P),
            row(20, Down(&[PSW]), P, P),
            row(35, Down(&[PSW]), P, P),
            row(40, Op(Route::Sip, Action::Resume), P, P),
            row(50, Down(&[PSW]), F, P),
        ],
    );
}

#[test]
fn operator_mistakes_are_refused() {
    let state = EngineState::new(at(0));
    assert_eq!(
        state.operate(Route::Sip, Action::Resume, "bob", "", at(1)),
        Err(OperatorError::NotHeld(Route::Sip))
    );
    let paused = state.operate(Route::Sip, Action::Pause, "bob", "", at(1)).map(|s| s.next);
    let again = paused.as_ref().map(|p| p.operate(Route::Sip, Action::Pause, "bob", "", at(2)));
    assert_eq!(again, Ok(Err(OperatorError::AlreadyPaused(Route::Sip))));
}

#[test]
fn operator_actions_are_events_with_who_and_why() {
    let state = EngineState::new(at(0));
    let step = state.operate(Route::Sip, Action::Failover, "alice", "chicago power work", at(5));
    let events = step.map(|s| s.events).unwrap_or_default();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Operator);
    assert_eq!(events[0].actor, "alice");
    assert!(events[0].reason.contains("chicago power work"));
    assert_eq!((events[0].from, events[0].to), (Some(P), Some(F)));
}

#[test]
fn without_auto_failback_the_route_waits_for_an_operator() {
    let manual = Rules { auto_failback: false, ..rules(0, 60) };
    let (_, events) = play(
        "manual failback",
        manual,
        &[
            row(0, Down(&[PSW]), F, P),
            row(15, UP, R, P),
            row(75, UP, R, P),
            row(90, UP, R, P),
            row(100, Op(Route::Sip, Action::Failback), P, P),
        ],
    );
    assert_eq!(count(&events, EventKind::FailbackReady), 1);
}

/// The same table with and without a restart in the middle ends in the same state.
fn resumes_like_it_never_stopped(name: &str, rows: &[Row], restart_after: usize) {
    let (uninterrupted, _) = play(name, rules(30, 60), rows);
    let mut with_restart: Vec<Row> = rows.iter().map(|r| row(r.t, r.input, r.sip, r.stun)).collect();
    let at_row = &rows[restart_after];
    with_restart.insert(restart_after + 1, row(at_row.t, Restart, at_row.sip, at_row.stun));
    let (resumed, _) = play(name, rules(30, 60), &with_restart);
    assert_eq!(resumed, uninterrupted, "{name}");
}

#[test]
fn a_restart_mid_confirmation_keeps_the_failing_timer() {
    let rows = [
        row(0, UP, P, P),
        row(60, Down(&[PSW]), G, P),
        row(75, Down(&[PSW]), G, P),
        row(90, Down(&[PSW]), F, P),
    ];
    resumes_like_it_never_stopped("restart mid-confirmation", &rows, 2);
}

#[test]
fn a_restart_mid_failover_and_mid_hold_down_keeps_the_backup_until_the_hold_down_passes() {
    let rows = [
        row(0, Down(&[PSW]), G, P),
        row(30, Down(&[PSW]), F, P),
        row(45, UP, R, P),
        row(60, UP, R, P),
        row(90, UP, R, P),
        row(105, UP, P, P),
    ];
    resumes_like_it_never_stopped("restart mid-failover", &rows, 1);
    resumes_like_it_never_stopped("restart mid-hold-down", &rows, 3);
}

#[test]
fn unsettled_while_anything_is_off() {
    let fresh = EngineState::new(at(0));
    assert!(fresh.unsettled(), "nothing checked yet");
    let healthy = fresh.step(&round(&[], at(1)), &rules(0, 60), at(1)).next;
    assert!(!healthy.unsettled());
    let backup_down = healthy.step(&round(&[BDB], at(2)), &rules(0, 60), at(2)).next;
    assert!(backup_down.unsettled());
}

#[test]
fn moves_phones_only_when_an_active_site_changes() {
    let healthy = EngineState::new(at(0)).step(&round(&[], at(0)), &rules(30, 60), at(0)).next;
    let failing = healthy.step(&round(&[PSW], at(1)), &rules(30, 60), at(1));
    assert!(!failing.moves_phones(&healthy));
    assert_eq!(failing.next.generation, 1);
    let over = failing.next.step(&round(&[PSW], at(40)), &rules(30, 60), at(40));
    assert!(over.moves_phones(&failing.next));
    assert_eq!(over.next.generation, 2, "a new active site is a new generation");
    let forced = over.next.operate(Route::Stun, Action::Failover, "alice", "", at(41));
    assert_eq!(forced.map(|s| s.next.generation), Ok(3));
}

#[test]
fn every_kind_spelling_round_trips() {
    for kind in [ServiceKind::Softswitch, ServiceKind::Database, ServiceKind::Stun] {
        assert_eq!(kind.as_str().parse::<ServiceKind>(), Ok(kind));
    }
    for state in [P, G, F, R] {
        assert_eq!(state.as_str().parse::<RouteState>(), Ok(state));
    }
    assert!("sideways".parse::<Action>().is_err());
}

/// The rounds a store refused are folded into one step: a service that flapped within
/// them is news only if it ends the step other than it began.
#[test]
fn a_flap_inside_one_step_is_news_once_or_not_at_all() {
    let rules = rules(0, 60);
    let state = EngineState::new(at(0)).step(&round(&[], at(0)), &rules, at(0)).next;
    let folded = |downs: &[&[ServiceId]]| {
        downs.iter().enumerate().flat_map(|(i, d)| round(d, at(10 * i as i64 + 10))).collect::<Vec<_>>()
    };

    let down_up_down = state.step(&folded(&[&[PSW], &[], &[PSW]]), &rules, at(40));
    assert_eq!(count(&down_up_down.events, EventKind::ServiceDown), 1);
    assert_eq!(count(&down_up_down.events, EventKind::ServiceUp), 0);
    assert_eq!(down_up_down.next.route(Route::Sip).state, F);

    let down_up = state.step(&folded(&[&[PSW], &[]]), &rules, at(30));
    assert_eq!(
        count(&down_up.events, EventKind::ServiceDown) + count(&down_up.events, EventKind::ServiceUp),
        0
    );
}
