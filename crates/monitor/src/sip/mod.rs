//! The softswitch probe: a SIP OPTIONS request over UDP (with RFC 3261 timer E
//! retransmission), TCP or TLS, healthy on a 2xx reply or one of the configured
//! `healthy_codes`.

mod message;
mod tcp;
mod tls;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use switchback_core::config::{SoftswitchConfig, Transport};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::probe::{io_failure, resolve, with_retries, Failure, Outcome, ProbeSettings};
use message::{Reply, Transaction};

/// RFC 3261 T1: the first retransmission interval, doubled after each retransmission.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: the cap on the retransmission interval, and the interval once a 1xx arrived.
const T2: Duration = Duration::from_secs(4);
/// Big enough for any datagram.
const MAX_DATAGRAM: usize = 65_535;

/// Checks a softswitch with OPTIONS, retrying per `settings`.
pub async fn options(target: &SoftswitchConfig, settings: &ProbeSettings) -> Outcome {
    with_retries(settings, |deadline| attempt(target, deadline)).await
}

/// One OPTIONS transaction that must end by `deadline`.
async fn attempt(target: &SoftswitchConfig, deadline: Instant) -> Outcome {
    let peer = resolve(&target.host, target.port(), deadline).await?;
    let answer = match target.transport {
        Transport::Udp => udp_transaction(target, peer, deadline).await?,
        Transport::Tcp | Transport::Tls => tcp::transaction(target, peer, deadline).await?,
    };
    message::judge(answer.status, &target.healthy_codes).map(|()| answer.latency)
}

/// The final status of a transaction and how long it took to arrive.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    latency: Duration,
}

async fn udp_transaction(
    target: &SoftswitchConfig,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Answer, Failure> {
    let unspecified = match peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(unspecified).await.map_err(|e| io_failure(&e))?;
    // Connected, so that the kernel drops datagrams from anyone else and reports an ICMP
    // port unreachable as ConnectionRefused.
    socket.connect(peer).await.map_err(|e| io_failure(&e))?;
    let local = socket.local_addr().map_err(|e| io_failure(&e))?;

    let tx = Transaction::random();
    let request =
        message::options_request(&tx, &target.host, target.port(), Transport::Udp, local).to_string();
    let start = Instant::now();
    socket.send(request.as_bytes()).await.map_err(|e| io_failure(&e))?;

    let mut interval = T1;
    let mut next_send = start + interval;
    let mut proceeding = false;
    let mut remembered = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wake = next_send.min(deadline);
        match timeout_at(wake, socket.recv(&mut buf)).await {
            Err(_) if Instant::now() >= deadline => return Err(remembered.unwrap_or(Failure::Timeout)),
            Err(_) => {
                socket.send(request.as_bytes()).await.map_err(|e| io_failure(&e))?;
                interval = if proceeding { T2 } else { (interval * 2).min(T2) };
                next_send = Instant::now() + interval;
            }
            Ok(Err(err)) => return Err(io_failure(&err)),
            Ok(Ok(len)) => match message::classify(&buf[..len], &tx) {
                Reply::Final(status) => return Ok(Answer { status, latency: start.elapsed() }),
                Reply::Provisional(_) => proceeding = true,
                other => remembered = other.remembered().or(remembered),
            },
        }
    }
}
