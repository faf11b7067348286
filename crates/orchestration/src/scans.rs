//! Scan blocks become `provisioning_scan` events, which alert: the first few one by
//! one, the rest summed up, so that a botnet cannot page on-call once per address.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchback_core::{Event, EventKind};
use switchback_server::prov::guard::BlockView;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Orchestrator;

/// Scan blocks recorded (and alerted) one by one within [`SCAN_EVENTS_PER`]; more are
/// summed up once a minute.
const SCAN_EVENTS: usize = 10;
const SCAN_EVENTS_PER: Duration = Duration::from_secs(600);
/// The most blocks held for the next summary; a flood beyond it is counted by the guard.
const HELD_MAX: usize = 100_000;

impl Orchestrator {
    pub(crate) async fn record_blocks(
        self: Arc<Self>,
        mut blocks: mpsc::Receiver<BlockView>,
        shutdown: CancellationToken,
    ) {
        let mut recent: VecDeque<Instant> = VecDeque::new();
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
                    } else if held.len() < HELD_MAX {
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
        if let Err(err) = self.decider.note_apart(event).await {
            tracing::error!(error = %err, "provisioning scan event not recorded");
        }
    }
}
