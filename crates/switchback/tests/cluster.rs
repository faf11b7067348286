//! A group of `switchback run` instances (`[cluster]`) end to end: three instances at
//! three vantages (`chicago`, `virginia`, `witness`, quorum 2, a 3 s lease) over one
//! fresh PostgreSQL store, real Kamailio and coturn at both sites, and for each instance
//! its own proxy in front of the primary site's PostgreSQL, which a test cuts to make
//! one vantage (or two) see the primary database down. A generic webhook per instance
//! (same name, a path per node) tells which instance sent each alert.
//!
//! Contract: one leader (a lease row, the term grows with each new leader) decides and
//! alerts, every leader write fenced by term; a service is down when a quorum of fresh,
//! sighted vantages sees it down; followers serve the leader's state, byte for byte and
//! with the same ETags; a leader killed or paused past its lease is replaced within about
//! the lease, and one that wakes up writes and sends nothing and steps down; with the
//! store cut, phone files are still served everywhere and nothing is decided or lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use switchback_tests::cluster::{leader_of, seen_from, term_of, Group, GroupOptions, ADMIN_TOKEN, MEMBERS};
use switchback_tests::phone_files::Pointing;
use switchback_tests::receiver::{describe, Received};
use switchback_tests::require;
use switchback_tests::switchback::{one_shot, ConfigBuilder, SiteAddrs};
use switchback_tests::wait::until;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const PEERS: &str = "kamailio, coturn, postgresql and mariadb";
/// A loaded 2-core CI machine: process scheduling, rendering, the HTTP round trips.
const MARGIN: Duration = Duration::from_secs(3);
/// From starting three instances to a settled group: every vantage's first rounds.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// From an outage a quorum sees to every instance serving the backup: a round, a
/// re-check, the leader's count, the followers' poll (1 s).
const DECIDED_WITHIN: Duration = Duration::from_secs(20);

async fn start(options: GroupOptions) -> anyhow::Result<Group> {
    let group = Group::start(BINARY, options).await?;
    Ok(group)
}

/// Waits until every live instance serves every phone a file pointing at `to` (each
/// fetched and parsed whole), and the files are the same bytes and ETags everywhere.
/// Answers how long it took.
async fn wait_all_pointing(group: &Group, to: &Pointing, deadline: Duration) -> Duration {
    let start = Instant::now();
    until(&format!("every instance to point every phone at {to:?}"), deadline, || async {
        for (_, member) in group.live() {
            let pointings = member.running.pointings().await.ok()?;
            if !pointings.iter().all(|p| p == to) {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    let took = start.elapsed();
    group.same_files().await.unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    took
}

/// Waits until `member`'s own vantage has recorded `rounds` more checks of the primary
/// softswitch, as its own `/api/status` shows them: it is probing and writing again.
async fn wait_own_rounds(group: &Group, i: usize, rounds: usize) {
    let member = &group.members[i];
    let checked = |status: &switchback_tests::lab::Status| {
        seen_from(status, "primary", "softswitch", member.vantage).map(|v| v["checked_at"].clone())
    };
    for round in 1..=rounds {
        let last = checked(&member.running.status().await.unwrap());
        until(&format!("{}'s check round {round}", member.node), Duration::from_secs(15), || async {
            (checked(&member.running.status().await.ok()?) != last).then_some(())
        })
        .await
        .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    }
}

/// The requests whose JSON body has `type` = `kind` (generic webhooks).
fn of_type(all: &[Received], kind: &str) -> Vec<Received> {
    all.iter().filter(|r| r.json().is_ok_and(|body| body["type"] == kind)).cloned().collect()
}

/// The distinct alert ids (`webhook-id`) among `requests`.
fn ids(requests: &[Received]) -> BTreeSet<String> {
    requests.iter().map(|r| r.webhook_id().map(str::to_owned).unwrap_or_else(|| r.text())).collect()
}

/// Which instance sent a request: the node in `/hooks/ops/{node}`.
fn sender(request: &Received) -> &str {
    request.path.rsplit('/').next().unwrap_or_default()
}

/// The events that are not `converged` (which the leader rightly adds when the test's
/// own fetches of phone files look like phones converging), oldest first, by id.
fn decisions(events: &[Value]) -> Vec<i64> {
    let mut ids: Vec<i64> =
        events.iter().filter(|e| e["kind"] != "converged").filter_map(|e| e["id"].as_i64()).collect();
    ids.sort_unstable();
    ids
}

/// Waits until every live instance names a leader other than `old`; on a timeout, fails
/// with the logs and what the store's sessions are doing.
async fn another_leader(group: &Group, old: &str, deadline: Duration) -> String {
    let found = until(&format!("an instance other than {old} to lead"), deadline, || async {
        let leader = group.agreed_leader().await?;
        (leader != old).then_some(leader)
    })
    .await;
    match found {
        Ok(leader) => leader,
        Err(err) => panic!(
            "{err:#}\n{}\n==== the store's sessions (pid | state | in transaction for | waits | \
             locks on cluster_lease | query) ====\n{}",
            group.logs(),
            group.store_activity().await
        ),
    }
}

/// Where phones point with the sip route on the backup.
fn away(group: &Group) -> Pointing {
    group.lab.pointing(&group.lab.backup, &group.lab.primary)
}

#[tokio::test]
async fn exactly_one_leader_and_every_instance_agrees_on_it() {
    let began = Instant::now();
    let group = require!(start(GroupOptions::default()).await, PEERS);
    let leader = group.settled(SETTLE_WITHIN).await.unwrap();
    let leader_node = group.members[leader].node;
    let statuses = group.statuses().await.unwrap();
    assert_eq!(statuses.len(), 3);
    let term = term_of(&statuses[0].1);
    assert!(term >= 1, "term {term}: {}", statuses[0].1 .0["cluster"]);
    for (i, status) in &statuses {
        let member = &group.members[*i];
        let cluster = &status.0["cluster"];
        assert_eq!(cluster["node"], member.node, "{cluster:#}");
        assert_eq!(cluster["vantage"], member.vantage, "{cluster:#}");
        assert_eq!(cluster["quorum"], 2, "{cluster:#}");
        assert_eq!(leader_of(status).as_deref(), Some(leader_node), "{}: {cluster:#}", member.node);
        assert_eq!(term_of(status), term, "{}: {cluster:#}", member.node);
        let nodes = cluster["nodes"].as_array().unwrap_or_else(|| panic!("no cluster.nodes: {cluster:#}"));
        let listed: BTreeSet<(&str, &str)> =
            nodes.iter().map(|n| (n["node"].as_str().unwrap(), n["vantage"].as_str().unwrap())).collect();
        assert_eq!(listed, MEMBERS.into_iter().collect(), "{}: {cluster:#}", member.node);
        let leaders: Vec<&str> =
            nodes.iter().filter(|n| n["leader"] == true).map(|n| n["node"].as_str().unwrap()).collect();
        assert_eq!(leaders, [leader_node], "{}: {cluster:#}", member.node);
        for n in nodes {
            assert!(n["started_at"].is_string() && n["last_seen"].is_string(), "{n:#}");
        }
        // Every service as every vantage sees it.
        for service in status.0["services"].as_array().unwrap() {
            let seen = service["vantages"].as_array().unwrap_or_else(|| panic!("no vantages: {service:#}"));
            let vantages: BTreeSet<&str> = seen.iter().map(|v| v["vantage"].as_str().unwrap()).collect();
            assert_eq!(vantages, MEMBERS.iter().map(|m| m.1).collect(), "{service:#}");
            assert!(seen.iter().all(|v| v["healthy"] == true), "{service:#}");
        }
    }

    // One election, by the leader, for its term; only the leader's log says it leads.
    let elected = group.events_of("leader_elected").await.unwrap();
    assert_eq!(elected.len(), 1, "{elected:#?}");
    assert_eq!(elected[0]["actor"], leader_node, "{elected:#?}");
    assert_eq!(elected[0]["reason"], format!("term {term}"), "{elected:#?}");
    let leading: Vec<&str> = group
        .members
        .iter()
        .filter(|m| m.running.process.log().contains("leading the group"))
        .map(|m| m.node)
        .collect();
    assert_eq!(leading, [leader_node], "{}", group.logs());

    group.same_files().await.unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    eprintln!("leader {leader_node} (term {term}); test took {:?}", began.elapsed());
}

#[tokio::test]
async fn one_vantage_seeing_the_database_down_moves_nothing_and_a_quorum_fails_over_once() {
    let began = Instant::now();
    let group = require!(start(GroupOptions::default()).await, PEERS);
    group.settled(SETTLE_WITHIN).await.unwrap();
    let before = group.members[0].running.status().await.unwrap();
    let bodies = group.same_files().await.unwrap();

    // One vantage: chicago sees the primary database refused, the others see it up.
    group.members[0].primary_db.cut().await.unwrap();
    until(
        "every instance to show chicago seeing the primary database down",
        Duration::from_secs(15),
        || async {
            for (_, status) in group.statuses().await.ok()? {
                let down = seen_from(&status, "primary", "database", "chicago")?["healthy"] == false;
                let others_up = ["virginia", "witness"].iter().all(|v| {
                    seen_from(&status, "primary", "database", v).is_some_and(|s| s["healthy"] == true)
                });
                if !(down && others_up) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    // Several rounds of chicago's own checks: nothing moves anywhere.
    for _ in 0..4 {
        wait_own_rounds(&group, 0, 1).await;
        for (i, status) in group.statuses().await.unwrap() {
            let node = group.members[i].node;
            assert_eq!(status.route("sip", "state"), "primary", "{node}: {}\n{}", status.0, group.logs());
            assert_eq!(status.generation(), before.generation(), "{node}");
            assert_eq!(
                status.service("primary", "database").unwrap()["healthy"],
                true,
                "{node}: {}",
                status.0
            );
        }
        assert_eq!(
            group.same_files().await.unwrap(),
            bodies,
            "files changed with one vantage seeing a fault"
        );
    }
    let moved = group.events_of("transition").await.unwrap();
    assert!(moved.is_empty(), "one vantage moved a route: {moved:#?}");
    let seen = seen_from(&group.members[1].running.status().await.unwrap(), "primary", "database", "chicago")
        .cloned()
        .unwrap();
    eprintln!("one vantage down, as virginia's instance shows it: {seen}");
    assert_eq!(seen["node"], "chi-1", "{seen:#}");
    assert!(seen["reason"].as_str().is_some_and(|r| !r.is_empty()), "{seen:#}");

    // A second vantage: a quorum. The sip route fails over, once, everywhere.
    let cut = Instant::now();
    group.members[1].primary_db.cut().await.unwrap();
    let took = wait_all_pointing(&group, &away(&group), DECIDED_WITHIN).await;
    eprintln!(
        "second vantage cut -> every instance serves the backup: {took:?} (since cut {:?})",
        cut.elapsed()
    );
    assert!(took <= DECIDED_WITHIN, "{took:?}");

    let failovers = group.transitions_to("sip", "failed_over").await.unwrap();
    assert_eq!(failovers.len(), 1, "{failovers:#?}");
    assert_eq!(
        group.events_of("transition").await.unwrap().iter().filter(|e| e["route"] == "stun").count(),
        0
    );
    for (i, status) in group.statuses().await.unwrap() {
        let node = group.members[i].node;
        assert_eq!(status.summary("sip"), ("failed_over".into(), "virginia".into(), "auto".into()), "{node}");
        assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "auto".into()), "{node}");
        assert_eq!(status.generation(), before.generation() + 1, "{node}");
        // The leader's merged check names the vantages that saw it.
        let reason =
            status.service("primary", "database").unwrap()["reason"].as_str().unwrap_or_default().to_owned();
        assert!(reason.contains("(from chicago, virginia)"), "{node}: merged reason `{reason}`");
    }
    eprintln!("failover event: {}", failovers[0]);
    let after = group.same_files().await.unwrap();
    assert_ne!(after, bodies);
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_its_lease_and_its_successor_fails_back_once() {
    let began = Instant::now();
    let options = GroupOptions::default();
    let lease = options.lease;
    let mut group = require!(start(options).await, PEERS);
    group.settled(SETTLE_WITHIN).await.unwrap();
    let home = group.lab.on_primary();

    group.members[0].primary_db.cut().await.unwrap();
    group.members[1].primary_db.cut().await.unwrap();
    wait_all_pointing(&group, &away(&group), DECIDED_WITHIN).await;
    group
        .receiver
        .wait_until("an acknowledged failover alert", DECIDED_WITHIN, |all| {
            !of_type(all, "failover").is_empty()
        })
        .await
        .unwrap();

    let old = group.wait_leader(Duration::from_secs(5)).await.unwrap();
    let old_node = group.members[old].node;
    let old_term = term_of(&group.members[old].running.status().await.unwrap());
    let killed = Instant::now();
    group.crash(old).await.unwrap();
    let new_node = until("another instance to lead", lease * 4 + MARGIN * 2, || async {
        let leader = group.agreed_leader().await?;
        (leader != old_node).then_some(leader)
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    let replaced = killed.elapsed();
    eprintln!("kill -9 of leader {old_node} (term {old_term}) -> {new_node} leads after {replaced:?} (lease {lease:?})");
    // The lease runs out, a follower claims it (it asks again when the store says the lease
    // ends), and every instance's view is refreshed (every second).
    assert!(replaced <= lease + MARGIN, "replaced after {replaced:?}, lease {lease:?}");
    let statuses = group.statuses().await.unwrap();
    for (_, status) in &statuses {
        assert!(term_of(status) > old_term, "{}", status.0["cluster"]);
        assert_eq!(status.summary("sip").0, "failed_over", "the new leader kept the failover");
    }
    let elected = group.events_of("leader_elected").await.unwrap();
    assert_eq!(elected[0]["actor"], new_node.as_str(), "{elected:#?}");
    assert_eq!(elected[0]["reason"], format!("term {}", term_of(&statuses[0].1)), "{elected:#?}");

    // The primary database is back for every vantage: the new leader fails back after the
    // hold-down.
    let restored = Instant::now();
    group.members[0].primary_db.restore().await.unwrap();
    group.members[1].primary_db.restore().await.unwrap();
    let took = wait_all_pointing(&group, &home, DECIDED_WITHIN + Duration::from_secs(10)).await;
    eprintln!("proxies restored -> every live instance serves the primary: {took:?} (failback_after 2s)");
    assert!(restored.elapsed() >= Duration::from_millis(1750), "failed back before the hold-down");
    let failbacks = group.transitions_to("sip", "primary").await.unwrap();
    assert_eq!(failbacks.len(), 1, "{failbacks:#?}");
    assert_eq!(group.transitions_to("sip", "failed_over").await.unwrap().len(), 1);

    group
        .receiver
        .wait_until("an acknowledged failback alert", DECIDED_WITHIN, |all| {
            !of_type(all, "failback").is_empty()
        })
        .await
        .unwrap();
    // Anything sent twice would have come by now: the new leader's own rounds went on.
    let live = group.live().next().unwrap().0;
    wait_own_rounds(&group, live, 3).await;
    let all = group.receiver.received();
    let (failover, failback) = (of_type(&all, "failover"), of_type(&all, "failback"));
    eprintln!("alerts:\n{}", describe(&all));
    // Delivered at least once (docs/failover-rules.md, A change of leader): a leader killed
    // between sending and recording leaves the alert to its successor, with the same id.
    assert_eq!(ids(&failover).len(), 1, "{}", describe(&all));
    assert_eq!(ids(&failback).len(), 1, "{}", describe(&all));
    eprintln!("failover alert requests: {}, failback alert requests: {}", failover.len(), failback.len());
    assert_eq!(sender(&failover[0]), old_node, "{}", describe(&all));
    assert_eq!(sender(&failback[0]), new_node, "{}", describe(&all));
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn a_leader_paused_past_its_lease_writes_and_sends_nothing_when_it_wakes() {
    let began = Instant::now();
    let options = GroupOptions::default();
    let lease = options.lease;
    let mut group = require!(start(options).await, PEERS);
    let old = group.settled(SETTLE_WITHIN).await.unwrap();
    let old_node = group.members[old].node;
    let old_term = term_of(&group.members[old].running.status().await.unwrap());

    let paused = Instant::now();
    group.pause(old).unwrap();
    let new_node = another_leader(&group, old_node, lease * 4 + MARGIN * 2).await;
    eprintln!(
        "SIGSTOP of leader {old_node} (term {old_term}) -> {new_node} leads after {:?}",
        paused.elapsed()
    );
    assert!(paused.elapsed() <= lease + MARGIN, "replaced after {:?}", paused.elapsed());

    // A new outage, seen by both live vantages (the paused one's checks went stale).
    let live: Vec<usize> = group.live().map(|(i, _)| i).collect();
    for &i in &live {
        group.members[i].primary_db.cut().await.unwrap();
    }
    wait_all_pointing(&group, &away(&group), DECIDED_WITHIN).await;
    let all = group
        .receiver
        .wait_until("an acknowledged failover alert", DECIDED_WITHIN, |all| {
            !of_type(all, "failover").is_empty()
        })
        .await
        .unwrap();
    let failover = of_type(&all, "failover");
    assert_eq!(sender(&failover[0]), new_node, "{}", describe(&all));
    let transitions = group.events_of("transition").await.unwrap();
    let failovers = group.transitions_to("sip", "failed_over").await.unwrap();
    assert_eq!(failovers.len(), 1, "{failovers:#?}");
    let new = group.index_of(&new_node).unwrap();
    assert!(group.members[new].running.process.log().contains("route failed over"), "{}", group.logs());
    // Settle what the new leader sends for the outage before the old one wakes.
    wait_own_rounds(&group, new, 2).await;
    let decided = decisions(&group.members[new].running.events().await.unwrap());
    let received = group.receiver.received().len();

    let old_log_before = group.members[old].running.process.log().len();
    group.resume(old).unwrap();
    let resumed = Instant::now();
    until("the woken instance to name the new leader", Duration::from_secs(15), || async {
        let status = group.members[old].running.status().await.ok()?;
        (leader_of(&status).as_deref() == Some(new_node.as_str())).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    until("the woken instance's log to say it stepped down", Duration::from_secs(15), || async {
        group.members[old].running.process.log().contains("stepped down").then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    eprintln!("SIGCONT -> {old_node} names {new_node} and stepped down after {:?}", resumed.elapsed());
    // It probes and records again, and nothing it does moves anything.
    wait_own_rounds(&group, old, 3).await;

    let all = group.receiver.received();
    let from_old: Vec<&Received> = all[received..].iter().filter(|r| sender(r) == old_node).collect();
    assert!(from_old.is_empty(), "the woken instance sent alerts:\n{}", describe(&all));
    assert_eq!(all.iter().filter(|r| sender(r) == old_node).count(), 0, "{}", describe(&all));
    assert_eq!(
        decisions(&group.members[new].running.events().await.unwrap()),
        decided,
        "events were added after the old leader woke"
    );
    assert_eq!(group.events_of("transition").await.unwrap().len(), transitions.len());
    let old_log = group.members[old].running.process.log();
    assert!(!old_log.contains("route failed over"), "the old leader decided the outage:\n{old_log}");
    let statuses = group.statuses().await.unwrap();
    assert_eq!(statuses.len(), 3);
    for (i, status) in &statuses {
        let node = group.members[*i].node;
        assert_eq!(leader_of(status).as_deref(), Some(new_node.as_str()), "{node}");
        assert_eq!(status.summary("sip").0, "failed_over", "{node}");
    }
    wait_all_pointing(&group, &away(&group), Duration::from_secs(5)).await;
    let old_log = group.members[old].running.process.log();
    eprintln!("{old_node}'s log after SIGCONT:\n{}", &old_log[old_log_before.min(old_log.len())..]);
    eprintln!("test took {:?}", began.elapsed());
}

/// The pause above lands wherever the leader happens to be. Here it lands, on purpose,
/// while the leader is inside a fenced write (a transaction holding the lease row): a
/// frozen process (a VM paused, a stalled host) or a partition that leaves the TCP
/// connection open holds that transaction open for as long as it lasts.
#[tokio::test]
async fn a_leader_frozen_inside_a_fenced_write_is_still_replaced_within_its_lease() {
    let began = Instant::now();
    let options = GroupOptions::default();
    let lease = options.lease;
    let mut group = require!(start(options).await, PEERS);
    let old = group.settled(SETTLE_WITHIN).await.unwrap();
    let old_node = group.members[old].node;

    // Freeze the leader over and over until it freezes inside a transaction on the lease.
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        assert!(
            attempts <= 300,
            "never froze the leader inside a fenced write\n{}",
            group.store_activity().await
        );
        group.pause(old).unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        if group.lease_locked_by_an_idle_transaction().await.unwrap() {
            break;
        }
        group.resume(old).unwrap();
        tokio::time::sleep(Duration::from_millis(5 + u64::from(attempts % 7) * 6)).await;
    }
    let paused = Instant::now();
    eprintln!(
        "froze {old_node} inside a fenced write after {attempts} tries; the store's sessions:\n{}",
        group.store_activity().await
    );
    let new_node = another_leader(&group, old_node, lease * 3 + MARGIN).await;
    let took = paused.elapsed();
    eprintln!("{new_node} leads {took:?} after {old_node} froze (lease {lease:?})");
    assert!(took <= lease + MARGIN, "replaced after {took:?}");
    group.resume(old).unwrap();
    until("the woken instance to step down", Duration::from_secs(15), || async {
        group.members[old].running.process.log().contains("stepped down").then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    group.same_files().await.unwrap();
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn a_leader_stopped_cleanly_hands_over_before_its_lease_would_run_out() {
    let began = Instant::now();
    let options = GroupOptions { lease: Duration::from_secs(6), ..GroupOptions::default() };
    let lease = options.lease;
    let mut group = require!(start(options).await, PEERS);
    let old = group.settled(SETTLE_WITHIN).await.unwrap();
    let old_node = group.members[old].node;

    let stopped = Instant::now();
    group.stop(old).await.unwrap();
    let log = group.members[old].running.process.log();
    assert!(log.contains("lease released"), "{log}");
    let new_node = until("another instance to lead", lease * 2, || async {
        let leader = group.agreed_leader().await?;
        (leader != old_node).then_some(leader)
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    let took = stopped.elapsed();
    eprintln!("SIGTERM of leader {old_node} -> {new_node} leads after {took:?} (lease {lease:?})");
    // A follower asks again every third of the lease at most; the views refresh every second.
    let bound = lease / 3 + Duration::from_millis(1500);
    assert!(took <= bound, "handed over after {took:?}, bound {bound:?} (lease {lease:?})");
    group.same_files().await.unwrap();
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn too_few_fresh_vantages_move_nothing_and_record_monitor_blind() {
    let began = Instant::now();
    let mut group = require!(start(GroupOptions::default()).await, PEERS);
    let leader = group.settled(SETTLE_WITHIN).await.unwrap();
    let before = group.members[leader].running.status().await.unwrap();
    let bodies = group.same_files().await.unwrap();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // Two of three vantages stop reporting: one fresh vantage is fewer than the quorum.
    let paused = Instant::now();
    for &i in &others {
        group.pause(i).unwrap();
    }
    let blind = until("monitor_blind", Duration::from_secs(20), || async {
        group.events_of("monitor_blind").await.ok()?.into_iter().next()
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    eprintln!("two vantages paused -> monitor_blind after {:?}: {blind}", paused.elapsed());

    // The last vantage sees the primary database down: alone, it moves nothing.
    group.members[leader].primary_db.cut().await.unwrap();
    wait_own_rounds(&group, leader, 4).await;
    let status = group.members[leader].running.status().await.unwrap();
    let own = seen_from(&status, "primary", "database", group.members[leader].vantage).cloned();
    assert_eq!(own.as_ref().map(|v| v["healthy"].clone()), Some(Value::Bool(false)), "{own:?}");
    assert_eq!(status.route("sip", "state"), "primary", "{}\n{}", status.0, group.logs());
    assert_eq!(status.generation(), before.generation());
    let transitions = group.events_of("transition").await.unwrap();
    assert!(transitions.is_empty(), "{transitions:#?}");

    // Back: the two others see the database up, so it stays up; the monitor sees again.
    for &i in &others {
        group.resume(i).unwrap();
    }
    until("monitor_sighted", Duration::from_secs(20), || async {
        (!group.events_of("monitor_sighted").await.ok()?.is_empty()).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    wait_own_rounds(&group, others[0], 3).await;
    for (i, status) in group.statuses().await.unwrap() {
        let node = group.members[i].node;
        assert_eq!(status.route("sip", "state"), "primary", "{node}: {}", status.0);
        assert_eq!(status.generation(), before.generation(), "{node}");
    }
    assert!(group.events_of("transition").await.unwrap().is_empty());
    assert_eq!(group.same_files().await.unwrap(), bodies);
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn thirty_seconds_without_the_store_keeps_files_served_and_loses_no_decision() {
    let began = Instant::now();
    let options = GroupOptions { store_through_proxy: true, ..GroupOptions::default() };
    let group = require!(start(options).await, PEERS);
    let leader = group.settled(SETTLE_WITHIN).await.unwrap();

    // An operator action sent to a follower, forwarded through the store to the leader.
    let follower = (leader + 1) % 3;
    let response =
        group.members[follower].running.act("stun", "pause", Some(ADMIN_TOKEN), None).await.unwrap();
    assert_eq!(response.status, 200, "pause via {}: {}", group.members[follower].node, response.text());
    until("every instance to show stun paused", Duration::from_secs(5), || async {
        let statuses = group.statuses().await.ok()?;
        statuses.iter().all(|(_, s)| s.route("stun", "mode") == "paused").then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    let before = group.members[0].running.status().await.unwrap();
    let bodies = group.same_files().await.unwrap();
    let decided = decisions(&group.members[0].running.events().await.unwrap());

    let store = group.store_proxy.as_ref().unwrap();
    let cut = Instant::now();
    store.cut().await.unwrap();
    until("/healthz 503 naming the store on every instance", Duration::from_secs(20), || async {
        for (_, member) in group.live() {
            let health = member.running.get("/healthz").await.ok()?;
            if !(health.status == 503 && health.text().contains("store")) {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    eprintln!("store cut -> /healthz 503 everywhere after {:?}", cut.elapsed());
    // An outage during the cut, which a quorum sees: it cannot be decided yet.
    group.members[0].primary_db.cut().await.unwrap();
    group.members[1].primary_db.cut().await.unwrap();
    let mut checks = 0;
    while cut.elapsed() < Duration::from_secs(30) {
        for (_, member) in group.live() {
            let node = member.node;
            let health = member.running.get("/healthz").await.unwrap();
            assert_eq!(health.status, 503, "{node}: {}", health.text());
            assert!(health.text().contains("store"), "{node}: {}", health.text());
            let ready = member.running.get("/readyz").await.unwrap();
            assert_eq!(ready.status, 200, "{node} /readyz: {}", ready.text());
        }
        assert_eq!(
            group.same_files().await.unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs())),
            bodies,
            "files changed without the store"
        );
        for (i, status) in group.statuses().await.unwrap() {
            assert_eq!(
                status.route("sip", "state"),
                "primary",
                "{} decided without the store",
                group.members[i].node
            );
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    store.restore().await.unwrap();
    let restored = Instant::now();
    eprintln!("store back after {:?} ({checks} rounds of checks on every instance)", cut.elapsed());

    let took = wait_all_pointing(&group, &away(&group), DECIDED_WITHIN + Duration::from_secs(10)).await;
    eprintln!("store restored -> the outage decided, every instance on the backup: {took:?}");
    until("/healthz 200 on every instance", Duration::from_secs(15), || async {
        for (_, member) in group.live() {
            if member.running.get("/healthz").await.ok()?.status != 200 {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", group.logs()));
    eprintln!("/healthz 200 everywhere {:?} after the restore", restored.elapsed());

    // Nothing lost: what was decided before the cut is as it was, and the outage is one failover.
    let after = decisions(&group.members[0].running.events().await.unwrap());
    assert!(after.starts_with(&decided), "events before the cut changed: {decided:?} -> {after:?}");
    let operator = group.events_of("operator").await.unwrap();
    assert_eq!(operator.len(), 1, "{operator:#?}");
    assert_eq!(group.transitions_to("sip", "failed_over").await.unwrap().len(), 1);
    for (i, status) in group.statuses().await.unwrap() {
        let node = group.members[i].node;
        assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "paused".into()), "{node}");
        assert_eq!(status.summary("sip").0, "failed_over", "{node}");
        assert_eq!(status.generation(), before.generation() + 1, "{node}");
    }
    // Whoever decided the outage leads; every instance's view says so within its refresh.
    let leader = group.wait_leader(Duration::from_secs(10)).await.unwrap();
    eprintln!(
        "every instance names {} as leader {:?} after the restore",
        group.members[leader].node,
        restored.elapsed()
    );
    group.same_files().await.unwrap();
    eprintln!("test took {:?}", began.elapsed());
}

#[tokio::test]
async fn a_group_on_a_sqlite_store_is_refused() {
    let builder = ConfigBuilder::new(SiteAddrs::offline().unwrap(), SiteAddrs::offline().unwrap())
        .extra("[cluster]\nnode = \"chi-1\"\nvantage = \"chicago\"\nlease = \"3s\"\nquorum = 2\n");
    let config = builder.write().unwrap();
    let run = one_shot(
        BINARY,
        &["run".as_ref(), "--config".as_ref(), config.path().as_os_str(), "--init".as_ref()],
    )
    .await
    .unwrap();
    assert_eq!(run.code, Some(2), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("postgres://"), "stderr:\n{}", run.stderr);
    assert!(!config.store_path().exists(), "a SQLite store was created for a refused config");
}
