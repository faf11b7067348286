//! The demo's simulated servers: a softswitch answering SIP OPTIONS and a STUN server
//! answering Binding Requests, on loopback UDP. A broken one stops answering (as a
//! hung server does), a mended one answers again. The demo's databases are SQLite files;
//! breaking one moves the file away.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use rsip::prelude::*;
use stun_rs::attributes::stun::XorMappedAddress;
use stun_rs::methods::BINDING;
use stun_rs::{MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// A simulated server that can be broken and mended.
#[derive(Debug, Clone)]
pub struct Sim {
    pub addr: SocketAddr,
    broken: Arc<AtomicBool>,
}

impl Sim {
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
}

type Answer = fn(&[u8], SocketAddr) -> Option<Vec<u8>>;

async fn start(answer: Answer, ip: IpAddr, shutdown: CancellationToken) -> anyhow::Result<Sim> {
    let socket = UdpSocket::bind((ip, 0)).await.with_context(|| format!("cannot bind a UDP port on {ip}"))?;
    let sim = Sim { addr: socket.local_addr()?, broken: Arc::new(AtomicBool::new(false)) };
    let broken = sim.broken.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (len, from) = tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok(received) => received,
                    Err(_) => continue,
                },
                () = shutdown.cancelled() => return,
            };
            if broken.load(Ordering::SeqCst) {
                continue;
            }
            if let Some(reply) = answer(&buf[..len], from) {
                // A lost reply is what UDP does; the prober retransmits.
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    Ok(sim)
}

/// A softswitch that answers OPTIONS with `200 OK` and everything else with `405`.
pub async fn softswitch(ip: IpAddr, shutdown: CancellationToken) -> anyhow::Result<Sim> {
    start(answer_sip, ip, shutdown).await
}

/// A STUN server that answers Binding Requests with the sender's address.
pub async fn stun(ip: IpAddr, shutdown: CancellationToken) -> anyhow::Result<Sim> {
    start(answer_stun, ip, shutdown).await
}

fn answer_sip(bytes: &[u8], _from: SocketAddr) -> Option<Vec<u8>> {
    let Ok(rsip::SipMessage::Request(request)) = rsip::SipMessage::try_from(bytes) else { return None };
    let code: u16 = if request.method == rsip::Method::Options { 200 } else { 405 };
    let mut headers = rsip::Headers::default();
    for header in request.headers.iter() {
        if matches!(
            header,
            rsip::Header::Via(_)
                | rsip::Header::From(_)
                | rsip::Header::To(_)
                | rsip::Header::CallId(_)
                | rsip::Header::CSeq(_)
        ) {
            headers.push(header.clone());
        }
    }
    headers.push(rsip::headers::Server::new("switchback-demo-softswitch").into());
    headers.push(rsip::headers::ContentLength::from(0).into());
    let response = rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    Some(response.to_string().into_bytes())
}

fn answer_stun(bytes: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let (request, _) = MessageDecoderBuilder::default().build().decode(bytes).ok()?;
    if request.method() != BINDING || request.class() != MessageClass::Request {
        return None;
    }
    let response = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(*request.transaction_id())
        .with_attribute(XorMappedAddress::from(from))
        .build();
    let mut buf = vec![0u8; 128];
    let len = MessageEncoderBuilder::default().build().encode(&mut buf, &response).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// A site's database: an SQLite file that breaks by moving away.
#[derive(Debug, Clone)]
pub struct SimDatabase {
    pub path: PathBuf,
}

impl SimDatabase {
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        // An empty file is a valid, empty SQLite database.
        std::fs::write(&path, b"").with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn parked(&self) -> PathBuf {
        self.path.with_extension("broken")
    }

    pub fn set_broken(&self, broken: bool) -> anyhow::Result<()> {
        let (from, to) =
            if broken { (self.path.clone(), self.parked()) } else { (self.parked(), self.path.clone()) };
        if from.exists() {
            std::fs::rename(&from, &to).with_context(|| format!("cannot move {}", from.display()))?;
        }
        Ok(())
    }

    pub fn is_broken(&self) -> bool {
        !self.path.exists()
    }
}
