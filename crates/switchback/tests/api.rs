//! The operator and read APIs of a running `switchback run`, over HTTP: every path and
//! every way in (admin and read bearer tokens, dashboard session with CSRF token) and out
//! (401 with nothing changed, 403 for the read token acting, 404 and 409 as JSON, 429 for
//! a source that made too many failed attempts), the event history and its paging, the
//! phones list and its filters, the OpenAPI document, Prometheus metrics, and the login
//! form with its rate limit.
//!
//! Failed logins and wrong tokens count per source address (5 a minute), and the harness
//! reads `/api/` from 127.0.0.1 with the read token: tests that send wrong tokens send
//! them from their own 127.0.0.x address, at most 4 per address unless the limit is the
//! point.
//!
//! Tests whose answers depend on the monitor run against a [`Lab`] of real peers; the
//! others against sites where nothing listens (the monitor is blind and moves nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;
use switchback_tests::lab::{sample_phones, Lab, Running, Status};
use switchback_tests::require;
use switchback_tests::switchback::{read, ConfigBuilder, HttpResponse, SiteAddrs, HARNESS_READ_TOKEN};
use switchback_tests::wait::until;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const PEERS: &str = "kamailio, coturn, postgresql and mariadb";
const TOKEN: &str = "api-test-token-3f9c";
/// `server.read_token` of every config the harness writes.
const READ_TOKEN: &str = HARNESS_READ_TOKEN;
/// Long enough that a resumed route does not fail back while a test looks at it.
const FAILBACK_AFTER: Duration = Duration::from_secs(120);

/// Real peers at both sites, every one healthy, and switchback with the admin token.
async fn with_lab(lab: &Lab) -> Running {
    let builder = lab.config().admin_token(TOKEN).failback_after(FAILBACK_AFTER);
    let running = Running::start(BINARY, &builder, &sample_phones()).await.unwrap();
    until("every service checked healthy", Duration::from_secs(15), || async {
        let status = running.status().await.ok()?;
        let services = status.0["services"].as_array()?;
        (services.len() == 6 && services.iter().all(|s| s["healthy"] == true)).then_some(())
    })
    .await
    .unwrap();
    running
}

/// Sites where nothing listens; switchback with the admin token.
async fn offline() -> Running {
    let site = || SiteAddrs::offline().unwrap();
    let builder = ConfigBuilder::new(site(), site()).admin_token(TOKEN).failback_after(FAILBACK_AFTER);
    Running::start(BINARY, &builder, &sample_phones()).await.unwrap()
}

/// What an operator action may change: each route's state, site and mode, and the generation.
fn routes(status: &Status) -> (u64, [(String, String, String); 2]) {
    (status.generation(), [status.summary("sip"), status.summary("stun")])
}

/// Waits until the generation after `was` is served (the swap follows the decision by a
/// moment), and answers its number.
async fn next_generation_served(running: &Running, was: u64) -> u64 {
    until("the next generation served", Duration::from_secs(10), || async {
        (running.status().await.ok()?.generation() == was + 1).then_some(was + 1)
    })
    .await
    .unwrap()
}

fn assert_json_error(response: &HttpResponse, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert!(response.header("content-type").unwrap_or_default().contains("application/json"), "{what}");
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {body}");
}

// ---- bearer token ------------------------------------------------------------------------

/// With real peers and phones: a refused action moves no phone. Each way a token can be
/// wrong is in the router's in-process tests (`crates/server/src/routes_tests.rs`).
#[tokio::test]
async fn without_the_token_actions_are_refused_and_change_nothing() {
    let lab = require!(Lab::start().await, PEERS);
    let running = with_lab(&lab).await;
    let before = routes(&running.status().await.unwrap());
    for action in ["failover", "failback", "pause", "resume"] {
        let response = running.act("sip", action, None, None).await.unwrap();
        assert_json_error(&response, 401, &format!("{action} without a token"));
        let response = running.act("stun", action, Some("wrong-token-0123456789"), None).await.unwrap();
        assert_json_error(&response, 401, &format!("{action} with a wrong token"));
    }
    let after = running.status().await.unwrap();
    assert_eq!(routes(&after), before, "a refused action changed something");
    assert!(running.events_of("operator").await.unwrap().is_empty());
    let files = running.pointings().await.unwrap();
    assert!(files.iter().all(|p| *p == lab.on_primary()), "{files:?}");
}

#[tokio::test]
async fn a_forced_failover_moves_phones_and_records_who_and_why() {
    let lab = require!(Lab::start().await, PEERS);
    let running = with_lab(&lab).await;
    let before = running.status().await.unwrap();

    let request = running
        .client()
        .post(running.url("/api/routes/sip/failover"))
        .bearer_auth(TOKEN)
        .header("x-switchback-actor", "alice")
        .header("content-type", "application/json")
        .body(r#"{"reason": "planned maintenance of sip1.chi"}"#);
    let response = read(request.send().await.unwrap()).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["route"], "sip");
    assert_eq!(reply["action"], "failover");
    assert_eq!(reply["actor"], "alice");
    assert_eq!(reply["state"], "failed_over");
    assert_eq!(reply["active_site"], "virginia");
    assert_eq!(reply["mode"], "forced");

    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("failed_over".into(), "virginia".into(), "forced".into()));
    assert_eq!(status.summary("stun"), before.summary("stun"));
    next_generation_served(&running, before.generation()).await;
    let away = lab.pointing(&lab.backup, &lab.primary);
    until("phones on the backup", Duration::from_secs(10), || async {
        running.pointings().await.ok()?.iter().all(|p| *p == away).then_some(())
    })
    .await
    .unwrap();

    let operator = running.events_of("operator").await.unwrap();
    assert_eq!(operator.len(), 1, "{operator:?}");
    let event = &operator[0];
    assert_eq!(event["actor"], "alice");
    assert_eq!(event["route"], "sip");
    assert_eq!(event["to"], "failed_over");
    assert_eq!(event["active_site"], "virginia");
    assert!(event["reason"].as_str().unwrap().contains("planned maintenance of sip1.chi"), "{event}");
    assert!(event["reason"].as_str().unwrap().contains("failover"), "{event}");

    // Forced: the rules hold off while every primary service is healthy, round after round.
    running.wait_rounds(2).await.unwrap();
    let held = running.status().await.unwrap();
    assert_eq!(held.summary("sip"), ("failed_over".into(), "virginia".into(), "forced".into()));
    assert_eq!(held.service("primary", "softswitch").unwrap()["healthy"], true);

    // Without an actor header or a body, the action still names an actor.
    let response = running.act("sip", "failback", Some(TOKEN), None).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let reply: Value = response.json().unwrap();
    assert_eq!((reply["state"].as_str(), reply["active_site"].as_str()), (Some("primary"), Some("chicago")));
    assert_eq!(reply["mode"], "forced");
    assert!(!reply["actor"].as_str().unwrap().is_empty());
    let response = running.act("sip", "resume", Some(TOKEN), None).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json::<Value>().unwrap()["mode"], "auto");
    let status = running.status().await.unwrap();
    assert_eq!(status.summary("sip"), ("primary".into(), "chicago".into(), "auto".into()));
    let operator = running.events_of("operator").await.unwrap();
    assert_eq!(operator.len(), 3, "{operator:?}");
    assert_eq!(operator[0]["reason"].as_str().map(|r| r.contains("resume")), Some(true), "{operator:?}");
}

#[tokio::test]
async fn pause_and_resume_hold_and_release_a_route() {
    let mut lab = require!(Lab::start().await, PEERS);
    let running = with_lab(&lab).await;
    let act = |route: &'static str, action: &'static str| running.act(route, action, Some(TOKEN), None);

    // Nothing to resume on an automatic route.
    for route in ["sip", "stun"] {
        let response = act(route, "resume").await.unwrap();
        assert_json_error(&response, 409, &format!("resume {route} on auto"));
    }
    let response = act("stun", "pause").await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let reply: Value = response.json().unwrap();
    assert_eq!((reply["state"].as_str(), reply["mode"].as_str()), (Some("primary"), Some("paused")));
    assert_json_error(&act("stun", "pause").await.unwrap(), 409, "pause on a paused route");
    let status = running.status().await.unwrap();
    assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "paused".into()));
    assert_eq!(status.summary("sip").2, "auto", "pausing stun touched sip");

    // Paused means paused: the primary STUN server dies and phones stay where they are.
    let generation = status.generation();
    lab.primary.stop_stun();
    until("the dead STUN server seen", Duration::from_secs(10), || async {
        let status = running.status().await.ok()?;
        (status.service("primary", "stun")?["healthy"] == false).then_some(())
    })
    .await
    .unwrap();
    let status = running.status().await.unwrap();
    assert_eq!(status.summary("stun"), ("primary".into(), "chicago".into(), "paused".into()));
    assert_eq!(status.generation(), generation);

    // Resumed, the rules take over and fail it over.
    let response = act("stun", "resume").await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json::<Value>().unwrap()["mode"], "auto");
    assert_json_error(&act("stun", "resume").await.unwrap(), 409, "resume twice");
    let away = lab.pointing(&lab.primary, &lab.backup);
    until("stun failed over after resume", Duration::from_secs(10), || async {
        running.pointings().await.ok()?.iter().all(|p| *p == away).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(running.status().await.unwrap().summary("stun").0, "failed_over");

    // A forced route can be paused, and pausing a forced route is not resuming it.
    assert_eq!(act("sip", "failover").await.unwrap().status, 200);
    let response = act("sip", "pause").await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        running.status().await.unwrap().summary("sip"),
        ("failed_over".into(), "virginia".into(), "paused".into())
    );
}

#[tokio::test]
async fn without_a_configured_token_actions_are_off() {
    let site = || SiteAddrs::offline().unwrap();
    let running = Running::start(BINARY, &ConfigBuilder::new(site(), site()), &[]).await.unwrap();
    for token in [None, Some(""), Some("anything")] {
        let response = running.act("sip", "failover", token, None).await.unwrap();
        assert_json_error(&response, 401, &format!("token {token:?}"));
    }
    let form = [("name", "eve"), ("token", "")];
    let response =
        read(no_redirects().post(running.url("/login")).form(&form).send().await.unwrap()).await.unwrap();
    assert_eq!(response.status, 303);
    assert!(response.header("set-cookie").is_none(), "an empty token opened a session");
    assert_eq!(running.status().await.unwrap().summary("sip").0, "primary");
}

// ---- who may read, and the read token -----------------------------------------------------

/// Paths that carry phone data or history: a token or a session is needed.
const READ_APIS: [&str; 3] = ["/api/phones", "/api/events", "/api/alerts"];
/// Paths that carry none and stay open.
const OPEN_PATHS: [&str; 5] = ["/", "/api/status", "/healthz", "/metrics", "/api/openapi.json"];

/// `method path` from `client` with `headers`; any status.
async fn send(
    running: &Running,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut request = client.request(method, running.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await.unwrap()
}

#[tokio::test]
async fn read_apis_answer_the_admin_token_the_read_token_and_a_session_and_nobody_else() {
    let running = offline().await;
    let client = no_redirects();
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let client = client.clone();
        let running = &running;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send(running, &client, reqwest::Method::GET, path, &headers).await
        }
    };
    let cookie = session_cookie(login(&running, &client, "alice", TOKEN).await.header("set-cookie").unwrap());
    for path in READ_APIS {
        let refused = get(path, Vec::new()).await;
        assert_json_error(&refused, 401, &format!("{path} without credentials"));
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"), "{path}");
        let forged = get(path, vec![("cookie", "sb_session=forged0123456789".to_owned())]).await;
        assert_json_error(&forged, 401, &format!("{path} with a forged session"));
        for (what, headers) in [
            ("the admin token", vec![("authorization", format!("Bearer {TOKEN}"))]),
            ("the read token", vec![("authorization", format!("Bearer {READ_TOKEN}"))]),
            ("the read token, scheme in lowercase", vec![("authorization", format!("bearer {READ_TOKEN}"))]),
            ("a session, no CSRF token", vec![("cookie", cookie.clone())]),
        ] {
            let response = get(path, headers).await;
            assert_eq!(response.status, 200, "{path} with {what}: {}", response.text());
            assert!(
                response.header("content-type").unwrap_or_default().contains("json"),
                "{path} with {what}"
            );
        }
    }
    for path in OPEN_PATHS {
        let response = get(path, Vec::new()).await;
        assert_eq!(response.status, 200, "{path} is open: {}", response.text());
    }
    // The page without a session names no phone and lists no event.
    let page = get("/", Vec::new()).await.text();
    assert!(page.contains(r#"data-session="false""#) && page.contains("Log in to see phones and events."));
    assert!(!page.contains(r#"data-testid="event""#) && !page.contains(&sample_phones()[0].mac), "{page}");
    let page = get("/", vec![("cookie", cookie.clone())]).await.text();
    assert!(page.contains(r#"data-session="true""#) && page.contains(r#"data-testid="events""#));

    // After logout the cookie reads nothing.
    let out = send(&running, &client, reqwest::Method::POST, "/logout", &[("cookie", &cookie)]).await;
    assert_eq!(out.status, 303);
    for path in READ_APIS {
        assert_json_error(
            &get(path, vec![("cookie", cookie.clone())]).await,
            401,
            &format!("{path} after logout"),
        );
    }
}

#[tokio::test]
async fn the_read_token_cannot_act() {
    let running = offline().await;
    let before = routes(&running.status().await.unwrap());
    for action in ["failover", "failback", "pause", "resume"] {
        let response = running.act("sip", action, Some(READ_TOKEN), None).await.unwrap();
        assert_json_error(&response, 403, &format!("{action} with the read token"));
        assert_eq!(response.json::<Value>().unwrap()["error"], "the read token cannot act");
    }
    // Nor open a dashboard session.
    let response =
        login(&running, &no_redirects_from(Some(Ipv4Addr::new(127, 0, 0, 60))), "eve", READ_TOKEN).await;
    assert_eq!(response.header("location"), Some("/?login=failed"));
    assert!(response.header("set-cookie").is_none());
    assert_eq!(routes(&running.status().await.unwrap()), before, "the read token changed something");
    assert!(running.events_of("operator").await.unwrap().is_empty());
    // Being a right token, it used up nothing: the admin token still acts from here.
    assert_eq!(running.act("stun", "pause", Some(TOKEN), None).await.unwrap().status, 200);
}

#[tokio::test]
async fn the_sixth_wrong_token_in_a_minute_is_refused_and_so_is_the_right_one_after_it() {
    let running = offline().await;
    let before = routes(&running.status().await.unwrap());
    let source = Ipv4Addr::new(127, 0, 0, 30);
    let attacker = no_redirects_from(Some(source));
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let bearer = |token: &str| format!("Bearer {token}");

    // Five failures, on reads, actions and the login form alike: each answered as usual.
    let wrong = [
        (get.clone(), "/api/events", "Bearer guess-one-0123456789".to_owned()),
        (post.clone(), "/api/routes/sip/failover", "Bearer guess-two-0123456789".to_owned()),
        (get.clone(), "/api/phones", format!("Basic {READ_TOKEN}")),
        (get.clone(), "/api/alerts", bearer(&format!("{READ_TOKEN}x"))),
    ];
    for (method, path, authorization) in &wrong {
        let response =
            send(&running, &attacker, method.clone(), path, &[("authorization", authorization)]).await;
        assert_json_error(&response, 401, &format!("{method} {path} with {authorization}"));
    }
    let failed = login(&running, &attacker, "mallory", "guess-five-0123456789").await;
    assert_eq!(failed.header("location"), Some("/?login=failed"));

    // The sixth: 429, whatever it holds.
    let sixth =
        send(&running, &attacker, get.clone(), "/api/events", &[("authorization", &bearer("guess-six"))])
            .await;
    assert_json_error(&sixth, 429, "the sixth wrong token");
    assert!(sixth.header("retry-after").is_some(), "{:?}", sixth.headers);
    for (method, path, token) in [
        (post.clone(), "/api/routes/sip/failover", TOKEN),
        (get.clone(), "/api/events", TOKEN),
        (get.clone(), "/api/phones", READ_TOKEN),
    ] {
        let response =
            send(&running, &attacker, method.clone(), path, &[("authorization", &bearer(token))]).await;
        assert_json_error(&response, 429, &format!("{method} {path} with the right token while limited"));
    }
    let limited = login(&running, &attacker, "mallory", TOKEN).await;
    assert_eq!(limited.header("location"), Some("/?login=limited"));
    assert!(limited.header("set-cookie").is_none(), "a session while limited");

    // Without a token the same source gets its normal answers.
    for path in OPEN_PATHS {
        let response = send(&running, &attacker, get.clone(), path, &[]).await;
        assert_eq!(response.status, 200, "{path} from the limited source: {}", response.text());
    }
    let response = send(&running, &attacker, get.clone(), "/api/events", &[]).await;
    assert_json_error(&response, 401, "/api/events from the limited source without a token");

    // Another source is not limited.
    let operator = no_redirects_from(Some(Ipv4Addr::new(127, 0, 0, 31)));
    let response =
        send(&running, &operator, get.clone(), "/api/events", &[("authorization", &bearer(TOKEN))]).await;
    assert_eq!(response.status, 200, "{}", response.text());

    assert_eq!(routes(&running.status().await.unwrap()), before, "a refused request changed something");
    assert!(running.events_of("operator").await.unwrap().is_empty());
    let log = running.process.log();
    assert!(log.contains("bearer token refused") && log.contains("login failed"), "{log}");
    assert!(log.contains("127.0.0.30"), "the log does not name the source:\n{log}");
    for secret in ["guess-one", "guess-two", "guess-six", TOKEN, READ_TOKEN] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }
}

// ---- read APIs ---------------------------------------------------------------------------

#[tokio::test]
async fn events_are_newest_first_and_paged_with_before() {
    let lab = require!(Lab::start().await, PEERS);
    let running = with_lab(&lab).await;
    for _ in 0..4 {
        for action in ["pause", "resume"] {
            let response = running.act("stun", action, Some(TOKEN), None).await.unwrap();
            assert_eq!(response.status, 200, "{}", response.text());
        }
    }
    let all = running.get_json("/api/events?limit=500").await.unwrap();
    assert!(all["next_before"].is_null(), "one page holds everything: {}", all["next_before"]);
    let ids: Vec<i64> = all["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.len() >= 8, "{all}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first: {ids:?}");
    let times: Vec<&str> =
        all["events"].as_array().unwrap().iter().map(|e| e["at"].as_str().unwrap()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "times not newest first: {times:?}");
    let newest = &all["events"][0];
    assert_eq!((newest["kind"].as_str(), newest["route"].as_str()), (Some("operator"), Some("stun")));
    assert!(newest["reason"].as_str().unwrap().contains("resume"), "{newest}");

    // Pages of three, following next_before, give the same events once each, in order.
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    for page_number in 0.. {
        assert!(page_number <= ids.len(), "paging does not end");
        let path = match before {
            Some(before) => format!("/api/events?limit=3&before={before}"),
            None => "/api/events?limit=3".to_owned(),
        };
        let page = running.get_json(&path).await.unwrap();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 3, "{page}");
        if let Some(before) = before {
            assert!(events.iter().all(|e| e["id"].as_i64().unwrap() < before), "{page}");
        }
        paged.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before"].as_i64() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["id"].as_i64()), "{page}");
                before = Some(next);
            }
            None => break,
        }
    }
    // The monitor may have added events at the top while paging; the rest line up.
    let newest_paged = paged[0];
    let expected: Vec<i64> = ids.iter().copied().filter(|&id| id <= newest_paged).collect();
    assert_eq!(paged, expected);

    let response = running.get("/api/events?limit=abc").await.unwrap();
    assert_eq!(response.status, 400, "{}", response.text());
}

#[tokio::test]
async fn phones_are_listed_with_stale_and_generation_filters() {
    let phones = sample_phones();
    let running = offline().await;
    let list = |query: &'static str| running.get_json(query);
    let macs = |page: &Value| -> BTreeSet<String> {
        page["phones"].as_array().unwrap().iter().map(|p| p["mac"].as_str().unwrap().to_owned()).collect()
    };

    let all = list("/api/phones").await.unwrap();
    assert_eq!(all["total"], phones.len());
    assert_eq!(macs(&all), phones.iter().map(|p| p.mac.clone()).collect());
    let never_seen = list("/api/phones?stale=true").await.unwrap();
    assert_eq!(never_seen["total"], phones.len(), "a phone never seen is stale: {never_seen}");
    assert_eq!(list("/api/phones?stale=false").await.unwrap()["total"], 0);

    let generation = running.status().await.unwrap().generation();
    let user_agent = "Yealink SIP-T46S 66.86.0.15 00:15:65:12:34:a1";
    for phone in &phones[..2] {
        let request = running.client().get(running.url(&phone.path())).header("user-agent", user_agent);
        assert_eq!(read(request.send().await.unwrap()).await.unwrap().status, 200);
    }
    let seen: BTreeSet<String> = phones[..2].iter().map(|p| p.mac.clone()).collect();
    // The list reads the store's fetch records, which the fetch log flushes every 2 s.
    until("the two fetches listed", Duration::from_secs(8), || async {
        let fresh = list("/api/phones?stale=false").await.ok()?;
        (macs(&fresh) == seen).then_some(())
    })
    .await
    .unwrap();
    let stale = list("/api/phones?stale=true").await.unwrap();
    assert_eq!(stale["total"], phones.len() - 2);
    assert!(macs(&stale).is_disjoint(&seen));
    let on_generation = running.get_json(&format!("/api/phones?generation={generation}")).await.unwrap();
    assert_eq!(macs(&on_generation), seen);
    for phone in on_generation["phones"].as_array().unwrap() {
        assert_eq!(phone["last_generation"], generation, "{phone}");
        assert_eq!(phone["on_current_generation"], true, "{phone}");
        assert!(phone["last_seen"].is_string(), "{phone}");
    }
    // Who fetched is recorded without a database write on the request path; it shows
    // once the batch is flushed (every 2 s).
    until("source and user agent recorded", Duration::from_secs(8), || async {
        let page = running.get_json(&format!("/api/phones?generation={generation}")).await.ok()?;
        let phones = page["phones"].as_array()?;
        phones
            .iter()
            .all(|p| {
                p["user_agent"] == user_agent && p["source"].as_str().is_some_and(|s| s.starts_with("127."))
            })
            .then_some(())
    })
    .await
    .unwrap();
    // The status counts fetches within a second, not on every request.
    let status = until("the fetches counted in the status", Duration::from_secs(5), || async {
        let status = running.status().await.ok()?;
        (status.0["phones"]["on_current_generation"] == 2).then_some(status)
    })
    .await
    .unwrap();
    assert_eq!(status.0["phones"]["total"], phones.len());
    assert_eq!(status.0["phones"]["stale"], phones.len() - 2);
    assert_eq!(status.0["phones"]["by_vendor"]["yealink"]["total"], 3, "{}", status.0["phones"]);
    assert_eq!(status.0["phones"]["by_vendor"]["linksys"]["total"], 3, "{}", status.0["phones"]);

    // A new generation: nobody is on it until a phone fetches again.
    assert_eq!(running.act("sip", "failover", Some(TOKEN), None).await.unwrap().status, 200);
    let next = next_generation_served(&running, generation).await;
    let path_next = format!("/api/phones?generation={next}");
    assert_eq!(running.get_json(&path_next).await.unwrap()["total"], 0);
    until("a fetch of the new generation", Duration::from_secs(10), || async {
        running.get(&phones[0].path()).await.ok()?;
        let page = running.get_json(&path_next).await.ok()?;
        (macs(&page) == BTreeSet::from([phones[0].mac.clone()])).then_some(())
    })
    .await
    .unwrap();
    let old = running.get_json(&format!("/api/phones?generation={generation}")).await.unwrap();
    assert_eq!(macs(&old), BTreeSet::from([phones[1].mac.clone()]));
    assert_eq!(old["phones"][0]["on_current_generation"], false);

    // Paging: offset and limit over a stable order.
    let mut paged = Vec::new();
    for offset in (0..phones.len()).step_by(4) {
        let page = running.get_json(&format!("/api/phones?offset={offset}&limit=4")).await.unwrap();
        assert_eq!(page["total"], phones.len());
        assert_eq!(page["offset"], offset);
        paged
            .extend(page["phones"].as_array().unwrap().iter().map(|p| p["mac"].as_str().unwrap().to_owned()));
    }
    let whole: Vec<String> = running.get_json("/api/phones").await.unwrap()["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mac"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, whole);
    let past_the_end = running.get_json("/api/phones?offset=10000000").await.unwrap();
    assert_eq!(past_the_end["total"], phones.len(), "{past_the_end}");
    assert_eq!(past_the_end["phones"].as_array().map(Vec::len), Some(0), "{past_the_end}");
    for bad in [
        "/api/phones?stale=maybe",
        "/api/phones?generation=-1",
        "/api/phones?limit=x",
        "/api/phones?offset=10000001",
        "/api/phones?offset=18446744073709551616",
    ] {
        assert_eq!(running.get(bad).await.unwrap().status, 400, "{bad}");
    }
    // The list never carries a password.
    assert!(!running.get("/api/phones").await.unwrap().text().contains("s3cret"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_path_and_they_answer() {
    let running = offline().await;
    let response = running.get("/api/openapi.json").await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").unwrap().contains("json"));
    let doc: Value = response.json().unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for path in
        ["/api/status", "/api/events", "/api/phones", "/api/routes/{route}/{action}", "/api/openapi.json"]
    {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(paths["/api/routes/{route}/{action}"]["post"].is_object());
    for path in ["/api/provisioning/blocks", "/api/provisioning/blocks/{source}"] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    // Every GET answers as documented: open ones to anybody, the others to the read
    // token and to nobody without credentials.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for (path, item) in paths {
        let Some(get) = item.get("get") else { continue };
        if path.contains('{') {
            continue;
        }
        let security =
            get["security"].as_array().unwrap_or_else(|| panic!("GET {path} documents no security"));
        for scheme in security.iter().flat_map(|s| s.as_object().unwrap().keys()) {
            assert!(schemes.contains_key(scheme), "GET {path}: unknown scheme {scheme}");
        }
        if get["responses"]["200"]["content"].get("text/event-stream").is_some() {
            // A stream has no end to read up to: its answer is its status and its type.
            let stranger = running.client().get(running.url(path)).send().await.unwrap();
            assert!(security.is_empty(), "GET {path}: a closed stream");
            assert_eq!(stranger.status(), 200, "GET {path} is documented open");
            assert_eq!(stranger.headers()["content-type"], "text/event-stream", "GET {path}");
            continue;
        }
        let stranger = read(running.client().get(running.url(path)).send().await.unwrap()).await.unwrap();
        if security.is_empty() {
            assert_eq!(stranger.status, 200, "GET {path} is documented open and answers {}", stranger.status);
        } else {
            assert_eq!(
                stranger.status, 401,
                "GET {path} is documented closed and answers {}",
                stranger.status
            );
            assert!(get["responses"]["401"].is_object(), "GET {path} does not document its 401");
            let reader = running.get(path).await.unwrap(); // with the read token
            assert!(security.iter().any(|s| s.get("readToken").is_some()), "GET {path}");
            assert_eq!(reader.status, 200, "GET {path} with the read token answers {}", reader.status);
        }
    }
}

/// The `status` events of an `/api/stream` response.
struct StatusEvents {
    response: reqwest::Response,
    buffer: String,
}

impl StatusEvents {
    /// The next `status` event's data, or `None` after `deadline`.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.lines().any(|l| l == "event: status") {
                    let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn the_stream_sends_the_status_at_once_and_a_failover_within_a_second() {
    let running = offline().await;
    let response = running.client().get(running.url("/api/stream")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = StatusEvents { response, buffer: String::new() };
    let soon = || tokio::time::Instant::now() + Duration::from_secs(1);
    let first = events.next(soon()).await.expect("a status event at once");
    assert_eq!(first["routes"]["sip"]["state"], "primary", "{first}");
    assert!(first["services"].as_array().is_some_and(|s| s.len() == 6), "{first}");

    assert_eq!(running.act("sip", "failover", Some(TOKEN), None).await.unwrap().status, 200);
    let deadline = soon();
    loop {
        let event = events.next(deadline).await.expect("the failover streamed within a second");
        if event["routes"]["sip"]["state"] == "failed_over" {
            assert_eq!(event["routes"]["sip"]["mode"], "forced");
            break;
        }
    }
    // The new generation follows once rendered.
    let generation = first["generation"].as_u64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.next(deadline).await.expect("the new generation streamed")["generation"] == generation {}
    let metrics = running.get("/metrics").await.unwrap().text();
    assert!(metrics.contains("switchback_dashboard_streams 1\n"), "{metrics}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_named_switchback() {
    let lab = require!(Lab::start().await, PEERS);
    let running = with_lab(&lab).await;
    let phones = sample_phones();
    running.file(&phones[0]).await.unwrap();
    running.file(&phones[3]).await.unwrap();
    assert_eq!(running.get("/prov/yealink/0015650000ff.cfg").await.unwrap().status, 404);
    let request = running
        .client()
        .post(running.url("/api/routes/sip/failover"))
        .bearer_auth(TOKEN)
        .header("x-switchback-actor", "ops-bot");
    assert_eq!(read(request.send().await.unwrap()).await.unwrap().status, 200);
    let generation = next_generation_served(&running, 1).await;

    let response = running.get("/metrics").await.unwrap();
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap();
    assert!(
        content_type.starts_with("text/plain") || content_type.starts_with("application/openmetrics-text")
    );
    let text = response.text();
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series, value.parse().unwrap_or_else(|_| panic!("value of `{l}`")))
        })
        .collect();
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| *s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    for (series, _) in &samples {
        assert!(series.starts_with("switchback_"), "{series}");
    }
    for name in [
        "switchback_generation",
        "switchback_route_state",
        "switchback_service_up",
        "switchback_probe_latency_seconds",
        "switchback_phone_fetches_total",
        "switchback_transitions_total",
    ] {
        assert!(samples.iter().any(|(s, _)| s.starts_with(name)), "no {name} samples in\n{text}");
    }
    assert_eq!(value("switchback_generation"), generation as f64);
    assert_eq!(value(r#"switchback_route_state{route="sip",state="failed_over"}"#), 1.0);
    assert_eq!(value(r#"switchback_route_state{route="sip",state="primary"}"#), 0.0);
    assert_eq!(value(r#"switchback_route_state{route="stun",state="primary"}"#), 1.0);
    assert_eq!(value(r#"switchback_service_up{site="chicago",role="primary",service="softswitch"}"#), 1.0);
    assert_eq!(value(r#"switchback_service_up{site="virginia",role="backup",service="stun"}"#), 1.0);
    assert!(
        value(r#"switchback_probe_latency_seconds_count{site="chicago",role="primary",service="database"}"#)
            >= 1.0
    );
    assert!(value(r#"switchback_phone_fetches_total{vendor="yealink",status="200"}"#) >= 1.0);
    assert!(value(r#"switchback_phone_fetches_total{vendor="linksys",status="200"}"#) >= 1.0);
    assert!(value(r#"switchback_phone_fetches_total{vendor="yealink",status="404"}"#) >= 1.0);
    assert_eq!(value(r#"switchback_transitions_total{route="sip",to="failed_over",by="operator"}"#), 1.0);
}

// ---- dashboard login ---------------------------------------------------------------------

/// A client that shows redirects instead of following them, keeping no cookies.
fn no_redirects() -> reqwest::Client {
    no_redirects_from(None)
}

/// The same, its connections from `source` (any 127.0.0.0/8 address reaches the server).
fn no_redirects_from(source: Option<Ipv4Addr>) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source.map(IpAddr::V4))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login(running: &Running, client: &reqwest::Client, name: &str, token: &str) -> HttpResponse {
    let form = [("name", name), ("token", token)];
    read(client.post(running.url("/login")).form(&form).send().await.unwrap()).await.unwrap()
}

/// `sb_session=…` from a `Set-Cookie` value, ready for a `Cookie` header.
fn session_cookie(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

async fn act_with_session(running: &Running, cookie: &str, csrf: Option<&str>) -> HttpResponse {
    let mut request = no_redirects().post(running.url("/api/routes/stun/pause")).header("cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    read(request.send().await.unwrap()).await.unwrap()
}

/// The dashboard page's `<meta name="csrf-token" content="…">` for a session.
async fn csrf_of(running: &Running, cookie: &str) -> Option<String> {
    let page = read(no_redirects().get(running.url("/")).header("cookie", cookie).send().await.unwrap())
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let text = page.text();
    let at = text.find(r#"name="csrf-token""#)?;
    let tag_start = text[..at].rfind('<')?;
    let tag = &text[tag_start..tag_start + text[tag_start..].find('>')?];
    let content = tag.split("content=\"").nth(1)?;
    Some(content[..content.find('"')?].to_owned())
}

#[tokio::test]
async fn a_wrong_login_sets_no_cookie_and_a_right_one_a_strict_http_only_session() {
    let running = offline().await;
    let client = no_redirects();

    let wrong = login(&running, &client, "mallory", "not-the-token").await;
    assert_eq!(wrong.status, 303);
    assert_eq!(wrong.header("location"), Some("/?login=failed"));
    assert!(wrong.header("set-cookie").is_none(), "{:?}", wrong.headers);

    let right = login(&running, &client, "alice", TOKEN).await;
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/"));
    let set_cookie = right.header("set-cookie").expect("a session cookie");
    let attributes: Vec<String> = set_cookie.split(';').map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(
        set_cookie.starts_with("sb_session=") && session_cookie(set_cookie).len() > "sb_session=".len() + 16
    );
    assert!(attributes.contains(&"httponly".to_owned()), "{set_cookie}");
    assert!(attributes.contains(&"samesite=strict".to_owned()), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "the token is in the cookie: {set_cookie}");
    let cookie = session_cookie(set_cookie);

    // A cookie alone is what a cross-site form would carry: not enough.
    let before = routes(&running.status().await.unwrap());
    let response = act_with_session(&running, &cookie, None).await;
    assert_json_error(&response, 401, "session without CSRF token");
    let response = act_with_session(&running, &cookie, Some("0123456789abcdef")).await;
    assert_json_error(&response, 401, "session with a wrong CSRF token");
    let response = act_with_session(&running, "sb_session=forged0123456789", Some("0123456789abcdef")).await;
    assert_json_error(&response, 401, "a forged session");
    assert_eq!(routes(&running.status().await.unwrap()), before);

    // Logging out clears the cookie.
    let out = read(client.post(running.url("/logout")).header("cookie", &cookie).send().await.unwrap())
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    let cleared = out.header("set-cookie").expect("a clearing cookie");
    assert!(cleared.starts_with("sb_session=;") || cleared.starts_with("sb_session=\"\""), "{cleared}");
    assert!(cleared.to_ascii_lowercase().contains("max-age=0"), "{cleared}");
}

#[tokio::test]
async fn a_session_with_the_pages_csrf_token_acts_until_logout() {
    let running = offline().await;
    let client = no_redirects();
    let cookie = session_cookie(login(&running, &client, "alice", TOKEN).await.header("set-cookie").unwrap());
    let csrf = csrf_of(&running, &cookie).await.expect("a csrf-token meta on the dashboard of a session");
    assert!(csrf.len() >= 16, "{csrf}");
    let anonymous = csrf_of(&running, "sb_session=forged0123456789").await;
    assert!(anonymous.unwrap_or_default().is_empty(), "a CSRF token without a session");

    let response = act_with_session(&running, &cookie, Some(&csrf)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let reply: Value = response.json().unwrap();
    assert_eq!((reply["actor"].as_str(), reply["mode"].as_str()), (Some("alice"), Some("paused")));
    let operator = running.events_of("operator").await.unwrap();
    assert_eq!(operator[0]["actor"], "alice");

    let out = read(client.post(running.url("/logout")).header("cookie", &cookie).send().await.unwrap())
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    let response = act_with_session(&running, &cookie, Some(&csrf)).await;
    assert_json_error(&response, 401, "the session after logout");
    assert_eq!(running.status().await.unwrap().summary("stun").2, "paused");
}

#[tokio::test]
async fn the_sixth_failed_login_in_a_minute_is_limited_per_source_address() {
    let running = offline().await;
    let attacker = no_redirects_from(Some(Ipv4Addr::new(127, 0, 0, 50)));
    for attempt in 1..=5 {
        let response = login(&running, &attacker, "mallory", &format!("guess-{attempt}")).await;
        assert_eq!(response.header("location"), Some("/?login=failed"), "attempt {attempt}");
    }
    let sixth = login(&running, &attacker, "mallory", "guess-6").await;
    assert_eq!(sixth.status, 303);
    assert_eq!(sixth.header("location"), Some("/?login=limited"));
    assert!(sixth.header("set-cookie").is_none());
    // Limited means limited: the right token from that address is turned away too.
    let seventh = login(&running, &attacker, "mallory", TOKEN).await;
    assert_eq!(seventh.header("location"), Some("/?login=limited"));
    assert!(seventh.header("set-cookie").is_none(), "a session while limited");

    // Another source address is not limited.
    let operator = no_redirects_from(Some(Ipv4Addr::new(127, 0, 0, 2)));
    let response = login(&running, &operator, "alice", TOKEN).await;
    assert_eq!(response.header("location"), Some("/"));
    assert!(response.header("set-cookie").is_some_and(|c| c.starts_with("sb_session=")));
}
