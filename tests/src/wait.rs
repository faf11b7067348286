//! Waiting on a condition with a deadline, never on a fixed sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Polls `probe` every 20 ms until it returns `Some`, or fails after `deadline`
/// naming what it waited for.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= end {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
