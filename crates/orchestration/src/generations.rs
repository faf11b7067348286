//! Generations follow decisions: a new generation of phone files is rendered and
//! swapped in whenever the active sites change (a new generation number) or the
//! inventory does (same number, new phones), and written to `render.dir` when set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchback_core::{Config, EngineState};
use switchback_provisioning::{write_generation, ActiveSites, Generation, Phone, RenderSettings};
use switchback_store::PhonesRevision;
use tokio_util::sync::CancellationToken;

use crate::error::OpenError;
use crate::Orchestrator;

/// How often the inventory is checked for an import made by another process.
const PHONES_POLL: Duration = Duration::from_secs(3);

impl Orchestrator {
    pub(crate) async fn follow_generations(self: Arc<Self>, shutdown: CancellationToken) {
        let mut engine = self.decider.subscribe();
        let mut revision = self.rendered_revision;
        let mut poll = tokio::time::interval(PHONES_POLL);
        loop {
            // A new state asks only whether its generation is new; the inventory (a count
            // over every phone) is asked on the poll. A state changes with every round
            // (services' latest checks), several times a second in a group.
            let polled = tokio::select! {
                changed = engine.changed() => if changed.is_err() { return } else { false },
                _ = poll.tick() => true,
                () = shutdown.cancelled() => return,
            };
            let state = engine.borrow_and_update().clone();
            let now_revision = match polled {
                false => revision,
                true => match self.store.phones_revision().await {
                    Ok(now) => now,
                    Err(err) => {
                        tracing::warn!(error = %err, "phone inventory not checked");
                        revision
                    }
                },
            };
            let current = self.generations.current();
            if state.generation == current.number() && now_revision == revision {
                continue;
            }
            match self.rerender(&state, now_revision).await {
                Ok(()) => revision = now_revision,
                Err(err) => tracing::error!(error = %err, "generation not rendered"),
            }
        }
    }

    async fn rerender(&self, state: &EngineState, revision: PhonesRevision) -> Result<(), OpenError> {
        let started = Instant::now();
        let phones = self.store.phones().await?;
        let next = render(&self.config, state, phones).await?;
        let (number, phones, sites) = (next.number(), next.phone_count(), next.sites().clone());
        let old = self.generations.swap(next);
        tracing::info!(
            generation = number,
            sip_site = %sites.sip.site,
            stun_site = %sites.stun.site,
            phones,
            inventory = revision.count,
            took_ms = started.elapsed().as_millis() as u64,
            "generation swapped"
        );
        // Freeing 100,000 old files takes tens of milliseconds: not on an async thread.
        tokio::task::spawn_blocking(move || drop(old));
        if let Some(dir) = &self.config.render.dir {
            write_dir(dir.clone(), &self.generations.current()).await;
        }
        Ok(())
    }
}

/// Renders every phone for the state's active sites, off the async threads.
pub async fn render(
    config: &Config,
    state: &EngineState,
    phones: Vec<Phone>,
) -> Result<Generation, OpenError> {
    let sites = ActiveSites::from_config(config, |route| state.active(route));
    let settings = RenderSettings::from_config(config);
    let number = state.generation;
    let generation =
        tokio::task::spawn_blocking(move || Generation::render(number, &sites, &settings, &phones)).await??;
    Ok(generation)
}

pub(crate) async fn write_dir(dir: std::path::PathBuf, generation: &Arc<Generation>) {
    let generation = generation.clone();
    let number = generation.number();
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || write_generation(&dir, &generation)).await {
        Ok(Ok(report)) => tracing::info!(
            generation = number,
            dir = %shown,
            written = report.written,
            unchanged = report.unchanged,
            removed = report.removed,
            "render dir updated"
        ),
        Ok(Err(err)) => {
            tracing::error!(generation = number, dir = %shown, error = %err, "render dir not updated")
        }
        Err(err) => {
            tracing::error!(generation = number, dir = %shown, error = %err, "render dir writer crashed")
        }
    }
}
