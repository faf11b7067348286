//! Scheduler timing on tokio's paused clock: minutes of rounds run in milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use switchback_core::{ManualClock, Role, ServiceKind};

use super::*;
use crate::probe::Failure;

/// Answers at once, except the primary softswitch, which hangs forever when `hang` is set.
#[derive(Debug, Default)]
struct FakeProber {
    hang: bool,
    calls: AtomicUsize,
}

impl Prober for FakeProber {
    fn probe(&self, service: ServiceId) -> BoxFuture<'static, Outcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let hang = self.hang && service == ServiceId::new(Role::Primary, ServiceKind::Softswitch);
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if service.role == Role::Backup && service.kind == ServiceKind::Stun {
                return Err(Failure::Refused);
            }
            Ok(Duration::from_millis(2))
        })
    }
}

fn cadence() -> Cadence {
    Cadence {
        interval: Duration::from_secs(300),
        recheck_interval: Duration::from_secs(15),
        bound: Duration::from_secs(6),
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(chrono::DateTime::UNIX_EPOCH))
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_costs_the_round_its_bound_and_no_more() {
    let prober: Arc<dyn Prober> = Arc::new(FakeProber { hang: true, ..Default::default() });
    let started = Instant::now();
    let results = round(&prober, &clock(), cadence().bound).await;
    assert_eq!(started.elapsed(), cadence().bound);
    assert_eq!(results.len(), 6);
    let hung = results.iter().find(|r| r.service == ServiceId::new(Role::Primary, ServiceKind::Softswitch));
    assert_eq!(hung.and_then(|r| r.reason.as_deref()), Some("timeout"));
    assert_eq!(results.iter().filter(|r| r.healthy).count(), 4, "the others answered");
    let refused = results.iter().find(|r| r.service == ServiceId::new(Role::Backup, ServiceKind::Stun));
    assert_eq!(refused.and_then(|r| r.reason.as_deref()), Some("refused"));
}

#[tokio::test(start_paused = true)]
async fn rounds_come_every_interval_when_settled_and_every_recheck_when_not() {
    let prober = Arc::new(FakeProber::default());
    let shutdown = CancellationToken::new();
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let origin = Instant::now();
    let handle = {
        let (rounds, shutdown_after) = (rounds.clone(), shutdown.clone());
        let dyn_prober: Arc<dyn Prober> = prober.clone();
        tokio::spawn(run(dyn_prober, clock(), cadence(), shutdown.clone(), move |_results| {
            let rounds = rounds.clone();
            let shutdown = shutdown_after.clone();
            async move {
                let mut rounds = rounds.lock().unwrap_or_else(|p| p.into_inner());
                rounds.push(origin.elapsed().as_secs());
                if rounds.len() == 6 {
                    shutdown.cancel();
                }
                // Settled for the first two rounds, unsettled after.
                rounds.len() > 2
            }
        }))
    };
    handle.await.unwrap_or_else(|e| panic!("scheduler task: {e}"));
    let rounds = rounds.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(rounds, vec![0, 300, 600, 615, 630, 645]);
    assert_eq!(prober.calls.load(Ordering::SeqCst), 36, "six services a round");
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_round_in_flight() {
    let prober: Arc<dyn Prober> = Arc::new(FakeProber { hang: true, ..Default::default() });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(prober, clock(), cadence(), shutdown.clone(), |_| async { false }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_millis(10), task)
        .await
        .unwrap_or_else(|_| panic!("the scheduler did not stop"))
        .unwrap_or_else(|e| panic!("scheduler task: {e}"));
}
