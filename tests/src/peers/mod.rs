//! Real and misbehaving network peers for probe tests.
//!
//! Real ones ([`Kamailio`], [`Coturn`]) run as child processes, one per test, each on
//! its own loopback address ([`loopback_ip`]) and a free port, so tests run in parallel;
//! they are killed when dropped. The misbehaving ones ([`misbehaving`]) are small tokio
//! tasks that swallow, stall, answer for another transaction or answer garbage.

mod coturn;
mod daemon;
mod kamailio;
pub mod misbehaving;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

pub use coturn::Coturn;
pub use kamailio::{Kamailio, SipAnswer};
pub use misbehaving::{Responder, Stray};

/// A loopback address no other peer of this process uses. All of 127.0.0.0/8 reaches
/// the loopback interface on Linux; the process id picks the /16, so two test binaries
/// running at once are unlikely to meet either.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let [_, _, pid_hi, pid_lo] = std::process::id().to_be_bytes();
    // Second octet 100..=199, away from 127.0.0.1 and friends.
    let second = 100 + (u16::from_be_bytes([pid_hi, pid_lo]) % 100) as u8;
    Ipv4Addr::new(127, second, ((n / 250) % 256) as u8, (n % 250 + 1) as u8)
}

/// A port on `ip` that is free for both UDP and TCP right now (SIP listens on both).
pub fn free_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    for _ in 0..20 {
        let udp = UdpSocket::bind((ip, 0))?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free for both UDP and TCP on {ip}")
}

/// An address where nothing listens, on UDP or TCP: a probe sent there is refused.
pub fn closed_port() -> anyhow::Result<SocketAddr> {
    let ip = loopback_ip();
    Ok(SocketAddr::from((ip, free_port(ip)?)))
}
