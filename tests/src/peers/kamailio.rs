//! A real Kamailio answering OPTIONS on UDP and TCP at its own loopback address, and
//! on request over TLS too, with a self-signed certificate.

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
    tls: Option<SocketAddr>,
    daemon: Daemon,
}

impl Kamailio {
    /// Starts Kamailio on a fresh loopback address and waits until it answers OPTIONS.
    /// Fails when Kamailio is not installed or does not come up.
    pub async fn start(answer: SipAnswer) -> anyhow::Result<Self> {
        Self::start_on_fresh_address(answer, false).await
    }

    /// Like [`Kamailio::start`], and also listening for SIP over TLS at `tls_addr()`.
    pub async fn start_with_tls(answer: SipAnswer) -> anyhow::Result<Self> {
        Self::start_on_fresh_address(answer, true).await
    }

    async fn start_on_fresh_address(answer: SipAnswer, with_tls: bool) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..START_TRIES {
            let ip = loopback_ip();
            let addr = SocketAddr::from((ip, free_port(ip)?));
            let tls = match with_tls {
                true => Some(SocketAddr::from((ip, free_port_besides(ip, addr.port())?))),
                false => None,
            };
            match Self::launch(addr, tls, answer).await {
                Ok(kamailio) => return Ok(kamailio),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("kamailio did not start")))
    }

    /// Starts Kamailio on `addr` (UDP and TCP), say where a stopped one listened, so that
    /// a softswitch can come back at the address switchback probes; waits until it answers.
    pub async fn start_at(addr: SocketAddr, answer: SipAnswer) -> anyhow::Result<Self> {
        Self::launch(addr, None, answer).await
    }

    async fn launch(addr: SocketAddr, tls: Option<SocketAddr>, answer: SipAnswer) -> anyhow::Result<Self> {
        let binary = Daemon::locate("kamailio")?;
        let modules = modules_dir()?;
        let dir = tempfile::Builder::new().prefix("kamailio-").tempdir()?;
        let mut cfg = config(addr, &modules, answer);
        if let Some(tls) = tls {
            cfg = with_tls_listener(&cfg, tls, dir.path())?;
        }
        std::fs::write(dir.path().join("kamailio.cfg"), cfg)?;
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
        wait_ready(&mut daemon, addr, tls).await?;
        Ok(Self { addr, tls, daemon })
    }

    /// Where it listens for SIP over TLS, if started with [`Kamailio::start_with_tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
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

/// A free port on `ip` other than `taken` (which is free too until Kamailio binds it).
fn free_port_besides(ip: Ipv4Addr, taken: u16) -> anyhow::Result<u16> {
    for _ in 0..5 {
        let port = free_port(ip)?;
        if port != taken {
            return Ok(port);
        }
    }
    anyhow::bail!("no second free port on {ip}")
}

/// Adds a TLS listener at `tls` to a config, with a fresh self-signed certificate for
/// `sip.test` and the listener's address written into `dir`.
fn with_tls_listener(cfg: &str, tls: SocketAddr, dir: &std::path::Path) -> anyhow::Result<String> {
    let names = vec!["sip.test".to_owned(), tls.ip().to_string()];
    let cert = rcgen::generate_simple_self_signed(names).context("self-signed certificate")?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.key_pair.serialize_pem())?;
    let modules_end = cfg.find("\nrequest_route").context("config has a request_route")?;
    let (head, routes) = cfg.split_at(modules_end);
    Ok(format!(
        r#"{head}
enable_tls=yes
listen=tls:{tls}
loadmodule "tls.so"
modparam("tls", "certificate", "{cert}")
modparam("tls", "private_key", "{key}")
modparam("tls", "tls_method", "TLSv1.2+")
{routes}"#,
        cert = cert_path.display(),
        key = key_path.display(),
    ))
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
async fn wait_ready(daemon: &mut Daemon, addr: SocketAddr, tls: Option<SocketAddr>) -> anyhow::Result<()> {
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
            let tls = match tls {
                Some(tls) => tcp && TcpStream::connect(tls).await.is_ok(),
                None => tcp,
            };
            tls.then_some(true)
        }
    })
    .await;
    match ready {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("kamailio exited during start:\n{}", daemon.log_tail()),
        Err(err) => Err(err.context(format!("kamailio log:\n{}", daemon.log_tail()))),
    }
}
