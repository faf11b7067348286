//! The outbox's sender: delivers due alerts, retries with exponential backoff and
//! jitter, and records each attempt. 2xx is delivered; 408, 429, 5xx and network
//! errors are retried; any other 4xx is final and shown as failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use switchback_core::config::AlertConfig;
use switchback_core::{Clock, SiteNames};
use switchback_store::{within, AlertDelivery, Leadership, OutboxAlert, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::message::AlertMessage;

/// The first retry comes within this; each further one waits twice as long…
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// …up to this.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// How long the sender sleeps when nothing is due and nobody wakes it, or after the
/// store would not take a delivery's record.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// The longest a read or write of the outbox may take: a store that hangs must not
/// stop the sender for good.
const STORE_WITHIN: Duration = Duration::from_secs(10);
const BATCH: u32 = 100;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered(u16),
    /// Worth retrying: 408, 429, 5xx, or no answer.
    Retry {
        status: Option<u16>,
        error: String,
    },
    /// Refused for good.
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// Nothing to send to this webhook (the format skips the alert).
    Skipped,
}

#[derive(Debug, Clone)]
pub struct Sender {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    webhooks: Arc<BTreeMap<String, AlertConfig>>,
    site_names: Arc<SiteNames>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    /// Only the group's leader sends, and only while its lease holds.
    leadership: Arc<Leadership>,
}

/// The process's one HTTP client for webhooks, with timeouts.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("switchback/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Sender {
    pub fn new(
        store: Arc<dyn Store>,
        client: reqwest::Client,
        webhooks: impl IntoIterator<Item = AlertConfig>,
        site_names: SiteNames,
        clock: Arc<dyn Clock>,
        leadership: Arc<Leadership>,
    ) -> Self {
        Self {
            store,
            client,
            webhooks: Arc::new(webhooks.into_iter().map(|w| (w.name.clone(), w)).collect()),
            site_names: Arc::new(site_names),
            clock,
            wake: Arc::new(Notify::new()),
            leadership,
        }
    }

    /// Call after queueing alerts, so they go out now rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Delivers until `shutdown`. Pending alerts from before a restart (or from an
    /// earlier leader) go out first. In a group, only while this instance leads.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.deliver_due().await {
                Ok(0) => self.until_next_due().await,
                Ok(_) => Duration::ZERO,
                Err(err) => {
                    tracing::warn!(error = %err, "alert outbox unreadable");
                    IDLE_POLL
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        if !self.leadership.leads() {
            return IDLE_POLL;
        }
        match tokio::time::timeout(STORE_WITHIN, self.store.next_alert_due()).await {
            Ok(Ok(Some(at))) => (at - self.clock.now()).to_std().unwrap_or_default().min(IDLE_POLL),
            _ => IDLE_POLL,
        }
    }

    /// Sends every due alert: webhooks in parallel, each webhook's alerts in order.
    async fn deliver_due(&self) -> Result<usize, switchback_store::StoreError> {
        if !self.leadership.leads() {
            return Ok(0);
        }
        let due =
            within(STORE_WITHIN, "read the alert outbox", self.store.due_alerts(self.clock.now(), BATCH))
                .await?;
        let count = due.len();
        let mut by_webhook: BTreeMap<String, Vec<OutboxAlert>> = BTreeMap::new();
        for alert in due {
            by_webhook.entry(alert.webhook.clone()).or_default().push(alert);
        }
        let sends = by_webhook.into_values().map(|alerts| async move {
            for alert in alerts {
                // In order: after a refusal, the rest of this webhook's queue waits.
                match self.deliver(&alert).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        });
        // A record the store would not take: pause before the next pass, rather than
        // send the same alert again at once (it keeps its id, and receivers dedupe).
        for sent in futures::future::join_all(sends).await {
            sent?;
        }
        Ok(count)
    }

    /// Sends one alert; false when it must be retried, which holds back the alerts after
    /// it; an error when its outcome could not be recorded.
    async fn deliver(&self, alert: &OutboxAlert) -> Result<bool, switchback_store::StoreError> {
        // Asked again just before sending: a leader paused past its lease (or cut off)
        // finds its lease lapsed on its own clock and sends nothing; the new leader
        // sends the alert, with the same id.
        let Ok(fence) = self.leadership.write_as() else {
            return Ok(false);
        };
        let attempt =
            match (self.webhooks.get(&alert.webhook), AlertMessage::from_outbox(alert, &self.site_names)) {
                (Some(webhook), Some(message)) => {
                    let sending = send(&self.client, webhook, &message, self.clock.now());
                    // In a group, no longer than the lease still holds: a leader frozen
                    // mid-send must not deliver long after another took over.
                    match self.leadership.remaining() {
                        None => sending.await,
                        Some(left) => tokio::time::timeout(left, sending).await.unwrap_or(Attempt::Retry {
                            status: None,
                            error: "the lease ran out while sending".to_owned(),
                        }),
                    }
                }
                (None, _) => {
                    Attempt::Failed { status: None, error: "webhook no longer configured".to_owned() }
                }
                (_, None) => Attempt::Failed { status: None, error: "event no longer alerts".to_owned() },
            };
        let now = self.clock.now();
        let delivery = match &attempt {
            Attempt::Delivered(status) => AlertDelivery::Delivered { status: *status },
            Attempt::Skipped => AlertDelivery::Delivered { status: 0 },
            Attempt::Retry { status, error } => AlertDelivery::Retry {
                status: *status,
                error: error.clone(),
                next_attempt_at: now + backoff(alert.attempts + 1),
            },
            Attempt::Failed { status, error } => {
                AlertDelivery::Failed { status: *status, error: error.clone() }
            }
        };
        log_attempt(alert, &attempt);
        let record = self.store.record_delivery(fence.as_ref(), alert.id, &delivery, now);
        if let Err(err) = within(STORE_WITHIN, "record an alert delivery", record).await {
            // The alert stays pending and goes out again with the same id: receivers dedupe.
            tracing::warn!(alert = alert.id, error = %err, "alert delivery not recorded");
            self.leadership.note_error(&err);
            return Err(err);
        }
        Ok(!matches!(attempt, Attempt::Retry { .. }))
    }
}

/// Sends one alert to one webhook and classifies the answer.
pub async fn send(
    client: &reqwest::Client,
    webhook: &AlertConfig,
    message: &AlertMessage,
    now: DateTime<Utc>,
) -> Attempt {
    let prepared = match crate::prepare(message, webhook, now) {
        Ok(Some(prepared)) => prepared,
        Ok(None) => return Attempt::Skipped,
        Err(err) => return Attempt::Failed { status: None, error: err.to_string() },
    };
    let mut request = client
        .post(webhook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(prepared.body);
    for (name, value) in prepared.headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => classify(response.status().as_u16()),
        Err(err) => Attempt::Retry { status: None, error: short_error(&err) },
    }
}

fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered(status),
        408 | 429 | 500..=599 => Attempt::Retry { status: Some(status), error: format!("status {status}") },
        _ => Attempt::Failed { status: Some(status), error: format!("status {status}") },
    }
}

fn short_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of
/// `FIRST_RETRY × 2^(n-1)`, capped at `MAX_RETRY`.
pub fn backoff(attempts: u32) -> chrono::Duration {
    let exp = FIRST_RETRY.saturating_mul(1u32 << attempts.saturating_sub(1).min(16)).min(MAX_RETRY);
    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
    chrono::Duration::from_std(jittered).unwrap_or(chrono::TimeDelta::MAX)
}

fn log_attempt(alert: &OutboxAlert, attempt: &Attempt) {
    let (webhook, id, kind) = (alert.webhook.as_str(), alert.id, alert.event.event.kind.as_str());
    match attempt {
        Attempt::Delivered(status) => tracing::info!(webhook, alert = id, kind, status, "alert delivered"),
        Attempt::Skipped => {}
        Attempt::Retry { error, .. } => {
            tracing::warn!(webhook, alert = id, kind, attempts = alert.attempts + 1, error = %error, "alert retry")
        }
        Attempt::Failed { error, .. } => {
            tracing::error!(webhook, alert = id, kind, error = %error, "alert failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_spec_says() {
        assert_eq!(classify(202), Attempt::Delivered(202));
        for retry in [408, 429, 500, 503] {
            assert!(matches!(classify(retry), Attempt::Retry { .. }), "{retry}");
        }
        for fail in [400, 401, 404, 410] {
            assert!(matches!(classify(fail), Attempt::Failed { .. }), "{fail}");
        }
    }

    #[test]
    fn three_refusals_still_arrive_within_a_minute() {
        for _ in 0..100 {
            let waited: chrono::Duration = (1..=3).map(backoff).sum();
            assert!(waited <= chrono::Duration::seconds(7), "{waited}");
        }
        assert!(backoff(30) <= chrono::Duration::seconds(300));
        assert!(backoff(1) >= chrono::Duration::milliseconds(500));
    }
}
