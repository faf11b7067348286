//! The OPTIONS request of one attempt, and what a reply to it means.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;
use rsip::prelude::*;
use switchback_core::config::Transport;

use crate::probe::Failure;

/// The RFC 3261 magic cookie that marks a branch as unique in space and time.
const BRANCH_COOKIE: &str = "z9hG4bK";
const USER_AGENT: &str = concat!("switchback/", env!("CARGO_PKG_VERSION"));

/// The identifiers that tie a reply to the request of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transaction {
    pub branch: String,
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: String,
}

impl Transaction {
    /// Fresh identifiers, so that a late reply to an earlier attempt is never taken for this one.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        Self {
            branch: format!("{BRANCH_COOKIE}{:016x}", rng.random::<u64>()),
            call_id: format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
            // RFC 3261 8.1.1.5: less than 2**31.
            cseq: rng.random_range(1..=0x7fff_ffff),
            from_tag: format!("{:08x}", rng.random::<u32>()),
        }
    }
}

/// What one received message means for the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A final (>= 200) reply to our transaction.
    Final(u16),
    /// A 1xx reply to our transaction: the server is working on it.
    Provisional(u16),
    /// A well-formed reply to some other transaction.
    Stray,
    /// Not a SIP response, or one without the headers that identify a transaction.
    Garbage,
}

impl Reply {
    /// The failure to remember when this reply is all that arrives.
    pub fn remembered(&self) -> Option<Failure> {
        match self {
            Reply::Stray => Some(Failure::WrongTransaction),
            Reply::Garbage => Some(Failure::BadResponse),
            Reply::Final(_) | Reply::Provisional(_) => None,
        }
    }
}

/// Builds the OPTIONS request for `target` (`host` as configured: a name or an IP) sent from
/// `local` over `transport`.
pub(crate) fn options_request(
    tx: &Transaction,
    host: &str,
    port: u16,
    transport: Transport,
    local: SocketAddr,
) -> rsip::Request {
    let target = rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        host_with_port: rsip::HostWithPort { host: uri_host(host), port: Some(port.into()) },
        ..Default::default()
    };
    let local_uri = rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        auth: Some(rsip::Auth { user: "switchback".into(), password: None }),
        host_with_port: rsip::HostWithPort { host: ip_host(local.ip()), port: None },
        ..Default::default()
    };
    let via = rsip::typed::Via {
        version: rsip::Version::V2,
        transport: match transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
            Transport::Tls => rsip::Transport::Tls,
        },
        uri: rsip::Uri {
            host_with_port: rsip::HostWithPort { host: ip_host(local.ip()), port: Some(local.port().into()) },
            ..Default::default()
        },
        params: vec![
            rsip::Param::Branch(rsip::param::Branch::new(&tx.branch)),
            rsip::Param::Other("rport".into(), None),
        ],
    };

    let mut headers = rsip::Headers::default();
    headers.push(via.into());
    headers.push(rsip::headers::MaxForwards::from(70).into());
    headers.push(
        rsip::typed::From {
            display_name: None,
            uri: local_uri,
            params: vec![rsip::Param::Tag(rsip::param::Tag::new(&tx.from_tag))],
        }
        .into(),
    );
    headers.push(rsip::typed::To { display_name: None, uri: target.clone(), params: vec![] }.into());
    headers.push(rsip::headers::CallId::new(&tx.call_id).into());
    headers.push(rsip::typed::CSeq { seq: tx.cseq, method: rsip::Method::Options }.into());
    headers.push(rsip::headers::UserAgent::new(USER_AGENT).into());
    headers.push(rsip::headers::ContentLength::from(0).into());

    rsip::Request {
        method: rsip::Method::Options,
        uri: target,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Reads one received message against the transaction of the attempt.
pub(crate) fn classify(bytes: &[u8], tx: &Transaction) -> Reply {
    let Ok(rsip::SipMessage::Response(response)) = rsip::SipMessage::try_from(bytes) else {
        return Reply::Garbage;
    };
    match matches_transaction(&response, tx) {
        None => Reply::Garbage,
        Some(false) => Reply::Stray,
        Some(true) => match response.status_code().code() {
            code @ 100..=199 => Reply::Provisional(code),
            code @ 200..=699 => Reply::Final(code),
            _ => Reply::Garbage,
        },
    }
}

/// Whether `response` answers `tx` (RFC 3261 17.1.3: top Via branch and CSeq method, plus
/// Call-ID and CSeq number since we choose them fresh); `None` when it lacks those headers.
fn matches_transaction(response: &rsip::Response, tx: &Transaction) -> Option<bool> {
    // The first value of the first Via line is the top Via, the one we added.
    let top_via = header(response, "Via", "v")?.split(',').next()?;
    let via = rsip::headers::Via::new(top_via.trim()).typed().ok()?;
    let branch = via.branch()?;
    let call_id = header(response, "Call-ID", "i")?;
    let cseq = rsip::headers::CSeq::new(header(response, "CSeq", "CSeq")?).typed().ok()?;
    Some(
        branch.value() == tx.branch
            && call_id.trim() == tx.call_id
            && cseq.seq == tx.cseq
            && cseq.method == rsip::Method::Options,
    )
}

/// The first header named `name` or its compact form, which rsip leaves untyped.
fn header<'a>(response: &'a rsip::Response, name: &str, compact: &str) -> Option<&'a str> {
    response.headers().iter().find_map(|header| match header {
        rsip::Header::Via(via) if name == "Via" => Some(via.value()),
        rsip::Header::CallId(id) if name == "Call-ID" => Some(id.value()),
        rsip::Header::CSeq(cseq) if name == "CSeq" => Some(cseq.value()),
        rsip::Header::Other(other, value)
            if other.eq_ignore_ascii_case(name) || other.eq_ignore_ascii_case(compact) =>
        {
            Some(value.as_str())
        }
        _ => None,
    })
}

/// Whether a final status means healthy: any 2xx, or one the operator listed.
pub(crate) fn judge(code: u16, healthy_codes: &[u16]) -> Result<(), Failure> {
    if (200..300).contains(&code) || healthy_codes.contains(&code) {
        Ok(())
    } else {
        Err(Failure::Status(code))
    }
}

/// The Content-Length announced in a header block, for framing replies on a stream.
/// `None` when the headers do not parse; a missing header means no body.
pub(crate) fn content_length(head: &[u8]) -> Option<usize> {
    let message = rsip::SipMessage::try_from(head).ok()?;
    let value = message.headers().iter().find_map(|header| match header {
        rsip::Header::ContentLength(length) => Some(length.value()),
        rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("l") => Some(value.as_str()),
        _ => None,
    });
    match value {
        Some(value) => value.trim().parse().ok(),
        None => Some(0),
    }
}

/// A host as written in a SIP URI. rsip prints IPv6 addresses bare, which is ambiguous
/// next to a port, so they go in as the bracketed text form.
fn uri_host(host: &str) -> rsip::Host {
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip_host(ip),
        Err(_) => rsip::Host::Domain(host.into()),
    }
}

fn ip_host(ip: IpAddr) -> rsip::Host {
    match ip {
        IpAddr::V4(_) => rsip::Host::IpAddr(ip),
        IpAddr::V6(v6) => rsip::Host::Domain(format!("[{v6}]").into()),
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
