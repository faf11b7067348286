//! `switchback run` end to end: real Kamailio and coturn at both sites, the machine's
//! PostgreSQL (primary) and MariaDB (backup) behind proxies a test can cut, phones of
//! both vendors imported through the CLI, short timers. A test breaks a primary server
//! and reads what phones are served, the way a phone would, parsing each file whole.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::time::Duration;

use switchback_tests::lab::{sample_phones, Lab, Running, Status};
use switchback_tests::phone_files::Pointing;
use switchback_tests::require;
use switchback_tests::switchback::ConfigBuilder;
use switchback_tests::wait::until;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const PEERS: &str = "kamailio, coturn, postgresql and mariadb";
/// A loaded 2-core CI machine: process scheduling, rendering, the HTTP round trips.
const MARGIN: Duration = Duration::from_secs(2);

/// Waits until every service has been checked once and found healthy, so that the test
/// starts from a settled primary.
async fn settled(running: &Running) -> Status {
    until("every service checked healthy", Duration::from_secs(15), || async {
        let status = running.status().await.ok()?;
        let services = status.0["services"].as_array()?;
        let all_up = services.len() == 6 && services.iter().all(|s| s["healthy"] == true);
        all_up.then_some(status)
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", running.process.log()))
}

/// Waits until every phone's file points at `to`, fetching each file whole over and over;
/// every file seen on the way must point at `to` or `from`. Answers how long it took until
/// the first file and until every file pointed at `to`.
async fn wait_moved(
    running: &Running,
    from: &Pointing,
    to: &Pointing,
    deadline: Duration,
) -> (Duration, Duration) {
    let start = Instant::now();
    let mut first = None;
    loop {
        let pointings = running.pointings().await.unwrap();
        for (phone, pointing) in running.phones.iter().zip(&pointings) {
            assert!(
                pointing == from || pointing == to,
                "{} points at {pointing:?}, neither {from:?} nor {to:?}",
                phone.path()
            );
        }
        if first.is_none() && pointings.iter().any(|p| p == to) {
            first = Some(start.elapsed());
        }
        if pointings.iter().all(|p| p == to) {
            return (first.unwrap_or_default(), start.elapsed());
        }
        assert!(
            start.elapsed() < deadline,
            "phones still at {from:?} after {deadline:?}: {pointings:?}\n{}",
            running.process.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sip route's transitions to `to`, newest first.
async fn transitions_to(running: &Running, route: &str, to: &str) -> Vec<serde_json::Value> {
    let events = running.events_of("transition").await.unwrap();
    events.into_iter().filter(|e| e["route"] == route && e["to"] == to).collect()
}

#[tokio::test]
async fn killing_the_primary_softswitch_points_both_vendors_at_the_backup_in_time() {
    let mut lab = require!(Lab::start().await, PEERS);
    let builder: ConfigBuilder = lab.config().failover_after(Duration::from_secs(1));
    let running = Running::start(BINARY, &builder, &sample_phones()).await.unwrap();
    let before = settled(&running).await;
    let home = lab.on_primary();
    assert!(running.pointings().await.unwrap().iter().all(|p| *p == home));

    lab.primary.stop_softswitch();
    let away = lab.pointing(&lab.backup, &lab.primary);
    let (first, all) = wait_moved(&running, &home, &away, Duration::from_secs(30)).await;

    // Up to one interval until the next round, the confirmation (which a re-check every
    // recheck_interval observes), one probe budget, and the margin.
    let bound =
        Duration::from_secs(1) + Duration::from_secs(1) + Duration::from_millis(500) + builder.budget();
    eprintln!(
        "kill -> first served file on the backup: {first:?}; every phone (3 Yealink, 3 SPA): {all:?} \
         (failover_after 1s, interval 1s, recheck 500ms, probe budget {:?}; bound {:?} + margin {MARGIN:?})",
        builder.budget(),
        bound
    );
    assert!(all <= bound + MARGIN, "took {all:?} from kill to every file on the backup");
    // The softswitch must have been failing for failover_after, from the first failed check.
    assert!(first >= Duration::from_secs(1), "failed over {first:?} after the kill, before failover_after");

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("failed_over".into(), "virginia".into(), "auto".into()));
    assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.generation(), before.generation() + 1);
    let failovers = transitions_to(&running, "sip", "failed_over").await;
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert!(failovers[0]["reason"].as_str().unwrap().contains("softswitch"), "{failovers:?}");
}

#[tokio::test]
async fn a_blip_shorter_than_failover_after_moves_nothing() {
    let lab = require!(Lab::start().await, PEERS);
    let builder = lab.config().failover_after(Duration::from_secs(3));
    let running = Running::start(BINARY, &builder, &sample_phones()).await.unwrap();
    let before = settled(&running).await;
    let bodies = running.bodies().await.unwrap();

    let cut = Instant::now();
    lab.primary.database().cut().await.unwrap();
    // The blip must be seen, or the test proves nothing.
    until("the sip route failing", Duration::from_secs(5), || async {
        assert_eq!(running.bodies().await.unwrap(), bodies, "files changed during the blip");
        (running.status().await.ok()?.route("sip", "state") == "failing").then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(cut.elapsed())).await;
    lab.primary.database().restore().await.unwrap();
    let blip = cut.elapsed();
    until("the sip route back on primary", Duration::from_secs(10), || async {
        assert_eq!(running.bodies().await.unwrap(), bodies, "files changed after the blip");
        (running.status().await.ok()?.route("sip", "state") == "primary").then_some(())
    })
    .await
    .unwrap();
    running.wait_rounds(3).await.unwrap();
    eprintln!("database blip of {blip:?} with failover_after 3s: no failover");

    let status = running.status().await.unwrap();
    assert_eq!(status.generation(), before.generation(), "a new generation after a blip");
    assert_eq!(status.summary("sip"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(running.bodies().await.unwrap(), bodies);
    assert!(transitions_to(&running, "sip", "failed_over").await.is_empty());
    assert_eq!(transitions_to(&running, "sip", "failing").await.len(), 1);
    let back = transitions_to(&running, "sip", "primary").await;
    assert!(back.iter().any(|e| e["from"] == "failing"), "no failing -> primary in {back:?}");
}

#[tokio::test]
async fn a_stun_outage_moves_only_the_stun_route() {
    let mut lab = require!(Lab::start().await, PEERS);
    let running = Running::start(BINARY, &lab.config(), &sample_phones()).await.unwrap();
    let before = settled(&running).await;

    lab.primary.stop_stun();
    let (home, away) = (lab.on_primary(), lab.pointing(&lab.primary, &lab.backup));
    let (_, took) = wait_moved(&running, &home, &away, Duration::from_secs(20)).await;
    eprintln!("STUN outage -> every file on the backup STUN server: {took:?}");

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("stun"), ("failed_over".into(), "virginia".into(), "auto".into()));
    assert_eq!(status.summary("sip"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.generation(), before.generation() + 1);
    assert!(transitions_to(&running, "sip", "failed_over").await.is_empty());
    assert!(transitions_to(&running, "sip", "failing").await.is_empty());
}

#[tokio::test]
async fn a_database_outage_moves_the_sip_route() {
    let lab = require!(Lab::start().await, PEERS);
    let running = Running::start(BINARY, &lab.config(), &sample_phones()).await.unwrap();
    let before = settled(&running).await;

    lab.primary.database().cut().await.unwrap();
    let (home, away) = (lab.on_primary(), lab.pointing(&lab.backup, &lab.primary));
    let (_, took) = wait_moved(&running, &home, &away, Duration::from_secs(20)).await;
    eprintln!("database cut -> every file on the backup softswitch: {took:?}");

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("failed_over".into(), "virginia".into(), "auto".into()));
    assert!(status.route("sip", "reason").contains("database"), "{:?}", status.route("sip", "reason"));
    assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.generation(), before.generation() + 1);
}

#[tokio::test]
async fn with_both_softswitches_down_phones_are_not_sent_to_the_dead_backup() {
    let mut lab = require!(Lab::start().await, PEERS);
    let running = Running::start(BINARY, &lab.config(), &sample_phones()).await.unwrap();
    let before = settled(&running).await;
    let bodies = running.bodies().await.unwrap();

    // The backup first: a round between the two kills must not see a healthy backup to
    // fail over to.
    lab.backup.stop_softswitch();
    until("safety_net_gone", Duration::from_secs(10), || async {
        (!running.events_of("safety_net_gone").await.ok()?.is_empty()).then_some(())
    })
    .await
    .unwrap();
    lab.primary.stop_softswitch();
    until("both_down", Duration::from_secs(10), || async {
        assert_eq!(running.bodies().await.unwrap(), bodies, "files changed with both softswitches down");
        let both_down = running.events_of("both_down").await.ok()?;
        both_down.iter().any(|e| e["route"] == "sip").then_some(())
    })
    .await
    .unwrap();
    running.wait_rounds(3).await.unwrap();

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("failing".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.generation(), before.generation());
    assert_eq!(running.bodies().await.unwrap(), bodies);
    assert!(running.pointings().await.unwrap().iter().all(|p| *p == lab.on_primary()));
    assert_eq!(running.events_of("both_down").await.unwrap().len(), 1, "both_down once per episode");
    assert!(transitions_to(&running, "sip", "failed_over").await.is_empty());
}

#[tokio::test]
async fn a_restart_mid_failover_keeps_the_backup_until_the_hold_down_has_passed() {
    let mut lab = require!(Lab::start().await, PEERS);
    let failback_after = Duration::from_secs(8);
    let builder = lab.config().failback_after(failback_after);
    let mut running = Running::start(BINARY, &builder, &sample_phones()).await.unwrap();
    settled(&running).await;

    lab.primary.stop_softswitch();
    let (home, away) = (lab.on_primary(), lab.pointing(&lab.backup, &lab.primary));
    wait_moved(&running, &home, &away, Duration::from_secs(20)).await;
    let failed_over = running.status().await.unwrap();

    running.stop().await.unwrap();
    lab.primary.start_softswitch().await.unwrap();
    let restarted = Instant::now();
    running.start_again().await.unwrap();

    // Served from the persisted state before and after the first round.
    let status = running.status().await.unwrap();
    assert_eq!(status.generation(), failed_over.generation());
    assert_eq!(status.route("sip", "active_site"), "virginia");
    assert!(running.pointings().await.unwrap().iter().all(|p| *p == away));

    let mut fetches = 0u32;
    let home_after = loop {
        let pointings = running.pointings().await.unwrap();
        fetches += 1;
        if pointings.contains(&home) {
            break restarted.elapsed();
        }
        assert!(pointings.iter().all(|p| *p == away), "{pointings:?}");
        assert!(
            restarted.elapsed() < failback_after + Duration::from_secs(20),
            "no failback {:?} after the restart:\n{}",
            restarted.elapsed(),
            running.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "restart with the primary back -> first file on the primary after {home_after:?} \
         (failback_after {failback_after:?}; {fetches} rounds of fetches on the backup before)"
    );
    // The hold-down runs from the first healthy check, which comes after the restart.
    let slack = Duration::from_millis(250);
    assert!(home_after + slack >= failback_after, "failed back {home_after:?} after the restart");
    assert!(home_after <= failback_after + Duration::from_secs(6), "failed back only after {home_after:?}");
    wait_moved(&running, &away, &home, Duration::from_secs(5)).await;

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("primary".into(), "chicago".into(), "auto".into()));
    assert_eq!(status.generation(), failed_over.generation() + 1);
    let failbacks = transitions_to(&running, "sip", "primary").await;
    assert_eq!(failbacks.len(), 1, "{failbacks:?}");
    assert_eq!(failbacks[0]["from"], "recovering", "{failbacks:?}");
}
