//! The listeners and their connections: plain HTTP on `server.listen`, HTTPS on
//! `server.tls_listen`, both serving the same router.
//!
//! This is where connection floods stop. At most `max_connections` are open at once
//! (more are accepted and closed at once, so the kernel's queue never fills with them);
//! a connection must finish each request header within [`Limits::header_timeout`] of
//! its first byte (of the accept, for the first request, TLS handshake included) and is
//! closed after [`Limits::idle_timeout`] without a request. axum's own `serve` has no
//! header or idle timeout and no TLS, hence this loop over hyper's HTTP/1 connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::per_source::PerSource;
use crate::prov::guard::Source;
use crate::tls::{ClientIdentity, Tls};

/// How long connections may take to finish after shutdown starts.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);
/// Pause after `accept` fails for lack of descriptors, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections one source (an IPv4 address, an IPv6 /64) may hold open at once, so that
/// one client cannot take every slot of `max_connections`. Phones open one per poll.
pub const MAX_PER_SOURCE: usize = 256;
/// Descriptors kept free for everything that is not a client connection: the probes,
/// the store, webhooks, the render folder.
pub const FD_RESERVE: u64 = 512;

/// How long a connection may stay without a request or a byte of response; a response
/// in progress that writes more often (a dashboard stream's keep-alives) is never idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits every connection lives by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn new(max_connections: usize) -> Self {
        Self { max_connections, header_timeout: Duration::from_secs(10), idle_timeout: IDLE_TIMEOUT }
    }
}

/// What the connection a request came on says about it; a request extension.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Over the HTTPS listener.
    pub tls: bool,
    pub client: Arc<ClientIdentity>,
}

impl Connection {
    pub fn plain() -> Self {
        Self { tls: false, client: Arc::new(ClientIdentity::None) }
    }
}

/// Both listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    pub plain: TcpListener,
    pub tls: Option<(TcpListener, Arc<Tls>)>,
}

/// Serves `router` on every listener until `shutdown`, then lets open requests finish
/// (for at most [`DRAIN_WITHIN`]).
pub async fn serve(
    listeners: Listeners,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        router,
        limits,
        metrics,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        per_source: PerSource::new(MAX_PER_SOURCE),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
    });
    let plain = tokio::spawn(shared.clone().accept_loop(listeners.plain, None));
    let tls =
        listeners.tls.map(|(listener, tls)| tokio::spawn(shared.clone().accept_loop(listener, Some(tls))));
    shutdown.cancelled().await;
    let _ = plain.await;
    if let Some(tls) = tls {
        let _ = tls.await;
    }
    shared.tracker.close();
    if tokio::time::timeout(DRAIN_WITHIN, shared.tracker.wait()).await.is_err() {
        tracing::warn!(open = shared.tracker.len(), "connections still open at shutdown; closing them");
    }
    Ok(())
}

struct Shared {
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    per_source: PerSource,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Shared {
    async fn accept_loop(self: Arc<Self>, listener: TcpListener, tls: Option<Arc<Tls>>) {
        let mut last_full_warning: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = self.shutdown.cancelled() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE/ENFILE, ECONNABORTED…: the listener itself is fine.
                    warn_at_most_every_minute(&mut last_full_warning, || {
                        tracing::warn!(error = %err, "accept failed");
                    });
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let source = Source::of(peer.ip());
            let admitted = match self.per_source.take(source) {
                None => Err("one source holds too many connections; new ones are closed"),
                Some(slot) => match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => Ok((slot, permit)),
                    Err(_) => Err("connection limit reached; new connections are closed"),
                },
            };
            let (slot, permit) = match admitted {
                Ok(admitted) => admitted,
                Err(why) => {
                    self.metrics.connection_refused();
                    warn_at_most_every_minute(&mut last_full_warning, || {
                        tracing::warn!(
                            source = %source,
                            max_connections = self.limits.max_connections,
                            per_source = MAX_PER_SOURCE,
                            "{why}"
                        );
                    });
                    drop(stream);
                    continue;
                }
            };
            let this = self.clone();
            let tls = tls.clone();
            self.tracker.spawn(async move {
                let _slot = slot;
                this.connection(stream, peer, tls, permit).await
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<Arc<Tls>>,
        _permit: OwnedSemaphorePermit,
    ) {
        let _open = self.metrics.connection_opened();
        let _ = stream.set_nodelay(true);
        let phase = Arc::new(Phase::new());
        let stream = Watched { inner: stream, phase: phase.clone() };
        let handshake_deadline = Instant::now() + self.limits.header_timeout;
        match tls {
            None => self.http(TokioIo::new(stream), peer, Connection::plain(), phase).await,
            Some(tls) => {
                let loaded = tls.current();
                let acceptor = tokio_rustls::TlsAcceptor::from(loaded.config.clone());
                let stream = match tokio::time::timeout_at(handshake_deadline, acceptor.accept(stream)).await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(peer = %peer, error = %err, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let client = loaded.identify(stream.get_ref().1.peer_certificates());
                let connection = Connection { tls: true, client: Arc::new(client) };
                self.http(TokioIo::new(stream), peer, connection, phase).await;
            }
        }
    }

    async fn http<I>(&self, io: I, peer: SocketAddr, connection: Connection, phase: Arc<Phase>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let request_phase = phase.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(connection.clone());
            request_phase.set(Phase::IN_REQUEST);
            let answer = router.clone().oneshot(request);
            let phase = request_phase.clone();
            async move {
                let response = answer.await;
                phase.set(Phase::IDLE);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true).header_read_timeout(None::<Duration>);
        let conn = builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = phase.deadline(&self.limits);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if phase.expired(&self.limits) {
                        tracing::debug!(peer = %peer, "connection timed out");
                        return;
                    }
                }
                () = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn warn_at_most_every_minute(last: &mut Option<Instant>, warn: impl FnOnce()) {
    let now = Instant::now();
    if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
        *last = Some(now);
        warn();
    }
}

/// Where a connection is in its request cycle, and since when: written by the socket
/// wrapper (first byte of a header) and the service (request in, response out), read by
/// the connection's watchdog.
#[derive(Debug)]
struct Phase {
    state: AtomicU8,
    /// Milliseconds since `epoch`.
    since: AtomicU64,
    epoch: Instant,
}

impl Phase {
    /// Reading a request header (or, on a new connection, waiting for the first one).
    const HEADER: u8 = 0;
    /// A request is being answered; the request timeout layer bounds it.
    const IN_REQUEST: u8 = 1;
    /// Between requests on a keep-alive connection.
    const IDLE: u8 = 2;

    fn new() -> Self {
        Self { state: AtomicU8::new(Self::HEADER), since: AtomicU64::new(0), epoch: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn set(&self, state: u8) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
    }

    /// Bytes arrived: on an idle connection they start the next header's clock.
    fn on_read(&self) {
        if self.state.load(Ordering::Relaxed) == Self::IDLE {
            self.set(Self::HEADER);
        }
    }

    /// Bytes went out: an idle connection still writing a response is not idle yet.
    fn on_write(&self) {
        if self.state.load(Ordering::Relaxed) == Self::IDLE {
            self.since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn limit(&self, limits: &Limits) -> Option<Duration> {
        match self.state.load(Ordering::Relaxed) {
            Self::HEADER => Some(limits.header_timeout),
            Self::IDLE => Some(limits.idle_timeout),
            _ => None,
        }
    }

    fn deadline(&self, limits: &Limits) -> Instant {
        let since = self.epoch + Duration::from_millis(self.since.load(Ordering::Relaxed));
        match self.limit(limits) {
            Some(limit) => since + limit,
            // Look again later: the request's own timeout ends it.
            None => Instant::now() + limits.header_timeout,
        }
    }

    fn expired(&self, limits: &Limits) -> bool {
        self.limit(limits).is_some_and(|limit| {
            self.now_ms().saturating_sub(self.since.load(Ordering::Relaxed))
                >= u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
        })
    }
}

/// A socket that tells its connection's [`Phase`] when bytes move.
struct Watched {
    inner: TcpStream,
    phase: Arc<Phase>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.phase.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.phase.on_write();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.phase.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open descriptors to the hard limit and answers how many
/// client connections fit while [`FD_RESERVE`] stay free for probes and the store.
pub fn fit_connections(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            if let Err(err) =
                setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) })
            {
                tracing::warn!(error = %err, "cannot raise the open-file limit");
            }
        }
    }
    let Some(soft) = getrlimit(Resource::Nofile).current else {
        return wanted; // unlimited
    };
    let room = usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(1);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = soft,
            using = room,
            "server.max_connections does not fit the open-file limit with room for the probes; lowered"
        );
        return room;
    }
    wanted
}

#[cfg(test)]
mod tests;
