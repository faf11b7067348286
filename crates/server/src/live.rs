//! The status snapshot, computed once per change and shared by every reader: `GET
//! /api/status` answers from it, `GET /api/stream` pushes each new one to the open
//! dashboards as a Server-Sent Event, and the dashboard page renders it.
//!
//! One task, the hub, rebuilds it when the engine state changes, when a generation is
//! swapped in, when the store starts or stops refusing writes, when the alert counts
//! move, and otherwise once a second (convergence and staleness move with the phones and
//! the clock). It publishes only a snapshot that differs from the one before. The alert
//! counts are the one store read: a task of their own makes it once a second, so a slow
//! store never holds up an event. Both tasks stop with the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use switchback_core::EngineState;
use switchback_store::AlertCounts;
use tokio::sync::{watch, Semaphore};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::ApiError;
use crate::per_source::PerSource;
use crate::prov::guard::Source as Peer;
use crate::status::Status;
use crate::AppState;

/// Dashboard streams open at once; more are refused with a 503, so that streams cannot
/// be used to tie the server up. Far more than the dashboards an operations team keeps.
pub const MAX_STREAMS: usize = 256;
/// Streams one source (an IPv4 address, an IPv6 /64) may hold: the dashboards of a team
/// behind one NAT, but not every slot.
pub const MAX_STREAMS_PER_SOURCE: usize = 16;
/// A stream ends after this and the browser opens a new one by itself, so that a slot
/// held by a forgotten tab or a slot-filler is given back.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// A comment this often keeps a quiet stream (and proxies on the way) from being taken
/// for dead.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often convergence and the alert counts are looked at again.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

// A stream is a response in progress: the connection's watchdog counts it idle unless it
// writes, so the keep-alives must come well within the idle timeout.
const _: () = assert!(KEEP_ALIVE.as_secs() * 2 <= crate::listen::IDLE_TIMEOUT.as_secs());

/// One status, and what it was built from.
#[derive(Debug)]
pub struct Snapshot {
    pub status: Status,
    /// `status` as JSON: the body of `/api/status` and of every stream event.
    pub json: Bytes,
    source: Source,
}

/// What a snapshot shows, beside the counts: when any of it moves, the snapshot is old.
#[derive(Debug, PartialEq)]
struct Source {
    engine: EngineState,
    swaps: u64,
    store_fault: Option<String>,
}

impl Source {
    fn now(state: &AppState) -> Self {
        Self {
            engine: state.engine.borrow().clone(),
            swaps: state.generations.swaps(),
            store_fault: state.store_health.fault(),
        }
    }

    fn is_current(&self, state: &AppState) -> bool {
        self.swaps == state.generations.swaps()
            && self.store_fault == state.store_health.fault()
            && *state.engine.borrow() == self.engine
    }
}

impl Snapshot {
    fn build(state: &AppState, alerts: AlertCounts) -> Self {
        let source = Source::now(state);
        let generation = state.generations.current();
        let status = Status::build(state, &source.engine, &generation, source.store_fault.clone(), alerts);
        let json = match serde_json::to_vec(&status) {
            Ok(json) => Bytes::from(json),
            Err(err) => {
                // Plain structs with string keys: serde_json has nothing to refuse.
                tracing::error!(error = %err, "status not serialized");
                Bytes::from_static(b"{}")
            }
        };
        Self { status, json, source }
    }
}

/// The snapshot's readers' side: cheap to clone, one per router.
#[derive(Debug, Clone)]
pub struct Live {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    streams: Arc<Semaphore>,
    per_source: PerSource,
    /// Stops the hub when the router is dropped without a shutdown.
    _stop: Arc<DropGuard>,
}

impl Live {
    /// Builds the first snapshot and starts the hub, which stops with `shutdown`.
    pub fn start(state: AppState, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        let first = Snapshot::build(&state, AlertCounts::default());
        let (published, snapshots) = watch::channel(Arc::new(first));
        tokio::spawn(hub(state, published, stop.clone()));
        Self {
            snapshots,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            per_source: PerSource::new(MAX_STREAMS_PER_SOURCE),
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// The latest snapshot. In the moment between a change and the hub's rebuild, one is
    /// built here from memory, so that whoever just acted (a failover, then a look at the
    /// status) sees the outcome.
    pub fn current(&self, state: &AppState) -> Arc<Snapshot> {
        let latest = self.snapshots.borrow().clone();
        if latest.source.is_current(state) {
            return latest;
        }
        Arc::new(Snapshot::build(state, latest.status.alerts))
    }
}

async fn hub(state: AppState, published: watch::Sender<Arc<Snapshot>>, stop: CancellationToken) {
    let (counted, mut alerts) = watch::channel(AlertCounts::default());
    tokio::spawn(count_alerts(state.clone(), counted, stop.clone()));
    let mut engine = state.engine.clone();
    let mut swaps = state.generations.watch();
    let mut faults = state.store_health.watch();
    let (_alone, alone) = tokio::sync::watch::channel(crate::group::GroupView::default());
    let mut group = state.group.clone().unwrap_or(alone);
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // An error means the other side is gone: the decider, or the alert counter,
        // which stops with `stop`.
        let running = tokio::select! {
            () = stop.cancelled() => false,
            changed = engine.changed() => changed.is_ok(),
            changed = swaps.changed() => changed.is_ok(),
            changed = faults.changed() => changed.is_ok(),
            changed = alerts.changed() => changed.is_ok(),
            changed = group.changed() => changed.is_ok(),
            _ = tick.tick() => true,
        };
        if !running {
            return;
        }
        engine.mark_unchanged();
        swaps.mark_unchanged();
        faults.mark_unchanged();
        group.mark_unchanged();
        let counts = *alerts.borrow_and_update();
        publish(&published, Snapshot::build(&state, counts));
    }
}

/// Wakes the streams only for a snapshot that shows something new. One that shows the
/// same from a newer source still replaces the old, quietly, so readers find it current.
fn publish(published: &watch::Sender<Arc<Snapshot>>, next: Snapshot) {
    published.send_if_modified(|latest| {
        let changed = latest.json != next.json;
        if changed || latest.source != next.source {
            *latest = Arc::new(next);
        }
        changed
    });
}

/// Reads the alert counts once a second; while the store is away, the last ones stay.
async fn count_alerts(state: AppState, counted: watch::Sender<AlertCounts>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let read = async {
            tick.tick().await;
            state.store_health.read(state.store.alert_counts()).await
        };
        let counts = tokio::select! {
            () = stop.cancelled() => return,
            read = read => read,
        };
        if let Ok(counts) = counts {
            counted.send_if_modified(|latest| std::mem::replace(latest, counts) != counts);
        }
    }
}

/// `GET /api/status`: the latest snapshot.
#[utoipa::path(get, path = "/api/status", tag = "open", responses((status = 200, body = Status)))]
pub async fn status(State(state): State<AppState>, State(live): State<Live>) -> Response {
    let snapshot = live.current(&state);
    ([(header::CONTENT_TYPE, "application/json")], snapshot.json.clone()).into_response()
}

/// `GET /api/stream`: a `status` event with the latest snapshot, then one for every new
/// snapshot, until the client leaves or the server stops.
#[utoipa::path(get, path = "/api/stream", tag = "open",
    responses((status = 200, description = "Server-Sent Events: `status` events, each the `/api/status` JSON",
        content_type = "text/event-stream"),
        (status = 503, description = "too many streams (256 in all, 16 per source)", body = crate::openapi::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    State(live): State<Live>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let slot = match peer {
        Some(ip) => Some(live.per_source.take(Peer::of(ip)).ok_or(ApiError::TooManyStreams)?),
        None => None,
    };
    let permit = live.streams.clone().try_acquire_owned().map_err(|_| ApiError::TooManyStreams)?;
    let permit = (permit, slot);
    let open = state.metrics.dashboard_stream_opened();
    let mut snapshots = live.snapshots.clone();
    snapshots.mark_changed();
    let events = futures::stream::unfold((snapshots, (permit, open)), |(mut snapshots, held)| async move {
        // Ends when the hub stops, that is with the server.
        snapshots.changed().await.ok()?;
        let json = snapshots.borrow_and_update().json.clone();
        Some((Ok(status_event(&json)), (snapshots, held)))
    });
    let events = events.take_until(tokio::time::sleep(MAX_LIFETIME));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn status_event(json: &Bytes) -> Event {
    // serde_json writes UTF-8 and escapes line breaks: borrowed, one `data:` line.
    Event::default().event("status").data(String::from_utf8_lossy(json))
}

#[cfg(test)]
mod tests;
