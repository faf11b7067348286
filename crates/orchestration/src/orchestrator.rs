//! The whole orchestration of one process: the scheduler feeds the decider, the decider
//! persists and publishes, the renderer turns each new generation of active sites into
//! phone files and swaps them in, and the flusher writes who fetched what to the store
//! in batches. The HTTP server reads the same values through [`Orchestrator::app_state`].

use std::sync::Arc;

use switchback_alerts::Sender;
use switchback_core::{Clock, Config, Rules};
use switchback_monitor::scheduler::{self, Cadence, Prober};
use switchback_provisioning::fetch::FetchLog;
use switchback_provisioning::Generations;
use switchback_server::health::StoreHealth;
use switchback_server::prov::guard::BlockView;
use switchback_server::prov::Access;
use switchback_server::{AppState, Auth, Metrics};
use switchback_store::{Leadership, PhonesRevision, Store};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::cluster::Group;
use crate::decider::Decider;
use crate::error::OpenError;
use crate::generations;

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
    /// New scan blocks, recorded as events by [`Orchestrator::record_blocks`].
    new_blocks: std::sync::Mutex<Option<mpsc::Receiver<BlockView>>>,
    /// `switchback demo`: the dashboard shows break and mend buttons.
    pub demo: bool,
    /// The inventory revision the current generation was rendered from.
    pub(crate) rendered_revision: PhonesRevision,
    sender: Sender,
    pub(crate) sender_wake: Arc<Notify>,
    /// Whether this instance decides and alerts: always alone, while it leads in a group.
    pub leadership: Arc<Leadership>,
    /// `[cluster]`: what only an instance of a group has.
    pub(crate) group: Option<Group>,
}

impl Orchestrator {
    /// Resumes the persisted state from `store` and renders its generation, so phones
    /// are served the right file before the first check finishes.
    pub async fn open(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OpenError> {
        let (access, new_blocks) = Access::new(&config.provisioning);
        let names = config.site_names();
        let store_health = Arc::new(StoreHealth::default());
        let metrics = Arc::new(Metrics::new(names.clone()));
        let rules = Rules::from(&config.monitor);
        let leadership = Arc::new(match &config.cluster {
            Some(cluster) => Leadership::group(cluster.node.clone()),
            None => Leadership::solo(),
        });
        let group = config.cluster.clone().map(|cluster| Group::new(cluster, &config.monitor, clock.now()));
        let client = switchback_alerts::sender::client()?;
        let sender = Sender::new(
            store.clone(),
            client,
            config.alerts.clone(),
            names.clone(),
            clock.clone(),
            leadership.clone(),
        );
        let decider = Decider::open(
            store.clone(),
            rules,
            clock.clone(),
            names,
            metrics.clone(),
            (config.alerts.clone(), sender.waker()),
            (store_health.clone(), leadership.clone()),
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
        let first = Arc::new(generations::render(&config, &state, phones).await?);
        tracing::info!(generation = first.number(), phones = first.phone_count(), "generation ready");
        if let Some(dir) = &config.render.dir {
            generations::write_dir(dir.clone(), &first).await;
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
            new_blocks: std::sync::Mutex::new(Some(new_blocks)),
            demo: false,
            rendered_revision,
            sender_wake: sender.waker(),
            sender,
            leadership,
            group,
        })
    }

    /// What the HTTP server's handlers read and act on.
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
            group: self.group.as_ref().map(|g| g.view.subscribe()),
        }
    }

    /// Checks with `prober` round after round, and keeps phone files, fetch records,
    /// alerts and history following the decisions, until `shutdown`; then flushes what
    /// is pending. The caller serves [`Orchestrator::app_state`], and once its server has
    /// drained, [`flushes`](Orchestrator::flush) once more and closes the store.
    pub async fn run(self, prober: Arc<dyn Prober>, shutdown: CancellationToken) -> Arc<Self> {
        let new_blocks = self.new_blocks.lock().ok().and_then(|mut r| r.take());
        let this = Arc::new(self);
        if let Some(receiver) = new_blocks {
            tokio::spawn(this.clone().record_blocks(receiver, shutdown.clone()));
        }
        tokio::spawn(this.clone().prune_nonces(shutdown.clone()));
        tokio::spawn(this.clone().check_store(shutdown.clone()));
        tokio::spawn(this.clone().prune_history(shutdown.clone()));
        tokio::spawn(this.clone().watch_convergence(shutdown.clone()));
        let renderer = tokio::spawn(this.clone().follow_generations(shutdown.clone()));
        let flusher = tokio::spawn(this.clone().flush_fetches(shutdown.clone()));
        let alerts = tokio::spawn(this.sender.clone().run(shutdown.clone()));
        let lease = tokio::spawn(this.clone().keep_lease(shutdown.clone()));
        if this.group.is_some() {
            tokio::spawn(this.clone().hear_group(shutdown.clone()));
            tokio::spawn(this.clone().heartbeat(shutdown.clone()));
            tokio::spawn(this.clone().count_vantages(shutdown.clone()));
            tokio::spawn(this.clone().serve_requests(shutdown.clone()));
        }

        let cadence = Cadence::from_config(&this.config);
        let round = this.clone();
        scheduler::run(prober, this.clock.clone(), cadence, shutdown, |results| {
            let this = round.clone();
            async move {
                if this.group.is_some() {
                    return this.record_round(results).await;
                }
                this.decider.apply_round(results).await.unwrap_or_else(|err| {
                    tracing::error!(error = %err, "round not applied");
                    true
                })
            }
        })
        .await;

        let _ = lease.await;
        let _ = renderer.await;
        let _ = flusher.await;
        let _ = alerts.await;
        this
    }
}
