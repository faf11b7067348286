//! A real coturn in STUN-only mode at its own loopback address.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::daemon::Daemon;
use super::{free_port, loopback_ip};

const READY_WITHIN: Duration = Duration::from_secs(15);
const START_TRIES: usize = 3;

/// A coturn answering STUN Binding requests on `addr()` (UDP); killed on drop.
#[derive(Debug)]
pub struct Coturn {
    addr: SocketAddr,
    daemon: Daemon,
}

impl Coturn {
    /// Starts coturn on a fresh loopback address and waits until it answers a Binding
    /// request. Fails when coturn is not installed or does not come up.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = Daemon::locate("turnserver")?;
        let mut last_error = None;
        for _ in 0..START_TRIES {
            let ip = loopback_ip();
            let addr = SocketAddr::from((ip, free_port(ip)?));
            let dir = tempfile::Builder::new().prefix("coturn-").tempdir()?;
            let mut command = Command::new(&binary);
            command
                .args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--no-rfc5780"])
                .args(["--listening-ip", &ip.to_string(), "--listening-port", &addr.port().to_string()])
                .args(["--relay-ip", &ip.to_string()])
                // Everything it writes stays in the temp folder, and the log goes to stdout.
                .args(["--log-file", "stdout", "--simple-log"])
                .arg("--pidfile")
                .arg(dir.path().join("turnserver.pid"))
                .arg("--userdb")
                .arg(dir.path().join("turndb"));
            let mut daemon = Daemon::spawn(command, dir)?;
            match wait_ready(&mut daemon, addr).await {
                Ok(()) => return Ok(Self { addr, daemon }),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("coturn did not start")))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// coturn's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        self.daemon.log_tail()
    }
}

/// Waits until coturn answers a hand-built Binding request, so that readiness never depends
/// on the probe under test.
async fn wait_ready(daemon: &mut Daemon, addr: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(addr).await?;
    // Binding request, no attributes, magic cookie, a fixed transaction id.
    let mut ping = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    ping.extend_from_slice(b"harnessready");
    let (socket, ping, child) = (&socket, &ping, &mut *daemon);
    let mut exited = false;
    let ready = crate::wait::until("coturn to answer a binding request", READY_WITHIN, move || {
        exited = exited || child.exited();
        let gave_up = exited;
        async move {
            if gave_up {
                return Some(false);
            }
            let _ = socket.send(ping).await;
            let mut buf = [0u8; 2048];
            match tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await {
                Ok(Ok(n)) if n >= 20 && buf[8..20] == ping[8..20] => Some(true),
                _ => None,
            }
        }
    })
    .await;
    match ready {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("coturn exited during start:\n{}", daemon.log_tail()),
        Err(err) => Err(err.context(format!("coturn log:\n{}", daemon.log_tail()))),
    }
}
