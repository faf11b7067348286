//! Who fetched what: the in-memory fetch log is flushed to the store in batches (never
//! a write on the request path), and a generation that moved phones is announced once
//! most of them have fetched it.

use std::sync::Arc;
use std::time::Duration;

use switchback_core::{Event, EventKind};
use tokio_util::sync::CancellationToken;

use crate::Orchestrator;

/// How often served-file records are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often convergence on a new generation is checked.
const CONVERGENCE_POLL: Duration = Duration::from_secs(2);
/// The share of phones that must have fetched a new generation for it to count as converged.
const CONVERGED_SHARE: f64 = 0.95;

impl Orchestrator {
    pub(crate) async fn flush_fetches(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        // In a group, what the other instances served counts too (convergence, stale).
        let mut others_after = self.clock.now();
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = shutdown.cancelled() => true,
            };
            self.flush().await;
            if stopping {
                return;
            }
            if self.group.is_some() {
                self.merge_fetches(&mut others_after).await;
            }
        }
    }

    /// Writes the fetches served since the last flush; on failure they wait for the next.
    /// Also called once more after the server has drained at shutdown.
    pub async fn flush(&self) {
        let batch = self.fetches.take_pending();
        if batch.is_empty() {
            return;
        }
        match self.store.record_fetches(&batch).await {
            // A write went through: the store takes writes again, whoever noticed first.
            Ok(()) => self.store_health.ok(),
            Err(err) => {
                tracing::warn!(error = %err, pending = batch.len(), "phone fetches not recorded yet");
                self.store_health.failed(&err.to_string());
                self.fetches.requeue(batch);
            }
        }
    }

    /// Records (and alerts) once most phones have fetched a generation that moved them.
    /// Generation 1 moved nobody; a generation already current at start was announced
    /// by the run before, or will be by the next change.
    pub(crate) async fn watch_convergence(self: Arc<Self>, shutdown: CancellationToken) {
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
            // Tried again once the store is back, without queueing behind rounds meanwhile.
            if self.store_health.fault().is_some() {
                continue;
            }
            // The leader announces it; an instance that leads later does not again.
            if !self.leadership.leads() {
                announced = number;
                continue;
            }
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
            // Announced once it is persisted: a store fault now means the next tick tries again.
            match self.decider.note(event).await {
                Ok(()) => announced = number,
                Err(err) => tracing::warn!(error = %err, generation = number, "convergence not recorded yet"),
            }
        }
    }
}
