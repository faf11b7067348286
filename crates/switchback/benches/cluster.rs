//! What a group of instances costs, on real processes and peers (Kamailio, coturn, the
//! machine's PostgreSQL and MariaDB), at the drill timers the tests use (checks every
//! 1 s, 500 ms while unsettled, 300 ms timeout with one retry, failover_after 0 s):
//!
//! 1. failover: from stopping the primary softswitch to every instance serving the
//!    backup file to every phone, one instance against a group of three;
//! 2. leader failover: from SIGKILL of the leader to another holding the lease (read
//!    from the store every 10 ms), for several leases;
//! 3. store load: a group of three at 100,000 phones, idle and with the phones polling
//!    (1,667 fetches/s spread over the instances): transactions and rows per second
//!    from `pg_stat_database`, and rows written per round.
//!
//! Run: `cargo bench -p switchback --bench cluster` (peers as for the tests:
//! `.ci/install-peers`). `RUNS` (default 5) sets the failover samples per setup;
//! `LOAD_SECONDS` (default 30) each load window.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark reports failure by panicking

use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use switchback_tests::cluster::{Group, GroupOptions};
use switchback_tests::lab::{phones_csv, sample_phones, write_file, Lab, Running, TestPhone};
use switchback_tests::phone_files::Pointing;
use switchback_tests::switchback::phones_import;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = env_or("RUNS", 5);
    // `ONLY=failover`, `ONLY=leader` or `ONLY=load` runs one part.
    let only = std::env::var("ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    println!("# switchback group benchmark ({runs} runs per failover setup)");
    if part("failover") {
        failover_one(runs).await?;
        failover_group(runs).await?;
    }
    if part("leader") {
        for lease in [2, 4, 8] {
            leader_failover(Duration::from_secs(lease)).await?;
        }
    }
    if part("load") {
        store_load(Duration::from_secs(env_or("LOAD_SECONDS", 30))).await?;
    }
    Ok(())
}

/// Waits until every phone's file, on every instance in `runnings`, points at `to`.
async fn all_point(runnings: &[&Running], to: &Pointing, deadline: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let mut all = true;
        for running in runnings {
            all &= running.pointings().await?.iter().all(|p| p == to);
        }
        if all {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed() < deadline, "files never pointed at {to:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills and restarts the primary softswitch `runs` times, timing each failover.
async fn drill(lab: &mut Lab, runnings: &[&Running], runs: u64) -> anyhow::Result<Vec<Duration>> {
    let home = lab.on_primary();
    let away = lab.pointing(&lab.backup, &lab.primary);
    all_point(runnings, &home, Duration::from_secs(30)).await.context("settling on the primary")?;
    let mut taken = Vec::new();
    for _ in 0..runs {
        // At a random point of the round: the files moved home just after a round.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..1000))).await;
        lab.primary.stop_softswitch();
        taken.push(all_point(runnings, &away, Duration::from_secs(30)).await?);
        lab.primary.start_softswitch().await?;
        // failback_after 2 s of health, then back on the primary everywhere.
        all_point(runnings, &home, Duration::from_secs(60)).await?;
    }
    Ok(taken)
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_millis();
    let median = samples[samples.len() / 2];
    let list: Vec<String> = samples.iter().map(|d| format!("{}", ms(*d))).collect();
    println!(
        "{label}: median {} ms, min {} ms, max {} ms (samples ms: {})",
        ms(median),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        list.join(", ")
    );
}

async fn failover_one(runs: u64) -> anyhow::Result<()> {
    let mut lab = Lab::start().await?;
    let store = switchback_tests::databases::fresh_postgres().await?;
    let builder = lab.config();
    let config = builder.write_with_store(store.url())?;
    let running = Running::start_with(BINARY, &builder, config, &sample_phones()).await?;
    let taken = drill(&mut lab, &[&running], runs).await?;
    summary("failover, 1 instance (PostgreSQL store): kill -> every file on the backup", taken);
    Ok(())
}

async fn failover_group(runs: u64) -> anyhow::Result<()> {
    let mut group = Group::start(BINARY, GroupOptions::default()).await?;
    group.wait_leader(Duration::from_secs(20)).await?;
    // The lab and the instances are apart: the drill breaks one and reads the others.
    let Group { lab, members, .. } = &mut group;
    let runnings: Vec<&Running> = members.iter().map(|m| &m.running).collect();
    let taken = drill(lab, &runnings, runs).await?;
    summary(
        "failover, 3 instances (quorum 2, lease 3 s): kill -> every file on the backup at every instance",
        taken,
    );
    Ok(())
}

/// The lease's holder and term, read from the store.
async fn lease_row(conn: &mut PgConnection) -> anyhow::Result<(Option<String>, i64)> {
    Ok(sqlx::query_as("SELECT holder, term FROM cluster_lease WHERE id = 1").fetch_one(conn).await?)
}

async fn leader_failover(lease: Duration) -> anyhow::Result<()> {
    let options = GroupOptions { lease, ..GroupOptions::default() };
    let mut group = Group::start(BINARY, options).await?;
    let mut conn = PgConnection::connect(group.store.url()).await?;
    let mut samples = Vec::new();
    let mut leader = group.wait_leader(Duration::from_secs(30)).await?;
    for _ in 0..2 {
        // A lease renewed just now or a third of a lease ago: kill at a random point.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..lease.as_millis() as u64 / 3))).await;
        let (_, term) = lease_row(&mut conn).await?;
        let killed = Instant::now();
        group.crash(leader).await?;
        loop {
            let (holder, now_term) = lease_row(&mut conn).await?;
            if let (true, Some(holder)) = (now_term > term, holder) {
                samples.push(killed.elapsed());
                leader = group.index_of(&holder).context("the new leader is not a member")?;
                break;
            }
            anyhow::ensure!(killed.elapsed() < lease * 3, "nobody took over within three leases");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    summary(&format!("leader failover, lease {lease:?}: SIGKILL -> another holds the lease"), samples);
    Ok(())
}

/// `pg_stat_database` counters of the store's database.
async fn pg_stats(conn: &mut PgConnection, db: &str) -> anyhow::Result<[i64; 4]> {
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted, tup_returned, tup_fetched \
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(&mut *conn)
    .await?;
    Ok([row.0, row.1, row.2, row.3])
}

async fn window(conn: &mut PgConnection, db: &str, seconds: Duration, label: &str) -> anyhow::Result<()> {
    // The statistics reach the view within about a second of each transaction.
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await?;
    let before = pg_stats(conn, db).await?;
    tokio::time::sleep(seconds).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await?;
    let after = pg_stats(conn, db).await?;
    let per_s = |i: usize| (after[i] - before[i]) as f64 / seconds.as_secs_f64();
    // Three instances, each one round per second (interval 1 s) while settled.
    let rounds = 3.0 * seconds.as_secs_f64();
    println!(
        "store load, 3 instances, 100,000 phones, {label}: {:.0} transactions/s, {:.0} rows written/s \
         ({:.1} per instance round), {:.0} rows read/s ({:.0} scanned + {:.0} by index)",
        per_s(0),
        per_s(1),
        (after[1] - before[1]) as f64 / rounds,
        per_s(2) + per_s(3),
        per_s(2),
        per_s(3)
    );
    Ok(())
}

async fn store_load(seconds: Duration) -> anyhow::Result<()> {
    let group = Group::start(BINARY, GroupOptions::default()).await?;
    group.wait_leader(Duration::from_secs(30)).await?;
    let phones: Vec<TestPhone> = (0..100_000usize)
        .map(|n| {
            let vendor = if n % 2 == 0 { "yealink" } else { "linksys" };
            TestPhone::new(&format!("00aa{n:08x}"), vendor, n)
        })
        .collect();
    let first = &group.members[0].running;
    let csv = write_file(first.config.dir(), "bench-phones.csv", &phones_csv(&phones))?;
    let import = phones_import(BINARY, first.config.path(), &csv).await?;
    anyhow::ensure!(import.code == Some(0), "import failed: {}", import.stderr);
    // Every instance re-renders the new inventory. Asked through the status: fetching a
    // file not yet rendered counts as a bad request, and 20 of them block the source.
    let total = phones.len() + group.phones.len();
    for member in &group.members {
        switchback_tests::wait::until("100,000 phones rendered", Duration::from_secs(120), || async {
            let status = member.running.status().await.ok()?;
            (status.0["phones"]["total"].as_u64()? == total as u64).then_some(())
        })
        .await
        .with_context(|| member.log_tail(3000))?;
    }
    let db: String = {
        let mut conn = PgConnection::connect(group.store.url()).await?;
        sqlx::query_scalar("SELECT current_database()").fetch_one(&mut conn).await?
    };
    let mut conn = PgConnection::connect(group.store.url()).await?;
    window(&mut conn, &db, seconds, "idle (no phone polling)").await?;

    // The phones poll every 60 s: 1,667 fetches a second, round robin over the instances.
    let bases: Vec<String> = group.members.iter().map(|m| m.running.url("")).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut pollers = Vec::new();
    for worker in 0..16usize {
        let (client, bases, stop) = (client.clone(), bases.clone(), stop.clone());
        let paths: Vec<String> = phones.iter().skip(worker).step_by(16).map(TestPhone::path).collect();
        pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(16 * 600));
            for (i, path) in paths.iter().cycle().enumerate() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                let url = format!("{}{path}", bases[i % bases.len()]);
                let _ = client.get(url).send().await.map(|r| r.status());
            }
        }));
    }
    window(&mut conn, &db, seconds, "phones polling (1,667 fetches/s)").await?;
    stop.cancel();
    for poller in pollers {
        let _ = poller.await;
    }
    Ok(())
}
