//! One check of one service: pick the probe for its kind, run it with retries, and bound
//! the whole check in time whatever the peer does.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use switchback_core::config::MonitorConfig;
use switchback_core::{Config, ServiceId, ServiceKind};
use tokio::time::{timeout_at, Instant};

use crate::{database, sip, stun};

/// How long one attempt may take, and how many extra attempts follow a failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub timeout: Duration,
    pub retries: u32,
}

impl From<&MonitorConfig> for ProbeSettings {
    fn from(monitor: &MonitorConfig) -> Self {
        Self { timeout: monitor.timeout, retries: monitor.retries }
    }
}

impl ProbeSettings {
    /// The most a whole check can take: every attempt running to its timeout.
    pub fn budget(&self) -> Duration {
        self.timeout.saturating_mul(self.retries.saturating_add(1))
    }
}

/// Why a check failed. `Display` gives the short reason shown to operators
/// (`timeout`, `refused`, `status 503`, …); it never carries secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Nothing usable came back before the deadline.
    #[error("timeout")]
    Timeout,
    /// The peer's host said nothing listens there (TCP RST, ICMP port unreachable).
    #[error("refused")]
    Refused,
    /// A final answer that is not healthy: a SIP status or a STUN error code.
    #[error("status {0}")]
    Status(u16),
    /// Bytes came back that are not a well-formed answer to the request.
    #[error("bad response")]
    BadResponse,
    /// Only answers to some other transaction came back.
    #[error("wrong transaction")]
    WrongTransaction,
    /// The name does not resolve or no route leads to the host.
    #[error("{0}")]
    Unreachable(String),
    /// Anything else, such as a database refusing the login.
    #[error("{0}")]
    Error(String),
}

/// The latency of the attempt that answered, or why the check failed (the last attempt's reason).
pub type Outcome = Result<Duration, Failure>;

/// Slack past the budget before the backstop gives up on a probe that ignores its deadline.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(20);

/// Checks `service` once: the probe for its kind, against the site that plays its role.
pub async fn check(config: &Config, service: ServiceId, settings: &ProbeSettings) -> Outcome {
    let site = config.site(service.role);
    match service.kind {
        ServiceKind::Softswitch => sip::options(&site.softswitch, settings).await,
        ServiceKind::Stun => stun::binding(&site.stun, settings).await,
        ServiceKind::Database => database::select_one(&site.database, settings).await,
    }
}

/// Runs `attempt` (given its deadline) until one succeeds or `retries` extra attempts have
/// failed too, and reports the last failure. Attempts follow each other at once: the point
/// of retrying is that one lost packet never counts, not to wait for a slow recovery.
pub(crate) async fn with_retries<F, Fut>(settings: &ProbeSettings, mut attempt: F) -> Outcome
where
    F: FnMut(Instant) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let end = Instant::now() + settings.budget();
    let attempts = async {
        let mut last = Failure::Timeout;
        for _ in 0..=settings.retries {
            let deadline = (Instant::now() + settings.timeout).min(end);
            // A well-behaved attempt returns at its deadline with what it saw; this only
            // catches one that does not.
            match timeout_at(deadline + BACKSTOP_MARGIN, attempt(deadline)).await {
                Ok(Ok(latency)) => return Ok(latency),
                Ok(Err(failure)) => last = failure,
                Err(_) => last = Failure::Timeout,
            }
            if Instant::now() >= end {
                break;
            }
        }
        Err(last)
    };
    timeout_at(end + BACKSTOP_MARGIN, attempts).await.unwrap_or(Err(Failure::Timeout))
}

/// Resolves `host` (a name or an IP, IPv6 with or without brackets) before `deadline`.
pub(crate) async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<SocketAddr, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match timeout_at(deadline, tokio::net::lookup_host((bare, port))).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(_)) => Err(unresolved(bare)),
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| unresolved(bare)),
    }
}

/// The one reason for a name that gives no address, whichever probe (or driver) looked
/// it up: `cannot resolve host sip1.chi.example.net`.
pub(crate) fn unresolved(host: &str) -> Failure {
    Failure::Unreachable(format!("cannot resolve host {host}"))
}

/// The failure a socket error stands for.
pub(crate) fn io_failure(err: &io::Error) -> Failure {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        io::ErrorKind::TimedOut => Failure::Timeout,
        io::ErrorKind::HostUnreachable => Failure::Unreachable("host unreachable".to_owned()),
        io::ErrorKind::NetworkUnreachable => Failure::Unreachable("network unreachable".to_owned()),
        io::ErrorKind::ConnectionReset => Failure::Error("connection reset".to_owned()),
        io::ErrorKind::UnexpectedEof => Failure::Error("connection closed".to_owned()),
        _ => Failure::Error(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_stable() {
        assert_eq!(Failure::Timeout.to_string(), "timeout");
        assert_eq!(Failure::Refused.to_string(), "refused");
        assert_eq!(Failure::Status(503).to_string(), "status 503");
        assert_eq!(Failure::BadResponse.to_string(), "bad response");
        assert_eq!(Failure::WrongTransaction.to_string(), "wrong transaction");
        assert_eq!(unresolved("sip1.example.net").to_string(), "cannot resolve host sip1.example.net");
    }

    #[test]
    fn settings_follow_the_monitor_config() {
        let monitor = MonitorConfig { timeout: Duration::from_millis(300), retries: 4, ..Default::default() };
        let settings = ProbeSettings::from(&monitor);
        assert_eq!(settings, ProbeSettings { timeout: Duration::from_millis(300), retries: 4 });
        assert_eq!(settings.budget(), Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_said_one_way() {
        let deadline = Instant::now() + Duration::from_secs(5);
        match resolve("sip1.switchback-test.invalid", 5060, deadline).await {
            Err(Failure::Timeout) => {} // no resolver answered in time
            other => assert_eq!(other, Err(unresolved("sip1.switchback-test.invalid"))),
        }
        let bracketed = resolve("[sip1.switchback-test.invalid]", 5060, deadline).await;
        assert!(
            matches!(&bracketed, Err(Failure::Timeout))
                || bracketed == Err(unresolved("sip1.switchback-test.invalid"))
        );
    }

    #[test]
    fn socket_errors_map_to_reasons() {
        assert_eq!(io_failure(&io::ErrorKind::ConnectionRefused.into()), Failure::Refused);
        assert_eq!(io_failure(&io::ErrorKind::NetworkUnreachable.into()).to_string(), "network unreachable");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_report_the_last_failure() {
        let settings = ProbeSettings { timeout: Duration::from_millis(100), retries: 2 };
        let mut calls = 0;
        let outcome = with_retries(&settings, |_| {
            calls += 1;
            let reason = if calls < 3 { Failure::Timeout } else { Failure::Status(503) };
            async move { Err(reason) }
        })
        .await;
        assert_eq!(outcome, Err(Failure::Status(503)));
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_stops_the_retries() {
        let settings = ProbeSettings { timeout: Duration::from_millis(100), retries: 5 };
        let mut calls = 0;
        let outcome = with_retries(&settings, |_| {
            calls += 1;
            let result = if calls == 2 { Ok(Duration::from_millis(7)) } else { Err(Failure::Refused) };
            async move { result }
        })
        .await;
        assert_eq!(outcome, Ok(Duration::from_millis(7)));
        assert_eq!(calls, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_ignores_its_deadline_is_cut_off() {
        let settings = ProbeSettings { timeout: Duration::from_millis(100), retries: 1 };
        let start = Instant::now();
        let outcome = with_retries(&settings, |_| std::future::pending::<Outcome>()).await;
        assert_eq!(outcome, Err(Failure::Timeout));
        assert!(start.elapsed() <= settings.budget() + BACKSTOP_MARGIN);
    }
}
