//! Housekeeping between rounds: the store is checked so that a fault is seen before the
//! next round (which may be minutes away), expired digest nonces are forgotten, and old
//! check history is pruned.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Orchestrator;

/// How often the store is checked between rounds.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often the counts of expired digest nonces are forgotten.
const NONCE_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often old check history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Orchestrator {
    /// Notices a store that stopped answering, or a SQLite file deleted or replaced
    /// under it, between rounds.
    pub(crate) async fn check_store(self: Arc<Self>, shutdown: CancellationToken) {
        every(STORE_CHECK_EVERY, shutdown, || async {
            match self.store.check().await {
                Ok(()) => self.store_health.check_passed(),
                Err(err) => self.store_health.check_failed(&err.to_string()),
            }
        })
        .await;
    }

    pub(crate) async fn prune_nonces(self: Arc<Self>, shutdown: CancellationToken) {
        every(NONCE_PRUNE_EVERY, shutdown, || async {
            let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
            self.access.digest.prune(now);
        })
        .await;
    }

    pub(crate) async fn prune_history(self: Arc<Self>, shutdown: CancellationToken) {
        let retention =
            chrono::Duration::from_std(self.config.store.check_retention).unwrap_or(chrono::TimeDelta::MAX);
        every(PRUNE_EVERY, shutdown, || async {
            match self.store.prune_checks(self.clock.now() - retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "check history pruned"),
                Err(err) => tracing::warn!(error = %err, "check history not pruned"),
            }
        })
        .await;
    }
}

/// Runs `tick` every `period` (the first at once) until `shutdown`.
async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
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
