//! The API's machine-readable description, generated from the handlers' own types and
//! annotations (utoipa), served at `/api/openapi.json`. Tests check real responses
//! against it, so it cannot drift from what the API answers.

use std::sync::LazyLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every JSON error: `{"error": "…"}`.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// Webhook deliveries by status: describes `switchback_store::AlertCounts` (the store
/// knows nothing of HTTP); the test of real responses keeps the two alike.
#[allow(dead_code)] // a description, never built
#[derive(Debug, ToSchema)]
#[schema(as = AlertCounts)]
pub struct AlertCountsDoc {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "switchback", description = "Disaster-failover orchestrator for a VoIP provider: status, history, phones, operator actions."),
    paths(
        crate::live::status,
        crate::live::stream,
        crate::api::events,
        crate::api::phones,
        crate::api::alerts,
        crate::pictures::convergence,
        crate::pictures::timeline,
        crate::api::openapi,
        crate::operator::act,
        crate::blocks::list,
        crate::blocks::lift,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::scrape,
    ),
    components(schemas(ErrorBody, AlertCountsDoc)),
    modifiers(&Security),
    tags(
        (name = "open", description = "no credentials: no phone data"),
        (name = "read", description = "admin token, read token or a dashboard session"),
        (name = "act", description = "admin token, or a dashboard session with its CSRF token"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
            )
        };
        components.add_security_scheme(
            "adminToken",
            bearer("server.admin_token (or SWITCHBACK_ADMIN_TOKEN): reads and acts. The scheme name is case-insensitive."),
        );
        components.add_security_scheme(
            "readToken",
            bearer("server.read_token: reads only (for Grafana and scripts); an action with it gets 403."),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The dashboard session set by POST /login with the admin token. Reads need nothing more; actions \
                 also need the session's CSRF token in X-CSRF-Token.",
            ))),
        );
        // Open operations say so: no credentials at all, rather than none documented.
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
                let open = operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "open"));
                if open {
                    operation.security = Some(Vec::new());
                }
            }
        }
    }
}

/// The document as served, built once.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
    });
    &JSON
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{json, Value};
    use switchback_core::{Event, EventKind, Route, RouteState};
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_store::Enqueue;

    use crate::testing::{json as body_json, phone, TestApp, TOKEN};

    /// The schema the document gives for `method path`'s `status` answer, as a JSON
    /// Schema with the document's components beside it, so that `$ref`s resolve.
    fn schema_of(doc: &Value, method: &str, path: &str, status: u16) -> Value {
        let schema = doc["paths"][path][method]["responses"][status.to_string()]["content"]
            ["application/json"]["schema"]
            .clone();
        assert!(!schema.is_null(), "no JSON schema for {method} {path} {status}");
        json!({ "$ref": "#/$defs/answer", "$defs": { "answer": schema }, "components": doc["components"] })
    }

    fn check(doc: &Value, method: &str, path: &str, status: u16, answer: &Value) {
        let schema = schema_of(doc, method, path, status);
        let validator =
            jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{path}: bad schema: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(answer).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document:\n{}\n{answer:#}",
            errors.join("\n")
        );
    }

    async fn get(app: &TestApp, path: &str) -> (u16, Value) {
        let request = Request::get(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        (response.status().as_u16(), body_json(response).await)
    }

    /// Every JSON answer of the API, with data in it, read through the router and
    /// checked against the document the router serves.
    #[tokio::test]
    async fn real_answers_match_the_served_document() {
        let app = TestApp::start(4).await;
        let store = app.state.store.clone();
        store.import_phones(&[phone(0), phone(1), phone(2)]).await.unwrap();
        let now = app.state.clock.now();
        store
            .record_fetches(&[PhoneFetch {
                mac: phone(0).mac,
                vendor: phone(0).vendor,
                at: now,
                generation: 1,
                source: "192.0.2.10".parse().unwrap(),
                user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
                count: 1,
            }])
            .await
            .unwrap();
        let mut failover =
            Event::note(now, EventKind::Transition, "monitor", "primary softswitch timeout for 30s");
        failover.route = Some(Route::Sip);
        (failover.from, failover.to) = (Some(RouteState::Failing), Some(RouteState::FailedOver));
        let scan = Event::note(now, EventKind::ProvisioningScan, "192.0.2.66", "20 bad phone-file requests");
        let state = app.engine.borrow().clone();
        let alert = Enqueue { event_index: 0, webhook: "oncall".to_owned(), generation: 1 };
        store.save_step_with_alerts(None, &state, &[], &[failover, scan], &[alert]).await.unwrap();

        let doc = app.get_json("/api/openapi.json").await;
        for path in [
            "/api/status",
            "/api/events",
            "/api/phones",
            "/api/phones?stale=true&limit=1",
            "/api/alerts",
            "/api/provisioning/blocks",
            "/api/generations/1/convergence",
            "/api/timeline?since=2h",
        ] {
            let (status, answer) = get(&app, path).await;
            assert_eq!(status, 200, "{path}: {answer}");
            let route = path.split('?').next().unwrap().replace("/1/", "/{n}/");
            let route = route.as_str();
            check(&doc, "get", route, 200, &answer);
        }
        let (_, events) = get(&app, "/api/events").await;
        assert_eq!(events["events"].as_array().map(Vec::len), Some(2), "the events were there to check");
        let (_, phones) = get(&app, "/api/phones").await;
        assert_eq!(phones["phones"].as_array().map(Vec::len), Some(3), "the phones were there to check");

        // An instance of a group adds the group and each vantage's view.
        let (_group, seen) = tokio::sync::watch::channel(crate::group::GroupView {
            node: "va-1".to_owned(),
            vantage: "virginia".to_owned(),
            quorum: 2,
            leads: false,
            leader: Some("chi-1".to_owned()),
            term: 3,
            nodes: vec![switchback_store::NodeSeen {
                node: "chi-1".to_owned(),
                vantage: "chicago".to_owned(),
                started_at: now,
                last_seen: now,
            }],
            vantages: vec![switchback_store::VantageCheck {
                vantage: "chicago".to_owned(),
                node: "chi-1".to_owned(),
                check: switchback_core::CheckResult::failed(
                    switchback_core::ServiceId::new(
                        switchback_core::Role::Primary,
                        switchback_core::ServiceKind::Database,
                    ),
                    "timeout",
                    now,
                ),
            }],
        });
        let mut grouped = app.state.clone();
        grouped.group = Some(seen);
        let engine = app.engine.borrow().clone();
        let status = crate::status::Status::build(
            &grouped,
            &engine,
            &grouped.generations.current(),
            None,
            switchback_store::AlertCounts::default(),
        );
        let answer = serde_json::to_value(&status).unwrap();
        assert_eq!(answer["cluster"]["nodes"][0]["leader"], true, "{answer}");
        assert_eq!(answer["services"][1]["vantages"][0]["reason"], "timeout", "{answer}");
        check(&doc, "get", "/api/status", 200, &answer);

        // The check can fail: an answer that drifted from the document is caught.
        let (_, mut drifted) = get(&app, "/api/status").await;
        drifted["routes"]["sip"]["since"] = json!(12);
        drifted["phones"].as_object_mut().unwrap().remove("total");
        let schema = schema_of(&doc, "get", "/api/status", 200);
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        assert_eq!(validator.iter_errors(&drifted).count(), 2, "{drifted}");

        // Errors too: a stranger, a bad query.
        let refused = app.get("/api/events").await;
        assert_eq!(refused.status(), 401);
        check(&doc, "get", "/api/events", 401, &body_json(refused).await);
        let (status, bad) = get(&app, "/api/phones?limit=many").await;
        assert_eq!(status, 400);
        check(&doc, "get", "/api/phones", 400, &bad);
    }

    /// What an integrator looks up: every path, and the two ways to authenticate.
    #[test]
    fn the_document_names_every_api_path_and_its_security() {
        let doc: Value = serde_json::from_str(super::json()).unwrap();
        for path in [
            "/api/status",
            "/api/stream",
            "/api/events",
            "/api/phones",
            "/api/alerts",
            "/api/generations/{n}/convergence",
            "/api/timeline",
            "/api/openapi.json",
            "/api/routes/{route}/{action}",
            "/api/provisioning/blocks",
            "/api/provisioning/blocks/{source}",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(doc["components"]["securitySchemes"]["readToken"]["scheme"], "bearer");
        assert_eq!(doc["paths"]["/api/status"]["get"]["security"], serde_json::json!([]), "open is said");
        assert!(doc["components"]["schemas"]["EventView"]["properties"]["label"].is_object());
    }
}
