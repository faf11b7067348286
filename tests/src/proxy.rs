//! A TCP proxy on its own loopback address in front of a real server (the machine's
//! PostgreSQL or MariaDB), which a test can cut, hang and restore, to make a real database
//! look refused or hung to a probe without touching the server.
//!
//! - [`Proxy::cut`]: live connections are closed and the port is closed too, so a new
//!   connection is refused (TCP RST): the probe says `refused`.
//! - [`Proxy::hang`]: connections are accepted and never forwarded, and live ones stop
//!   moving bytes, like a black hole on the path: the probe says `timeout`.
//! - [`Proxy::restore`]: forwarding again; connections held by a cut or a hang are gone.
//!
//! Each of these has taken effect when it returns. The proxy stops when dropped.

use std::future::pending;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::peers::{free_port, loopback_ip};

/// How long the proxy may take to reach the real server for one connection.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(5);

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Connections are accepted and held, and no byte moves.
    Hang,
    /// Nothing listens: new connections are refused, live ones were closed.
    Cut,
}

#[derive(Debug)]
struct Switch {
    mode: Mode,
    applied: oneshot::Sender<anyhow::Result<()>>,
}

/// A proxy listening on `addr()` and forwarding to `upstream()`; stopped on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    switches: mpsc::UnboundedSender<Switch>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding from a fresh loopback address to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let ip = loopback_ip();
        let addr = SocketAddr::from((ip, free_port(ip)?));
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("binding the proxy at {addr}"))?;
        let (switches, commands) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(listener, addr, upstream, commands));
        Ok(Self { addr, upstream, switches, task })
    }

    /// A proxy in front of the server a database URL names (`postgres://…`, `mysql://…`).
    /// [`Proxy::url`] gives the URL that goes through it.
    pub async fn in_front_of(url: &str) -> anyhow::Result<Self> {
        Self::start(upstream_of(url)?).await
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The real server behind it.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `url` (a database URL of the server behind the proxy) pointed at the proxy instead:
    /// same scheme, user, password, database and options.
    pub fn url(&self, url: &str) -> anyhow::Result<String> {
        let mut parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
        parsed.set_ip_host(self.addr.ip()).map_err(|()| anyhow::anyhow!("`{url}` cannot take a host"))?;
        parsed
            .set_port(Some(self.addr.port()))
            .map_err(|()| anyhow::anyhow!("`{url}` cannot take a port"))?;
        Ok(parsed.into())
    }

    /// Closes every live connection and the listening port: clients are refused.
    pub async fn cut(&self) -> anyhow::Result<()> {
        self.switch(Mode::Cut).await
    }

    /// Holds every connection, new or live, without forwarding a byte: clients time out.
    pub async fn hang(&self) -> anyhow::Result<()> {
        self.switch(Mode::Hang).await
    }

    /// Forwards again (listening again after a cut).
    pub async fn restore(&self) -> anyhow::Result<()> {
        self.switch(Mode::Forward).await
    }

    async fn switch(&self, mode: Mode) -> anyhow::Result<()> {
        let (applied, done) = oneshot::channel();
        self.switches.send(Switch { mode, applied }).map_err(|_| anyhow::anyhow!("the proxy has stopped"))?;
        done.await.map_err(|_| anyhow::anyhow!("the proxy stopped while switching to {mode:?}"))?
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the task drops the listener and the connection set, which aborts every
        // connection task.
        self.task.abort();
    }
}

/// The host and port a database URL names, with the scheme's default port.
pub fn upstream_of(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let default = match parsed.scheme() {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        other => anyhow::bail!("no default port for scheme `{other}`"),
    };
    let host = parsed.host_str().with_context(|| format!("`{url}` has no host"))?;
    let port = parsed.port().unwrap_or(default);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .with_context(|| format!("`{host}` does not resolve"))
}

/// The proxy's one task: owns the listener (none while cut) and every connection.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut switches: mpsc::UnboundedReceiver<Switch>,
) {
    let mut listener = Some(listener);
    let (mode_tx, _) = watch::channel(Mode::Forward);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            switch = switches.recv() => {
                let Some(Switch { mode, applied }) = switch else { return };
                let outcome = apply(mode, addr, &mut listener, &mut connections, &mode_tx).await;
                let _ = applied.send(outcome);
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((client, _)) = accepted {
                    connections.spawn(connection(client, upstream, mode_tx.subscribe()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn apply(
    mode: Mode,
    addr: SocketAddr,
    listener: &mut Option<TcpListener>,
    connections: &mut JoinSet<()>,
    mode_tx: &watch::Sender<Mode>,
) -> anyhow::Result<()> {
    mode_tx.send_replace(mode);
    match mode {
        Mode::Cut => {
            *listener = None;
            connections.abort_all();
            // Returns once every aborted task has been dropped, its sockets closed.
            while connections.join_next().await.is_some() {}
        }
        Mode::Forward | Mode::Hang => {
            if listener.is_none() {
                // SO_REUSEADDR (set by tokio) lets the port be taken again while closed
                // connections linger in TIME_WAIT.
                let bound = TcpListener::bind(addr).await.with_context(|| format!("re-binding {addr}"))?;
                *listener = Some(bound);
            }
        }
    }
    Ok(())
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

/// One client connection: forwarded while the mode is `Forward`, then held (in `Hang`)
/// until the mode changes again, then closed.
async fn connection(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow_and_update() == Mode::Forward {
        let Ok(Ok(mut server)) = tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)).await
        else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = mode.wait_for(|m| *m != Mode::Forward) => {}
        }
        if *mode.borrow() == Mode::Hang {
            let _ = mode.wait_for(|m| *m != Mode::Hang).await;
        }
        return;
    }
    // Accepted while hung: hold the socket, read nothing, until the mode changes.
    let _ = mode.wait_for(|m| *m != Mode::Hang).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

    use std::io::ErrorKind;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server standing in for the real one.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// Sends `ping` and waits up to 300 ms for it to come back.
    async fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut buf)).await {
            Ok(read) => read.map(|_| buf.to_vec()),
            Err(_) => Err(ErrorKind::TimedOut.into()),
        }
    }

    #[tokio::test]
    async fn forwards_cuts_hangs_and_restores() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut live).await.unwrap(), b"ping");

        proxy.cut().await.unwrap();
        let closed = round_trip(&mut live).await.unwrap_err();
        assert!(
            matches!(
                closed.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "a live connection survived the cut: {closed}"
        );
        let refused = TcpStream::connect(proxy.addr()).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

        proxy.restore().await.unwrap();
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh).await.unwrap(), b"ping");

        proxy.hang().await.unwrap();
        assert_eq!(round_trip(&mut fresh).await.unwrap_err().kind(), ErrorKind::TimedOut);
        let mut hung = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut hung).await.unwrap_err().kind(), ErrorKind::TimedOut);

        proxy.restore().await.unwrap();
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn stops_listening_when_dropped() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        let addr = proxy.addr();
        drop(proxy);
        // A connection racing the drop may be reset; after that, every one is refused.
        crate::wait::until("the dropped proxy to refuse", Duration::from_secs(2), || async {
            let refused = TcpStream::connect(addr).await.err()?.kind() == ErrorKind::ConnectionRefused;
            refused.then_some(())
        })
        .await
        .unwrap();
    }

    /// The database probe through a proxy in front of the machine's PostgreSQL and MariaDB.
    #[tokio::test]
    async fn the_database_probe_sees_refused_and_timeout() {
        use switchback_core::config::DatabaseConfig;
        use switchback_monitor::database::select_one;
        use switchback_monitor::{Failure, ProbeSettings};

        let settings = ProbeSettings { timeout: Duration::from_millis(500), retries: 0 };
        let servers = [
            crate::require!(crate::databases::postgres_url().await, "postgresql"),
            crate::require!(crate::databases::mariadb_url().await, "mariadb"),
        ];
        for server in servers {
            let proxy = Proxy::in_front_of(&server).await.unwrap();
            let config = DatabaseConfig { url: proxy.url(&server).unwrap().into() };
            let probe = || select_one(&config, &settings);
            assert!(probe().await.is_ok(), "{server} through the proxy: {:?}", probe().await);
            proxy.cut().await.unwrap();
            assert_eq!(probe().await, Err(Failure::Refused), "{server} cut");
            proxy.hang().await.unwrap();
            assert_eq!(probe().await, Err(Failure::Timeout), "{server} hung");
            proxy.restore().await.unwrap();
            assert!(probe().await.is_ok(), "{server} restored: {:?}", probe().await);
        }
    }

    #[test]
    fn database_urls_are_pointed_at_the_proxy() {
        assert_eq!(upstream_of("postgres://postgres@127.0.0.1/postgres").unwrap().port(), 5432);
        assert_eq!(upstream_of("mysql://root@127.0.0.1:3307/mysql").unwrap().port(), 3307);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await.unwrap();
            let url = proxy.url("postgres://monitor:s3cret@127.0.0.1:5432/voip?sslmode=disable").unwrap();
            let addr = proxy.addr();
            assert_eq!(url, format!("postgres://monitor:s3cret@{addr}/voip?sslmode=disable"));
        });
    }
}
