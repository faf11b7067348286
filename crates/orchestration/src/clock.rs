//! A wall clock that follows tokio's timer, so that the paused test clock moves the
//! route engine's time too.

use chrono::{DateTime, Utc};
use switchback_core::Clock;
use tokio::time::Instant;

/// Reads `start` plus the tokio time elapsed since it was made. With
/// `tokio::time::pause`, minutes of hold-down pass in an instant and in step with
/// every `sleep` and `interval` of the orchestration.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    at: Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self { start, at: Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.at.elapsed()).unwrap_or(chrono::TimeDelta::MAX);
        self.start + elapsed
    }
}
