//! The round in-process, on SQLite and on PostgreSQL, with a paused clock: an outage is
//! confirmed, persisted, rendered and served; failback waits out the hold-down; a
//! restart resumes; and a store that refuses writes wedges nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

mod support;

use std::time::Duration;

use support::{phones, FaultyStore, Running, PRIMARY_SIP};
use switchback_core::{EventKind, Route, RouteState};
use switchback_tests::databases::StoreDb;
use switchback_tests::require;

/// One recheck plus the round's own bound: how soon after a change the next round sees
/// it while anything is unsettled.
const ONE_RECHECK: Duration = Duration::from_secs(7);
/// A whole interval plus the round's bound: how soon a settled monitor sees a change.
const ONE_INTERVAL: Duration = Duration::from_secs(22);

async fn store_on(db: &StoreDb) -> std::sync::Arc<FaultyStore> {
    let store = FaultyStore::open(&db.url());
    switchback_store::Store::import_phones(&*store, &phones(6)).await.unwrap();
    store
}

async fn outage_fails_over_serves_the_backup_and_fails_back(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.until(ONE_INTERVAL, "the first round", |r| r.engine().service(PRIMARY_SIP).healthy == Some(true))
        .await;
    assert_eq!(run.served_sip_site(), "chicago");

    run.prober.set_down(PRIMARY_SIP, true);
    let took = run
        .until(Duration::from_secs(120), "sip failed over and served", |r| {
            r.route_state(Route::Sip) == RouteState::FailedOver && r.served_sip_site() == "virginia"
        })
        .await;
    // Confirmation (30 s of failures) is kept, and nothing waits a whole interval (5 m).
    assert!(took >= Duration::from_secs(30), "failed over before confirmation: {took:?}");
    assert!(took <= ONE_INTERVAL + Duration::from_secs(30) + ONE_RECHECK, "failed over late: {took:?}");
    assert_eq!(run.route_state(Route::Stun), RouteState::Primary, "stun must not move");
    let generation = run.engine().generation;
    assert_eq!(run.orchestrator.state.generations.current().number(), generation);

    // Phones pick it up; the convergence is persisted as an event.
    run.fetch_all(generation);
    run.until(Duration::from_secs(10), "converged recorded", |r| r.orchestrator.state.fetches.pending() == 0)
        .await;
    let events = wait_for_event(&run, EventKind::Converged).await;
    assert!(events.iter().any(|e| e.event.reason.contains(&format!("generation {generation}"))));

    run.prober.set_down(PRIMARY_SIP, false);
    let took = run
        .until(Duration::from_secs(300), "sip failed back", |r| {
            r.route_state(Route::Sip) == RouteState::Primary && r.served_sip_site() == "chicago"
        })
        .await;
    assert!(took >= Duration::from_secs(120), "failed back before the hold-down: {took:?}");
    let transitions: Vec<_> = switchback_store::Store::events(&*store, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.kind == EventKind::Transition)
        .map(|e| e.event.to.unwrap())
        .collect();
    assert_eq!(
        transitions,
        [RouteState::Primary, RouteState::Recovering, RouteState::FailedOver, RouteState::Failing],
        "the persisted history, newest first"
    );
    run.stop().await;
}

async fn wait_for_event(run: &Running, kind: EventKind) -> Vec<switchback_store::StoredEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<_> = switchback_store::Store::events(&*run.store, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event.kind == kind)
            .collect();
        if !events.is_empty() {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {kind:?} event within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes fail for two minutes while the primary softswitch dies: nothing can be
/// decided, but what the probes see is published and the store is reported down.
/// When writes work again, the outage fails over within one recheck.
async fn a_store_refusing_writes_delays_the_failover_by_no_more_than_one_recheck(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.until(ONE_INTERVAL, "the first round", |r| r.engine().service(PRIMARY_SIP).healthy == Some(true))
        .await;

    store.refuse_writes(true);
    run.prober.set_down(PRIMARY_SIP, true);
    run.until(ONE_INTERVAL, "the live view shows the softswitch down", |r| {
        r.engine().service(PRIMARY_SIP).healthy == Some(false)
    })
    .await;
    run.until(ONE_RECHECK, "the store reported down", |r| {
        r.orchestrator.state.store_health.fault().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(run.route_state(Route::Sip), RouteState::Primary, "nothing decided while writes fail");
    assert_eq!(run.served_sip_site(), "chicago");
    assert!(store.saves_refused.load(std::sync::atomic::Ordering::SeqCst) >= 5, "rounds kept trying");

    store.refuse_writes(false);
    let took = run
        .until(Duration::from_secs(60), "failed over once the store took writes", |r| {
            r.route_state(Route::Sip) == RouteState::FailedOver && r.served_sip_site() == "virginia"
        })
        .await;
    // The outage is older than failover_after already: the first round that can persist decides.
    assert!(took <= ONE_RECHECK, "took {took:?} after the fault ended");
    let down = wait_for_event(&run, EventKind::ServiceDown).await;
    assert_eq!(down.len(), 1, "the outage is recorded once, from the rounds the store refused: {down:?}");
    run.until(ONE_RECHECK, "the store reported up", |r| r.orchestrator.state.store_health.fault().is_none())
        .await;
    run.stop().await;
}

/// One failed commit: the round is retried on fresh checks at the recheck interval.
async fn a_commit_that_fails_once_is_decided_again_by_the_next_round(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.until(ONE_INTERVAL, "the first round", |r| r.engine().service(PRIMARY_SIP).healthy == Some(true))
        .await;
    store.refuse_next_save();
    run.prober.set_down(PRIMARY_SIP, true);
    run.until(Duration::from_secs(30), "the failing state persisted", |r| {
        r.route_state(Route::Sip) == RouteState::Failing
    })
    .await;
    assert_eq!(store.saves_refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    run.until(Duration::from_secs(60), "failed over", |r| {
        r.route_state(Route::Sip) == RouteState::FailedOver
    })
    .await;
    run.stop().await;
}

/// The save that records the outage commits, but its reply is lost: the next round
/// reads the stored state back and goes on from it, so nothing is recorded (or
/// alerted) twice.
async fn a_save_whose_reply_is_lost_is_not_made_twice(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.until(ONE_INTERVAL, "the first round", |r| r.engine().service(PRIMARY_SIP).healthy == Some(true))
        .await;
    store.lose_next_reply();
    run.prober.set_down(PRIMARY_SIP, true);
    run.until(Duration::from_secs(120), "failed over", |r| {
        r.route_state(Route::Sip) == RouteState::FailedOver
    })
    .await;
    let events = switchback_store::Store::events(&*store, None, 100).await.unwrap();
    let count = |kind: EventKind, to: Option<RouteState>| {
        events.iter().filter(|e| e.event.kind == kind && (to.is_none() || e.event.to == to)).count()
    };
    assert_eq!(count(EventKind::ServiceDown, None), 1, "{events:#?}");
    assert_eq!(count(EventKind::Transition, Some(RouteState::Failing)), 1, "{events:#?}");
    assert_eq!(count(EventKind::Transition, Some(RouteState::FailedOver)), 1, "{events:#?}");
    run.stop().await;
}

/// The save that fails over overruns its time and commits later, after the decider gave
/// up waiting: it is awaited before the next step and taken into effect, never made
/// twice nor overwritten.
async fn a_save_that_overruns_its_time_is_awaited_not_made_twice(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.prober.set_down(PRIMARY_SIP, true);
    run.until(ONE_INTERVAL, "failing", |r| r.route_state(Route::Sip) == RouteState::Failing).await;
    store.stall_next_save();
    run.until(Duration::from_secs(60), "the decider to give up waiting", |r| {
        r.orchestrator.state.store_health.fault().is_some_and(|f| f.contains("did not confirm"))
    })
    .await;
    // While its outcome is unknown nothing else is decided, however long it takes: a
    // later step must never be overwritten by it landing late.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(run.route_state(Route::Sip), RouteState::Failing, "decided on top of a save in flight");
    assert_eq!(run.engine().service(PRIMARY_SIP).healthy, Some(false), "the live view still moves");
    store.finish_stalled_save();
    // The round that was waiting on it gives up first; the next one finds it done.
    run.until(2 * ONE_RECHECK, "failed over", |r| r.route_state(Route::Sip) == RouteState::FailedOver).await;
    // Rounds on top of it go on from the failed-over state.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let events = switchback_store::Store::events(&*store, None, 100).await.unwrap();
    let to = |state| {
        events.iter().filter(|e| e.event.kind == EventKind::Transition && e.event.to == Some(state)).count()
    };
    assert_eq!((to(RouteState::Failing), to(RouteState::FailedOver)), (1, 1), "{events:#?}");
    let stored = switchback_store::Store::load_state(&*store).await.unwrap().unwrap();
    assert_eq!(stored.route(Route::Sip).state, RouteState::FailedOver, "the stored state agrees");
    run.stop().await;
}

/// Stopped mid-failover and started again: the backup stays, in the same generation,
/// and failback still waits the whole hold-down.
async fn a_restart_resumes_the_failover(db: StoreDb) {
    let store = store_on(&db).await;
    let run = Running::start(store.clone()).await;
    run.prober.set_down(PRIMARY_SIP, true);
    run.until(Duration::from_secs(120), "failed over", |r| {
        r.route_state(Route::Sip) == RouteState::FailedOver
    })
    .await;
    let generation = run.engine().generation;
    run.stop().await;

    let again = Running::start(store).await;
    assert_eq!(again.route_state(Route::Sip), RouteState::FailedOver, "resumed before the first round");
    assert_eq!(again.orchestrator.state.generations.current().number(), generation);
    assert_eq!(again.served_sip_site(), "virginia");
    // Healthy from the start of this run: failback still waits the hold-down.
    let took = again
        .until(Duration::from_secs(300), "failed back", |r| r.route_state(Route::Sip) == RouteState::Primary)
        .await;
    assert!(took >= Duration::from_secs(120), "failed back after {took:?}");
    again.stop().await;
}

macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(start_paused = true)]
                async fn $scenario() {
                    super::$scenario(StoreDb::sqlite().unwrap()).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(start_paused = true)]
                async fn $scenario() {
                    let db = require!(support::on_real_time(StoreDb::postgres), "PostgreSQL");
                    super::$scenario(db).await;
                }
            )*
        }
    };
}

on_both_stores!(
    outage_fails_over_serves_the_backup_and_fails_back,
    a_store_refusing_writes_delays_the_failover_by_no_more_than_one_recheck,
    a_commit_that_fails_once_is_decided_again_by_the_next_round,
    a_restart_resumes_the_failover,
    a_save_whose_reply_is_lost_is_not_made_twice,
    a_save_that_overruns_its_time_is_awaited_not_made_twice,
);
