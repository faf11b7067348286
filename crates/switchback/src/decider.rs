//! The decider: feeds check rounds and operator actions to the route engine, persists
//! each step before it takes effect, then publishes the new state and logs what moved.

use std::sync::Arc;

use switchback_core::config::AlertConfig;
use switchback_core::engine::OperatorError;
use switchback_core::SiteNames;
use switchback_core::{
    Action, CheckResult, Clock, EngineState, Event, EventKind, Route, RouteState, Rules, Step,
};
use switchback_server::health::StoreHealth;
use switchback_server::{Control, ControlError, Metrics, RecentChecks};
use switchback_store::Store;
use tokio::sync::{watch, Mutex, Notify};
use tracing::Instrument;

#[derive(Debug)]
pub struct Decider {
    store: Arc<dyn Store>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    site_names: SiteNames,
    metrics: Arc<Metrics>,
    webhooks: Vec<AlertConfig>,
    /// Wakes the alert sender when a step queued alerts.
    alert_wake: Arc<Notify>,
    /// Told of every save that failed or went through.
    store_health: Arc<StoreHealth>,
    /// Every round's results, for the status page; seeded from the store.
    recent_checks: Arc<RecentChecks>,
    /// Held across a step and its save, so rounds and operator actions never interleave.
    state: Mutex<EngineState>,
    published: watch::Sender<EngineState>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("could not persist the decision, nothing changed: {0}")]
    Store(#[from] switchback_store::StoreError),
}

impl Decider {
    /// Resumes from the persisted state, or starts with every route on its primary.
    pub async fn open(
        store: Arc<dyn Store>,
        rules: Rules,
        clock: Arc<dyn Clock>,
        site_names: SiteNames,
        metrics: Arc<Metrics>,
        (webhooks, alert_wake): (Vec<AlertConfig>, Arc<Notify>),
        store_health: Arc<StoreHealth>,
    ) -> Result<Self, DecideError> {
        let state = match store.load_state().await? {
            Some(state) => state,
            None => EngineState::new(clock.now()),
        };
        let (published, _) = watch::channel(state.clone());
        let recent_checks = Arc::new(RecentChecks::from_store(&*store).await?);
        Ok(Self {
            store,
            rules,
            clock,
            site_names,
            metrics,
            webhooks,
            alert_wake,
            store_health,
            recent_checks,
            state: Mutex::new(state),
            published,
        })
    }

    /// The current state, and every change to it.
    pub fn subscribe(&self) -> watch::Receiver<EngineState> {
        self.published.subscribe()
    }

    /// Each service's latest checks, as the rounds saw them.
    pub fn recent_checks(&self) -> Arc<RecentChecks> {
        self.recent_checks.clone()
    }

    /// Applies a round of checks; answers whether the scheduler should re-check soon.
    pub async fn apply_round(&self, results: Vec<CheckResult>) -> Result<bool, DecideError> {
        self.metrics.observe_checks(&results);
        self.recent_checks.observe(&results);
        let mut state = self.state.lock().await;
        let step = state.step(&results, &self.rules, self.clock.now());
        // What the probes see is worth showing even when nothing can be decided: the
        // services as checked, the routes as last persisted. Shown before the save
        // while the store is known to be down (a save may then wait for its timeout),
        // and after a save that failed. The next round decides again from the persisted
        // state and fresh checks.
        let mut live = state.clone();
        live.services = step.next.services.clone();
        if self.store_health.fault().is_some() {
            self.published.send_replace(live.clone());
        }
        let span = tracing::info_span!("decide", generation = state.generation);
        if let Err(err) = self.commit(&mut state, step, &results).instrument(span).await {
            self.published.send_replace(live);
            return Err(err);
        }
        Ok(state.unsettled())
    }

    /// Applies an operator action.
    pub async fn operate(
        &self,
        route: Route,
        action: Action,
        actor: &str,
        why: &str,
    ) -> Result<(), DecideError> {
        let mut state = self.state.lock().await;
        let step = state.operate(route, action, actor, why, self.clock.now())?;
        self.commit(&mut state, step, &[]).await
    }

    /// Records an event that the rules did not make (convergence), with its alerts.
    pub async fn note(&self, event: Event) -> Result<(), DecideError> {
        let mut state = self.state.lock().await;
        let step = Step { next: state.clone(), events: vec![event] };
        self.commit(&mut state, step, &[]).await
    }

    async fn commit(
        &self,
        state: &mut EngineState,
        step: Step,
        checks: &[CheckResult],
    ) -> Result<(), DecideError> {
        let alerts = switchback_alerts::plan(state, step.next.generation, &step.events, &self.webhooks);
        if let Err(err) = self.store.save_step_with_alerts(&step.next, checks, &step.events, &alerts).await {
            self.store_health.failed(&err.to_string());
            return Err(err.into());
        }
        self.store_health.ok();
        if !alerts.is_empty() {
            self.alert_wake.notify_one();
        }
        *state = step.next;
        self.published.send_replace(state.clone());
        self.metrics.observe_events(&step.events);
        for event in &step.events {
            self.log(event);
        }
        Ok(())
    }

    fn site(&self, role: switchback_core::Role) -> &str {
        self.site_names.get(role)
    }

    fn log(&self, event: &Event) {
        let route = event.route.map(Route::as_str).unwrap_or("-");
        let active = event.active.map(|r| self.site(r)).unwrap_or("-");
        let (site, service) =
            event.service.map(|s| (self.site(s.role), s.kind.as_str())).unwrap_or(("-", "-"));
        let message = match (event.kind, event.from, event.to) {
            (EventKind::Transition, _, Some(RouteState::FailedOver)) => "route failed over",
            (EventKind::Transition, Some(RouteState::Failing), Some(RouteState::Primary)) => {
                "route blip over"
            }
            (EventKind::Transition, _, Some(RouteState::Primary)) => "route failed back",
            (EventKind::Transition, _, Some(RouteState::Failing)) => "route failing",
            (EventKind::Transition, _, _) => "route recovering",
            (EventKind::Operator, _, _) => "operator action",
            (kind, _, _) => kind.as_str(),
        };
        let reason = event.reason.as_str();
        match event.kind {
            EventKind::ServiceUp | EventKind::MonitorSighted | EventKind::Operator => {
                tracing::info!(route, site, service, active_site = active, actor = %event.actor, reason, "{message}")
            }
            EventKind::Transition | EventKind::FailbackReady => {
                tracing::warn!(route, active_site = active, reason, "{message}")
            }
            _ => tracing::warn!(route, site, service, reason, "{message}"),
        }
    }
}

#[async_trait::async_trait]
impl Control for Decider {
    async fn operate(
        &self,
        route: Route,
        action: Action,
        actor: &str,
        why: &str,
    ) -> Result<(), ControlError> {
        Decider::operate(self, route, action, actor, why).await.map_err(|err| match err {
            DecideError::Operator(refused) => ControlError::Refused(refused.to_string()),
            DecideError::Store(store) => ControlError::Unavailable(store.to_string()),
        })
    }
}
