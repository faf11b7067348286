//! The provisioning access settings in force, the digest nonces and the scan guard: one
//! value shared by every phone-file request.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use switchback_core::config::{ProvisioningAuth, ProvisioningConfig, SCAN_WINDOW};
use tokio::sync::mpsc;

use super::digest::DigestAuth;
use super::guard::{BlockView, ScanGuard, Source};
use crate::AppState;

/// New blocks waiting to be recorded as events; more than this at once are only logged.
const BLOCK_QUEUE: usize = 1024;

#[derive(Debug)]
pub struct Access {
    config: ProvisioningConfig,
    pub digest: DigestAuth,
    pub guard: ScanGuard,
    new_blocks: mpsc::Sender<BlockView>,
}

impl Access {
    /// The access rules of `config`, and where each new block is announced (the
    /// orchestrator records it as a `provisioning_scan` event and alerts it).
    pub fn new(config: &ProvisioningConfig) -> (Self, mpsc::Receiver<BlockView>) {
        let (new_blocks, receiver) = mpsc::channel(BLOCK_QUEUE);
        let access = Self {
            config: config.clone(),
            digest: DigestAuth::new(),
            guard: ScanGuard::new(config.scan_limit, SCAN_WINDOW, config.block_for),
            new_blocks,
        };
        (access, receiver)
    }

    pub fn mode(&self) -> ProvisioningAuth {
        self.config.auth
    }

    pub fn https_only(&self) -> bool {
        self.config.https_only
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.config.allows(ip.to_canonical())
    }

    pub fn blocks_in_force(&self) -> usize {
        self.guard.in_force(Instant::now())
    }

    /// Counts a bad phone-file request; a new block is logged and announced.
    pub(crate) fn strike(&self, state: &AppState, source: Source) {
        let Some(block) = self.guard.strike(source, Instant::now(), state.clock.now()) else {
            return;
        };
        tracing::warn!(
            source = %block.source,
            bad_requests = block.bad_requests,
            until = %block.until,
            "provisioning scan blocked"
        );
        if self.new_blocks.try_send(block).is_err() {
            tracing::error!(source = %source, "provisioning scan not recorded: too many new blocks at once");
        }
    }

    /// 401 with a Digest challenge for both algorithms.
    pub(crate) fn challenge_response(&self, now_unix: u64, stale: bool) -> Response {
        let [sha256, md5] = self.digest.challenge(now_unix, stale);
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        response.headers_mut().append(header::WWW_AUTHENTICATE, sha256);
        response.headers_mut().append(header::WWW_AUTHENTICATE, md5);
        response
    }
}
