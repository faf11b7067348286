//! The decider: feeds check rounds and operator actions to the route engine, persists
//! each step before it takes effect, then publishes the new state and logs what moved.

use std::sync::Arc;

use switchback_core::config::AlertConfig;
use switchback_core::engine::OperatorError;
use switchback_core::SiteNames;
use switchback_core::{Action, CheckResult, Clock, EngineState, Event, Route, Rules, Step};
use switchback_server::health::StoreHealth;
use switchback_server::{Control, ControlError, Metrics, RecentChecks};
use switchback_store::{Leadership, OperatorRequest, RequestOutcome, Store, StoreError};
use tokio::sync::{watch, Mutex, Notify};

use crate::quorum::Count;
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
    state: Mutex<Held>,
    published: watch::Sender<EngineState>,
    /// Whether this instance may decide (always, alone; while it leads, in a group).
    leadership: Arc<Leadership>,
}

/// The persisted state, and the checks of rounds that could not be saved: they are
/// folded in again, first, by the next round, so that an outage that began while the
/// store refused writes is timed from its first failed check, and its events are not
/// lost.
#[derive(Debug)]
struct Held {
    state: EngineState,
    unsaved: Vec<CheckResult>,
    /// A save failed: it may have committed all the same (the reply was lost), so the
    /// stored state is read back before the next step.
    doubtful: bool,
    /// A save that overran [`SAVE_WITHIN`], still running: its outcome is awaited before
    /// the next step, so that it can never land after a step that assumed it failed.
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
struct InFlight {
    save: tokio::task::JoinHandle<Result<(), switchback_store::StoreError>>,
    step: Step,
    queued_alerts: bool,
}

/// The longest a save may take before it counts as failed (and doubtful).
const SAVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The most checks kept for rounds not saved: at six a round every 5 s, two hours'
/// worth. Beyond it the oldest go, and an outage older than that is timed from later.
const UNSAVED_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("could not persist the decision, nothing changed: {0}")]
    Store(#[from] switchback_store::StoreError),
    #[error("the store did not confirm the decision within {0:?}; it takes effect only if the store confirms it later")]
    SaveTimedOut(std::time::Duration),
    #[error("the save of the decision crashed: {0}")]
    SaveCrashed(String),
    #[error("this instance does not lead the group; the leader decides")]
    NotLeader,
}

/// How long an operator action sent to an instance that does not lead waits for a
/// leader to take it; not taken by then, it is withdrawn (and the leader drops actions
/// older than this): never applied late.
pub const FORWARD_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
/// How long an action a leader took is awaited in all: the answer must come before the
/// request's own 10 s timeout.
const FORWARD_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(9);

/// Whether `stored` holds a step taken after `known`: a route or a service moved on in
/// it. Times in the store are whole microseconds, in memory nanoseconds, and a later
/// step is seconds later, so "later" is robust where equality is not.
fn went_through(known: &EngineState, stored: &EngineState) -> bool {
    stored.generation != known.generation
        || Route::ALL.iter().any(|&route| stored.route(route).since > known.route(route).since)
        || stored.services.iter().any(|(id, track)| track.checked_at > known.service(*id).checked_at)
}

/// Drops the unsaved checks that the state now holds (a save that went through after
/// all carried them), keeping the later ones.
fn keep_unsaved_after(held: &mut Held) {
    let state = &held.state;
    held.unsaved
        .retain(|check| state.service(check.service).checked_at.is_none_or(|at| check.checked_at > at));
}

/// Keeps, of the checks of rounds not saved, what the route engine needs: per service,
/// the first check of each run of equal health and the latest one. Runs start and end
/// where they did, so an outage is timed from its first failed check, and a store that
/// is away for hours costs a few rows per service, not one per round.
fn compact(results: Vec<CheckResult>) -> Vec<CheckResult> {
    let mut kept: Vec<CheckResult> = Vec::new();
    // Per service: where its current run's first check is, and its latest if kept apart.
    let mut runs: std::collections::HashMap<switchback_core::ServiceId, (usize, Option<usize>)> =
        std::collections::HashMap::new();
    for result in results {
        match runs.get_mut(&result.service) {
            Some((first, latest)) if kept[*first].healthy == result.healthy => match latest {
                Some(at) => kept[*at] = result,
                None => {
                    kept.push(result);
                    *latest = Some(kept.len() - 1);
                }
            },
            _ => {
                runs.insert(result.service, (kept.len(), None));
                kept.push(result);
            }
        }
    }
    kept
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
        (store_health, leadership): (Arc<StoreHealth>, Arc<Leadership>),
    ) -> Result<Self, switchback_store::StoreError> {
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
            state: Mutex::new(Held { state, unsaved: Vec::new(), doubtful: false, in_flight: None }),
            published,
            leadership,
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
        self.observe(&results);
        self.decide(Count::Checks(results), true).await
    }

    /// What this instance's own round saw, for its metrics and status page, whoever
    /// decides on it.
    pub fn observe(&self, results: &[CheckResult]) {
        self.metrics.observe_checks(results);
        self.recent_checks.observe(results);
    }

    /// The leader of a group applies what the vantages' checks count to (their checks
    /// are in the store already, each tagged with its vantage).
    pub async fn apply_count(&self, count: Count) -> Result<bool, DecideError> {
        self.decide(count, false).await
    }

    async fn decide(&self, count: Count, keep_checks: bool) -> Result<bool, DecideError> {
        let mut held = self.state.lock().await;
        let settled = self.settle(&mut held).await;
        let mut results = match count {
            Count::Checks(results) => results,
            Count::Blind(reason) => {
                settled?;
                let step = held.state.step_blind(&reason, self.clock.now());
                self.commit(&mut held, step, &[]).await?;
                return Ok(true);
            }
        };
        if !held.unsaved.is_empty() {
            let mut earlier = std::mem::take(&mut held.unsaved);
            earlier.append(&mut results);
            results = compact(earlier);
        }
        let step = held.state.step(&results, &self.rules, self.clock.now());
        // What the probes see is worth showing even when nothing can be decided: the
        // services as checked, the routes as last persisted. Shown before the save
        // while the store is known to be down (a save may then wait for its timeout),
        // and after a save that failed. The next round decides again from the persisted
        // state and fresh checks.
        let mut live = held.state.clone();
        live.services = step.next.services.clone();
        if self.store_health.fault().is_some() {
            self.published.send_replace(live.clone());
        }
        let span = tracing::info_span!("decide", generation = held.state.generation);
        let kept: &[CheckResult] = if keep_checks { &results } else { &[] };
        let committed = match settled {
            Ok(()) => self.commit(&mut held, step, kept).instrument(span).await,
            Err(err) => Err(err),
        };
        if let Err(err) = committed {
            if matches!(err, DecideError::NotLeader) {
                return Err(err);
            }
            self.published.send_replace(live);
            let over = results.len().saturating_sub(UNSAVED_MAX);
            results.drain(..over);
            held.unsaved = results;
            return Err(err);
        }
        Ok(held.state.unsettled())
    }

    /// On winning the lease: decides from here on from what the store has (the previous
    /// leader's last step), not from what this instance followed or once decided.
    pub async fn resume_from_store(&self) -> Result<(), DecideError> {
        let mut held = self.state.lock().await;
        if let Some(flight) = held.in_flight.take() {
            // A save of an earlier term: the store refuses it now (its term is over), or
            // it committed before this term began and is in what is loaded below.
            flight.save.abort();
        }
        held.doubtful = false;
        held.unsaved.clear();
        let stored = tokio::time::timeout(SAVE_WITHIN, self.store.load_state())
            .await
            .map_err(|_| DecideError::SaveTimedOut(SAVE_WITHIN))??;
        if let Some(stored) = stored {
            held.state = stored;
        }
        self.published.send_replace(held.state.clone());
        Ok(())
    }

    /// A follower takes the leader's persisted state as its own, and publishes it, so
    /// that it renders and serves the same generation. Only a later state than the one
    /// it has (a slow read must not take it back), and never once it won a term: from
    /// then on it decides from what it read back itself.
    pub async fn follow(&self, stored: EngineState) {
        let mut held = self.state.lock().await;
        if self.leadership.held().is_some() {
            return;
        }
        let later = stored.generation > held.state.generation
            || (stored.generation == held.state.generation && went_through(&held.state, &stored));
        if later {
            if held.state.generation != stored.generation {
                tracing::info!(generation = stored.generation, "following the leader to a new generation");
            }
            held.state = stored;
            self.published.send_replace(held.state.clone());
        }
    }

    /// An operator action sent to this instance, which does not lead: queued in the
    /// store for the leader, and awaited. One that no leader took within
    /// [`FORWARD_WITHIN`] is withdrawn, so it is never applied later; one a leader took is
    /// awaited until the leader says how it went, or [`FORWARD_ANSWER_WITHIN`].
    async fn forward(&self, request: OperatorRequest) -> Result<(), ControlError> {
        // Each call bounded: a store that hangs answers 503, not the request's timeout.
        async fn bounded<T>(
            call: impl std::future::Future<Output = Result<T, StoreError>>,
        ) -> Result<T, ControlError> {
            let limit = std::time::Duration::from_secs(2);
            switchback_store::within(limit, "forward an operator action", call)
                .await
                .map_err(|err| ControlError::Unavailable(err.to_string()))
        }
        let id = bounded(self.store.request_operation(&request)).await?;
        // Once queued, a store that stops answering leaves the action's fate open.
        let open = |_| {
            ControlError::NoLeader(
                "the store stopped answering after the action was queued; it may still be applied: \
                 see the route's state"
                    .to_owned(),
            )
        };
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let waited = started.elapsed();
            match bounded(self.store.operation_outcome(id)).await.map_err(open)? {
                RequestOutcome::Done => {
                    // Answered with the leader's step, not this instance's view before it.
                    if let Ok(Some(stored)) = self.store.load_state().await {
                        self.follow(stored).await;
                    }
                    return Ok(());
                }
                RequestOutcome::Refused(why) => return Err(ControlError::Refused(why)),
                RequestOutcome::Failed(why) => return Err(ControlError::Unavailable(why)),
                RequestOutcome::Pending if waited >= FORWARD_WITHIN => {
                    if bounded(self.store.withdraw_operation(id)).await.map_err(open)? {
                        return Err(ControlError::NoLeader(format!(
                            "no leader of the group took the action within {FORWARD_WITHIN:?}; it was \
                             withdrawn and will not be applied"
                        )));
                    }
                }
                RequestOutcome::Taken if waited >= FORWARD_ANSWER_WITHIN => {
                    return Err(ControlError::Unavailable(
                        "the leader took the action but has not said how it went; see the route's state"
                            .to_owned(),
                    ));
                }
                RequestOutcome::Pending | RequestOutcome::Taken => {}
            }
        }
    }

    /// Applies an operator action.
    pub async fn operate(
        &self,
        route: Route,
        action: Action,
        actor: &str,
        why: &str,
    ) -> Result<(), DecideError> {
        let mut held = self.state.lock().await;
        self.settle(&mut held).await?;
        let step = held.state.operate(route, action, actor, why, self.clock.now())?;
        self.commit(&mut held, step, &[]).await
    }

    /// Records an event that moves nothing (a scan block) with its alerts, whether or not
    /// this instance leads: in a group, each instance blocks its own scanners.
    pub async fn note_apart(&self, event: Event) -> Result<(), DecideError> {
        if self.leadership.leads() {
            return self.note(event).await;
        }
        let state = self.published.borrow().clone();
        let events = [event];
        let alerts = switchback_alerts::plan(&state, state.generation, &events, &self.webhooks);
        self.store.record_events(&events, &alerts).await?;
        self.metrics.observe_events(&events);
        self.log(&events[0]);
        Ok(())
    }

    /// Records an event that the rules did not make (convergence), with its alerts.
    pub async fn note(&self, event: Event) -> Result<(), DecideError> {
        let mut held = self.state.lock().await;
        self.settle(&mut held).await?;
        let step = Step { next: held.state.clone(), events: vec![event] };
        self.commit(&mut held, step, &[]).await
    }

    /// Before a step, settles the outcome of earlier saves: a save still running is
    /// awaited (a while); a save that failed is checked by reading the stored state back,
    /// which is adopted when the save went through after all (its steps' times are in
    /// the store), so that its events and alerts are not made twice.
    async fn settle(&self, held: &mut Held) -> Result<(), DecideError> {
        if let Some(mut flight) = held.in_flight.take() {
            match tokio::time::timeout(SAVE_WITHIN, &mut flight.save).await {
                Err(_) => {
                    held.in_flight = Some(flight);
                    return Err(DecideError::SaveTimedOut(SAVE_WITHIN));
                }
                Ok(Ok(Ok(()))) => {
                    tracing::warn!("a save that overran its time went through; resuming from it");
                    self.store_health.ok();
                    self.applied(held, flight.step, flight.queued_alerts);
                    return Ok(());
                }
                Ok(_) => held.doubtful = true,
            }
        }
        if !held.doubtful {
            return Ok(());
        }
        let stored = match tokio::time::timeout(SAVE_WITHIN, self.store.load_state()).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(err)) => {
                self.store_health.failed(&err.to_string());
                return Err(err.into());
            }
            Err(_) => return Err(DecideError::SaveTimedOut(SAVE_WITHIN)),
        };
        held.doubtful = false;
        if let Some(stored) = stored.filter(|stored| went_through(&held.state, stored)) {
            tracing::warn!(
                generation = stored.generation,
                "a save reported as failed had gone through; resuming from it"
            );
            held.state = stored;
            keep_unsaved_after(held);
            self.published.send_replace(held.state.clone());
            self.alert_wake.notify_one();
        }
        Ok(())
    }

    /// Saves `step` and applies it. A save that fails marks the outcome doubtful; one
    /// that overruns [`SAVE_WITHIN`] is left running, and settled before the next step.
    async fn commit(&self, held: &mut Held, step: Step, checks: &[CheckResult]) -> Result<(), DecideError> {
        let fence = self.leadership.write_as().map_err(|_| DecideError::NotLeader)?;
        let alerts = switchback_alerts::plan(&held.state, step.next.generation, &step.events, &self.webhooks);
        let queued_alerts = !alerts.is_empty();
        let store = self.store.clone();
        let (next, checks, events) = (step.next.clone(), checks.to_vec(), step.events.clone());
        let mut save = tokio::spawn(async move {
            store.save_step_with_alerts(fence.as_ref(), &next, &checks, &events, &alerts).await.map(|_ids| ())
        });
        let failed = match tokio::time::timeout(SAVE_WITHIN, &mut save).await {
            Ok(Ok(Ok(()))) => {
                self.store_health.ok();
                self.applied(held, step, queued_alerts);
                return Ok(());
            }
            Ok(Ok(Err(err @ StoreError::Fenced { .. }))) => {
                // Refused before anything was written: another instance leads now.
                self.leadership.step_down();
                return Err(DecideError::Store(err));
            }
            Ok(Ok(Err(err))) => DecideError::from(err),
            Ok(Err(crashed)) => DecideError::SaveCrashed(crashed.to_string()),
            Err(_) => {
                held.in_flight = Some(InFlight { save, step, queued_alerts });
                DecideError::SaveTimedOut(SAVE_WITHIN)
            }
        };
        held.doubtful |= held.in_flight.is_none();
        self.store_health.failed(&failed.to_string());
        Err(failed)
    }

    /// Takes a saved step into effect: the state, its publication, the alert sender,
    /// metrics and the log.
    fn applied(&self, held: &mut Held, step: Step, queued_alerts: bool) {
        if queued_alerts {
            self.alert_wake.notify_one();
        }
        held.state = step.next;
        keep_unsaved_after(held);
        self.published.send_replace(held.state.clone());
        self.metrics.observe_events(&step.events);
        for event in &step.events {
            self.log(event);
        }
    }

    fn site(&self, role: switchback_core::Role) -> &str {
        self.site_names.get(role)
    }

    /// One line per event, worded by [`Event::label`]: a warning for bad news and
    /// warnings, information otherwise; only the fields the event has.
    fn log(&self, event: &Event) {
        let label = event.label();
        let route = event.route.map(Route::as_str);
        let active_site = event.route.and(event.active).map(|role| self.site(role));
        let site = event.service.map(|s| self.site(s.role));
        let service = event.service.map(|s| s.kind.as_str());
        let reason = event.reason.as_str();
        let actor = (event.actor != switchback_core::engine::MONITOR_ACTOR).then_some(event.actor.as_str());
        if event.tone().is_trouble() {
            tracing::warn!(route, active_site, site, service, actor, reason, "{label}");
        } else {
            tracing::info!(route, active_site, site, service, actor, reason, "{label}");
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
        if !self.leadership.leads() {
            let node = self.leadership.node().unwrap_or_default().to_owned();
            let (actor, reason) = (actor.to_owned(), why.to_owned());
            return self.forward(OperatorRequest { route, action, actor, reason, node }).await;
        }
        Decider::operate(self, route, action, actor, why).await.map_err(|err| match err {
            DecideError::Operator(refused) => ControlError::Refused(refused.to_string()),
            DecideError::Store(_)
            | DecideError::SaveTimedOut(_)
            | DecideError::SaveCrashed(_)
            | DecideError::NotLeader => ControlError::Unavailable(err.to_string()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use switchback_store::Fence;

    use super::*;

    async fn follower(leadership: Arc<Leadership>) -> Decider {
        let store = switchback_store::connect("sqlite::memory:").await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::TokioClock::starting_at(chrono::Utc::now()));
        let names = SiteNames::new("chicago", "virginia");
        let rules = Rules::from(&switchback_core::config::MonitorConfig::default());
        let metrics = Arc::new(Metrics::new(names.clone()));
        let alerts = (Vec::new(), Arc::new(Notify::new()));
        Decider::open(store, rules, clock, names, metrics, alerts, (Arc::default(), leadership))
            .await
            .unwrap()
    }

    fn at_generation(generation: u64) -> EngineState {
        let mut state = EngineState::new(chrono::Utc::now());
        state.generation = generation;
        state
    }

    /// Two reads of the leader's state may land out of order (the NOTIFY's and an
    /// operator action's): the older must not take phones back to an old generation.
    /// And once this instance won a term it follows no one: it read its own state back.
    #[tokio::test]
    async fn a_follower_never_goes_back_and_a_new_leader_follows_no_one() {
        let leadership = Arc::new(Leadership::group("va-1"));
        let decider = follower(leadership.clone()).await;
        decider.follow(at_generation(3)).await;
        decider.follow(at_generation(2)).await;
        assert_eq!(decider.subscribe().borrow().generation, 3, "an older state was taken");
        decider.follow(at_generation(4)).await;
        assert_eq!(decider.subscribe().borrow().generation, 4);

        let fence = Fence { node: "va-1".to_owned(), term: 2 };
        leadership.lead(fence, tokio::time::Instant::now() + std::time::Duration::from_secs(10));
        decider.follow(at_generation(5)).await;
        assert_eq!(decider.subscribe().borrow().generation, 4, "a leader took a follower's read");
        assert!(
            matches!(
                decider
                    .note(Event::note(chrono::Utc::now(), switchback_core::EventKind::Converged, "m", "r"))
                    .await,
                Err(DecideError::NotLeader)
            ),
            "it wrote before reading its state back"
        );
    }
}
