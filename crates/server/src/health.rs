//! Whether switchback can do its whole job: the store taking writes. `/healthz` answers
//! from it (503 with the reason while the store refuses writes), `/readyz` only asks
//! whether phone files are being served, which they are while the store is down.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::AppState;

/// How long a read for `/api/status` or `/metrics` waits on the store.
const STORE_READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The store's latest verdict: `None` when the last write went through, else why not.
#[derive(Debug)]
pub struct StoreHealth {
    fault: watch::Sender<Option<String>>,
    /// The fault was found by the periodic check, not by a write: only the check (or a
    /// write that goes through) clears it.
    from_check: AtomicBool,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self { fault: watch::channel(None).0, from_check: AtomicBool::new(false) }
    }
}

impl StoreHealth {
    /// The periodic check failed (the store does not answer, or its file vanished).
    pub fn check_failed(&self, reason: &str) {
        self.failed(reason);
        self.from_check.store(true, Ordering::Relaxed);
    }

    /// The periodic check passed: clears a fault only the check had found; a write that
    /// failed stays a fault until a write goes through.
    pub fn check_passed(&self) {
        if self.from_check.load(Ordering::Relaxed) {
            self.ok();
        }
    }

    /// A write failed: logged at error once, when the fault starts. Each write path words
    /// the same fault its own way (a refused BEGIN, a failed COMMIT, a timeout), so a new
    /// wording while it lasts is only a debug line, though `/healthz` shows the latest.
    pub fn failed(&self, reason: &str) {
        self.from_check.store(false, Ordering::Relaxed);
        let mut started = false;
        let changed = self.fault.send_if_modified(|fault| {
            if fault.as_deref() == Some(reason) {
                return false;
            }
            started = fault.is_none();
            *fault = Some(reason.to_owned());
            true
        });
        if started {
            tracing::error!(error = reason, "store refuses writes: nothing can be decided until it is back");
        } else if changed {
            tracing::debug!(error = reason, "store still refuses writes");
        }
    }

    /// A write went through.
    pub fn ok(&self) {
        if self.fault.send_if_modified(|fault| fault.take().is_some()) {
            tracing::info!("store takes writes again");
        }
    }

    /// Changes whenever the store starts or stops refusing writes (or its reason changes).
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.fault.subscribe()
    }

    /// Why the store is refusing writes, if it is.
    pub fn fault(&self) -> Option<String> {
        self.fault.borrow().clone()
    }

    /// A read for the status page or the metrics, which must answer promptly even when
    /// the store is the thing that is down: skipped while it refuses writes, given up
    /// after [`STORE_READ_WITHIN`]. The error says which.
    pub async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, switchback_store::StoreError>>,
    ) -> Result<T, String> {
        if let Some(reason) = self.fault() {
            return Err(reason);
        }
        match tokio::time::timeout(STORE_READ_WITHIN, read).await {
            Ok(result) => result.map_err(|err| err.to_string()),
            Err(_) => Err(format!("the store did not answer within {STORE_READ_WITHIN:?}")),
        }
    }
}

/// `GET /healthz`: 200 when switchback can do its whole job.
#[utoipa::path(get, path = "/healthz", tag = "open",
    responses((status = 200, description = "`ok`", content_type = "text/plain"),
        (status = 503, description = "why not, e.g. `store refuses writes: …`", content_type = "text/plain")))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store_health.fault() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("store refuses writes: {reason}\n")).into_response()
        }
    }
}

/// `GET /readyz`: 200 while this instance serves a complete generation of phone files.
#[utoipa::path(get, path = "/readyz", tag = "open",
    responses((status = 200, description = "a complete generation of phone files is served", content_type = "text/plain")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let generation = state.generations.current();
    (
        StatusCode::OK,
        format!("ready: generation {} ({} phones)\n", generation.number(), generation.phone_count()),
    )
        .into_response()
}
