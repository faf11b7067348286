//! `switchback run`: the orchestrator's main loop and clean shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use switchback_core::config::redact_url;
use switchback_core::{Clock, Config, Role, Rules, SystemClock};
use switchback_monitor::scheduler::{self, Cadence, ConfigProber};
use tokio_util::sync::CancellationToken;

use crate::decider::Decider;

/// How often old check history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store_url = config.store.url.expose_secret();
    let store = switchback_store::connect(store_url)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(store_url)))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let names = [config.site_name(Role::Primary).to_owned(), config.site_name(Role::Backup).to_owned()];
    let decider =
        Arc::new(Decider::open(store.clone(), Rules::from(&config.monitor), clock.clone(), names).await?);

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tokio::spawn(prune_history(store.clone(), clock.clone(), config.store.check_retention, shutdown.clone()));

    tracing::info!(
        primary = config.site_name(Role::Primary),
        backup = config.site_name(Role::Backup),
        interval = %humantime::format_duration(config.monitor.interval),
        store = %redact_url(store_url),
        "switchback running"
    );
    let prober = Arc::new(ConfigProber::new(config.clone()));
    scheduler::run(prober, clock, Cadence::from_config(&config), shutdown, |results| {
        let decider = decider.clone();
        async move {
            decider.apply_round(results).await.unwrap_or_else(|err| {
                tracing::error!(error = %err, "round not applied");
                true
            })
        }
    })
    .await;
    tracing::info!("switchback stopped");
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

async fn prune_history(
    store: Arc<dyn switchback_store::Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
    loop {
        match store.prune_checks(clock.now() - retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "check history pruned"),
            Err(err) => tracing::warn!(error = %err, "check history not pruned"),
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
