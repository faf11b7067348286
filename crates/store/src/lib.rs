//! Persistence behind the [`Store`] trait: the engine's resumable state, the check
//! history and the event history, in SQLite or PostgreSQL.
//!
//! [`connect`] picks the backend from the URL scheme and applies the migrations embedded
//! from `migrations/sqlite` or `migrations/postgres`. Times are kept as microseconds
//! since the Unix epoch (see `codec`), so everything read back equals what was saved,
//! truncated to the microsecond.

mod codec;
mod error;
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
    /// and the events, which get increasing ids (returned in order). Either all of it is
    /// stored or, on error, none of it.
    async fn save_step(
        &self,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
    ) -> Result<Vec<i64>, StoreError> {
        self.save_step_with_alerts(next, checks, events, &[]).await
    }

    /// [`save_step`](Store::save_step), also queueing `alerts` for its events in the
    /// same transaction: an event is never stored without its alerts, nor the reverse.
    async fn save_step_with_alerts(
        &self,
        next: &EngineState,
        checks: &[CheckResult],
        events: &[Event],
        alerts: &[Enqueue],
    ) -> Result<Vec<i64>, StoreError>;

    /// Pending alerts whose next attempt is due by `now`, oldest first; none that an
    /// earlier pending alert to the same webhook, not yet due, must precede.
    async fn due_alerts(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxAlert>, StoreError>;

    /// When the earliest pending alert is due, if any is pending.
    async fn next_alert_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records a delivery attempt of a pending alert; a delivered alert never changes again.
    async fn record_delivery(
        &self,
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

    /// Deletes check results older than `older_than`; returns how many went.
    async fn prune_checks(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Adds new phones and updates known ones (by MAC), all in one transaction. A known
    /// phone takes every field of the import, `prov_password` included: importing it
    /// without one (a seven-column CSV, or an empty cell) clears the stored one (NULL).
    async fn import_phones(&self, phones: &[Phone]) -> Result<PhoneImport, StoreError>;

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

    /// Folds a batch of served files into each phone's latest fetch, in one transaction.
    async fn record_fetches(&self, fetches: &[PhoneFetch]) -> Result<(), StoreError>;

    /// Each phone's latest fetch.
    async fn fetch_records(&self) -> Result<Vec<FetchRecord>, StoreError>;

    /// Runs a trivial query: is the store reachable?
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections, waiting for ones in use to be returned.
    async fn close(&self);
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

/// Whether opening a store may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    IfMissing,
    Never,
}
