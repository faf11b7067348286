//! `switchback phones import` and `switchback render`.

use std::path::Path;

use anyhow::Context;
use switchback_core::{Config, EngineState, SystemClock};
use switchback_provisioning::{parse_phones_csv, write_generation};

use crate::run::{open_existing_store, open_store};
use switchback_orchestration::render;

/// Loads a CSV into the inventory, all or nothing.
pub async fn import(config: Config, csv: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(csv).with_context(|| format!("cannot open {}", csv.display()))?;
    let phones = parse_phones_csv(file).with_context(|| format!("{}: nothing imported", csv.display()))?;
    let store = open_store(&config).await?;
    let report = store.import_phones(&phones).await.context("nothing imported")?;
    store.close().await;
    println!(
        "imported {} phones from {}: {} added, {} updated",
        phones.len(),
        csv.display(),
        report.added,
        report.updated
    );
    Ok(())
}

/// Writes the current generation (for the persisted route states) to a folder.
pub async fn render_to(config: Config, out: &Path) -> anyhow::Result<()> {
    let store = open_existing_store(&config).await?;
    let state = match store.load_state().await? {
        Some(state) => state,
        None => EngineState::new(switchback_core::Clock::now(&SystemClock)),
    };
    let phones = store.phones().await?;
    store.close().await;
    let generation = render(&config, &state, phones).await?;
    let report =
        write_generation(out, &generation).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "generation {} ({} phones; sip on {}, stun on {}) written to {}: {} written, {} unchanged, {} removed",
        generation.number(),
        generation.phone_count(),
        generation.sites().sip.site,
        generation.sites().stun.site,
        out.display(),
        report.written,
        report.unchanged,
        report.removed
    );
    Ok(())
}
