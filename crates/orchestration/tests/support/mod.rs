//! The orchestration in-process: a scripted prober (the services are ours to break),
//! a store on its own real-time runtime with faults we can inject, and a paused tokio
//! clock, so minutes of confirmation and hold-down pass in milliseconds.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several test files

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use secrecy::SecretString;
use switchback_core::{
    CheckResult, Config, EngineState, Event, Role, Route, RouteState, ServiceId, ServiceKind,
};
use switchback_monitor::probe::{Failure, Outcome};
use switchback_monitor::scheduler::Prober;
use switchback_orchestration::{Orchestrator, TokioClock};
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::{Mac, Phone, Vendor};
use switchback_store::*;
use tokio_util::sync::CancellationToken;

/// Drill timers, before the two example sites: checks every 20 s, every 5 s while
/// unsettled; a confirmed outage needs 30 s of failures, failback 2 minutes of health.
pub const CONFIG_HEAD: &str = r#"
[server]
public_url = "http://prov.example.net:8080"
admin_token = "in-process-admin-token"

[monitor]
interval = "20s"
recheck_interval = "5s"
timeout = "1s"
retries = 0
failover_after = "30s"
failback_after = "2m"
"#;

pub const PRIMARY_SIP: ServiceId = ServiceId { role: Role::Primary, kind: ServiceKind::Softswitch };

/// Services answer unless broken. Stands in for Kamailio, coturn and the databases,
/// which the whole-binary tests use.
#[derive(Debug, Default)]
pub struct ScriptedProber {
    down: Mutex<HashSet<ServiceId>>,
}

impl ScriptedProber {
    pub fn set_down(&self, service: ServiceId, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(service);
        } else {
            set.remove(&service);
        }
    }
}

impl Prober for ScriptedProber {
    fn probe(&self, service: ServiceId) -> BoxFuture<'static, Outcome> {
        let down = self.down.lock().unwrap().contains(&service);
        Box::pin(async move {
            if down {
                Err(Failure::Refused)
            } else {
                Ok(Duration::from_millis(3))
            }
        })
    }
}

/// A store on a runtime of its own, on real time. Every call blocks the (single)
/// test thread until the database answers, so the paused clock never jumps while a
/// query is in flight; and writes can be made to fail.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    refuse_writes: AtomicBool,
    refuse_next_save: AtomicBool,
    lose_next_reply: AtomicBool,
    stall_next_save: AtomicBool,
    /// Lets a stalled save go on; set once it committed.
    stall_gate: Arc<tokio::sync::Semaphore>,
    stalled_committed: Arc<AtomicBool>,
    pub saves_refused: std::sync::atomic::AtomicU64,
}

impl FaultyStore {
    pub fn open(url: &str) -> Arc<Self> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let inner =
            std::thread::scope(|s| s.spawn(|| runtime.block_on(connect(url))).join().unwrap()).unwrap();
        Arc::new(Self {
            inner,
            runtime: Some(runtime),
            refuse_writes: AtomicBool::new(false),
            refuse_next_save: AtomicBool::new(false),
            lose_next_reply: AtomicBool::new(false),
            stall_next_save: AtomicBool::new(false),
            stall_gate: Arc::new(tokio::sync::Semaphore::new(0)),
            stalled_committed: Arc::default(),
            saves_refused: Default::default(),
        })
    }

    /// While on, every write fails as a full disk would.
    pub fn refuse_writes(&self, on: bool) {
        self.refuse_writes.store(on, Ordering::SeqCst);
    }

    /// The next save of a step fails once, as a failed COMMIT would.
    pub fn refuse_next_save(&self) {
        self.refuse_next_save.store(true, Ordering::SeqCst);
    }

    /// The next save commits, but reports a failure: the reply to COMMIT was lost.
    pub fn lose_next_reply(&self) {
        self.lose_next_reply.store(true, Ordering::SeqCst);
    }

    /// The next save is slow (a synchronous standby away, a stalled disk): it commits
    /// once [`FaultyStore::finish_stalled_save`] lets it, whether or not its caller still
    /// waits, as a COMMIT on the wire does.
    pub fn stall_next_save(&self) {
        self.stall_next_save.store(true, Ordering::SeqCst);
    }

    /// Lets the stalled save commit, and returns once it has (in real time, with the
    /// test's clock standing still).
    pub fn finish_stalled_save(&self) {
        self.stall_gate.add_permits(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.stalled_committed.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the stalled save did not commit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn on_store_runtime<'a, T: Send>(&'a self, call: impl Future<Output = T> + Send + 'a) -> T {
        let runtime = self.runtime.as_ref().unwrap();
        std::thread::scope(|s| s.spawn(|| runtime.block_on(call)).join().unwrap())
    }

    fn write_fault(&self) -> Result<(), StoreError> {
        if self.refuse_writes.load(Ordering::SeqCst) {
            return Err(injected("database or disk is full"));
        }
        Ok(())
    }
}

impl Drop for FaultyStore {
    fn drop(&mut self) {
        // Dropped on the test's runtime, which must not block on another.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `make` to completion on a runtime of its own, on real time, off the test's
/// paused one (whose clock would jump past every timeout of a connection in flight).
pub fn on_real_time<T: Send, F: Future<Output = T>>(make: impl FnOnce() -> F + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(make())
        })
        .join()
        .unwrap()
    })
}

fn injected(message: &str) -> StoreError {
    StoreError::Query {
        what: "injected fault",
        source: sqlx::Error::Io(std::io::Error::other(message.to_owned())),
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.check())
    }
    async fn load_state(&self) -> Result<Option<EngineState>, StoreError> {
        self.on_store_runtime(self.inner.load_state())
    }
    async fn save_step_with_alerts(
        &self,
        fence: Option<&Fence>,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
        alerts: &[Enqueue],
    ) -> Result<Vec<i64>, StoreError> {
        if self.refuse_next_save.swap(false, Ordering::SeqCst) || self.refuse_writes.load(Ordering::SeqCst) {
            self.saves_refused.fetch_add(1, Ordering::SeqCst);
            return Err(injected("commit failed"));
        }
        if self.stall_next_save.swap(false, Ordering::SeqCst) {
            let inner = self.inner.clone();
            let (fence, next, checks, events, alerts) =
                (fence.cloned(), next.clone(), checks.to_vec(), events.to_vec(), alerts.to_vec());
            let (gate, committed) = (self.stall_gate.clone(), self.stalled_committed.clone());
            let commit = self.runtime.as_ref().unwrap().spawn(async move {
                let _go = gate.acquire().await;
                let saved =
                    inner.save_step_with_alerts(fence.as_ref(), &next, &checks, &events, &alerts).await;
                committed.store(saved.is_ok(), Ordering::SeqCst);
                saved
            });
            // Awaited without blocking the test's thread: its clock runs on meanwhile.
            return commit.await.unwrap_or_else(|crashed| Err(injected(&crashed.to_string())));
        }
        let saved =
            self.on_store_runtime(self.inner.save_step_with_alerts(fence, next, checks, events, alerts));
        if saved.is_ok() && self.lose_next_reply.swap(false, Ordering::SeqCst) {
            return Err(injected("connection reset while waiting for the reply to COMMIT"));
        }
        saved
    }
    async fn record_events(&self, events: &[Event], alerts: &[Enqueue]) -> Result<Vec<i64>, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.record_events(events, alerts))
    }
    async fn due_alerts(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxAlert>, StoreError> {
        self.on_store_runtime(self.inner.due_alerts(now, limit))
    }
    async fn next_alert_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.on_store_runtime(self.inner.next_alert_due())
    }
    async fn record_delivery(
        &self,
        fence: Option<&Fence>,
        id: i64,
        delivery: &AlertDelivery,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.record_delivery(fence, id, delivery, now))
    }
    async fn fetch_records_since(&self, after: DateTime<Utc>) -> Result<Vec<FetchRecord>, StoreError> {
        self.on_store_runtime(self.inner.fetch_records_since(after))
    }
    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.on_store_runtime(self.inner.events_since(since, limit))
    }
    async fn generation_convergence(&self, generation: u64) -> Result<Convergence, StoreError> {
        self.on_store_runtime(self.inner.generation_convergence(generation))
    }
    async fn generations_since(&self, since: DateTime<Utc>) -> Result<Vec<GenerationStart>, StoreError> {
        self.on_store_runtime(self.inner.generations_since(since))
    }
    async fn claim_lease(&self, node: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.claim_lease(node, lease))
    }
    async fn renew_lease(&self, fence: &Fence, lease: Duration) -> Result<bool, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.renew_lease(fence, lease))
    }
    async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        self.on_store_runtime(self.inner.release_lease(fence))
    }
    async fn lease(&self) -> Result<Lease, StoreError> {
        self.on_store_runtime(self.inner.lease())
    }
    async fn heartbeat(
        &self,
        node: &str,
        vantage: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.heartbeat(node, vantage, started_at))
    }
    async fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        self.on_store_runtime(self.inner.nodes())
    }
    async fn record_round(
        &self,
        vantage: &str,
        node: &str,
        checks: &[CheckResult],
    ) -> Result<(), StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.record_round(vantage, node, checks))
    }
    async fn vantage_checks(&self, fresh: Duration) -> Result<Vec<VantageCheck>, StoreError> {
        self.on_store_runtime(self.inner.vantage_checks(fresh))
    }
    async fn request_operation(&self, request: &OperatorRequest) -> Result<i64, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.request_operation(request))
    }
    async fn take_operation(
        &self,
        fence: &Fence,
        within: Duration,
    ) -> Result<Option<(i64, OperatorRequest)>, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.take_operation(fence, within))
    }
    async fn finish_operation(&self, id: i64, outcome: &RequestOutcome) -> Result<(), StoreError> {
        self.on_store_runtime(self.inner.finish_operation(id, outcome))
    }
    async fn operation_outcome(&self, id: i64) -> Result<RequestOutcome, StoreError> {
        self.on_store_runtime(self.inner.operation_outcome(id))
    }
    async fn withdraw_operation(&self, id: i64) -> Result<bool, StoreError> {
        self.on_store_runtime(self.inner.withdraw_operation(id))
    }
    async fn listen(&self) -> Result<Listener, StoreError> {
        self.on_store_runtime(self.inner.listen())
    }
    async fn alert_counts(&self) -> Result<AlertCounts, StoreError> {
        self.on_store_runtime(self.inner.alert_counts())
    }
    async fn recent_alerts(&self, limit: u32) -> Result<Vec<OutboxAlert>, StoreError> {
        self.on_store_runtime(self.inner.recent_alerts(limit))
    }
    async fn recent_checks(&self, service: ServiceId, limit: u32) -> Result<Vec<CheckResult>, StoreError> {
        self.on_store_runtime(self.inner.recent_checks(service, limit))
    }
    async fn events(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.on_store_runtime(self.inner.events(before_id, limit))
    }
    async fn prune_checks(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.prune_checks(older_than))
    }
    async fn import_phones(&self, phones: &[Phone]) -> Result<PhoneImport, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.import_phones(phones))
    }
    async fn remove_phones(&self, macs: &[Mac]) -> Result<u64, StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.remove_phones(macs))
    }
    async fn phones(&self) -> Result<Vec<Phone>, StoreError> {
        self.on_store_runtime(self.inner.phones())
    }
    async fn phone_page(&self, query: &PhoneQuery) -> Result<PhonePage, StoreError> {
        self.on_store_runtime(self.inner.phone_page(query))
    }
    async fn phones_revision(&self) -> Result<PhonesRevision, StoreError> {
        self.on_store_runtime(self.inner.phones_revision())
    }
    async fn record_fetches(&self, fetches: &[PhoneFetch]) -> Result<(), StoreError> {
        self.write_fault()?;
        self.on_store_runtime(self.inner.record_fetches(fetches))
    }
    async fn fetch_records(&self) -> Result<Vec<FetchRecord>, StoreError> {
        self.on_store_runtime(self.inner.fetch_records())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.on_store_runtime(self.inner.ping())
    }
    async fn close(&self) {
        self.on_store_runtime(self.inner.close())
    }
}

/// The first of December 2026, noon: the start of every test's clock.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

pub fn phones(count: usize) -> Vec<Phone> {
    (0..count)
        .map(|n| Phone {
            mac: format!("0015650000{n:02x}").parse::<Mac>().unwrap(),
            vendor: if n % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys },
            model: "T46S".to_owned(),
            display_name: format!("Desk {n}"),
            user_id: format!("10{n:02}"),
            auth_id: String::new(),
            password: SecretString::from(format!("sip-secret-{n}")),
            prov_password: None,
        })
        .collect()
}

/// An orchestration running on `store` with the scripted prober, until dropped.
pub struct Running {
    pub prober: Arc<ScriptedProber>,
    pub store: Arc<FaultyStore>,
    pub orchestrator: Arc<OrchestratorView>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Arc<Orchestrator>>,
}

/// What a test reads of a running orchestration (the orchestrator itself runs).
pub struct OrchestratorView {
    pub state: switchback_server::AppState,
    pub config: Arc<Config>,
}

impl Running {
    pub async fn start(store: Arc<FaultyStore>) -> Self {
        let config = Arc::new(
            Config::parse(&format!("{CONFIG_HEAD}{}", switchback_tests::fixtures::TWO_SITES)).unwrap(),
        );
        let clock = Arc::new(TokioClock::starting_at(start()));
        let orchestrator = Orchestrator::open(config.clone(), store.clone(), clock).await.unwrap();
        let view = Arc::new(OrchestratorView { state: orchestrator.app_state(), config });
        let prober = Arc::new(ScriptedProber::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(orchestrator.run(prober.clone(), shutdown.clone()));
        Self { prober, store, orchestrator: view, shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }

    pub fn engine(&self) -> EngineState {
        self.orchestrator.state.engine.borrow().clone()
    }

    pub fn route_state(&self, route: Route) -> RouteState {
        self.engine().route(route).state
    }

    /// The site the served generation points the route's phones at.
    pub fn served_sip_site(&self) -> String {
        self.orchestrator.state.generations.current().sites().sip.site.clone()
    }

    /// Waits, in paused tokio time, until `done` holds; panics after `within`.
    pub async fn until(&self, within: Duration, what: &str, mut done: impl FnMut(&Self) -> bool) -> Duration {
        let started = tokio::time::Instant::now();
        loop {
            if done(self) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "not within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records a served file for each phone, as the HTTP server does.
    pub fn fetch_all(&self, generation: u64) {
        let current = self.orchestrator.state.generations.current();
        for (name, _) in current.phone_files() {
            let Some(mac) = name.mac() else { continue };
            self.orchestrator.state.fetches.record(PhoneFetch {
                mac,
                vendor: name.vendor(),
                at: self.orchestrator.state.clock.now(),
                generation,
                source: "192.0.2.10".parse().unwrap(),
                user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
                count: 1,
            });
        }
    }
}
