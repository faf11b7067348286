//! Peers that get things wrong, for the failure reasons no real server gives on demand:
//! silence, answers to another transaction, garbage. Each listens on UDP and TCP at one
//! fresh loopback address and stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use rsip::prelude::*;
use stun_rs::attributes::stun::XorMappedAddress;
use stun_rs::methods::BINDING;
use stun_rs::{
    MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder, TransactionId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::{free_port, loopback_ip};

/// What a responder sends back for one received datagram or TCP read; `None` is silence.
type Reply = dyn Fn(&[u8], SocketAddr) -> Option<Vec<u8>> + Send + Sync;

/// Which identifier a stray SIP answer gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stray {
    Branch,
    CallId,
}

/// A UDP socket and a TCP listener on one address, answering through a reply function.
#[derive(Debug)]
pub struct Responder {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Responder {
    /// Never answers: datagrams are swallowed, TCP connections accepted and left hanging.
    pub async fn silent() -> anyhow::Result<Self> {
        Self::start(Arc::new(|_, _| None)).await
    }

    /// Answers every SIP request with a `200 OK` for another transaction.
    pub async fn stray_sip(stray: Stray) -> anyhow::Result<Self> {
        Self::start(Arc::new(move |bytes, _| stray_sip_reply(bytes, stray))).await
    }

    /// Answers every STUN Binding request with a success for another transaction id.
    pub async fn stray_stun() -> anyhow::Result<Self> {
        Self::start(Arc::new(stray_stun_reply)).await
    }

    /// Answers anything with bytes that are neither SIP nor STUN.
    pub async fn garbage() -> anyhow::Result<Self> {
        Self::start(Arc::new(|_, _| Some(b"\x7fELF garbage \xff\xfe\r\n\r\n\x00\x01".to_vec()))).await
    }

    async fn start(reply: Arc<Reply>) -> anyhow::Result<Self> {
        let ip = loopback_ip();
        let addr = SocketAddr::from((ip, free_port(ip)?));
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        let tasks = vec![tokio::spawn(serve_udp(udp, reply.clone())), tokio::spawn(serve_tcp(tcp, reply))];
        Ok(Self { addr, tasks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve_udp(socket: UdpSocket, reply: Arc<Reply>) {
    let mut buf = vec![0u8; 65_535];
    while let Ok((len, from)) = socket.recv_from(&mut buf).await {
        if let Some(answer) = reply(&buf[..len], from) {
            let _ = socket.send_to(&answer, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, reply: Arc<Reply>) {
    let mut connections = Vec::new();
    while let Ok((stream, from)) = listener.accept().await {
        connections.push(tokio::spawn(serve_connection(stream, from, reply.clone())));
        connections.retain(|task| !task.is_finished());
    }
}

/// Answers each read, and keeps the connection open until the client leaves.
async fn serve_connection(mut stream: TcpStream, from: SocketAddr, reply: Arc<Reply>) {
    let mut buf = vec![0u8; 65_535];
    while let Ok(len @ 1..) = stream.read(&mut buf).await {
        if let Some(answer) = reply(&buf[..len], from) {
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

/// A well-formed `200 OK` that copies the request but for one identifier.
fn stray_sip_reply(bytes: &[u8], stray: Stray) -> Option<Vec<u8>> {
    let Ok(rsip::SipMessage::Request(request)) = rsip::SipMessage::try_from(bytes) else {
        return None;
    };
    let mut via = request.via_header().ok()?.typed().ok()?;
    let mut call_id = request.call_id_header().ok()?.value().to_owned();
    match stray {
        Stray::Branch => {
            via.params.retain(|p| !matches!(p, rsip::Param::Branch(_)));
            via.params.push(rsip::Param::Branch(rsip::param::Branch::new("z9hG4bKsomeoneelse")));
        }
        Stray::CallId => call_id = format!("not-{call_id}"),
    }
    let mut headers = rsip::Headers::default();
    headers.push(via.into());
    headers.push(request.from_header().ok()?.clone().into());
    headers.push(request.to_header().ok()?.clone().into());
    headers.push(rsip::headers::CallId::new(call_id).into());
    headers.push(request.cseq_header().ok()?.clone().into());
    headers.push(rsip::headers::ContentLength::from(0).into());
    let response =
        rsip::Response { status_code: 200.into(), version: rsip::Version::V2, headers, body: vec![] };
    Some(response.to_string().into_bytes())
}

/// A Binding success with a mapped address, for a transaction id nobody asked about.
fn stray_stun_reply(bytes: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let (request, _) = MessageDecoderBuilder::default().build().decode(bytes).ok()?;
    if request.method() != BINDING || request.class() != MessageClass::Request {
        return None;
    }
    let mut other = TransactionId::default();
    while other == *request.transaction_id() {
        other = TransactionId::default();
    }
    let response = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(other)
        .with_attribute(XorMappedAddress::from(from))
        .build();
    let mut buf = vec![0u8; 512];
    let len = MessageEncoderBuilder::default().build().encode(&mut buf, &response).ok()?;
    buf.truncate(len);
    Some(buf)
}
