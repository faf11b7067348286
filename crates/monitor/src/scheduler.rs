//! The check scheduler: rounds of all six probes, run concurrently, each bounded so
//! that a hung probe never holds up the others or the next round.
//!
//! A round checks every service at once, so that a decision always rests on fresh
//! results from both sites and a monitor that is cut off sees all six fail together
//! ("monitor blind"). Rounds come every `interval` while everything is settled and
//! every `recheck_interval` while anything is failing, recovering or off its primary.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use switchback_core::{CheckResult, Clock, Config, ServiceId};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::probe::{self, Outcome, ProbeSettings};
use tracing::Instrument;

/// Something that can check one service; the real one speaks SIP, STUN and SQL.
pub trait Prober: Send + Sync + 'static {
    fn probe(&self, service: ServiceId) -> BoxFuture<'static, Outcome>;
}

/// Probes the services of a config with the real protocols.
#[derive(Debug, Clone)]
pub struct ConfigProber {
    config: Arc<Config>,
    settings: ProbeSettings,
}

impl ConfigProber {
    pub fn new(config: Arc<Config>) -> Self {
        let settings = ProbeSettings::from(&config.monitor);
        Self { config, settings }
    }
}

impl Prober for ConfigProber {
    fn probe(&self, service: ServiceId) -> BoxFuture<'static, Outcome> {
        let (config, settings) = (self.config.clone(), self.settings.clone());
        let span = tracing::info_span!(
            "probe",
            site = %config.site_name(service.role),
            service = service.kind.as_str()
        );
        Box::pin(async move { probe::check(&config, service, &settings).await }.instrument(span))
    }
}

/// How often rounds come, and how long one may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub interval: Duration,
    pub recheck_interval: Duration,
    /// The longest a check may take: every attempt timing out, plus a little slack.
    pub bound: Duration,
}

impl Cadence {
    pub fn from_config(config: &Config) -> Self {
        let m = &config.monitor;
        Self {
            interval: m.interval,
            recheck_interval: m.recheck_interval,
            bound: m.timeout * (m.retries + 1) + Duration::from_millis(250),
        }
    }

    /// Time from the start of one round to the start of the next.
    pub fn delay(&self, unsettled: bool) -> Duration {
        if unsettled {
            self.recheck_interval.min(self.interval)
        } else {
            self.interval
        }
    }
}

/// Checks all six services concurrently and returns once every check has an outcome,
/// at most `bound` after the start. A check that overruns counts as `timeout`.
pub async fn round(prober: &Arc<dyn Prober>, clock: &Arc<dyn Clock>, bound: Duration) -> Vec<CheckResult> {
    let checks = ServiceId::all().map(|service| {
        let task = tokio::spawn(tokio::time::timeout(bound, prober.probe(service)));
        let clock = clock.clone();
        async move {
            let outcome = match task.await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_elapsed)) => Err(probe::Failure::Timeout),
                Err(join) => Err(probe::Failure::Error(format!("probe crashed: {join}"))),
            };
            to_result(service, outcome, clock.now())
        }
    });
    futures::future::join_all(checks).await
}

fn to_result(service: ServiceId, outcome: Outcome, now: chrono::DateTime<chrono::Utc>) -> CheckResult {
    match outcome {
        Ok(latency) => CheckResult::healthy(service, latency, now),
        Err(failure) => CheckResult::failed(service, failure.to_string(), now),
    }
}

/// Runs rounds until `shutdown`. `on_round` gets each round's results and answers
/// whether anything is unsettled, which sets the time to the next round.
pub async fn run<F, Fut>(
    prober: Arc<dyn Prober>,
    clock: Arc<dyn Clock>,
    cadence: Cadence,
    shutdown: CancellationToken,
    mut on_round: F,
) where
    F: FnMut(Vec<CheckResult>) -> Fut,
    Fut: Future<Output = bool>,
{
    for number in 1u64.. {
        let started = Instant::now();
        let span = tracing::info_span!("round", round = number);
        let results = tokio::select! {
            results = round(&prober, &clock, cadence.bound).instrument(span.clone()) => results,
            () = shutdown.cancelled() => return,
        };
        // Not cancellable: a round's decision is persisted whole or not started.
        let unsettled = on_round(results).instrument(span).await;
        tokio::select! {
            () = tokio::time::sleep_until(started + cadence.delay(unsettled)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests;
