//! The demo's "simulate a scan" button: a scanner on another loopback address walks
//! Yealink MACs without credentials until switchback blocks it, so the block, its
//! event and its alert can be watched (and lifted) on the dashboard.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The demo's `provisioning.scan_limit`: low, so a block comes within a second.
pub const SCAN_LIMIT: u32 = 10;
/// Where the simulated scanner comes from: not the address the demo's phones use.
const SCANNER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
/// Requests the scanner makes at most, blocked or not.
const SCAN_REQUESTS: u32 = SCAN_LIMIT + 10;

#[derive(Debug, Clone)]
pub struct Scanner {
    target: SocketAddr,
    running: Arc<AtomicBool>,
}

impl Scanner {
    pub fn new(target: SocketAddr) -> Self {
        Self { target, running: Arc::new(AtomicBool::new(false)) }
    }
}

/// `POST /demo/scan`: starts one scan in the background and answers at once.
pub async fn start(State(scanner): State<Scanner>) -> Response {
    if scanner.running.swap(true, Ordering::SeqCst) {
        return (StatusCode::CONFLICT, Json(json!({ "error": "a scan is already running" }))).into_response();
    }
    let client =
        match reqwest::Client::builder().local_address(SCANNER).timeout(Duration::from_secs(5)).build() {
            Ok(client) => client,
            Err(err) => {
                scanner.running.store(false, Ordering::SeqCst);
                let message = format!("cannot start the scanner: {err}");
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": message })))
                    .into_response();
            }
        };
    tokio::spawn(scan(client, scanner.clone()));
    let body = json!({
        "source": SCANNER.to_string(),
        "requests": SCAN_REQUESTS,
        "blocked_after": SCAN_LIMIT,
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn scan(client: reqwest::Client, scanner: Scanner) {
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..SCAN_REQUESTS {
        // MACs a scanner would try: the sample phones' prefix, counting up from far away.
        let url = format!("http://{}/prov/yealink/001565{:06x}.cfg", scanner.target, 0x00a000 + i);
        let status = match client.get(url).header("User-Agent", "masscan-provisioning/1.0").send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        *answers.entry(status).or_default() += 1;
    }
    tracing::info!(source = %SCANNER, answers = ?answers, "demo scan finished");
    scanner.running.store(false, Ordering::SeqCst);
}
