//! An instance of a group (`[cluster]`): every instance probes and records its checks
//! tagged with its vantage, keeps its part of the lease, follows the leader's decisions
//! and serves the same phone files; the one that holds the lease counts the vantages,
//! decides, applies operator actions sent to any instance, and alerts.
//!
//! Timing: the leader renews every third of the lease; a follower tries to take the
//! lease when the store says it runs out. Followers hear a saved step at once (NOTIFY)
//! and poll every second besides, so a lost notification costs at most a second.

use std::sync::Arc;
use std::time::Duration;

use switchback_core::config::ClusterConfig;
use switchback_core::{CheckResult, Event, EventKind};
use switchback_server::group::GroupView;
use switchback_store::{Change, Fence, RequestOutcome, StoreError};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::decider::{DecideError, FORWARD_WITHIN};
use crate::quorum;
use crate::Orchestrator;

/// How often followers read the leader's state and everyone the group's view, besides
/// what NOTIFY tells them.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Longest wait before listening again after the listening connection broke.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);
/// The longest a round's checks may take to record: a store that hangs must not stop
/// the rounds (what this instance sees stays on its dashboard).
const RECORD_WITHIN: Duration = Duration::from_secs(5);

/// The parts of an orchestrator that only a group has.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) config: ClusterConfig,
    /// How long a vantage's check counts.
    pub(crate) fresh: Duration,
    pub(crate) view: watch::Sender<GroupView>,
    /// Wakes the leader's count (a vantage recorded a round).
    pub(crate) count_wake: Notify,
    /// Wakes the leader's reading of operator actions sent to other instances.
    pub(crate) requests_wake: Notify,
    /// Wakes a follower's claim of the lease (the leader gave it up).
    pub(crate) lease_wake: Notify,
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
}

impl Group {
    pub(crate) fn new(
        config: ClusterConfig,
        monitor: &switchback_core::config::MonitorConfig,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let view = GroupView {
            node: config.node.clone(),
            vantage: config.vantage.clone(),
            quorum: config.quorum,
            ..GroupView::default()
        };
        Self {
            fresh: quorum::freshness(monitor),
            config,
            view: watch::channel(view).0,
            count_wake: Notify::new(),
            requests_wake: Notify::new(),
            lease_wake: Notify::new(),
            started_at: now,
        }
    }

    /// The lease as this instance trusts it: a little shorter than the store's, which
    /// started counting after this instance asked.
    fn trusted(&self, asked_at: Instant) -> Instant {
        asked_at + self.config.lease.mul_f64(0.9)
    }
}

impl Orchestrator {
    fn group(&self) -> Option<&Group> {
        self.group.as_ref()
    }

    /// The scheduler's round, in a group: the checks go to the store, tagged with this
    /// instance's vantage, and wake the leader's count. Answers whether to re-check
    /// soon: while this vantage sees a failure, or the leader's state is unsettled.
    pub(crate) async fn record_round(&self, results: Vec<CheckResult>) -> bool {
        self.decider.observe(&results);
        let failing = results.iter().any(|r| !r.healthy);
        if let Some(group) = self.group() {
            let record = self.store.record_round(&group.config.vantage, &group.config.node, &results);
            match switchback_store::within(RECORD_WITHIN, "record this vantage's checks", record).await {
                Ok(()) => self.store_health.ok(),
                Err(err) => {
                    tracing::warn!(error = %err, "this vantage's checks not recorded");
                    self.store_health.failed(&err.to_string());
                }
            }
            group.count_wake.notify_one();
        }
        failing || self.decider.subscribe().borrow().unsettled()
    }

    /// Holds this instance's part of the lease until `shutdown`, then gives it up.
    pub(crate) async fn keep_lease(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(group) = self.group() else { return };
        let (node, lease) = (group.config.node.as_str(), group.config.lease);
        let every = lease / 3;
        loop {
            let asked_at = Instant::now();
            let pause = match self.leadership.held() {
                Some((fence, valid_until)) => {
                    match tokio::time::timeout(every, self.store.renew_lease(&fence, lease)).await {
                        Ok(Ok(true)) => self.leadership.lead(fence, group.trusted(asked_at)),
                        Ok(Ok(false)) => {
                            tracing::warn!(term = fence.term, "the lease was taken over");
                            self.leadership.step_down();
                        }
                        Ok(Err(_)) | Err(_) if Instant::now() >= valid_until => {
                            tracing::warn!(term = fence.term, "the lease could not be renewed in time");
                            self.leadership.step_down();
                        }
                        _ => {}
                    }
                    every
                }
                None => match tokio::time::timeout(every, self.store.claim_lease(node, lease)).await {
                    Ok(Ok(switchback_store::Claim::Won(fence))) => {
                        self.leadership.lead(fence.clone(), group.trusted(asked_at));
                        // Apart, so that the renewals keep their time meanwhile.
                        tokio::spawn(self.clone().took_over(fence));
                        every
                    }
                    // Try again just after the store says the lease runs out.
                    Ok(Ok(switchback_store::Claim::Held(current))) => {
                        (current.remaining + Duration::from_millis(20)).min(every)
                    }
                    _ => every,
                },
            };
            // Timed from the ask: a slow answer does not push the next renewal back.
            tokio::select! {
                () = tokio::time::sleep_until(asked_at + pause) => {}
                () = group.lease_wake.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        if let Some((fence, _)) = self.leadership.held() {
            self.leadership.step_down();
            // Another instance takes over at once instead of when the lease runs out.
            match tokio::time::timeout(Duration::from_secs(2), self.store.release_lease(&fence)).await {
                Ok(Ok(())) => tracing::info!(term = fence.term, "lease released"),
                _ => tracing::warn!(
                    term = fence.term,
                    "lease not released; another takes over when it runs out"
                ),
            }
        }
    }

    /// Says this instance is alive (and at which vantage), every third of the lease.
    pub(crate) async fn heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(group) = self.group() else { return };
        let every = group.config.lease / 3;
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let said = self.store.heartbeat(&group.config.node, &group.config.vantage, group.started_at);
            if !matches!(tokio::time::timeout(every, said).await, Ok(Ok(()))) {
                tracing::debug!("heartbeat not recorded");
            }
        }
    }

    /// This instance won the lease: it decides from the store's state on, says so, and
    /// sends what the previous leader left in the outbox.
    async fn took_over(self: Arc<Self>, fence: Fence) {
        if let Err(err) = self.decider.resume_from_store().await {
            tracing::warn!(error = %err, "could not read the state on taking over; stepping down");
            self.leadership.step_down();
            return;
        }
        self.leadership.resumed(&fence);
        tracing::info!(node = %fence.node, term = fence.term, "leading the group");
        let event = Event::note(
            self.clock.now(),
            EventKind::LeaderElected,
            fence.node.clone(),
            format!("term {}", fence.term),
        );
        if let Err(err) = self.decider.note(event).await {
            tracing::warn!(error = %err, "leader_elected not recorded");
        }
        self.sender_wake.notify_one();
        if let Some(group) = self.group() {
            group.count_wake.notify_one();
            group.requests_wake.notify_one();
        }
    }

    /// The leader counts the vantages' latest checks whenever one records a round.
    pub(crate) async fn count_vantages(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(group) = self.group() else { return };
        let mut leading_since: Option<(i64, Instant)> = None;
        loop {
            tokio::select! {
                () = group.count_wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
            let Ok(Some(fence)) = self.leadership.write_as() else { continue };
            // A new leader gives the vantages one freshness window to report before it
            // calls too few of them blind: the previous leader may have stopped long ago.
            let since = match leading_since {
                Some((term, since)) if term == fence.term => since,
                _ => {
                    let now = Instant::now();
                    leading_since = Some((fence.term, now));
                    now
                }
            };
            let checks =
                match tokio::time::timeout(RECORD_WITHIN, self.store.vantage_checks(group.fresh)).await {
                    Ok(Ok(checks)) => checks,
                    _ => {
                        tracing::debug!("vantages' checks unreadable in time; nothing decided");
                        continue;
                    }
                };
            let count = quorum::count(&checks, group.config.quorum);
            if matches!(count, quorum::Count::Blind(_)) && since.elapsed() < group.fresh {
                continue;
            }
            match self.decider.apply_count(count).await {
                Ok(_) | Err(DecideError::NotLeader) => {}
                Err(err) => tracing::error!(error = %err, "count not applied"),
            }
        }
    }

    /// Hears the group (NOTIFY) and polls it: a follower takes each step the leader
    /// saves; the leader is woken for rounds and operator actions; everyone's view of
    /// the group (leader, instances, vantages) is refreshed.
    pub(crate) async fn hear_group(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(group) = self.group() else { return };
        let (heard, mut changes) = tokio::sync::mpsc::channel(64);
        tokio::spawn(listen(self.store.clone(), heard, shutdown.clone()));
        let mut poll = tokio::time::interval(POLL_EVERY);
        loop {
            let change = tokio::select! {
                Some(change) = changes.recv() => change,
                _ = poll.tick() => {
                    self.refresh_view(group).await;
                    Change::State
                }
                () = shutdown.cancelled() => return,
            };
            match change {
                Change::State if !self.leadership.leads() => self.follow_leader().await,
                Change::State => group.requests_wake.notify_one(),
                Change::Checks => group.count_wake.notify_one(),
                Change::Requests => group.requests_wake.notify_one(),
                Change::Lease => group.lease_wake.notify_one(),
            }
        }
    }

    async fn follow_leader(&self) {
        match tokio::time::timeout(RECORD_WITHIN, self.store.load_state()).await {
            Ok(Ok(Some(state))) => self.decider.follow(state).await,
            Ok(Ok(None)) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "the leader's state unreadable"),
            Err(_) => tracing::debug!("the leader's state unreadable in time"),
        }
    }

    async fn refresh_view(&self, group: &Group) {
        let read = async {
            let (lease, nodes, vantages) =
                tokio::join!(self.store.lease(), self.store.nodes(), self.store.vantage_checks(group.fresh));
            (lease.ok(), nodes.ok(), vantages.ok())
        };
        // What could not be read (in time) stays as it was: the last known group.
        let (lease, nodes, vantages) = tokio::time::timeout(RECORD_WITHIN, read).await.unwrap_or_default();
        let leads = self.leadership.leads();
        group.view.send_if_modified(|view| {
            let before = view.clone();
            view.leads = leads;
            match lease {
                Some(lease) => {
                    view.leader = lease.holder;
                    view.term = lease.term;
                }
                // Unreadable: who leads as far as this instance can tell.
                None => view.leader = leads.then(|| group.config.node.clone()),
            }
            if let Some(nodes) = nodes {
                view.nodes = nodes;
            }
            if let Some(vantages) = vantages {
                view.vantages = vantages;
            }
            *view != before
        });
    }

    /// The leader applies operator actions sent to other instances, oldest first.
    pub(crate) async fn serve_requests(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(group) = self.group() else { return };
        loop {
            tokio::select! {
                () = group.requests_wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
            while let Ok(Some(fence)) = self.leadership.write_as() {
                let take = self.store.take_operation(&fence, FORWARD_WITHIN);
                let (id, request) = match tokio::time::timeout(RECORD_WITHIN, take).await {
                    Ok(Ok(Some(taken))) => taken,
                    Ok(Ok(None)) => break,
                    Ok(Err(err)) => {
                        self.leadership.note_error(&err);
                        tracing::warn!(error = %err, "operator actions unreadable");
                        break;
                    }
                    Err(_) => break,
                };
                let outcome = match self
                    .decider
                    .operate(request.route, request.action, &request.actor, &request.reason)
                    .await
                {
                    Ok(()) => RequestOutcome::Done,
                    Err(DecideError::Operator(refused)) => RequestOutcome::Refused(refused.to_string()),
                    Err(err) => RequestOutcome::Failed(err.to_string()),
                };
                tracing::info!(
                    via = %request.node,
                    route = request.route.as_str(),
                    action = request.action.as_str(),
                    "operator action from another instance applied"
                );
                let finish = self.store.finish_operation(id, &outcome);
                if !matches!(tokio::time::timeout(RECORD_WITHIN, finish).await, Ok(Ok(()))) {
                    tracing::warn!(request = id, "operator action's outcome not recorded");
                }
            }
        }
    }

    /// Folds the phone fetches other instances served into this one's counts.
    pub(crate) async fn merge_fetches(&self, after: &mut chrono::DateTime<chrono::Utc>) {
        match self.store.fetch_records_since(*after).await {
            Ok(records) => {
                if let Some(latest) = records.iter().map(|r| r.at).max() {
                    // Another instance flushes up to a flush period late: look back that far.
                    *after = latest.max(*after) - chrono::Duration::seconds(4);
                }
                self.fetches.merge(records.iter().map(|r| (r.mac, r.last())));
            }
            Err(err) => tracing::debug!(error = %err, "other instances' fetches unreadable"),
        }
    }
}

/// Forwards what the store's NOTIFY says until `shutdown`, listening again after the
/// connection breaks (what was said meanwhile is lost: the poll covers it).
async fn listen(
    store: Arc<dyn switchback_store::Store>,
    heard: tokio::sync::mpsc::Sender<Change>,
    shutdown: CancellationToken,
) {
    loop {
        let listening = async {
            let mut listener = store.listen().await?;
            loop {
                let change = listener.next().await?;
                if heard.send(change).await.is_err() {
                    return Ok::<(), StoreError>(());
                }
            }
        };
        tokio::select! {
            result = listening => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "not hearing the group; polling until listening again");
                }
            }
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(RELISTEN_AFTER) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
