//! What the server asks of the orchestrator: operator actions. The binary implements it
//! over the decider, so the server never touches the engine or the store's writes.

use async_trait::async_trait;
use switchback_core::{Action, Route};

#[async_trait]
pub trait Control: Send + Sync + std::fmt::Debug {
    /// Applies `action` to `route` on behalf of `actor`, persisting it before it takes effect.
    async fn operate(&self, route: Route, action: Action, actor: &str, why: &str)
        -> Result<(), ControlError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The action makes no sense for the route as it is (resume an automatic route…).
    #[error("{0}")]
    Refused(String),
    /// The decision could not be persisted; nothing changed.
    #[error("{0}")]
    Unavailable(String),
    /// In a group: no leader applied the action in time; it will not be applied later.
    #[error("{0}")]
    NoLeader(String),
}
