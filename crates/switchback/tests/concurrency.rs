//! Many phones fetching while generations are swapped under them, again and again: every
//! response must be one whole file of one generation. Each body is parsed completely,
//! must name a softswitch and a STUN server of one of the two sites, must equal byte for
//! byte the file rendered for exactly those sites, and must carry the MD5 of its bytes as
//! its ETag.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchback_tests::lab::{sample_phones, Lab, Running, TestPhone};
use switchback_tests::phone_files::{md5_hex, pointing, Pointing, SpaFile, YealinkFile};
use switchback_tests::require;
use switchback_tests::switchback::{http_client, read};
use switchback_tests::wait::until;
use tokio::task::JoinSet;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const PEERS: &str = "kamailio, coturn, postgresql and mariadb";
const TOKEN: &str = "concurrency-test-token";
/// Phones fetching at once.
const FETCHERS: usize = 24;
/// How long generations are swapped under them.
const SWAPPING: Duration = Duration::from_secs(8);

/// The sample phones and enough more of both vendors that a generation is not trivial.
fn inventory() -> Vec<TestPhone> {
    let mut phones = sample_phones();
    for n in 0..150 {
        phones.push(TestPhone::new(&format!("0015650a{n:04x}"), "yealink", 100 + n));
        phones.push(TestPhone::new(&format!("c8d7190b{n:04x}"), "linksys", 300 + n));
    }
    phones
}

/// Every phone's file for every combination of active sites, learned one combination at
/// a time while nothing moves: `(phone index, where it points) -> bytes`.
type Known = HashMap<(usize, Pointing), Vec<u8>>;

/// Checks one response the way a careful phone would; answers where it points.
fn check_response(
    phone: (usize, &TestPhone),
    status: u16,
    etag: Option<&str>,
    body: &[u8],
    known: &Known,
) -> Result<Pointing, String> {
    let (index, phone) = phone;
    let path = phone.path();
    if status != 200 {
        return Err(format!("{path}: status {status}"));
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("{path}: not UTF-8: {e}"))?;
    let parsed = match phone.vendor {
        "yealink" => YealinkFile::parse(text).and_then(|f| f.pointing()),
        _ => {
            if !text.starts_with("<?xml") {
                return Err(format!("{path}: no XML declaration"));
            }
            SpaFile::parse(text).and_then(|f| f.pointing())
        }
    };
    let points = parsed.map_err(|e| format!("{path}: {e:#}:\n{text}"))?;
    let expected = known.get(&(index, points.clone())).ok_or_else(|| {
        format!("{path} points at {points:?}, a combination of sites no generation had:\n{text}")
    })?;
    if body != expected.as_slice() {
        return Err(format!(
            "{path} points at {points:?} but differs from that generation's file:\n{text}\n---- expected:\n{}",
            String::from_utf8_lossy(expected)
        ));
    }
    let md5 = format!("\"{}\"", md5_hex(body));
    if etag != Some(md5.as_str()) {
        return Err(format!("{path}: ETag {etag:?} is not the MD5 of the body {md5}"));
    }
    Ok(points)
}

/// Forces `route` over (`failover`) or home (`failback`) and waits until every phone is
/// served a file pointing at `expect`.
async fn force(running: &Running, route: &str, action: &str, expect: &Pointing) {
    let response = running.act(route, action, Some(TOKEN), None).await.unwrap();
    assert_eq!(response.status, 200, "{route} {action}: {}", response.text());
    until(&format!("every phone at {expect:?}"), Duration::from_secs(15), || async {
        running.pointings().await.ok()?.iter().all(|p| p == expect).then_some(())
    })
    .await
    .unwrap();
}

async fn learn(running: &Running, known: &mut Known) {
    for (index, phone) in running.phones.iter().enumerate() {
        let body = running.file(phone).await.unwrap().body;
        let points = pointing(phone.vendor, &body).unwrap();
        if let Some(before) = known.insert((index, points.clone()), body.clone()) {
            assert_eq!(before, body, "{} differs for the same sites {points:?}", phone.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_response_is_one_whole_generation_while_generations_swap() {
    let lab = require!(Lab::start().await, PEERS);
    let builder = lab.config().admin_token(TOKEN).failback_after(Duration::from_secs(600));
    let running = Arc::new(Running::start(BINARY, &builder, &inventory()).await.unwrap());
    let (p, b) = (&lab.primary, &lab.backup);

    // The four combinations of sites, each file learned while it stands still; back home,
    // the files are byte-identical to the first ones.
    let mut known = Known::new();
    learn(&running, &mut known).await;
    force(&running, "sip", "failover", &lab.pointing(b, p)).await;
    learn(&running, &mut known).await;
    force(&running, "stun", "failover", &lab.pointing(b, b)).await;
    learn(&running, &mut known).await;
    force(&running, "sip", "failback", &lab.pointing(p, b)).await;
    learn(&running, &mut known).await;
    force(&running, "stun", "failback", &lab.pointing(p, p)).await;
    learn(&running, &mut known).await;
    assert_eq!(known.len(), running.phones.len() * 4, "four distinct files per phone");
    let known = Arc::new(known);
    let first_generation = running.status().await.unwrap().generation();

    let stop = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicU64::new(0));
    let mut fetchers = JoinSet::new();
    for task in 0..FETCHERS {
        let (running, known, stop, fetches) = (running.clone(), known.clone(), stop.clone(), fetches.clone());
        fetchers.spawn(async move {
            // One client per phone-like task: its own connections.
            let client = http_client().unwrap();
            let mut seen: HashMap<Pointing, u64> = HashMap::new();
            let mut index = task * 7 % running.phones.len();
            while !stop.load(Ordering::Relaxed) {
                let phone = &running.phones[index];
                let response = client.get(running.url(&phone.path())).send().await;
                let response = read(response.map_err(|e| format!("{}: {e}", phone.path()))?)
                    .await
                    .map_err(|e| format!("{}: {e:#}", phone.path()))?;
                let points = check_response(
                    (index, phone),
                    response.status,
                    response.header("etag"),
                    &response.body,
                    &known,
                )?;
                *seen.entry(points).or_default() += 1;
                fetches.fetch_add(1, Ordering::Relaxed);
                index = (index + 1) % running.phones.len();
            }
            Ok::<_, String>(seen)
        });
    }

    // Swap the sites under them: each action moves one route, so each is a new generation.
    let actions = [("sip", "failover"), ("stun", "failover"), ("sip", "failback"), ("stun", "failback")];
    let started = Instant::now();
    let mut swaps = 0u64;
    while started.elapsed() < SWAPPING {
        let (route, action) = actions[(swaps % 4) as usize];
        let response = running.act(route, action, Some(TOKEN), None).await.unwrap();
        assert_eq!(response.status, 200, "{route} {action}: {}", response.text());
        swaps += 1;
        // From back to back to a few ms apart, so swaps land at every point of a response.
        tokio::time::sleep(Duration::from_millis(swaps % 20)).await;
    }
    let swapping = started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut seen: HashMap<Pointing, u64> = HashMap::new();
    while let Some(joined) = fetchers.join_next().await {
        for (points, count) in joined.unwrap().unwrap_or_else(|err| panic!("a bad response: {err}")) {
            *seen.entry(points).or_default() += count;
        }
    }
    let fetches = fetches.load(Ordering::Relaxed);
    eprintln!(
        "{swaps} swaps in {swapping:?} under {FETCHERS} fetching tasks: {fetches} fetches of {} phones \
         ({:.0}/s), each one whole file of one generation; per combination of sites: {:?}",
        running.phones.len(),
        fetches as f64 / swapping.as_secs_f64(),
        seen.values().collect::<Vec<_>>()
    );
    assert!(swaps >= 20, "only {swaps} swaps");
    assert!(fetches >= 1000, "only {fetches} fetches");
    assert!(seen.len() >= 3, "fetches saw only {} combinations of sites: {seen:?}", seen.len());

    // Every action started a generation; after the last one, phones get its sites.
    let final_generation = first_generation + swaps;
    until("the last generation served", Duration::from_secs(10), || async {
        (running.status().await.ok()?.generation() == final_generation).then_some(())
    })
    .await
    .unwrap();
    let last = match swaps % 4 {
        1 => lab.pointing(b, p),
        2 => lab.pointing(b, b),
        3 => lab.pointing(p, b),
        _ => lab.pointing(p, p),
    };
    assert!(running.pointings().await.unwrap().iter().all(|points| *points == last));
}
