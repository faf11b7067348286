//! The whole orchestrator in one process: the scheduler feeds the decider, the decider
//! persists and publishes, the renderer turns each new generation of active sites into
//! phone files and swaps them in, the server answers phones and operators, and the
//! flusher writes who fetched what to the store in batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use secrecy::ExposeSecret;
use switchback_alerts::Sender;
use switchback_core::config::redact_url;
use switchback_core::{Clock, Config, EngineState, Role, Rules, SystemClock};
use switchback_core::{Event, EventKind};
use switchback_monitor::scheduler::{self, Cadence, ConfigProber};
use switchback_provisioning::fetch::FetchLog;
use switchback_provisioning::{
    write_generation, ActiveSites, Generation, Generations, Phone, RenderSettings,
};
use switchback_server::health::StoreHealth;
use switchback_server::prov::guard::BlockView;
use switchback_server::prov::Access;
use switchback_server::tls::{Tls, TlsFiles};
use switchback_server::{AppState, Auth, Limits, Listeners, Metrics};
use switchback_store::{PhonesRevision, Store};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::decider::Decider;

/// How often served-file records are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often the inventory is checked for an import made by another process.
const PHONES_POLL: Duration = Duration::from_secs(3);
/// How often convergence on a new generation is checked.
const CONVERGENCE_POLL: Duration = Duration::from_secs(2);
/// The share of phones that must have fetched a new generation for it to count as converged.
const CONVERGED_SHARE: f64 = 0.95;
/// How often old check history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Scan blocks recorded (and alerted) one by one within [`SCAN_EVENTS_PER`]; more are
/// summed up once a minute.
const SCAN_EVENTS: usize = 10;
const SCAN_EVENTS_PER: Duration = Duration::from_secs(600);
/// How often the store is checked between rounds.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often the counts of expired digest nonces are forgotten.
const NONCE_PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Orchestrator {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub decider: Arc<Decider>,
    pub generations: Arc<Generations>,
    pub fetches: Arc<FetchLog>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    pub access: Arc<Access>,
    pub store_health: Arc<StoreHealth>,
    /// The HTTPS listener's certificate (and phone CAs), when `server.tls_listen` is set.
    pub tls: Option<Arc<Tls>>,
    /// New scan blocks, recorded as events by [`Orchestrator::record_blocks`].
    new_blocks: std::sync::Mutex<Option<mpsc::Receiver<BlockView>>>,
    /// `switchback demo`: the dashboard shows break and mend buttons.
    pub demo: bool,
    /// The inventory revision the current generation was rendered from.
    rendered_revision: PhonesRevision,
    sender: Sender,
}

impl Orchestrator {
    /// Opens the store, resumes the persisted state and renders its generation, so
    /// phones are served the right file before the first check finishes.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let tls = load_tls(&config)?;
        let (access, new_blocks) = Access::new(&config.provisioning);
        warn_if_open(&config);
        let store = open_store(&config).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let names = config.site_names();
        let store_health = Arc::new(StoreHealth::default());
        let metrics = Arc::new(Metrics::new(names.clone()));
        let rules = Rules::from(&config.monitor);
        let client = switchback_alerts::sender::client().context("cannot build the webhook HTTP client")?;
        let sender = Sender::new(store.clone(), client, config.alerts.clone(), names.clone(), clock.clone());
        let decider = Decider::open(
            store.clone(),
            rules,
            clock.clone(),
            names,
            metrics.clone(),
            (config.alerts.clone(), sender.waker()),
            store_health.clone(),
        )
        .await?;
        let secure_cookie = config.server.public_url.scheme() == "https";
        let auth = Arc::new(Auth::new(
            config.server.admin_token.clone(),
            config.server.read_token.clone(),
            secure_cookie,
        ));
        let state = decider.subscribe().borrow().clone();
        // Read before the phones, so an import in between is noticed, not lost.
        let rendered_revision = store.phones_revision().await?;
        let phones = store.phones().await?;
        let first = render(&config, &state, phones).await?;
        tracing::info!(generation = first.number(), phones = first.phone_count(), "generation ready");
        let first = Arc::new(first);
        if let Some(dir) = &config.render.dir {
            write_dir(dir.clone(), &first).await;
        }
        let fetches = Arc::new(FetchLog::default());
        fetches.seed(store.fetch_records().await?.iter().map(|r| (r.mac, r.last())));
        Ok(Self {
            config,
            store,
            decider: Arc::new(decider),
            generations: Arc::new(Generations::from_arc(first)),
            fetches,
            clock,
            metrics,
            auth,
            access: Arc::new(access),
            store_health,
            tls,
            new_blocks: std::sync::Mutex::new(Some(new_blocks)),
            demo: false,
            rendered_revision,
            sender,
        })
    }

    pub fn app_state(&self) -> AppState {
        AppState {
            generations: self.generations.clone(),
            fetches: self.fetches.clone(),
            engine: self.decider.subscribe(),
            site_names: Arc::new(self.config.site_names()),
            clock: self.clock.clone(),
            control: self.decider.clone(),
            store: self.store.clone(),
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
            access: self.access.clone(),
            store_health: self.store_health.clone(),
            recent_checks: self.decider.recent_checks(),
            poll_interval: self.config.phones.poll_interval,
            demo: self.demo,
        }
    }

    /// Runs everything until `shutdown`, then flushes what is pending.
    pub async fn run(
        self,
        listener: TcpListener,
        extra: Router,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let new_blocks = self.new_blocks.lock().ok().and_then(|mut r| r.take());
        let this = Arc::new(self);
        let tls_listener = match (&this.tls, this.config.server.tls_listen) {
            (Some(tls), Some(addr)) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (tls_listen)"))?;
                tracing::info!(tls_listen = %listener.local_addr()?, "https listening");
                Some((listener, tls.clone()))
            }
            _ => None,
        };
        let limits =
            Limits::new(switchback_server::listen::fit_connections(this.config.server.max_connections));
        tracing::info!(
            listen = %listener.local_addr()?,
            auth = this.config.provisioning.auth.as_str(),
            primary = this.config.site_name(Role::Primary),
            backup = this.config.site_name(Role::Backup),
            interval = %humantime::format_duration(this.config.monitor.interval),
            "switchback running"
        );
        let router = switchback_server::router(this.app_state(), extra, &shutdown);
        let listeners = Listeners { plain: listener, tls: tls_listener };
        let server = tokio::spawn(switchback_server::serve(
            listeners,
            router,
            limits,
            this.metrics.clone(),
            shutdown.clone(),
        ));
        if let Some(receiver) = new_blocks {
            tokio::spawn(this.clone().record_blocks(receiver, shutdown.clone()));
        }
        tokio::spawn(this.clone().prune_nonces(shutdown.clone()));
        tokio::spawn(this.clone().check_store(shutdown.clone()));
        tokio::spawn(reload_on_hangup(this.tls.clone(), shutdown.clone()));
        let renderer = tokio::spawn(this.clone().follow_generations(shutdown.clone()));
        let flusher = tokio::spawn(this.clone().flush_fetches(shutdown.clone()));
        tokio::spawn(this.clone().prune_history(shutdown.clone()));
        let alerts = tokio::spawn(this.sender.clone().run(shutdown.clone()));
        tokio::spawn(this.clone().watch_convergence(shutdown.clone()));

        let prober = Arc::new(ConfigProber::new(this.config.clone()));
        let decider = this.decider.clone();
        scheduler::run(prober, this.clock.clone(), Cadence::from_config(&this.config), shutdown, |results| {
            let decider = decider.clone();
            async move {
                decider.apply_round(results).await.unwrap_or_else(|err| {
                    tracing::error!(error = %err, "round not applied");
                    true
                })
            }
        })
        .await;

        let served = server.await.context("server task")?;
        let _ = renderer.await;
        let _ = flusher.await;
        let _ = alerts.await;
        this.store.close().await;
        served.context("http server")?;
        tracing::info!("switchback stopped");
        Ok(())
    }

    /// Renders and swaps in a new generation whenever the active sites change (a new
    /// generation number) or the inventory does (same number, new phones).
    async fn follow_generations(self: Arc<Self>, shutdown: CancellationToken) {
        let mut engine = self.decider.subscribe();
        let mut revision = self.rendered_revision;
        let mut poll = tokio::time::interval(PHONES_POLL);
        loop {
            tokio::select! {
                changed = engine.changed() => if changed.is_err() { return },
                _ = poll.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let state = engine.borrow_and_update().clone();
            let now_revision = match self.store.phones_revision().await {
                Ok(now) => now,
                Err(err) => {
                    tracing::warn!(error = %err, "phone inventory not checked");
                    revision
                }
            };
            let current = self.generations.current();
            if state.generation == current.number() && now_revision == revision {
                continue;
            }
            match self.rerender(&state, now_revision).await {
                Ok(()) => revision = now_revision,
                Err(err) => tracing::error!(error = %format!("{err:#}"), "generation not rendered"),
            }
        }
    }

    async fn rerender(&self, state: &EngineState, revision: PhonesRevision) -> anyhow::Result<()> {
        let started = Instant::now();
        let phones = self.store.phones().await?;
        let next = render(&self.config, state, phones).await?;
        let (number, phones, sites) = (next.number(), next.phone_count(), next.sites().clone());
        let old = self.generations.swap(next);
        tracing::info!(
            generation = number,
            sip_site = %sites.sip.site,
            stun_site = %sites.stun.site,
            phones,
            inventory = revision.count,
            took_ms = started.elapsed().as_millis() as u64,
            "generation swapped"
        );
        // Freeing 100,000 old files takes tens of milliseconds: not on an async thread.
        tokio::task::spawn_blocking(move || drop(old));
        if let Some(dir) = &self.config.render.dir {
            write_dir(dir.clone(), &self.generations.current()).await;
        }
        Ok(())
    }

    async fn flush_fetches(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = shutdown.cancelled() => true,
            };
            let batch = self.fetches.take_pending();
            if !batch.is_empty() {
                if let Err(err) = self.store.record_fetches(&batch).await {
                    tracing::warn!(error = %err, pending = batch.len(), "phone fetches not recorded yet");
                    self.store_health.failed(&err.to_string());
                    self.fetches.requeue(batch);
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Records (and alerts) once most phones have fetched a generation that moved them.
    /// Generation 1 moved nobody; a generation already current at start was announced
    /// by the run before, or will be by the next change.
    async fn watch_convergence(self: Arc<Self>, shutdown: CancellationToken) {
        let mut announced = self.generations.current().number();
        let mut tick = tokio::time::interval(CONVERGENCE_POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let current = self.generations.current();
            let (number, total) = (current.number(), current.phone_count());
            let fetched = self.fetches.on_generation(number);
            if number <= announced || total == 0 || (fetched as f64) < CONVERGED_SHARE * total as f64 {
                continue;
            }
            announced = number;
            let sites = current.sites();
            let reason = format!(
                "{fetched} of {total} phones fetched generation {number} (sip on {}, stun on {})",
                sites.sip.site, sites.stun.site
            );
            let event = Event::note(
                self.clock.now(),
                EventKind::Converged,
                switchback_core::engine::MONITOR_ACTOR,
                reason,
            );
            if let Err(err) = self.decider.note(event).await {
                tracing::warn!(error = %err, generation = number, "convergence not recorded");
            }
        }
    }

    /// Records each new scan block as a `provisioning_scan` event, which alerts: the
    /// first [`SCAN_EVENTS`] within [`SCAN_EVENTS_PER`] one by one, the rest as one
    /// summary a minute, so that a botnet cannot page on-call once per address.
    async fn record_blocks(
        self: Arc<Self>,
        mut blocks: mpsc::Receiver<BlockView>,
        shutdown: CancellationToken,
    ) {
        let mut recent: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
        let mut held: Vec<BlockView> = Vec::new();
        let mut summary = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                block = blocks.recv() => {
                    let Some(block) = block else { return };
                    let now = Instant::now();
                    while recent.front().is_some_and(|t| now.duration_since(*t) >= SCAN_EVENTS_PER) {
                        recent.pop_front();
                    }
                    if recent.len() < SCAN_EVENTS {
                        recent.push_back(now);
                        self.record_block(&block).await;
                    } else if held.len() < 100_000 {
                        held.push(block);
                    }
                }
                _ = summary.tick() => {
                    if !held.is_empty() {
                        self.record_summary(std::mem::take(&mut held)).await;
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn record_block(&self, block: &BlockView) {
        let block_for = humantime::format_duration(self.config.provisioning.block_for);
        let reason =
            format!("{} bad phone-file requests within 10m; blocked for {block_for}", block.bad_requests);
        self.note_scan(block.since, block.source.to_string(), reason).await;
    }

    async fn record_summary(&self, held: Vec<BlockView>) {
        let shown: Vec<String> = held.iter().take(10).map(|b| b.source.to_string()).collect();
        let more = if held.len() > shown.len() { ", …" } else { "" };
        let reason = format!(
            "{} more sources blocked for bad phone-file requests in the last minute: {}{more}",
            held.len(),
            shown.join(", ")
        );
        self.note_scan(self.clock.now(), "many-sources".to_owned(), reason).await;
    }

    async fn note_scan(&self, at: chrono::DateTime<chrono::Utc>, actor: String, reason: String) {
        let event = Event::note(at, EventKind::ProvisioningScan, actor, reason);
        if let Err(err) = self.decider.note(event).await {
            tracing::error!(error = %err, "provisioning scan event not recorded");
        }
    }

    /// Notices a store that stopped answering, or a SQLite file deleted or replaced
    /// under it, between rounds (which may be minutes apart).
    async fn check_store(self: Arc<Self>, shutdown: CancellationToken) {
        every(STORE_CHECK_EVERY, shutdown, || async {
            match self.store.check().await {
                Ok(()) => self.store_health.check_passed(),
                Err(err) => self.store_health.check_failed(&err.to_string()),
            }
        })
        .await;
    }

    async fn prune_nonces(self: Arc<Self>, shutdown: CancellationToken) {
        every(NONCE_PRUNE_EVERY, shutdown, || async {
            let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
            self.access.digest.prune(now);
        })
        .await;
    }

    async fn prune_history(self: Arc<Self>, shutdown: CancellationToken) {
        let retention =
            chrono::Duration::from_std(self.config.store.check_retention).unwrap_or(chrono::TimeDelta::MAX);
        loop {
            match self.store.prune_checks(self.clock.now() - retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "check history pruned"),
                Err(err) => tracing::warn!(error = %err, "check history not pruned"),
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store.url.expose_secret();
    switchback_store::connect(url).await.with_context(|| format!("cannot open the store {}", redact_url(url)))
}

/// Renders every phone for the state's active sites, off the async threads.
pub async fn render(config: &Config, state: &EngineState, phones: Vec<Phone>) -> anyhow::Result<Generation> {
    let sites = ActiveSites::from_config(config, |route| state.active(route));
    let settings = RenderSettings::from_config(config);
    let number = state.generation;
    let generation =
        tokio::task::spawn_blocking(move || Generation::render(number, &sites, &settings, &phones)).await??;
    Ok(generation)
}

async fn write_dir(dir: std::path::PathBuf, generation: &Arc<Generation>) {
    let generation = generation.clone();
    let number = generation.number();
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || write_generation(&dir, &generation)).await {
        Ok(Ok(report)) => tracing::info!(
            generation = number,
            dir = %shown,
            written = report.written,
            unchanged = report.unchanged,
            removed = report.removed,
            "render dir updated"
        ),
        Ok(Err(err)) => {
            tracing::error!(generation = number, dir = %shown, error = %err, "render dir not updated")
        }
        Err(err) => {
            tracing::error!(generation = number, dir = %shown, error = %err, "render dir writer crashed")
        }
    }
}

/// Runs `tick` every `period` (the first at once) until `shutdown`.
async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        tick().await;
    }
}

/// The HTTPS listener's files, read now so that a bad one stops the start.
fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<Tls>>> {
    let server = &config.server;
    let (Some(_), Some(cert), Some(key)) = (server.tls_listen, &server.tls_cert, &server.tls_key) else {
        return Ok(None);
    };
    let files =
        TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: config.provisioning.client_ca.clone() };
    Ok(Some(Arc::new(Tls::load(files)?)))
}

/// Without `provisioning.auth`, anyone who can reach `public_url` and guess a MAC gets
/// that phone's SIP password: fine on a closed network, said loudly otherwise.
fn warn_if_open(config: &Config) {
    let loopback = match config.server.public_url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if config.provisioning.auth == switchback_core::config::ProvisioningAuth::None && !loopback {
        tracing::warn!(
            public_url = %config.server.public_url,
            "provisioning.auth is none: anyone who reaches public_url can fetch any phone's file and its SIP \
             password; set auth = \"digest\" or \"client_cert\" unless this network is closed"
        );
    }
}

/// Re-reads the TLS certificate and key on SIGHUP; a bad file keeps the old ones.
async fn reload_on_hangup(tls: Option<Arc<Tls>>, shutdown: CancellationToken) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP");
            return;
        }
    };
    loop {
        tokio::select! {
            received = hangups.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        match &tls {
            None => tracing::info!("SIGHUP: no tls_listen, nothing to reload"),
            Some(tls) => match tls.reload() {
                Ok(()) => tracing::info!("tls certificate reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "tls certificate not reloaded; the old one stays in use")
                }
            },
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
