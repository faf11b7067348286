//! A real Kamailio answering OPTIONS on UDP and TCP at its own loopback address.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpStream, UdpSocket};

use super::daemon::Daemon;
use super::{free_port, loopback_ip};

/// How long Kamailio may take to start answering, even on a loaded machine.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// A port taken between our check and Kamailio's bind makes it exit; try again elsewhere.
const START_TRIES: usize = 3;

/// What the softswitch answers to OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipAnswer {
    /// `200 OK`: a healthy softswitch.
    Ok,
    /// `503 Service Unavailable`: up, but refusing work (overload, lost database).
    Unavailable,
}

impl SipAnswer {
    fn reply(self) -> &'static str {
        match self {
            SipAnswer::Ok => r#"sl_send_reply("200", "OK");"#,
            SipAnswer::Unavailable => r#"sl_send_reply("503", "Service Unavailable");"#,
        }
    }
}

/// A Kamailio listening on `addr()` over both UDP and TCP; killed on drop.
#[derive(Debug)]
pub struct Kamailio {
    addr: SocketAddr,
    daemon: Daemon,
}

impl Kamailio {
    /// Starts Kamailio on a fresh loopback address and waits until it answers OPTIONS.
    /// Fails when Kamailio is not installed or does not come up.
    pub async fn start(answer: SipAnswer) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..START_TRIES {
            let ip = loopback_ip();
            let addr = SocketAddr::from((ip, free_port(ip)?));
            match Self::start_at(addr, answer).await {
                Ok(kamailio) => return Ok(kamailio),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("kamailio did not start")))
    }

    /// Starts Kamailio on `addr` (UDP and TCP), say where a stopped one listened, so that
    /// a softswitch can come back at the address switchback probes; waits until it answers.
    pub async fn start_at(addr: SocketAddr, answer: SipAnswer) -> anyhow::Result<Self> {
        let binary = Daemon::locate("kamailio")?;
        let modules = modules_dir()?;
        let dir = tempfile::Builder::new().prefix("kamailio-").tempdir()?;
        std::fs::write(dir.path().join("kamailio.cfg"), config(addr, &modules, answer))?;
        let mut command = Command::new(&binary);
        // Absolute paths: Kamailio changes its working folder (-w) before writing its pid file.
        command
            // -DD: stay in the foreground (workers are still forked); -E: log to stderr.
            .args(["-DD", "-E"])
            .arg("-f")
            .arg(dir.path().join("kamailio.cfg"))
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            // Small memory pools: a test instance answers a handful of requests.
            .args(["-m", "16", "-M", "4"]);
        let mut daemon = Daemon::spawn(command, dir)?;
        wait_ready(&mut daemon, addr).await?;
        Ok(Self { addr, daemon })
    }

    /// Where it listens, on UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Kamailio's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        self.daemon.log_tail()
    }
}

fn config(addr: SocketAddr, modules: &std::path::Path, answer: SipAnswer) -> String {
    let reply = answer.reply();
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
disable_sctp=yes
listen=udp:{addr}
listen=tcp:{addr}
mpath="{modules}/"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"

request_route {{
    if (is_method("OPTIONS")) {{
        {reply}
        exit;
    }}
    sl_send_reply("501", "Not Implemented");
}}
"#,
        modules = modules.display(),
    )
}

/// Debian puts modules under the multiarch folder; other layouts are tried too.
fn modules_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("KAMAILIO_MODULES").map(PathBuf::from).into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(entries.flatten().map(|e| e.path().join("kamailio/modules")));
    }
    candidates.extend(
        ["/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules", "/usr/local/lib64/kamailio/modules"]
            .map(PathBuf::from),
    );
    candidates
        .into_iter()
        .find(|dir| dir.join("sl.so").is_file())
        .context("kamailio modules (sl.so) not found; set KAMAILIO_MODULES")
}

/// Waits until Kamailio answers a hand-written OPTIONS over UDP and accepts TCP, so that
/// readiness never depends on the probe under test.
async fn wait_ready(daemon: &mut Daemon, addr: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(addr).await?;
    let local = socket.local_addr()?;
    let ping = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:harness@{ip}>;tag=ready\r\nTo: <sip:{addr}>\r\n\
         Call-ID: ready-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ip = local.ip(),
        port = local.port(),
    );
    let (socket, ping, child) = (&socket, &ping, &mut *daemon);
    let mut exited = false;
    let ready = crate::wait::until("kamailio to answer OPTIONS", READY_WITHIN, move || {
        exited = exited || child.exited();
        let gave_up = exited;
        async move {
            if gave_up {
                return Some(false);
            }
            let _ = socket.send(ping.as_bytes()).await;
            let mut buf = [0u8; 4096];
            let answered = matches!(
                tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await,
                Ok(Ok(n)) if buf[..n].starts_with(b"SIP/2.0 ")
            );
            let tcp = answered && TcpStream::connect(addr).await.is_ok();
            tcp.then_some(true)
        }
    })
    .await;
    match ready {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("kamailio exited during start:\n{}", daemon.log_tail()),
        Err(err) => Err(err.context(format!("kamailio log:\n{}", daemon.log_tail()))),
    }
}
