//! Persistence behind the [`Store`] trait: the engine's resumable state, the check
//! history and the event history, in SQLite or PostgreSQL.
//!
//! [`connect`] picks the backend from the URL scheme and applies the migrations embedded
//! from `migrations/sqlite` or `migrations/postgres`. Times are kept as microseconds
//! since the Unix epoch (see `codec`), so everything read back equals what was saved,
//! truncated to the microsecond.

mod codec;
mod error;
mod leadership;
mod listener;
mod sql;
mod sqlite_file;
mod tables;
mod url;
mod write;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchback_core::engine::{EngineState, Event};
use switchback_core::model::{CheckResult, ServiceId};
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::Phone;

pub use crate::error::StoreError;
pub use crate::leadership::{Leadership, NotLeader};
pub use crate::listener::Listener;
pub use crate::tables::phone_page::{ListedFetch, ListedPhone, PhonePage, PhoneQuery, Seen};
pub use crate::tables::phones::FetchRecord;
pub use crate::url::{redact_url, Backend};

/// An event as stored, with the id that orders the history and pages through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: i64,
    pub event: Event,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhoneImport {
    pub added: usize,
    pub updated: usize,
}

/// Changes whenever the inventory does: a running switchback polls it to notice an
/// import made by `switchback phones import` in another process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhonesRevision {
    pub count: i64,
    pub updated_at_micros: i64,
}

/// An alert to queue with a step: for the step's event number `event_index`, to the
/// webhook named `webhook`, while the engine was at `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub event_index: usize,
    pub webhook: String,
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Pending,
    Delivered,
    /// Refused for good (a 4xx other than 408/429): shown, never retried.
    Failed,
}

/// One alert of the outbox, with the event it tells of. `id` is stable across retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAlert {
    pub id: i64,
    pub webhook: String,
    pub generation: u64,
    pub status: AlertStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub event: StoredEvent,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertDelivery {
    Delivered { status: u16 },
    Retry { status: Option<u16>, error: String, next_attempt_at: DateTime<Utc> },
    Failed { status: Option<u16>, error: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertCounts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// A leader's right to write as leader: checked, in the transaction of every write it
/// makes as leader, against the lease in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub term: i64,
}

/// The leader's lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `None` when nobody holds it (never held, released, or run out).
    pub holder: Option<String>,
    pub term: i64,
    /// How long it still runs, on the store's clock; zero when it has run out.
    pub remaining: std::time::Duration,
}

/// What claiming the lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It had run out, and this instance took it with a new term.
    Won(Fence),
    /// It runs (or was just taken by another instance).
    Held(Lease),
}

/// An instance of the group, as it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSeen {
    pub node: String,
    pub vantage: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A vantage's latest check of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VantageCheck {
    pub vantage: String,
    pub node: String,
    pub check: CheckResult,
}

/// An operator action sent to an instance that does not lead, for the leader to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    pub route: switchback_core::Route,
    pub action: switchback_core::Action,
    pub actor: String,
    pub reason: String,
    /// The instance it was sent to.
    pub node: String,
}

/// How an [`OperatorRequest`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Not yet taken by a leader.
    Pending,
    /// A leader took it and is applying it.
    Taken,
    Done,
    /// The action makes no sense for the route as it is.
    Refused(String),
    /// The leader could not persist it, or nobody took it in time.
    Failed(String),
}

/// When a generation started (see [`Store::generations_since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationStart {
    pub generation: u64,
    pub started_at: DateTime<Utc>,
}

/// How phones came to a generation: how many first fetched it in each second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convergence {
    pub generation: u64,
    /// When the step that created it was saved; `None` for a generation older than the
    /// store's record of starts (a store made before it kept them).
    pub started_at: Option<DateTime<Utc>>,
    /// Oldest first; one entry per vendor and whole second in which phones of that
    /// vendor first fetched the generation.
    pub steps: Vec<ConvergenceStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvergenceStep {
    pub vendor: switchback_provisioning::Vendor,
    /// The whole second, Unix time.
    pub second: i64,
    /// Phones of `vendor` that first fetched the generation in that second.
    pub phones: u64,
}

/// What changed in a group's store, as told by PostgreSQL's NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The leader saved a step.
    State,
    /// A vantage recorded a round of checks.
    Checks,
    /// An operator action waits for the leader.
    Requests,
    /// The leader gave up its lease (a clean shutdown).
    Lease,
}

/// Everything switchback keeps. Shared as an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    fn backend(&self) -> Backend;

    /// Whether the store answers and is still the one opened (a SQLite file deleted or
    /// replaced while running fails here, and refuses every write).
    async fn check(&self) -> Result<(), StoreError>;

    /// The state saved by the latest [`save_step`](Store::save_step); `None` on a fresh store.
    async fn load_state(&self) -> Result<Option<EngineState>, StoreError>;

    /// Persists one step in one transaction: the next state, the round's check results
    /// and the events, which get increasing ids (returned in order). A generation the
    /// store has not seen yet is recorded as started at the step's earliest event (or now). Either all of it is
    /// stored or, on error, none of it.
    async fn save_step(
        &self,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
    ) -> Result<Vec<i64>, StoreError> {
        self.save_step_with_alerts(None, next, checks, events, &[]).await
    }

    /// [`save_step`](Store::save_step), also queueing `alerts` for its events in the
    /// same transaction: an event is never stored without its alerts, nor the reverse.
    /// With a `fence`, nothing is written unless its term still holds the lease
    /// ([`StoreError::Fenced`]), and the group is told of the new state.
    async fn save_step_with_alerts(
        &self,
        fence: Option<&Fence>,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
        alerts: &[Enqueue],
    ) -> Result<Vec<i64>, StoreError>;

    /// Records events that change no state (a scan block seen by an instance that does
    /// not lead), with their alerts, in one transaction: any instance may, unfenced,
    /// since the engine's state is not touched.
    async fn record_events(&self, events: &[Event], alerts: &[Enqueue]) -> Result<Vec<i64>, StoreError>;

    /// Pending alerts whose next attempt is due by `now`, oldest first; none that an
    /// earlier pending alert to the same webhook, not yet due, must precede.
    async fn due_alerts(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxAlert>, StoreError>;

    /// When the earliest pending alert is due, if any is pending.
    async fn next_alert_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records a delivery attempt of a pending alert; a delivered alert never changes again.
    /// With a `fence`, only while its term holds the lease.
    async fn record_delivery(
        &self,
        fence: Option<&Fence>,
        id: i64,
        delivery: &AlertDelivery,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn alert_counts(&self) -> Result<AlertCounts, StoreError>;

    /// The latest alerts in any status, newest first.
    async fn recent_alerts(&self, limit: u32) -> Result<Vec<OutboxAlert>, StoreError>;

    /// A service's latest `limit` check results, newest first.
    async fn recent_checks(&self, service: ServiceId, limit: u32) -> Result<Vec<CheckResult>, StoreError>;

    /// Up to `limit` events, newest first, with ids below `before_id` when given: pass
    /// the last id of a page to get the next one.
    async fn events(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events at or after `since`, oldest first.
    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;

    /// How phones came to `generation`: per vendor and second, how many first fetched it
    /// (recorded by [`record_fetches`](Store::record_fetches)), and when it started.
    async fn generation_convergence(&self, generation: u64) -> Result<Convergence, StoreError>;

    /// The generations started at or after `since`, oldest first.
    async fn generations_since(&self, since: DateTime<Utc>) -> Result<Vec<GenerationStart>, StoreError>;

    /// Deletes check results older than `older_than`, the first fetches of generations
    /// that ended before it, and in a group the operator actions finished and the
    /// instances last seen before it; returns how many check results went.
    async fn prune_checks(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Adds new phones and updates known ones (by MAC), all in one transaction. A known
    /// phone takes every field of the import, `prov_password` included: importing it
    /// without one (a seven-column CSV, or an empty cell) clears the stored one (NULL).
    async fn import_phones(&self, phones: &[Phone]) -> Result<PhoneImport, StoreError>;

    /// Removes exactly these phones (a MAC given twice counts once), with their fetch
    /// records, in one transaction, and answers how many went. When any is not in the
    /// inventory none is removed: [`StoreError::UnknownPhones`] names every unknown one.
    /// The inventory's count drops, so [`phones_revision`](Store::phones_revision) changes
    /// and a running switchback renders without them.
    async fn remove_phones(&self, macs: &[switchback_provisioning::Mac]) -> Result<u64, StoreError>;

    /// The whole inventory, ordered by MAC.
    async fn phones(&self) -> Result<Vec<Phone>, StoreError>;

    /// A page of the inventory, ordered by MAC, filtered by each phone's latest stored
    /// fetch, and how many phones match in all: what an operator lists, without loading
    /// the inventory. No credential leaves the store this way.
    ///
    /// The fetches are the stored ones ([`record_fetches`](Store::record_fetches)), which a
    /// running switchback flushes from its in-memory fetch log every 2 s: the list and its
    /// filters may be that far behind, so a phone that fetched just now may still show its
    /// previous fetch (or none, and count as stale) until the next flush.
    async fn phone_page(&self, query: &PhoneQuery) -> Result<PhonePage, StoreError>;

    async fn phones_revision(&self) -> Result<PhonesRevision, StoreError>;

    /// Folds a batch of served files into each phone's latest fetch, in one transaction,
    /// and keeps each phone's first fetch of each generation (for the convergence curve).
    async fn record_fetches(&self, fetches: &[PhoneFetch]) -> Result<(), StoreError>;

    /// Each phone's latest fetch.
    async fn fetch_records(&self) -> Result<Vec<FetchRecord>, StoreError>;

    /// Phones' latest fetches recorded after `after` (by any instance of the group).
    async fn fetch_records_since(&self, after: DateTime<Utc>) -> Result<Vec<FetchRecord>, StoreError>;

    // ---- the group (`[cluster]`, PostgreSQL only) ----------------------------------------

    /// Takes the leader's lease for `node`, with a new term, if it has run out.
    async fn claim_lease(&self, node: &str, lease: std::time::Duration) -> Result<Claim, StoreError>;

    /// Extends `fence`'s lease by `lease` from now; false when another holds it.
    async fn renew_lease(&self, fence: &Fence, lease: std::time::Duration) -> Result<bool, StoreError>;

    /// Ends `fence`'s lease now (a clean shutdown), so another takes over at once.
    async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError>;

    async fn lease(&self) -> Result<Lease, StoreError>;

    /// Records that `node`, probing from `vantage`, is alive.
    async fn heartbeat(&self, node: &str, vantage: &str, started_at: DateTime<Utc>)
        -> Result<(), StoreError>;

    /// The group's instances, by name.
    async fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError>;

    /// Keeps a round of `vantage`'s checks (history and latest) and tells the leader.
    async fn record_round(&self, vantage: &str, node: &str, checks: &[CheckResult])
        -> Result<(), StoreError>;

    /// Every vantage's latest check of each service, recorded within `fresh` (on the
    /// store's clock).
    async fn vantage_checks(&self, fresh: std::time::Duration) -> Result<Vec<VantageCheck>, StoreError>;

    /// Queues an operator action for the leader; answers its id.
    async fn request_operation(&self, request: &OperatorRequest) -> Result<i64, StoreError>;

    /// For the leader: the oldest action queued within `within` (older ones expire), on
    /// the store's clock.
    async fn take_operation(
        &self,
        fence: &Fence,
        within: std::time::Duration,
    ) -> Result<Option<(i64, OperatorRequest)>, StoreError>;

    async fn finish_operation(&self, id: i64, outcome: &RequestOutcome) -> Result<(), StoreError>;

    async fn operation_outcome(&self, id: i64) -> Result<RequestOutcome, StoreError>;

    /// Withdraws a request no leader has taken yet; false when one took it already
    /// (it is then applied, or refused, after all).
    async fn withdraw_operation(&self, id: i64) -> Result<bool, StoreError>;

    /// A connection that hears the group's changes as they are committed.
    async fn listen(&self) -> Result<Listener, StoreError>;

    /// Runs a trivial query: is the store reachable?
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections, waiting for ones in use to be returned.
    async fn close(&self);
}

/// `call`, bounded by `limit`: a store that hangs (a connection open, no answer) is an
/// error naming `what`, not a wait without end.
pub async fn within<T>(
    limit: std::time::Duration,
    what: &'static str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or(Err(StoreError::TimedOut { what }))
}

/// Opens the store named by `url` and brings its schema up to date.
///
/// `sqlite://PATH` (the file is created if missing; `sqlite:///abs/path` for an
/// absolute path), `sqlite::memory:`, `postgres://…` or `postgresql://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sql::SqlStore::open(url, Create::IfMissing).await?))
}

/// Opens the store named by `url` only if it holds switchback's schema already: a
/// store that vanished must not be replaced, unnoticed, by an empty one.
pub async fn connect_existing(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sql::SqlStore::open(url, Create::Never).await?))
}

/// Opens the store named by `url` to read it (`report`, `phones list`, `phones export`):
/// never creates it, never migrates it (a store whose schema differs from this binary's
/// is refused, named), never switches a SQLite file's journal mode or permissions. An
/// operator who upgraded the package before restarting the service can look at a live
/// store without changing it under the running process.
pub async fn connect_to_read(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sql::SqlStore::open(url, Create::ReadOnly).await?))
}

/// Whether opening a store may create it (and migrate it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    IfMissing,
    Never,
    /// Neither create nor migrate nor change anything of the file.
    ReadOnly,
}
