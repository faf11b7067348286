//! The demo's webhook inbox: the demo's `generic` webhook posts its alerts here, and the
//! dashboard's Lab panel lists them, so a newcomer sees an alert arrive without running
//! a receiver. Keeps the latest few, in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

/// How many deliveries the inbox keeps.
const KEPT: usize = 20;
/// The largest delivery kept whole; a longer one is cut (a demo, not a receiver).
const MAX_BODY: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct Inbox {
    deliveries: Arc<Mutex<VecDeque<Delivery>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub at: chrono::DateTime<chrono::Utc>,
    /// The alert's `type` (`failover`, `failback`, …) and one-line summary, from its JSON.
    pub kind: String,
    pub summary: String,
}

impl Inbox {
    pub fn newest_first(&self) -> Vec<Delivery> {
        self.lock().iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
        self.deliveries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `POST /demo/inbox`: what the demo's webhook sends.
pub async fn receive(State(inbox): State<Inbox>, body: Bytes) -> StatusCode {
    let body = &body[..body.len().min(MAX_BODY)];
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let delivery = Delivery { at: chrono::Utc::now(), kind: text("type"), summary: text("summary") };
    let mut deliveries = inbox.lock();
    if deliveries.len() == KEPT {
        deliveries.pop_front();
    }
    deliveries.push_back(delivery);
    StatusCode::ACCEPTED
}
