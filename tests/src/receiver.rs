//! A webhook receiver for alert tests: a small HTTP/1.1 server on its own loopback
//! address that records every request (headers, body, when) and answers each from a
//! script. It can be stopped and started again on the same address, so a test can
//! make the receiver "down" (connections refused) for a while.
//!
//! Hand-written on tokio rather than a web framework: it needs no more than a
//! request line, headers and a `Content-Length` body, and every answer closes the
//! connection, so a stopped receiver leaves no pooled connection behind in the sender.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::peers::loopback_ip;

/// A request whose head is larger than this is refused (413) and still recorded.
const MAX_HEAD: usize = 64 * 1024;
/// A body larger than this is refused (413) and still recorded.
const MAX_BODY: usize = 1024 * 1024;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its body was read in full.
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// Names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Received {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("body is not JSON: {}", self.text()))
    }

    /// The `webhook-id` header (Standard Webhooks), if any.
    pub fn webhook_id(&self) -> Option<&str> {
        self.header("webhook-id")
    }

    /// Whether the receiver acknowledged it (answered 2xx).
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// Decides each answer from the request and every request before it (oldest first).
pub type Script = dyn Fn(&Received, &[Received]) -> u16 + Send + Sync;

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

impl Shared {
    fn received(&self) -> MutexGuard<'_, Vec<Received>> {
        // A test that panicked while holding the lock has failed already; the log is still whole.
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A webhook receiver at `url()`; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    script: Arc<Script>,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .field("received", &self.shared.received().len())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Starts on a fresh loopback address, answering every request through `script`.
    pub async fn start(
        script: impl Fn(&Received, &[Received]) -> u16 + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let ip = loopback_ip();
        let listener =
            TcpListener::bind((ip, 0)).await.with_context(|| format!("binding a receiver on {ip}"))?;
        let addr = listener.local_addr()?;
        let mut receiver = Self { addr, script: Arc::new(script), shared: Arc::default(), server: None };
        receiver.serve(listener);
        Ok(receiver)
    }

    /// Answers `status` to every request.
    pub async fn always(status: u16) -> anyhow::Result<Self> {
        Self::start(move |_, _| status).await
    }

    /// Answers each alert (told apart by its `webhook-id` header, or by its body when it
    /// has none) with `first` in turn, then `then` to every later request for it.
    pub async fn per_alert(first: &[u16], then: u16) -> anyhow::Result<Self> {
        let first = first.to_vec();
        Self::start(move |request, before| {
            let seen = before.iter().filter(|earlier| same_alert(earlier, request)).count();
            first.get(seen).copied().unwrap_or(then)
        })
        .await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/hooks/{name}`: a URL for one webhook of the config.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/hooks/{name}", self.addr)
    }

    pub fn is_running(&self) -> bool {
        self.server.as_ref().is_some_and(|server| !server.is_finished())
    }

    /// Stops listening and drops every open connection; returns once the address
    /// refuses connections.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Awaiting the aborted task drops its listener and connections before we return.
            let _ = server.await;
        }
    }

    /// Listens again at the same address, with the same script and record.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "the receiver is running already");
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding the receiver again on {}", self.addr))?;
        self.serve(listener);
        Ok(())
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received().clone()
    }

    /// Waits until at least `n` requests have arrived, then answers them all.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> anyhow::Result<Vec<Received>> {
        self.wait_until(&format!("{n} requests"), deadline, |all| all.len() >= n).await
    }

    /// Waits until `done` holds for the requests so far (oldest first), then answers them.
    pub async fn wait_until(
        &self,
        what: &str,
        deadline: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let end = Instant::now() + deadline;
        loop {
            // Registered before looking, so an arrival in between is not missed.
            let arrived = self.shared.arrived.notified();
            let all = self.received();
            if done(&all) {
                return Ok(all);
            }
            if tokio::time::timeout_at(end, arrived).await.is_err() {
                let all = self.received();
                if done(&all) {
                    return Ok(all);
                }
                anyhow::bail!(
                    "timed out after {deadline:?} waiting for the receiver at {} to get {what}; it got {}:\n{}",
                    self.addr,
                    all.len(),
                    describe(&all)
                );
            }
        }
    }

    fn serve(&mut self, listener: TcpListener) {
        let (script, shared) = (self.script.clone(), self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            // Dropped with this task, aborting every connection still open.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        connections.spawn(answer(stream, script.clone(), shared.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// One line per request, for a failing test's message.
pub fn describe(all: &[Received]) -> String {
    all.iter()
        .map(|r| {
            format!(
                "  {} {} {} id={} -> {}: {}",
                r.at.format("%H:%M:%S%.3f"),
                r.method,
                r.path,
                r.webhook_id().unwrap_or("-"),
                r.answered,
                r.text()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn same_alert(a: &Received, b: &Received) -> bool {
    match (a.webhook_id(), b.webhook_id()) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.body == b.body,
        _ => false,
    }
}

/// Reads one request, records it with its scripted answer, answers and closes.
async fn answer(mut stream: TcpStream, script: Arc<Script>, shared: Arc<Shared>) {
    let Ok(Ok(Some((mut request, complete)))) =
        tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await
    else {
        return;
    };
    let status = {
        let mut received = shared.received();
        let status = if complete { script(&request, &received) } else { 413 };
        request.answered = status;
        received.push(request);
        status
    };
    shared.arrived.notify_waiters();
    let reply =
        format!("HTTP/1.1 {status} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", reason(status));
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request, and whether it fitted the limits (its body is cut when it did not);
/// `None` when the client went away first.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(Received, bool)>> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD || stream.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let (method, path) =
        (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let complete = length <= MAX_BODY;
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length.min(MAX_BODY) {
        if stream.read_buf(&mut body).await? == 0 {
            return Ok(None);
        }
    }
    body.truncate(length.min(MAX_BODY));
    let request = Received { at: Utc::now(), method, path, headers, body, answered: 0 };
    Ok(Some((request, complete)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

    use super::*;

    async fn post(client: &reqwest::Client, url: &str, id: &str, body: &str) -> Result<u16, reqwest::Error> {
        let response = client.post(url).header("webhook-id", id).body(body.to_owned()).send().await?;
        Ok(response.status().as_u16())
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap()
    }

    #[tokio::test]
    async fn records_requests_and_answers_each_alert_from_its_script() {
        let receiver = Receiver::per_alert(&[500, 500], 202).await.unwrap();
        let (client, url) = (client(), receiver.url("ops"));
        let mut answers = Vec::new();
        for id in ["a", "b", "a", "a", "b", "b", "a"] {
            answers.push(post(&client, &url, id, &format!("{{\"id\":\"{id}\"}}")).await.unwrap());
        }
        assert_eq!(answers, [500, 500, 500, 202, 500, 202, 202]);
        let all = receiver.wait_for(7, Duration::from_secs(5)).await.unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all[0].method, "POST");
        assert_eq!(all[0].path, "/hooks/ops");
        assert_eq!(all[0].webhook_id(), Some("a"));
        assert_eq!(all[1].json().unwrap()["id"], "b");
        assert!(all[3].acknowledged() && !all[2].acknowledged());
    }

    #[tokio::test]
    async fn a_stopped_receiver_refuses_and_comes_back_on_the_same_address() {
        let mut receiver = Receiver::always(202).await.unwrap();
        let (client, url) = (client(), receiver.url("ops"));
        assert_eq!(post(&client, &url, "1", "{}").await.unwrap(), 202);
        receiver.stop().await;
        let refused = post(&client, &url, "2", "{}").await.unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        receiver.start_again().await.unwrap();
        assert_eq!(post(&client, &url, "3", "{}").await.unwrap(), 202);
        let ids: Vec<_> = receiver.received().iter().map(|r| r.webhook_id().unwrap().to_owned()).collect();
        assert_eq!(ids, ["1", "3"]);
    }

    #[tokio::test]
    async fn wait_for_names_what_arrived_when_it_times_out() {
        let receiver = Receiver::always(400).await.unwrap();
        post(&client(), &receiver.url("ops"), "x", "{}").await.unwrap();
        let err = receiver.wait_for(2, Duration::from_millis(200)).await.unwrap_err().to_string();
        assert!(err.contains("2 requests") && err.contains("id=x -> 400"), "{err}");
    }
}
