//! Router behaviour in-process, through `tower::ServiceExt::oneshot` on the real router
//! and a real SQLite store: who may act, what a bad request gets, how phone files are
//! named and cached. The whole-binary tests keep what needs real processes and peers.

use axum::body::Body;
use axum::http::{Request, Response};
use serde_json::Value;
use switchback_core::{Route, RouteState};

use crate::testing::{json, phone, TestApp, TOKEN};

fn post(path: &str, authorization: Option<&str>, body: Option<(&str, &str)>) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let body = match body {
        Some((content_type, body)) => {
            request = request.header("content-type", content_type);
            Body::from(body.to_owned())
        }
        None => Body::empty(),
    };
    request.body(body).unwrap_or_else(|e| panic!("{e}"))
}

/// A JSON `{"error": …}` with `status`; the error text, for further checks.
async fn json_error(response: Response<Body>, status: u16, what: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{what}");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.contains("application/json"), "{what}: {content_type}");
    let body: Value = json(response).await;
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "{what}: {body}");
    error
}

fn unmoved(app: &TestApp) {
    let engine = app.engine.borrow();
    for route in Route::ALL {
        assert_eq!(engine.route(route).state, RouteState::Primary, "a refused request moved {route:?}");
        assert_eq!(engine.route(route).mode, switchback_core::Mode::Auto, "a refused request held {route:?}");
    }
}

#[tokio::test]
async fn actions_without_the_admin_token_are_refused_as_json_and_change_nothing() {
    let app = TestApp::start(2).await;
    let attempts: [(&str, Option<String>); 6] = [
        ("no Authorization", None),
        ("a wrong token", Some("Bearer wrong-token-0123456789".into())),
        ("the token with a suffix", Some(format!("Bearer {TOKEN}x"))),
        ("a prefix of the token", Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]))),
        ("Basic instead of Bearer", Some(format!("Basic {TOKEN}"))),
        ("an empty bearer", Some("Bearer ".into())),
    ];
    // Each form from its own address: four wrong tokens each, below the limit of five.
    for (n, (what, header)) in (10u8..).zip(&attempts) {
        let source = std::net::Ipv4Addr::new(192, 0, 2, n).into();
        for action in ["failover", "failback", "pause", "resume"] {
            let request = post(&format!("/api/routes/sip/{action}"), header.as_deref(), None);
            let error =
                json_error(app.send_from(request, source).await, 401, &format!("{action} with {what}")).await;
            assert!(!error.contains(TOKEN), "the token is echoed: {error}");
        }
    }
    // A token in the query or a form field is not a token.
    let form = ("application/x-www-form-urlencoded", &*format!("token={TOKEN}"));
    let request = post(&format!("/api/routes/sip/failover?token={TOKEN}"), None, Some(form));
    json_error(app.send(request).await, 401, "token in the query and the form").await;
    unmoved(&app);
}

#[tokio::test]
async fn unknown_routes_and_actions_are_json_404_bad_bodies_400_and_a_get_405() {
    let app = TestApp::start(2).await;
    let bearer = format!("Bearer {TOKEN}");
    for (route, action) in [
        ("voice", "failover"),
        ("SIP", "failover"),
        ("sip", "explode"),
        ("sip", "Failover"),
        ("database", "pause"),
    ] {
        let request = post(&format!("/api/routes/{route}/{action}"), Some(&bearer), None);
        json_error(app.send(request).await, 404, &format!("{route}/{action}")).await;
    }
    // `/api/routes/stun/` matches no route at all.
    assert_eq!(app.send(post("/api/routes/stun/", Some(&bearer), None)).await.status(), 404);
    for body in ["{", r#"{"reason": 5}"#, r#"{"reason": "x", "force": true}"#, "reason=x", "[]", r#"["why"]"#]
    {
        let request = post("/api/routes/sip/failover", Some(&bearer), Some(("application/json", body)));
        json_error(app.send(request).await, 400, &format!("body {body}")).await;
    }
    // A GET is not an action.
    assert_eq!(app.get("/api/routes/sip/failover").await.status(), 405);
    unmoved(&app);

    // And the right request acts.
    let request = post(
        "/api/routes/sip/pause",
        Some(&bearer),
        Some(("application/json", r#"{"reason": "maintenance window"}"#)),
    );
    assert_eq!(app.send(request).await.status(), 200);
    assert_eq!(app.engine.borrow().route(Route::Sip).mode, switchback_core::Mode::Paused);
}

#[tokio::test]
async fn phone_files_answer_by_exact_name_with_an_etag_and_nothing_else() {
    use axum::http::StatusCode;
    let app = TestApp::start(2).await;
    let (yealink, linksys) = (phone(0).mac.to_string(), phone(1).mac.to_string());
    let path = format!("/prov/yealink/{yealink}.cfg");
    let response = app.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].clone();
    let again = app
        .send(
            Request::get(&path)
                .header("if-none-match", etag.clone())
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(
        app.get(&format!("/prov/yealink/{}.cfg", yealink.to_uppercase())).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get(&format!("/prov/linksys/spa{linksys}.xml")).await.status(), StatusCode::OK);
    assert_eq!(app.get("/prov/yealink/y000000000028.cfg").await.status(), StatusCode::OK, "the common file");
    for wrong in [
        format!("/prov/linksys/spa{yealink}.xml"),
        format!("/prov/yealink/{linksys}.cfg"),
        "/prov/yealink/001565ffffff.cfg".to_owned(),
        format!("/prov/yealink/{yealink}.xml"),
        format!("/prov/yealink/../{yealink}.cfg"),
        "/prov/yealink/%2e%2e%2fCargo.toml".to_owned(),
        format!("/prov/polycom/{yealink}.cfg"),
    ] {
        assert_eq!(app.get(&wrong).await.status(), StatusCode::NOT_FOUND, "{wrong}");
    }
}

#[tokio::test]
async fn every_api_path_answers_json_an_unknown_one_404_a_wrong_method_405_with_allow() {
    use axum::http::StatusCode;
    let app = TestApp::start(2).await;
    for path in ["/api", "/api/", "/api/statuss", "/api/routes", "/api/routes/stun/", "/api/phones/x/y"] {
        let error = json_error(app.get(path).await, 404, path).await;
        assert!(error.contains("/api/openapi.json"), "{path}: {error}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let error = json_error(app.send(post("/api/nothing", Some(&bearer), None)).await, 404, "POST").await;
    assert!(!error.contains(TOKEN), "{error}");
    // Outside /api an unknown path stays plain text.
    let plain = app.get("/nothing").await;
    assert_eq!(plain.status(), StatusCode::NOT_FOUND);
    let content_type = plain.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(!content_type.contains("json"), "{content_type}");

    let allow = |response: &Response<Body>| {
        response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let wrong: [(Request<Body>, &str); 4] = [
        (post("/api/status", Some(&bearer), None), "GET"),
        (
            Request::get("/api/routes/sip/failover").body(Body::empty()).unwrap_or_else(|e| panic!("{e}")),
            "POST",
        ),
        (
            Request::put("/api/provisioning/blocks").body(Body::empty()).unwrap_or_else(|e| panic!("{e}")),
            "GET",
        ),
        (
            Request::get("/api/provisioning/blocks/192.0.2.1")
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}")),
            "DELETE",
        ),
    ];
    for (request, allowed) in wrong {
        let what = format!("{} {}", request.method(), request.uri());
        let response = app.send(request).await;
        let allowed_header = allow(&response);
        assert!(allowed_header.contains(allowed), "{what}: Allow `{allowed_header}`");
        let error = json_error(response, 405, &what).await;
        assert!(error.contains("Allow"), "{what}: {error}");
    }
    // Outside /api a wrong method keeps its empty 405, with Allow.
    let login = app.get("/login").await;
    assert_eq!(login.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow(&login).contains("POST"), "{}", allow(&login));
    unmoved(&app);
}

#[tokio::test]
async fn the_bearer_scheme_is_any_case_and_a_missing_token_is_named_in_api_words() {
    use axum::http::StatusCode;
    let app = TestApp::start(2).await;
    let get = |authorization: Option<String>| {
        let mut request = Request::get("/api/events");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.body(Body::empty()).unwrap_or_else(|e| panic!("{e}"))
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app.send(get(Some(format!("{scheme} {TOKEN}")))).await;
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let response = app.send(post("/api/routes/sip/pause", Some(&format!("bearer {TOKEN}")), None)).await;
    assert_eq!(response.status(), StatusCode::OK, "an action with `bearer`");
    assert_eq!(app.engine.borrow().route(Route::Sip).mode, switchback_core::Mode::Paused);

    let missing = app.send(get(None)).await;
    assert_eq!(missing.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    let error = json_error(missing, 401, "no token").await;
    assert!(error.starts_with("missing token: send Authorization: Bearer <token>"), "{error}");
    let error = json_error(app.send(post("/api/routes/sip/resume", None, None)).await, 401, "no token").await;
    assert!(error.starts_with("missing token: send Authorization: Bearer <token>"), "{error}");
    assert!(!error.contains("log in"), "{error}");
}

/// A failover 10 minutes ago: `sip` went failing, then over to the backup (generation 2),
/// and three of four phones fetched generation 2 since.
async fn after_a_failover() -> (TestApp, chrono::DateTime<chrono::Utc>) {
    use switchback_core::{Event, EventKind, Role};
    use switchback_provisioning::fetch::PhoneFetch;
    let app = TestApp::start(4).await;
    let now = app.state.clock.now();
    // Whole seconds: the store keeps microseconds.
    let t0 = chrono::DateTime::from_timestamp(now.timestamp() - 600, 0).unwrap_or_else(|| panic!("t0"));
    let transition = |at, from, to, active| {
        let mut e = Event::note(at, EventKind::Transition, "monitor", "primary softswitch timeout");
        e.route = Some(Route::Sip);
        (e.from, e.to, e.active) = (Some(from), Some(to), Some(active));
        e
    };
    let mut next = app.engine.borrow().clone();
    let sip = next.routes.get_mut(&Route::Sip).unwrap_or_else(|| panic!("sip"));
    (sip.state, sip.active, sip.since) = (RouteState::FailedOver, Role::Backup, t0);
    next.generation = 2;
    let store = app.state.store.clone();
    let failing = transition(
        t0 - chrono::Duration::seconds(30),
        RouteState::Primary,
        RouteState::Failing,
        Role::Primary,
    );
    store.save_step(&app.engine.borrow().clone(), &[], &[failing]).await.unwrap_or_else(|e| panic!("{e}"));
    let over = transition(t0, RouteState::Failing, RouteState::FailedOver, Role::Backup);
    store.save_step(&next, &[], &[over]).await.unwrap_or_else(|e| panic!("{e}"));
    app.engine.send_replace(next);
    let fetch = |n: u64, secs: i64| PhoneFetch {
        mac: phone(n).mac,
        vendor: phone(n).vendor,
        at: t0 + chrono::Duration::seconds(secs),
        generation: 2,
        source: "192.0.2.10".parse().unwrap_or_else(|e| panic!("{e}")),
        user_agent: "phone".to_owned(),
        count: 1,
    };
    store.record_fetches(&[fetch(0, 5), fetch(1, 7), fetch(2, 65)]).await.unwrap_or_else(|e| panic!("{e}"));
    (app, t0)
}

async fn read(app: &TestApp, path: &str) -> (u16, Value) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let response = app.send(request).await;
    (response.status().as_u16(), json(response).await)
}

#[tokio::test]
async fn a_generations_convergence_counts_phones_per_vendor_by_seconds_since_it_started() {
    let (app, t0) = after_a_failover().await;
    let (status, curve) = read(&app, "/api/generations/2/convergence").await;
    assert_eq!(status, 200, "{curve}");
    let started: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(curve["started_at"].clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started, t0, "the step that made the generation started it");
    assert_eq!(curve["poll_interval_seconds"], 60);
    assert_eq!(curve["total"], 4);
    assert_eq!(curve["bucket_seconds"], 1);
    assert_eq!(curve["by_vendor"]["yealink"]["total"], 2);
    assert_eq!(curve["by_vendor"]["yealink"]["points"], serde_json::json!([[5, 1], [65, 2]]));
    assert_eq!(curve["by_vendor"]["linksys"]["points"], serde_json::json!([[7, 1]]));
    // A generation nobody fetched: no start, no points.
    let (_, none) = read(&app, "/api/generations/9/convergence").await;
    assert_eq!(none["started_at"], Value::Null);
    assert_eq!(none["by_vendor"]["yealink"]["points"], serde_json::json!([]));
    // Strangers and bad paths.
    json_error(app.get("/api/generations/2/convergence").await, 401, "no token").await;
    let (status, _) = read(&app, "/api/generations/two/convergence").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_timeline_shows_each_routes_states_and_the_events_of_its_window() {
    let (app, t0) = after_a_failover().await;
    let (status, timeline) = read(&app, "/api/timeline?since=1h").await;
    assert_eq!(status, 200, "{timeline}");
    let bands: Vec<(String, String)> = timeline["routes"]["sip"]
        .as_array()
        .unwrap_or_else(|| panic!("{timeline}"))
        .iter()
        .map(|b| {
            (b["state"].as_str().unwrap_or("").to_owned(), b["active_site"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let band = |state: &str, site: &str| (state.to_owned(), site.to_owned());
    assert_eq!(
        bands,
        [band("primary", "chicago"), band("failing", "chicago"), band("failed_over", "virginia")],
        "{timeline}"
    );
    let over: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(timeline["routes"]["sip"][2]["from"].clone())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(over, t0);
    assert_eq!(timeline["routes"]["sip"][2]["to"], timeline["to"]);
    assert_eq!(timeline["routes"]["stun"].as_array().map(Vec::len), Some(1), "{timeline}");
    assert_eq!(timeline["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(timeline["events"][1]["label"], "route failed over", "oldest first: {timeline}");
    assert_eq!(timeline["truncated"], false);
    // A window that starts after the failover: one band, the state now.
    let (_, recent) = read(&app, "/api/timeline?since=5m").await;
    assert_eq!(recent["routes"]["sip"].as_array().map(Vec::len), Some(1), "{recent}");
    assert_eq!(recent["routes"]["sip"][0]["state"], "failed_over");
    assert_eq!(recent["events"], serde_json::json!([]));
    for bad in ["since=8d", "since=soon", "since=0h", "until=1h"] {
        let (status, body) = read(&app, &format!("/api/timeline?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    json_error(app.get("/api/timeline").await, 401, "no token").await;
}
