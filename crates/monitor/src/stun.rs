//! The STUN probe: an RFC 5389 Binding Request over UDP, healthy on a Binding Success
//! Response to the same transaction that tells us our mapped address.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use stun_rs::attributes::stun::{ErrorCode, MappedAddress, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{
    MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder, TransactionId,
};
use switchback_core::config::StunConfig;
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::probe::{io_failure, resolve, with_retries, Failure, Outcome, ProbeSettings};

/// RFC 5389 7.2.1: the initial retransmission timeout, doubled after each retransmission.
const RTO: Duration = Duration::from_millis(500);
/// A Binding Request without attributes is just its 20-byte header.
const REQUEST_SIZE: usize = 20;
const MAX_DATAGRAM: usize = 65_535;

/// Checks a STUN server with a Binding Request, retrying per `settings`.
pub async fn binding(target: &StunConfig, settings: &ProbeSettings) -> Outcome {
    with_retries(settings, |deadline| attempt(target, deadline)).await
}

/// One Binding transaction that must end by `deadline`.
async fn attempt(target: &StunConfig, deadline: Instant) -> Outcome {
    let peer = resolve(&target.host, target.port, deadline).await?;
    let unspecified = match peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(unspecified).await.map_err(|e| io_failure(&e))?;
    socket.connect(peer).await.map_err(|e| io_failure(&e))?;

    let tx = TransactionId::default();
    let request = binding_request(&tx)?;
    let start = Instant::now();
    socket.send(&request).await.map_err(|e| io_failure(&e))?;

    let mut rto = RTO;
    let mut next_send = start + rto;
    let mut remembered = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match timeout_at(next_send.min(deadline), socket.recv(&mut buf)).await {
            Err(_) if Instant::now() >= deadline => return Err(remembered.unwrap_or(Failure::Timeout)),
            Err(_) => {
                socket.send(&request).await.map_err(|e| io_failure(&e))?;
                rto *= 2;
                next_send = Instant::now() + rto;
            }
            Ok(Err(err)) => return Err(io_failure(&err)),
            Ok(Ok(len)) => match judge(&buf[..len], &tx) {
                Answer::Healthy => return Ok(start.elapsed()),
                Answer::Down(failure) => return Err(failure),
                Answer::Ignored(failure) => remembered = Some(failure),
            },
        }
    }
}

fn binding_request(tx: &TransactionId) -> Result<Vec<u8>, Failure> {
    let message = StunMessageBuilder::new(BINDING, MessageClass::Request).with_transaction_id(*tx).build();
    let mut buf = vec![0u8; REQUEST_SIZE];
    let len = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &message)
        .map_err(|e| Failure::Error(format!("cannot encode binding request: {e}")))?;
    buf.truncate(len);
    Ok(buf)
}

/// What one received datagram means for the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Healthy,
    /// A final answer to our transaction that says the server is not fine.
    Down(Failure),
    /// Not an answer to our transaction: keep waiting, but report this if nothing better comes.
    Ignored(Failure),
}

fn judge(datagram: &[u8], tx: &TransactionId) -> Answer {
    let Ok((message, _)) = MessageDecoderBuilder::default().build().decode(datagram) else {
        return Answer::Ignored(Failure::BadResponse);
    };
    if message.transaction_id() != tx {
        return Answer::Ignored(Failure::WrongTransaction);
    }
    if message.method() != BINDING {
        return Answer::Down(Failure::BadResponse);
    }
    match message.class() {
        MessageClass::SuccessResponse => {
            let xor = message.get::<XorMappedAddress>().and_then(|a| a.as_xor_mapped_address().ok());
            let plain = message.get::<MappedAddress>().and_then(|a| a.as_mapped_address().ok());
            if xor.is_some() || plain.is_some() {
                Answer::Healthy
            } else {
                Answer::Down(Failure::BadResponse)
            }
        }
        MessageClass::ErrorResponse => {
            let code = message.get::<ErrorCode>().and_then(|a| a.as_error_code().ok());
            Answer::Down(code.map_or(Failure::BadResponse, |c| Failure::Status(c.error_code().error_code())))
        }
        // A request or indication carrying our id is no answer at all.
        MessageClass::Request | MessageClass::Indication => Answer::Ignored(Failure::BadResponse),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use stun_rs::attributes::stun::Software;

    fn encode(message: &stun_rs::StunMessage) -> Vec<u8> {
        let mut buf = vec![0u8; 512];
        let len = MessageEncoderBuilder::default().build().encode(&mut buf, message).unwrap();
        buf.truncate(len);
        buf
    }

    fn response(tx: &TransactionId, class: MessageClass) -> StunMessageBuilder {
        StunMessageBuilder::new(BINDING, class).with_transaction_id(*tx)
    }

    fn mapped() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 32_853))
    }

    #[test]
    fn the_request_is_a_bare_binding_request() {
        let tx = TransactionId::default();
        let bytes = binding_request(&tx).unwrap();
        assert_eq!(bytes.len(), 20);
        assert_eq!(&bytes[..4], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(&bytes[4..8], &[0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(&bytes[8..], tx.as_bytes());
        assert_ne!(TransactionId::default(), tx);
    }

    #[test]
    fn a_success_with_an_address_is_healthy() {
        let tx = TransactionId::default();
        let xor =
            response(&tx, MessageClass::SuccessResponse).with_attribute(XorMappedAddress::from(mapped()));
        assert_eq!(judge(&encode(&xor.build()), &tx), Answer::Healthy);
        let plain =
            response(&tx, MessageClass::SuccessResponse).with_attribute(MappedAddress::from(mapped()));
        assert_eq!(judge(&encode(&plain.build()), &tx), Answer::Healthy);
    }

    #[test]
    fn a_success_without_an_address_is_bad() {
        let tx = TransactionId::default();
        let bare = response(&tx, MessageClass::SuccessResponse)
            .with_attribute(Software::new("coturn").unwrap())
            .build();
        assert_eq!(judge(&encode(&bare), &tx), Answer::Down(Failure::BadResponse));
    }

    #[test]
    fn an_error_response_gives_its_code() {
        let tx = TransactionId::default();
        let code = stun_rs::ErrorCode::new(420, "Unknown Attribute").unwrap();
        let error = response(&tx, MessageClass::ErrorResponse).with_attribute(ErrorCode::from(code)).build();
        assert_eq!(judge(&encode(&error), &tx), Answer::Down(Failure::Status(420)));
        let bare = response(&tx, MessageClass::ErrorResponse).build();
        assert_eq!(judge(&encode(&bare), &tx), Answer::Down(Failure::BadResponse));
    }

    #[test]
    fn another_transaction_is_ignored_but_remembered() {
        let tx = TransactionId::default();
        let other = response(&TransactionId::default(), MessageClass::SuccessResponse)
            .with_attribute(XorMappedAddress::from(mapped()))
            .build();
        assert_eq!(judge(&encode(&other), &tx), Answer::Ignored(Failure::WrongTransaction));
    }

    #[test]
    fn garbage_is_ignored_but_remembered() {
        let tx = TransactionId::default();
        assert_eq!(judge(b"SIP/2.0 200 OK\r\n\r\n", &tx), Answer::Ignored(Failure::BadResponse));
        assert_eq!(judge(&[0u8; 7], &tx), Answer::Ignored(Failure::BadResponse));
        // Our own request echoed back is not an answer either.
        assert_eq!(judge(&binding_request(&tx).unwrap(), &tx), Answer::Ignored(Failure::BadResponse));
    }
}
