//! Harness for switchback's tests against real peers: Kamailio, coturn, the machine's
//! PostgreSQL and MariaDB, and small hand-made misbehaving responders.
//!
//! A test that needs a peer it cannot start fails under `CI=true` and is skipped,
//! with a note on stderr, elsewhere: see [`require!`].

pub mod cluster;
pub mod databases;
pub mod fixtures;
pub mod lab;
pub mod peers;
pub mod phone_files;
pub mod proxy;
pub mod receiver;
pub mod switchback;
pub mod wait;

/// True under CI (`CI=true`), where a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Unwraps a peer that a test needs; when it is unavailable the test fails under CI
/// and returns early (a visible skip) elsewhere.
#[macro_export]
macro_rules! require {
    ($peer:expr, $what:expr) => {
        match $peer {
            Ok(peer) => peer,
            Err(err) => {
                if $crate::in_ci() {
                    panic!("{} is needed and unavailable under CI: {err:#}", $what);
                }
                eprintln!("SKIPPED: {} unavailable: {err:#}", $what);
                return;
            }
        }
    };
}
