//! Connection floods against the real binary with real Kamailio and coturn peers:
//! connections that send a request header a byte at a time are cut after 10 s while
//! phones keep fetching, connections beyond `server.max_connections` are closed at
//! once, and through all of it the probes keep deciding: the primary softswitch dying
//! in the middle of the flood still fails the sip route over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::time::Duration;

use switchback_tests::lab::{Lab, Running, TestPhone};
use switchback_tests::wait::until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const MAX_CONNECTIONS: usize = 120;
/// Slow connections under the limit: the server keeps room for phones.
const SLOW: usize = 100;
/// Connections over the limit, opened at once.
const EXCESS: usize = 200;

/// What became of one flood connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The server closed it within this long of the connect.
    ClosedAfter(Duration),
    /// Still open when the test stopped looking.
    Open,
}

/// Connects and sends a request header one byte per `every`, until the server closes
/// the connection or `give_up` passes.
async fn slow_header(addr: std::net::SocketAddr, every: Duration, give_up: Duration) -> Fate {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Fate::ClosedAfter(Duration::ZERO);
    };
    let header =
        b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut buf = [0u8; 64];
    for byte in header.iter().cycle() {
        if started.elapsed() > give_up {
            return Fate::Open;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return Fate::ClosedAfter(started.elapsed());
        }
        // A closed connection reads EOF (or a reset) at once; an open one times out.
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(every, stream.read(&mut buf)).await {
            return Fate::ClosedAfter(started.elapsed());
        }
    }
    Fate::Open
}

#[tokio::test]
async fn floods_are_cut_off_while_phones_fetch_and_the_monitor_fails_over() {
    let mut lab = Lab::start().await.unwrap();
    let builder = lab
        .config()
        .server_line(&format!("max_connections = {MAX_CONNECTIONS}"))
        .interval(Duration::from_millis(500))
        .failback_after(Duration::from_secs(600));
    let phones = vec![TestPhone::new("0015651234a1", "yealink", 1)];
    let running = Running::start(BINARY, &builder, &phones).await.unwrap();
    let addr = running.config.listen().unwrap();

    // 1. Slow headers under the limit: cut at 10 s, phones served all along.
    let mut slow = JoinSet::new();
    for _ in 0..SLOW {
        slow.spawn(slow_header(addr, Duration::from_millis(500), Duration::from_secs(30)));
    }
    until("the slow connections to be open", Duration::from_secs(10), || async {
        let metrics = running.get("/metrics").await.ok()?.text();
        let open = metric(&metrics, "switchback_http_connections_open")?;
        (open >= SLOW as f64).then_some(())
    })
    .await
    .unwrap();
    for _ in 0..5 {
        let file = running.get(&phones[0].path()).await.unwrap();
        assert_eq!(file.status, 200, "a phone during the slow flood");
    }
    let fates: Vec<Fate> = slow.join_all().await;
    for fate in &fates {
        match fate {
            Fate::ClosedAfter(after) => assert!(
                *after >= Duration::from_secs(9) && *after <= Duration::from_secs(13),
                "a slow header closed after {after:?}, not about 10 s"
            ),
            Fate::Open => panic!("a slow header connection was still open after 30 s"),
        }
    }

    // 2. More connections than the limit, and the primary softswitch dies meanwhile.
    let mut held = Vec::new();
    let mut closed_at_once = 0;
    for _ in 0..MAX_CONNECTIONS + EXCESS {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            closed_at_once += 1;
            continue;
        };
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed_at_once += 1,
            _ => held.push(stream),
        }
    }
    assert!(
        closed_at_once >= EXCESS - 10,
        "only {closed_at_once} of the excess connections were closed at once"
    );
    assert!(held.len() <= MAX_CONNECTIONS + 10, "{} connections held", held.len());
    lab.primary.stop_softswitch();
    let outage = Instant::now();
    // The held connections time out after 10 s; by then the monitor has decided.
    let status = until("the sip route failed over", Duration::from_secs(30), || async {
        let status = running.status().await.ok()?;
        (status.route("sip", "state") == "failed_over").then_some(status)
    })
    .await
    .unwrap();
    drop(held);
    let events = running.events_of("transition").await.unwrap();
    let failover =
        events.iter().find(|e| e["route"] == "sip" && e["to"] == "failed_over").expect("a failover event");
    eprintln!(
        "failed over at {}, {:?} after the softswitch stopped; sip on {}",
        failover["at"],
        outage.elapsed(),
        status.route("sip", "active_site")
    );
    let decided = chrono::DateTime::parse_from_rfc3339(failover["at"].as_str().unwrap()).unwrap();
    let seconds_after_outage =
        (decided.with_timezone(&chrono::Utc) - (chrono::Utc::now() - outage.elapsed())).num_milliseconds();
    assert!(
        seconds_after_outage < 9_000,
        "the failover was decided {seconds_after_outage} ms after the outage: the flood held the monitor back"
    );
}

/// A sample's value from Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A keep-alive connection is not cut by the 10 s header timeout while it idles between
/// requests, serves a request after 15 s of quiet, and is closed about 60 s after its
/// last answer.
#[tokio::test]
async fn idle_keep_alive_connections_close_after_a_minute() {
    let site = || switchback_tests::switchback::SiteAddrs::offline().unwrap();
    let builder = switchback_tests::switchback::ConfigBuilder::new(site(), site());
    let running = Running::start(BINARY, &builder, &[]).await.unwrap();
    let addr = running.config.listen().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: idle\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    for quiet in [Duration::ZERO, Duration::from_secs(15)] {
        // Nothing arrives while idle: the connection stays open through the header timeout.
        let waited = tokio::time::timeout(quiet, stream.read(&mut buf)).await;
        assert!(waited.is_err(), "the server spoke or closed during {quiet:?} of quiet: {waited:?}");
        stream.write_all(request).await.unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "after {quiet:?} of quiet");
    }
    let answered = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(75), stream.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "not closed within 75 s: {closed:?}");
    let idle = answered.elapsed();
    assert!(idle >= Duration::from_secs(58) && idle <= Duration::from_secs(63), "closed after {idle:?} idle");
}
