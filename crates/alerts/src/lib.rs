//! On-call alerts: which events alert ([`kind`]), the durable outbox's sender with
//! backoff ([`sender`]), and one module per webhook format.
//!
//! Alerts are queued by the store in the same transaction as the events that cause
//! them ([`plan`] says which rows to queue), so none is lost across a restart; the
//! sender keeps each alert's id across retries, so receivers can drop duplicates.

pub mod generic;
pub mod kind;
pub mod message;
pub mod pagerduty;
pub mod sender;
pub mod slack;

use switchback_core::config::{AlertConfig, AlertFormat};
use switchback_core::{EngineState, Event};
use switchback_store::Enqueue;

pub use kind::AlertKind;
pub use message::AlertMessage;
pub use sender::{Attempt, Sender};

/// A request body and headers for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AlertError {
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("pagerduty webhook without a routing_key")]
    NoRoutingKey,
    #[error("cannot encode the alert: {0}")]
    Encode(String),
}

/// The outbox rows to queue for a step's events: one per (alerting event, webhook).
/// `before` is the state before the step, for flood damping.
pub fn plan(
    before: &EngineState,
    generation: u64,
    events: &[Event],
    webhooks: &[AlertConfig],
) -> Vec<Enqueue> {
    let mut rows = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let Some(kind) = AlertKind::of(event) else { continue };
        if !kind.worth_sending(event, before) {
            continue;
        }
        for webhook in webhooks {
            let wanted = match webhook.format {
                AlertFormat::Pagerduty => kind.incident(event).is_some(),
                AlertFormat::Generic | AlertFormat::Slack => kind.for_people(),
            };
            if wanted {
                rows.push(Enqueue { event_index: index, webhook: webhook.name.clone(), generation });
            }
        }
    }
    rows
}

/// The request for one alert to one webhook; `None` when the format skips this alert.
pub fn prepare(
    message: &AlertMessage,
    webhook: &AlertConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Prepared>, AlertError> {
    match webhook.format {
        AlertFormat::Generic => generic::prepare(message, webhook.secret.as_ref(), now).map(Some),
        AlertFormat::Slack => Ok(Some(slack::prepare(message))),
        AlertFormat::Pagerduty => {
            let key = webhook.routing_key.as_ref().ok_or(AlertError::NoRoutingKey)?;
            pagerduty::prepare(message, key)
        }
    }
}

#[cfg(test)]
mod tests;
