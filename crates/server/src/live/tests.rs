use std::time::Duration;

use axum::body::Body;
use axum::http::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use switchback_core::{Action, CheckResult, Role, Route, ServiceId, ServiceKind};
use switchback_provisioning::fetch::PhoneFetch;

use super::{MAX_STREAMS, MAX_STREAMS_PER_SOURCE};
use crate::testing::{json, phone, until, TestApp};

/// Well over what a change takes to reach a stream, well under the once-a-second refresh
/// that would hide a missed wake-up... except where the refresh is what is tested.
const PROMPTLY: Duration = Duration::from_millis(900);

/// The events of one `/api/stream` response.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp) -> Self {
        let response = app.get("/api/stream").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self::of(response)
    }

    fn of(response: Response<Body>) -> Self {
        Self { body: response.into_body(), buffer: String::new() }
    }

    /// The next event's name and data; `None` when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|line| line.strip_prefix(name)).map(|v| v.trim_start().to_owned())
                };
                let (Some(event), Some(data)) = (field("event:"), field("data:")) else { continue };
                let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
                return Some((event, data));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}; unread: {:?}", self.buffer))?;
            let frame = frame.unwrap_or_else(|e| panic!("stream failed: {e}"));
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap_or_else(|e| panic!("{e}")));
            }
        }
    }

    async fn status(&mut self, within: Duration) -> Value {
        let (event, data) = self.next(within).await.unwrap_or_else(|| panic!("the stream ended"));
        assert_eq!(event, "status");
        data
    }
}

fn sip(status: &Value) -> (&str, &str) {
    let route = &status["routes"]["sip"];
    (route["state"].as_str().unwrap_or_default(), route["active_site"].as_str().unwrap_or_default())
}

fn served(app: &TestApp, n: u64) -> PhoneFetch {
    let phone = phone(n);
    PhoneFetch {
        mac: phone.mac,
        vendor: phone.vendor,
        at: app.state.clock.now(),
        generation: app.state.generations.current().number(),
        source: std::net::IpAddr::from([127, 0, 0, 1]),
        user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
        count: 1,
    }
}

#[tokio::test]
async fn the_status_is_answered_from_memory_even_with_the_store_closed() {
    let app = TestApp::start(6).await;
    let softswitch = ServiceId::new(Role::Primary, ServiceKind::Softswitch);
    let now = app.state.clock.now();
    app.state.recent_checks.observe(&[CheckResult::failed(softswitch, "timeout", now)]);
    app.state.fetches.record(served(&app, 0));
    app.state.store.close().await;

    let status = app.get_json("/api/status").await;
    assert_eq!(sip(&status), ("primary", "chicago"));
    assert_eq!(status["generation"], 1);
    assert_eq!(status["store"]["up"], true);
    // Checks and fetches show within the second's refresh (checks at once in a running
    // switchback, whose round publishes a new engine state after them).
    let status = until("the check and the fetch shown", PROMPTLY * 2, || async {
        let status = app.get_json("/api/status").await;
        (status["phones"]["on_current_generation"] == 1).then_some(status)
    })
    .await;
    let service = status["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["role"] == "primary" && s["kind"] == "softswitch"))
        .unwrap_or_else(|| panic!("no primary softswitch in {status}"));
    assert_eq!(service["recent"][0]["reason"], "timeout", "{service}");
    let phones = &status["phones"];
    assert_eq!(phones["total"], 6);
    assert_eq!(phones["stale"], 5);
    assert_eq!(phones["by_vendor"]["yealink"], serde_json::json!({"total": 3, "on_current_generation": 1}));
    assert_eq!(phones["by_vendor"]["linksys"], serde_json::json!({"total": 3, "on_current_generation": 0}));
}

#[tokio::test]
async fn an_operator_sees_the_outcome_of_an_action_in_the_very_next_status() {
    let app = TestApp::start(2).await;
    assert_eq!(sip(&app.get_json("/api/status").await), ("primary", "chicago"));
    assert_eq!(app.act("sip", "failover").await, 200);
    let status = app.get_json("/api/status").await;
    assert_eq!(sip(&status), ("failed_over", "virginia"));
    assert_eq!(status["routes"]["sip"]["mode"], "forced");
}

#[tokio::test]
async fn between_a_change_and_the_hubs_rebuild_the_status_is_built_on_the_spot() {
    let app = TestApp::start(1).await;
    let live = super::Live::start(app.state.clone(), &app.shutdown);
    let step = app.engine.borrow().operate(Route::Sip, Action::Failover, "test", "", app.state.clock.now());
    app.engine.send_replace(step.unwrap_or_else(|e| panic!("{e}")).next);
    // Nothing was awaited since the change: the hub (on this one thread) has not run.
    assert_eq!(live.snapshots.borrow().status.routes.sip.state, "primary");
    assert_eq!(live.current(&app.state).status.routes.sip.state, "failed_over");
}

#[tokio::test]
async fn the_stream_sends_the_snapshot_then_every_change() {
    let app = TestApp::start(4).await;
    let mut events = Events::open(&app).await;
    let first = events.status(PROMPTLY).await;
    assert_eq!(first, app.get_json("/api/status").await, "the first event is the status");
    assert_eq!(sip(&first), ("primary", "chicago"));

    // The decider publishes a new state: a failover.
    app.clock.advance(Duration::from_secs(1));
    let step = app.engine.borrow().operate(Route::Sip, Action::Failover, "test", "", app.state.clock.now());
    app.engine.send_replace(step.unwrap_or_else(|e| panic!("{e}")).next);
    let moved = events.status(PROMPTLY).await;
    assert_eq!(sip(&moved), ("failed_over", "virginia"));
    assert_eq!(moved["generation"], 1, "the new generation is not served yet");

    // The renderer swaps the new generation in.
    app.follow_generation(4);
    let swapped = events.status(PROMPTLY).await;
    assert_eq!(swapped["generation"], 2);
    assert_eq!(swapped["phones"]["on_current_generation"], 0);

    // A phone fetches it: counted within the second's refresh.
    app.state.fetches.record(served(&app, 1));
    let fetched = events.status(PROMPTLY * 2).await;
    assert_eq!(fetched["phones"]["on_current_generation"], 1);
    assert_eq!(fetched["phones"]["by_vendor"]["linksys"]["on_current_generation"], 1);

    // The store stops taking writes.
    app.state.store_health.failed("disk full");
    let down = events.status(PROMPTLY).await;
    assert_eq!(down["store"], serde_json::json!({"up": false, "error": "disk full"}));
}

#[tokio::test]
async fn nothing_is_sent_while_nothing_changes() {
    let app = TestApp::start(2).await;
    let mut events = Events::open(&app).await;
    events.status(PROMPTLY).await;
    // A refresh or two go by: the same snapshot each time, so no event.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), events.next(Duration::from_secs(3))).await;
    assert!(quiet.is_err(), "an event without a change: {quiet:?}");
}

#[tokio::test]
async fn streams_are_capped_and_counted() {
    let app = TestApp::start(1).await;
    let mut open = Vec::new();
    for n in 0..MAX_STREAMS {
        // Many dashboards, each source within its share.
        let source = std::net::Ipv4Addr::new(10, 0, (n / 200) as u8, (n % 200) as u8).into();
        let response = app.get_from("/api/stream", source).await;
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let refused = app.get_from("/api/stream", std::net::Ipv4Addr::new(10, 9, 9, 9).into()).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    let error = json(refused).await;
    assert!(error["error"].as_str().is_some_and(|e| e.contains("too many dashboard streams")), "{error}");
    assert!(metrics(&app).await.contains(&format!("switchback_dashboard_streams {MAX_STREAMS}\n")));

    // A dashboard that leaves frees its slot.
    open.pop();
    assert!(metrics(&app).await.contains(&format!("switchback_dashboard_streams {}\n", MAX_STREAMS - 1)));
    let mut again = Events::of(app.get("/api/stream").await);
    again.status(PROMPTLY).await;
    // The status itself is never refused.
    assert_eq!(app.get("/api/status").await.status(), 200);
}

/// One source cannot take every slot: beyond its share it is refused while others are
/// not, and a stream that ends gives its slot back.
#[tokio::test]
async fn one_source_holds_at_most_its_share_of_streams() {
    let app = TestApp::start(1).await;
    let scanner: std::net::IpAddr = "2001:db8:7:7::1".parse().unwrap_or_else(|e| panic!("{e}"));
    let same_64: std::net::IpAddr = "2001:db8:7:7::2".parse().unwrap_or_else(|e| panic!("{e}"));
    let mut held = Vec::new();
    for _ in 0..MAX_STREAMS_PER_SOURCE {
        let response = app.get_from("/api/stream", scanner).await;
        assert_eq!(response.status(), 200);
        held.push(response);
    }
    assert_eq!(app.get_from("/api/stream", scanner).await.status(), 503);
    assert_eq!(app.get_from("/api/stream", same_64).await.status(), 503, "an IPv6 /64 is one source");
    let mut operator = Events::of(app.get("/api/stream").await);
    operator.status(PROMPTLY).await;
    held.pop();
    assert_eq!(app.get_from("/api/stream", scanner).await.status(), 200, "the slot came back");
}

async fn metrics(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn streams_end_when_the_server_shuts_down() {
    let app = TestApp::start(1).await;
    let mut first = Events::open(&app).await;
    let mut second = Events::open(&app).await;
    first.status(PROMPTLY).await;
    second.status(PROMPTLY).await;
    app.shutdown.cancel();
    assert!(first.next(PROMPTLY).await.is_none(), "the stream outlived the server");
    assert!(second.next(PROMPTLY).await.is_none(), "the stream outlived the server");
    until("the streams uncounted", PROMPTLY, || async {
        metrics(&app).await.contains("switchback_dashboard_streams 0\n").then_some(())
    })
    .await;
}
