//! An app for in-process tests: the real router over a real SQLite store in a temporary
//! folder, with the engine state in the test's hands and a control that steps it the way
//! the decider does (minus the store).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use secrecy::SecretString;
use switchback_core::{Action, Clock, Config, EngineState, ManualClock, Route};
use switchback_provisioning::{ActiveSites, Generation, Generations, Phone, RenderSettings, Vendor};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::{AppState, Auth, Control, ControlError, Metrics, RecentChecks};

pub const TOKEN: &str = "test-admin-token-0123";

/// Our own `[server]` and `[phones]`, before the two example sites.
const CONFIG_HEAD: &str = r#"
[server]
public_url = "http://prov.example.net:8080"

[phones]
poll_interval = "60s"
"#;

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    /// Feeds `state.engine`, as the decider does.
    pub engine: Arc<watch::Sender<EngineState>>,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// `phones` phones, alternately Yealink and Linksys, on generation 1.
    pub async fn start(phones: u64) -> Self {
        let text = format!("{CONFIG_HEAD}{}", switchback_tests::fixtures::TWO_SITES);
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("config: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary folder: {e}"));
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = switchback_store::connect(&url).await.unwrap_or_else(|e| panic!("store: {e}"));
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let engine = Arc::new(watch::Sender::new(EngineState::new(clock.now())));
        let first = render(&config, &engine.borrow(), phones);
        let (access, _blocks) = crate::prov::Access::new(&config.provisioning);
        let recent_checks = RecentChecks::from_store(&*store).await.unwrap_or_else(|e| panic!("{e}"));
        let state = AppState {
            generations: Arc::new(Generations::new(first)),
            fetches: Arc::default(),
            engine: engine.subscribe(),
            site_names: Arc::new(config.site_names()),
            clock: clock.clone(),
            control: Arc::new(Stepper { engine: engine.clone(), clock: clock.clone() }),
            store,
            auth: Arc::new(Auth::new(Some(SecretString::from(TOKEN)), None, false)),
            metrics: Arc::new(Metrics::new(config.site_names())),
            store_health: Arc::default(),
            recent_checks: Arc::new(recent_checks),
            access: Arc::new(access),
            poll_interval: config.phones.poll_interval,
            demo: false,
            group: None,
        };
        let shutdown = CancellationToken::new();
        let router = crate::router(state.clone(), Router::new(), &shutdown);
        Self { state, router, engine, clock, config, shutdown, _dir: dir }
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.send_from(request, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// A request as if from `source`.
    pub async fn send_from(&self, request: Request<Body>, source: std::net::IpAddr) -> Response<Body> {
        let mut request = request;
        request.extensions_mut().insert(ConnectInfo(SocketAddr::new(source, 40000)));
        self.router.clone().oneshot(request).await.unwrap_or_else(|never| match never {})
    }

    pub async fn get_from(&self, path: &str, source: std::net::IpAddr) -> Response<Body> {
        self.send_from(Request::get(path).body(Body::empty()).unwrap_or_else(|e| panic!("{e}")), source).await
    }

    pub async fn get(&self, path: &str) -> Response<Body> {
        self.send(Request::get(path).body(Body::empty()).unwrap_or_else(|e| panic!("{e}"))).await
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        json(response).await
    }

    /// An operator action with the admin token; answers the status code.
    pub async fn act(&self, route: &str, action: &str) -> u16 {
        let request = Request::post(format!("/api/routes/{route}/{action}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        self.send(request).await.status().as_u16()
    }

    /// Renders the engine's current generation and swaps it in, as the orchestrator does.
    pub fn follow_generation(&self, phones: u64) {
        let next = render(&self.config, &self.engine.borrow(), phones);
        self.state.generations.swap(next);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn json(response: Response<Body>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap_or_else(|e| panic!("body: {e}")).to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

/// Waits for `check` to answer `Some`, polling, until `within`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn phone(n: u64) -> Phone {
    let b = n.to_be_bytes();
    Phone {
        mac: switchback_provisioning::Mac::new([0x00, 0x15, b[4], b[5], b[6], b[7]]),
        vendor: if n % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys },
        model: "T46S".to_owned(),
        display_name: format!("Desk {n}"),
        user_id: format!("{}", 1000 + n),
        auth_id: String::new(),
        password: SecretString::from(format!("pw-{n}")),
        prov_password: None,
    }
}

fn render(config: &Config, engine: &EngineState, phones: u64) -> Generation {
    let sites = ActiveSites::from_config(config, |route| engine.active(route));
    let phones: Vec<Phone> = (0..phones).map(phone).collect();
    Generation::render(engine.generation, &sites, &RenderSettings::from_config(config), &phones)
        .unwrap_or_else(|e| panic!("render: {e}"))
}

/// Steps the engine as the decider does, without a store.
#[derive(Debug)]
struct Stepper {
    engine: Arc<watch::Sender<EngineState>>,
    clock: Arc<ManualClock>,
}

#[async_trait::async_trait]
impl Control for Stepper {
    async fn operate(
        &self,
        route: Route,
        action: Action,
        actor: &str,
        why: &str,
    ) -> Result<(), ControlError> {
        let step = self.engine.borrow().operate(route, action, actor, why, self.clock.now());
        let step = step.map_err(|refused| ControlError::Refused(refused.to_string()))?;
        self.engine.send_replace(step.next);
        Ok(())
    }
}
