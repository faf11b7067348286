//! On-call alerts end to end: `switchback run` against a real Kamailio and coturn at each
//! site (SQLite files as the sites' databases, to keep it light), a local webhook
//! [`Receiver`] that records every request and answers from a script, and the primary
//! softswitch killed and started again at the same address to make a failover and a
//! failback. Signatures are checked by the Standard Webhooks reference library
//! (`standardwebhooks` from PyPI, see `.ci/install-python-deps`), not by our own code.
//!
//! Contract (README, Alerts): written to a durable outbox, retried with backoff until a
//! 2xx (a 4xx other than 408/429 is final), never lost across restarts, never sent twice
//! for one event, and a page refused three times still arrives within a minute.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchback_tests::lab::{Running, Status};
use switchback_tests::peers::{Coturn, Kamailio, SipAnswer};
use switchback_tests::receiver::{describe, Received, Receiver};
use switchback_tests::require;
use switchback_tests::switchback::{ConfigBuilder, SiteAddrs};
use switchback_tests::wait::until;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const PEERS: &str = "kamailio and coturn";
const VERIFIER: &str = "python3 with the standardwebhooks package (.ci/install-python-deps)";
/// The example secret of the Standard Webhooks spec.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROUTING_KEY: &str = "R0UT1NGKEY0switchback0test000000";
/// From a killed softswitch to its alert: one interval, the probe budget, a loaded machine.
const SOON: Duration = Duration::from_secs(20);
/// What the spec allows for a page refused three times in a row.
const MINUTE: Duration = Duration::from_secs(60);

// ---- sites -------------------------------------------------------------------------------

/// Kamailio and coturn at both sites, and an SQLite file as each site's database. The
/// primary softswitch can be stopped, and started again at the same address.
#[derive(Debug)]
struct Sites {
    primary: SiteAddrs,
    backup: SiteAddrs,
    primary_softswitch: Option<Kamailio>,
    _backup_softswitch: Kamailio,
    _stun: (Coturn, Coturn),
    _databases: TempDir,
}

impl Sites {
    async fn start() -> anyhow::Result<Self> {
        let (primary_sip, backup_sip, primary_stun, backup_stun) = tokio::try_join!(
            Kamailio::start(SipAnswer::Ok),
            Kamailio::start(SipAnswer::Ok),
            Coturn::start(),
            Coturn::start()
        )?;
        let databases = tempfile::Builder::new().prefix("alerts-sites-").tempdir()?;
        let database = |name: &str| -> anyhow::Result<String> {
            let path = databases.path().join(name);
            // The probe never creates a missing file: an empty one is a healthy database.
            std::fs::write(&path, b"")?;
            Ok(format!("sqlite://{}", path.display()))
        };
        Ok(Self {
            primary: SiteAddrs::new(primary_sip.addr(), database("chicago.db")?, primary_stun.addr()),
            backup: SiteAddrs::new(backup_sip.addr(), database("virginia.db")?, backup_stun.addr()),
            primary_softswitch: Some(primary_sip),
            _backup_softswitch: backup_sip,
            _stun: (primary_stun, backup_stun),
            _databases: databases,
        })
    }

    /// The harness's short timers: interval 1s, timeout 300ms, retries 1, recheck 500ms,
    /// failover_after 0s, failback_after 2s.
    fn config(&self) -> ConfigBuilder {
        ConfigBuilder::new(self.primary.clone(), self.backup.clone())
    }

    /// Kills the primary Kamailio: its address refuses OPTIONS from now on.
    fn stop_primary_softswitch(&mut self) {
        self.primary_softswitch = None;
    }

    async fn start_primary_softswitch(&mut self) {
        assert!(self.primary_softswitch.is_none(), "the primary softswitch is running already");
        let kamailio = Kamailio::start_at(self.primary.softswitch, SipAnswer::Ok).await.unwrap();
        self.primary_softswitch = Some(kamailio);
    }
}

fn generic(name: &str, receiver: &Receiver) -> String {
    format!(
        "[[alerts]]\nname = \"{name}\"\nurl = \"{}\"\nformat = \"generic\"\nsecret = \"{SECRET}\"\n",
        receiver.url(name)
    )
}

fn pagerduty(name: &str, receiver: &Receiver) -> String {
    format!(
        "[[alerts]]\nname = \"{name}\"\nurl = \"{}\"\nformat = \"pagerduty\"\nrouting_key = \"{ROUTING_KEY}\"\n",
        receiver.url(name)
    )
}

// ---- a running switchback ----------------------------------------------------------------

async fn start(builder: &ConfigBuilder) -> Running {
    let running = Running::start(BINARY, builder, &[]).await.unwrap();
    until("every service checked healthy", SOON, || async {
        let status = running.status().await.ok()?;
        let services = status.0["services"].as_array()?;
        let all_up = services.len() == 6 && services.iter().all(|s| s["healthy"] == true);
        (all_up && status.route("sip", "state") == "primary").then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", running.process.log()));
    running
}

/// `GET /api/alerts`: every delivery, newest first.
async fn deliveries(running: &Running) -> Vec<Value> {
    let page = running.get_json("/api/alerts?limit=500").await.unwrap();
    page.as_array().cloned().unwrap_or_else(|| panic!("/api/alerts is not an array: {page}"))
}

/// The delivery row of an alert, by its id as sent (`msg_sb{row id}`).
async fn delivery(running: &Running, alert_id: &str) -> Value {
    let row: i64 = alert_id
        .strip_prefix("msg_sb")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("alert id `{alert_id}` is not msg_sb<row id>"));
    let all = deliveries(running).await;
    all.iter().find(|d| d["id"] == row).cloned().unwrap_or_else(|| panic!("no delivery {row} in {all:#?}"))
}

/// `/api/status`'s `alerts` counts: (pending, delivered, failed).
fn counts(status: &Status) -> (u64, u64, u64) {
    let alerts = &status.0["alerts"];
    let n = |key: &str| alerts[key].as_u64().unwrap_or_else(|| panic!("no alerts.{key} in {alerts}"));
    (n("pending"), n("delivered"), n("failed"))
}

/// Waits until no delivery is pending (the sender has nothing more to send) and the
/// status, whose counts are read from the store once a second, says so too.
async fn outbox_drained(running: &Running, deadline: Duration) -> Status {
    until("no pending alert", deadline, || async {
        let all = deliveries(running).await;
        let count = |status: &str| all.iter().filter(|d| d["status"] == status).count() as u64;
        let stored = (count("pending"), count("delivered"), count("failed"));
        let status = running.status().await.ok()?;
        (stored.0 == 0 && counts(&status) == stored).then_some(status)
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", running.process.log()))
}

// ---- what arrived ------------------------------------------------------------------------

/// The requests whose JSON body has `type` = `kind` (generic webhooks).
fn of_type(all: &[Received], kind: &str) -> Vec<Received> {
    all.iter().filter(|r| r.json().is_ok_and(|body| body["type"] == kind)).cloned().collect()
}

fn acknowledged_of_type(all: &[Received], kind: &str) -> Vec<Received> {
    of_type(all, kind).into_iter().filter(Received::acknowledged).collect()
}

/// Waits until an alert of type `kind` has been acknowledged.
async fn wait_acknowledged(receiver: &Receiver, kind: &str, deadline: Duration) -> Vec<Received> {
    receiver
        .wait_until(&format!("an acknowledged `{kind}` alert"), deadline, |all| {
            !acknowledged_of_type(all, kind).is_empty()
        })
        .await
        .unwrap()
}

/// The alert ids that were acknowledged more than once.
fn acknowledged_twice(all: &[Received]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for request in all.iter().filter(|r| r.acknowledged()) {
        let id = request.webhook_id().map(str::to_owned).unwrap_or_else(|| request.text());
        *seen.entry(id).or_default() += 1;
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(id, _)| id).collect()
}

/// The event time an alert's body carries.
fn event_time(request: &Received) -> chrono::DateTime<chrono::Utc> {
    let body = request.json().unwrap();
    let time = body["time"].as_str().unwrap_or_else(|| panic!("no time in {body}"));
    time.parse().unwrap_or_else(|err| panic!("time `{time}`: {err}"))
}

// ---- Standard Webhooks, independently ----------------------------------------------------

const VERIFY_PY: &str = r#"
import json, sys
from standardwebhooks import Webhook, WebhookVerificationError
case = json.load(sys.stdin)
try:
    Webhook(case["secret"]).verify(case["body"], case["headers"])
except WebhookVerificationError as err:
    print(f"refused: {err}")
    sys.exit(1)
print("verified")
"#;

/// Fails when python3 or its `standardwebhooks` package is missing (for [`require!`]).
async fn standard_webhooks() -> anyhow::Result<()> {
    let output = Command::new("python3").args(["-c", "import standardwebhooks"]).output().await;
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => anyhow::bail!("{}", String::from_utf8_lossy(&output.stderr).trim()),
        Err(err) => anyhow::bail!("python3: {err}"),
    }
}

/// Whether the reference library accepts `body` with the request's headers and `secret`;
/// its verdict as text.
async fn verified(secret: &str, request: &Received, body: &str) -> (bool, String) {
    let headers: BTreeMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .filter_map(|name| Some((name, request.header(name)?)))
        .collect();
    let case = json!({ "secret": secret, "headers": headers, "body": body }).to_string();
    let mut child = Command::new("python3")
        .args(["-c", VERIFY_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(case.as_bytes()).await.unwrap();
    let output =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said.trim().to_owned())
}

// ---- the cases ---------------------------------------------------------------------------

#[tokio::test]
async fn a_failover_alert_is_delivered_signed_per_standard_webhooks() {
    require!(standard_webhooks().await, VERIFIER);
    let mut sites = require!(Sites::start().await, PEERS);
    let receiver = Receiver::always(202).await.unwrap();
    let running = start(&sites.config().extra(&generic("ops", &receiver))).await;
    let before = running.status().await.unwrap();

    let kill = chrono::Utc::now();
    sites.stop_primary_softswitch();
    let all = wait_acknowledged(&receiver, "failover", SOON).await;
    let failover = of_type(&all, "failover").remove(0);
    eprintln!(
        "kill -> failover alert received: {:?}\n{}",
        (failover.at - kill).to_std().unwrap_or_default(),
        describe(&all)
    );

    // The request and its Standard Webhooks headers.
    assert_eq!((failover.method.as_str(), failover.path.as_str()), ("POST", "/hooks/ops"));
    assert!(failover.header("content-type").unwrap_or_default().starts_with("application/json"));
    let body = failover.json().unwrap();
    let id = failover.webhook_id().expect("no webhook-id header");
    assert_eq!(body["id"], id, "the body's id is not the webhook-id header");
    assert!(id.strip_prefix("msg_sb").is_some_and(|n| n.parse::<u64>().is_ok()), "webhook-id `{id}`");
    let timestamp: i64 = failover.header("webhook-timestamp").expect("no webhook-timestamp").parse().unwrap();
    let sent = chrono::DateTime::from_timestamp(timestamp, 0).unwrap();
    assert!(
        (sent - failover.at).num_seconds().abs() <= 5,
        "webhook-timestamp {sent} vs received {}",
        failover.at
    );
    assert!(failover.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")));

    // The event, in fields.
    assert_eq!(body["type"], "failover", "{body:#}");
    assert_eq!(body["route"], "sip", "{body:#}");
    assert_eq!(body["active_site"], "virginia", "{body:#}");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("primary"), Some("failed_over")),
        "{body:#}"
    );
    assert!(body["reason"].as_str().is_some_and(|r| r.contains("softswitch")), "{body:#}");
    assert!(body["summary"].as_str().is_some_and(|s| s.contains("virginia")), "{body:#}");
    assert!(body["actor"].as_str().is_some_and(|a| !a.is_empty()), "{body:#}");
    assert_eq!(body["generation"].as_u64(), Some(before.generation() + 1), "{body:#}");
    let at = event_time(&failover);
    assert!(
        kill - chrono::Duration::seconds(1) <= at && at <= failover.at,
        "event time {at} (kill at {kill})"
    );

    // The primary softswitch's failure alerted too, naming the site and the service.
    let down = acknowledged_of_type(&all, "primary_service_down");
    assert_eq!(down.len(), 1, "{}", describe(&all));
    let down_body = down[0].json().unwrap();
    assert_eq!(
        (down_body["site"].as_str(), down_body["service"].as_str()),
        (Some("chicago"), Some("softswitch"))
    );

    // Every alert verifies with the reference library; a changed body or another secret does not.
    for request in &all {
        let (ok, said) = verified(SECRET, request, &request.text()).await;
        assert!(ok, "standardwebhooks refused {}: {said}", request.text());
    }
    let tampered = failover.text().replace("virginia", "chicago");
    let (ok, said) = verified(SECRET, &failover, &tampered).await;
    assert!(!ok && said.contains("signature"), "a changed body verified: {said}");
    let (ok, said) =
        verified("whsec_c3dpdGNoYmFjay10ZXN0LW90aGVyLXNlY3JldA==", &failover, &failover.text()).await;
    assert!(!ok, "another secret verified: {said}");

    // The outbox agrees: delivered at the first attempt, with the receiver's answer.
    let row = delivery(&running, id).await;
    assert_eq!(row["webhook"], "ops", "{row:#}");
    assert_eq!(row["status"], "delivered", "{row:#}");
    assert_eq!((row["attempts"].as_u64(), row["last_status"].as_u64()), (Some(1), Some(202)), "{row:#}");
}

#[tokio::test]
async fn refused_three_times_the_failover_alert_is_delivered_once_within_a_minute() {
    let mut sites = require!(Sites::start().await, PEERS);
    let receiver = Receiver::per_alert(&[500, 500, 500], 202).await.unwrap();
    let running = start(&sites.config().extra(&generic("ops", &receiver))).await;

    sites.stop_primary_softswitch();
    wait_acknowledged(&receiver, "failover", MINUTE + SOON).await;
    // Nothing left to send: any extra attempt would have come in by now.
    outbox_drained(&running, MINUTE).await;
    let all = receiver.received();
    let failover = of_type(&all, "failover");
    let id = failover[0].webhook_id().expect("no webhook-id").to_owned();
    let answers: Vec<u16> = failover.iter().map(|r| r.answered).collect();
    let ids: BTreeSet<&str> = failover.iter().filter_map(Received::webhook_id).collect();
    let gaps: Vec<Duration> =
        failover.windows(2).map(|pair| (pair[1].at - pair[0].at).to_std().unwrap_or_default()).collect();
    let acknowledged = failover.iter().find(|r| r.acknowledged()).unwrap();
    let delivered_after = (acknowledged.at - event_time(acknowledged)).to_std().unwrap();
    eprintln!(
        "failover alert: answers {answers:?}, gaps between attempts {gaps:?}, event -> delivered {delivered_after:?}\n{}",
        describe(&all)
    );

    assert_eq!(answers, [500, 500, 500, 202], "{}", describe(&all));
    assert_eq!(ids, BTreeSet::from([id.as_str()]), "the id changed between retries");
    let bodies: BTreeSet<String> =
        failover.iter().map(|r| r.json().unwrap()["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(bodies, BTreeSet::from([id.clone()]), "the body's id changed between retries");
    assert!(delivered_after <= MINUTE, "delivered {delivered_after:?} after the event");
    // Backoff: the first retry within about a second, the next ones waiting longer.
    assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(400)), "retries too close: {gaps:?}");
    assert!(gaps[0] <= Duration::from_secs(2), "first retry after {:?}", gaps[0]);
    assert!(gaps[2] > gaps[0], "no backoff: {gaps:?}");
    assert!(acknowledged_twice(&all).is_empty(), "{}", describe(&all));

    let row = delivery(&running, &id).await;
    assert_eq!(row["status"], "delivered", "{row:#}");
    assert_eq!((row["attempts"].as_u64(), row["last_status"].as_u64()), (Some(4), Some(202)), "{row:#}");
}

#[tokio::test]
async fn a_failback_alert_queued_while_the_receiver_is_down_arrives_once_after_a_restart() {
    let mut sites = require!(Sites::start().await, PEERS);
    let mut receiver = Receiver::always(202).await.unwrap();
    let mut running = start(&sites.config().extra(&generic("ops", &receiver))).await;

    sites.stop_primary_softswitch();
    wait_acknowledged(&receiver, "failover", SOON).await;
    outbox_drained(&running, SOON).await;
    receiver.stop().await;

    sites.start_primary_softswitch().await;
    // The failback happens, and its alert waits in the outbox: the receiver is dead (and
    // the hold-down's `recovering` alert ahead of it keeps failing).
    let queued = until("a failback alert pending behind failed attempts", SOON, || async {
        let transitions = running.events_of("transition").await.ok()?;
        let failback = transitions.iter().find(|e| e["route"] == "sip" && e["to"] == "primary")?;
        let rows = deliveries(&running).await;
        let row = rows.iter().find(|d| d["event_id"] == failback["id"])?.clone();
        let refused = rows.iter().any(|d| d["status"] == "pending" && !d["last_error"].is_null());
        let pending = row["status"] == "pending" && refused;
        (pending && running.status().await.ok()?.route("sip", "state") == "primary").then_some(row)
    })
    .await
    .unwrap_or_else(|err| panic!("{err:#}\n{}", running.process.log()));
    eprintln!("failback alert pending while the receiver is down: {queued:#}");
    assert!(queued["last_status"].is_null(), "{queued:#}");

    running.stop().await.unwrap();
    running.start_again().await.unwrap();
    let restarted = chrono::Utc::now();
    receiver.start_again().await.unwrap();

    wait_acknowledged(&receiver, "failback", MINUTE).await;
    outbox_drained(&running, MINUTE).await;
    // Anything sent twice would have come in by now: the outbox has nothing left to send.
    let all = receiver.received();
    eprintln!("after the restart:\n{}", describe(&all));
    let failbacks = of_type(&all, "failback");
    assert_eq!(failbacks.len(), 1, "{}", describe(&all));
    assert!(failbacks[0].at > restarted, "the failback alert arrived before the restart");
    let body = failbacks[0].json().unwrap();
    assert_eq!(
        (body["route"].as_str(), body["active_site"].as_str()),
        (Some("sip"), Some("chicago")),
        "{body:#}"
    );
    assert_eq!(body["to"], "primary", "{body:#}");
    assert_eq!(failbacks[0].webhook_id(), Some(format!("msg_sb{}", queued["id"]).as_str()));
    assert!(acknowledged_twice(&all).is_empty(), "acknowledged alerts sent again: {}", describe(&all));
    assert_eq!(of_type(&all, "failover").len(), 1, "{}", describe(&all));
    let hold_down = of_type(&all, "state_change");
    assert_eq!(hold_down.len(), 1, "the `recovering` alert, once: {}", describe(&all));
    assert!(hold_down[0].at <= failbacks[0].at, "alerts out of order: {}", describe(&all));

    let row = delivery(&running, failbacks[0].webhook_id().unwrap()).await;
    assert_eq!(row["status"], "delivered", "{row:#}");
}

#[tokio::test]
async fn pagerduty_gets_one_incident_triggered_by_the_failover_and_resolved_by_the_failback() {
    let mut sites = require!(Sites::start().await, PEERS);
    let receiver = Receiver::always(202).await.unwrap();
    let running = start(&sites.config().extra(&pagerduty("pager", &receiver))).await;
    let class = |r: &Received| r.json().ok().and_then(|b| b["payload"]["class"].as_str().map(str::to_owned));

    sites.stop_primary_softswitch();
    receiver
        .wait_until("a failover trigger", SOON, |all| {
            all.iter().any(|r| class(r).as_deref() == Some("failover"))
        })
        .await
        .unwrap();
    // The outage goes on for several check rounds: no new page for it.
    running.wait_rounds(4).await.unwrap();
    outbox_drained(&running, SOON).await;
    let during = receiver.received();
    let classes: Vec<String> = during.iter().filter_map(class).collect();
    eprintln!("during the outage:\n{}", describe(&during));
    assert_eq!(classes, ["primary_service_down", "failover"], "{}", describe(&during));

    sites.start_primary_softswitch().await;
    receiver
        .wait_until("a resolve", SOON, |all| {
            all.iter().any(|r| r.json().is_ok_and(|b| b["event_action"] == "resolve"))
        })
        .await
        .unwrap();
    outbox_drained(&running, SOON).await;
    let all = receiver.received();
    eprintln!("after the failback:\n{}", describe(&all));

    let bodies: Vec<Value> = all.iter().map(|r| r.json().unwrap()).collect();
    let actions: Vec<&str> = bodies.iter().map(|b| b["event_action"].as_str().unwrap_or("?")).collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"], "{}", describe(&all));
    let keys: BTreeSet<&str> = bodies.iter().map(|b| b["dedup_key"].as_str().unwrap_or("?")).collect();
    assert_eq!(keys, BTreeSet::from(["switchback/route/sip"]), "one incident per route outage");
    assert!(bodies.iter().all(|b| b["routing_key"] == ROUTING_KEY), "{bodies:#?}");
    assert!(all.iter().all(Received::acknowledged));

    let failover = &bodies[1]["payload"];
    assert_eq!(failover["severity"], "critical", "{failover:#}");
    assert_eq!(failover["source"], "switchback", "{failover:#}");
    assert_eq!(failover["component"], "sip", "{failover:#}");
    assert!(failover["summary"].as_str().is_some_and(|s| s.contains("virginia")), "{failover:#}");
    assert_eq!(failover["custom_details"]["type"], "failover", "{failover:#}");
    assert_eq!(failover["custom_details"]["active_site"], "virginia", "{failover:#}");
    assert!(
        bodies[2].get("payload").is_none_or(Value::is_null),
        "a resolve carries no payload: {:#}",
        bodies[2]
    );
}

/// PagerDuty unreachable through the failover, back before the failback: the trigger
/// waits out a long backoff while the resolve goes at once. Whatever is sent, the last
/// word PagerDuty accepts for the incident must be the resolve, or the incident stays
/// open after the route is home.
#[tokio::test]
async fn a_trigger_retried_after_the_failback_does_not_reopen_the_incident() {
    let mut sites = require!(Sites::start().await, PEERS);
    let up = Arc::new(AtomicBool::new(false));
    let receiver = {
        let up = up.clone();
        Receiver::start(move |_, _| if up.load(Ordering::SeqCst) { 202 } else { 503 }).await.unwrap()
    };
    let running = start(&sites.config().extra(&pagerduty("pager", &receiver))).await;
    let class = |r: &Received| r.json().ok().and_then(|b| b["payload"]["class"].as_str().map(str::to_owned));

    sites.stop_primary_softswitch();
    // Five refusals: the first trigger's next retry is 8 to 16 s away, and the failover
    // trigger queues behind it (a webhook's alerts go out in order).
    receiver
        .wait_until("the first trigger refused five times", MINUTE, |all| {
            all.iter().filter(|r| class(r).as_deref() == Some("primary_service_down")).count() >= 5
        })
        .await
        .unwrap();
    up.store(true, Ordering::SeqCst);
    sites.start_primary_softswitch().await;
    until("the sip route back on the primary", SOON, || async {
        (running.status().await.ok()?.route("sip", "state") == "primary").then_some(())
    })
    .await
    .unwrap();
    outbox_drained(&running, MINUTE).await;

    let all = receiver.received();
    eprintln!("{}", describe(&all));
    let accepted: Vec<Value> = all.iter().filter(|r| r.acknowledged()).map(|r| r.json().unwrap()).collect();
    let last = accepted.iter().rev().find(|b| b["dedup_key"] == "switchback/route/sip");
    assert_eq!(
        last.map(|b| b["event_action"].clone()),
        Some(json!("resolve")),
        "after the failback the incident was left triggered: {}",
        describe(&all)
    );
}

#[tokio::test]
async fn a_400_answer_is_final_and_shown_as_failed() {
    let mut sites = require!(Sites::start().await, PEERS);
    let receiver = Receiver::always(400).await.unwrap();
    let running = start(&sites.config().extra(&generic("ops", &receiver))).await;

    sites.stop_primary_softswitch();
    let all = receiver
        .wait_until("a failover alert", SOON, |all| !of_type(all, "failover").is_empty())
        .await
        .unwrap();
    let id = of_type(&all, "failover")[0].webhook_id().unwrap().to_owned();
    let status = outbox_drained(&running, SOON).await;
    // Longer than the first retry would wait (at most a second), seen by the monitor.
    running.wait_rounds(3).await.unwrap();

    let all = receiver.received();
    eprintln!("{}", describe(&all));
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for request in &all {
        *per_id.entry(request.webhook_id().unwrap_or("-")).or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "a refused alert was sent again: {per_id:?}");
    let row = delivery(&running, &id).await;
    assert_eq!(row["status"], "failed", "{row:#}");
    assert_eq!((row["attempts"].as_u64(), row["last_status"].as_u64()), (Some(1), Some(400)), "{row:#}");
    assert!(row["last_error"].as_str().is_some_and(|e| e.contains("400")), "{row:#}");
    let (pending, _, failed) = counts(&status);
    assert_eq!(pending, 0);
    assert!(failed >= 1, "{}", status.0["alerts"]);
    assert_eq!(counts(&running.status().await.unwrap()), counts(&status), "the counts moved after the end");

    let metrics = running.get("/metrics").await.unwrap().text();
    let line = metrics.lines().find(|l| l.starts_with("switchback_alerts{status=\"failed\"}"));
    let shown: Option<u64> = line.and_then(|l| l.rsplit(' ').next()?.parse().ok());
    assert_eq!(shown, Some(failed), "metrics: {line:?}");
}

// ---- provisioning scans ------------------------------------------------------------------

/// A source blocked for scanning phone files: Slack hears of it, PagerDuty opens an
/// incident keyed by the source (and a second source would be a second incident).
/// No peers needed: the sites are closed ports, so the monitor is blind, which alerts too.
#[tokio::test]
async fn a_blocked_scan_goes_to_slack_and_pages_an_incident_of_its_own() {
    let receiver = Receiver::always(200).await.unwrap();
    let site = || SiteAddrs::offline().unwrap();
    let slack =
        format!("[[alerts]]\nname = \"chat\"\nurl = \"{}\"\nformat = \"slack\"\n", receiver.url("chat"));
    let builder = ConfigBuilder::new(site(), site())
        .extra("[provisioning]\nscan_limit = 3\nblock_for = \"5m\"\n")
        .extra(&pagerduty("pager", &receiver))
        .extra(&slack);
    let running = Running::start(BINARY, &builder, &[]).await.unwrap();
    let scanner = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..5 {
        let url = running.url(&format!("/prov/yealink/001565{:06x}.cfg", 0xab0000 + i));
        scanner.get(url).send().await.unwrap();
    }

    let to = |name: &str, r: &Received| r.path.ends_with(&format!("/{name}"));
    let page =
        |r: &Received| to("pager", r) && r.json().is_ok_and(|b| b["payload"]["class"] == "provisioning_scan");
    let chat = |r: &Received| to("chat", r) && r.text().contains("127.0.0.9");
    let all = receiver
        .wait_until("the scan paged and in the chat", SOON, |all| {
            all.iter().any(page) && all.iter().any(chat)
        })
        .await
        .unwrap_or_else(|err| panic!("{err:#}\n{}", running.process.log()));
    eprintln!("{}", describe(&all));

    let pages: Vec<Value> = all.iter().filter(|r| page(r)).map(|r| r.json().unwrap()).collect();
    assert_eq!(pages.len(), 1, "{}", describe(&all));
    assert_eq!(pages[0]["event_action"], "trigger");
    assert_eq!(pages[0]["dedup_key"], "switchback/provisioning/127.0.0.9");
    assert_eq!(pages[0]["payload"]["severity"], "warning");
    assert_eq!(pages[0]["payload"]["custom_details"]["type"], "provisioning_scan");
    assert_eq!(pages[0]["payload"]["custom_details"]["actor"], "127.0.0.9");

    let chats: Vec<Value> = all.iter().filter(|r| chat(r)).map(|r| r.json().unwrap()).collect();
    assert_eq!(chats.len(), 1, "{}", describe(&all));
    let text = chats[0]["text"].as_str().unwrap();
    assert!(text.starts_with(":warning:") && text.contains("blocked") && text.contains("5m"), "{text}");
}

#[tokio::test]
async fn alerts_test_reports_each_webhook_and_exits_1_when_one_refuses() {
    let (accepting, refusing) = (Receiver::always(202).await.unwrap(), Receiver::always(400).await.unwrap());
    let site = || SiteAddrs::offline().unwrap();
    let slack =
        format!("[[alerts]]\nname = \"chat\"\nurl = \"{}\"\nformat = \"slack\"\n", refusing.url("chat"));
    let config = ConfigBuilder::new(site(), site())
        .extra(&generic("oncall", &accepting))
        .extra(&slack)
        .write()
        .unwrap();

    let output = Command::new(BINARY)
        .args(["alerts", "test", "--config"])
        .arg(config.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(MINUTE, output).await.expect("alerts test hung").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("exit {:?}\n{stdout}---- stderr:\n{stderr}", output.status.code());

    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
            .to_owned()
    };
    let (ok, refused) = (line("oncall"), line("chat"));
    assert!(ok.contains("generic") && ok.contains(&accepting.url("oncall")) && ok.contains("202"), "{ok}");
    assert!(ok.contains("delivered") && !ok.contains("NOT"), "{ok}");
    assert!(
        refused.contains("slack") && refused.contains(&refusing.url("chat")) && refused.contains("400"),
        "{refused}"
    );
    assert!(refused.contains("NOT delivered"), "{refused}");

    let (got, refused_got) = (accepting.received(), refusing.received());
    assert_eq!(
        (got.len(), refused_got.len()),
        (1, 1),
        "one test alert each:\n{}\n{}",
        describe(&got),
        describe(&refused_got)
    );
    let test = got[0].json().unwrap();
    assert_eq!(test["type"], "test", "{test:#}");
    assert_eq!(got[0].webhook_id(), test["id"].as_str());
    assert!(refused_got[0].json().unwrap()["text"].as_str().is_some_and(|t| !t.is_empty()));
}
