//! OPTIONS over TCP or TLS: connect (and shake hands), send, and read framed replies
//! (headers, then a Content-Length body) until a final one for our transaction arrives.

use std::net::SocketAddr;

use switchback_core::config::{SoftswitchConfig, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::message::{self, Reply, Transaction};
use super::{tls, Answer};
use crate::probe::{io_failure, Failure};

/// More than any sane reply to OPTIONS; a peer streaming past this is not a softswitch.
const MAX_PENDING: usize = 256 * 1024;
const HEAD_END: &[u8] = b"\r\n\r\n";

pub(super) async fn transaction(
    target: &SoftswitchConfig,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Answer, Failure> {
    let start = Instant::now();
    let stream = match timeout_at(deadline, TcpStream::connect(peer)).await {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(err)) => return Err(io_failure(&err)),
        Ok(Ok(stream)) => stream,
    };
    let local = stream.local_addr().map_err(|e| io_failure(&e))?;
    let tx = Transaction::random();
    let request =
        message::options_request(&tx, &target.host, target.port(), target.transport, local).to_string();
    let status = if target.transport == Transport::Tls {
        let stream = tls::handshake(stream, &target.host, deadline).await?;
        exchange(stream, &tx, &request, deadline).await?
    } else {
        exchange(stream, &tx, &request, deadline).await?
    };
    Ok(Answer { status, latency: start.elapsed() })
}

/// Sends `request` and reads until the final reply to `tx`; its status code.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    tx: &Transaction,
    request: &str,
    deadline: Instant,
) -> Result<u16, Failure> {
    match timeout_at(deadline, stream.write_all(request.as_bytes())).await {
        Err(_) => return Err(Failure::Timeout),
        Ok(Err(err)) => return Err(io_failure(&err)),
        Ok(Ok(())) => {}
    }

    let mut pending = Vec::new();
    let mut remembered = None;
    loop {
        while let Some((len, reply)) = next_frame(&pending, tx) {
            pending.drain(..len);
            match reply {
                Reply::Final(status) => return Ok(status),
                Reply::Provisional(_) => {}
                other => remembered = other.remembered().or(remembered),
            }
        }
        if pending.len() > MAX_PENDING {
            return Err(Failure::BadResponse);
        }
        // Bytes left over at the end are a reply cut short: a bad one, not silence.
        let unfinished = (!pending.is_empty()).then_some(Failure::BadResponse);
        match timeout_at(deadline, stream.read_buf(&mut pending)).await {
            Err(_) => return Err(remembered.or(unfinished).unwrap_or(Failure::Timeout)),
            Ok(Err(err)) => return Err(remembered.unwrap_or_else(|| io_failure(&err))),
            Ok(Ok(0)) => {
                return Err(remembered
                    .or(unfinished)
                    .unwrap_or_else(|| Failure::Error("connection closed".to_owned())))
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// The length of the first complete message in `pending` and what it means, or `None`
/// until one has fully arrived. CRLF keep-alives (RFC 5626) before it count as part of it.
fn next_frame(pending: &[u8], tx: &Transaction) -> Option<(usize, Reply)> {
    let skipped = pending.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    let rest = &pending[skipped..];
    let head_len = rest.windows(HEAD_END.len()).position(|w| w == HEAD_END)? + HEAD_END.len();
    let Some(body_len) = message::content_length(&rest[..head_len]) else {
        // Unframeable: drop up to the blank line and read on.
        return Some((skipped + head_len, Reply::Garbage));
    };
    let total = head_len.checked_add(body_len)?;
    if rest.len() < total {
        return None;
    }
    Some((skipped + total, message::classify(&rest[..total], tx)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn reply(tx: &Transaction, status: &str, body: &str) -> String {
        format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/TCP 127.0.0.1:5555;branch={};rport\r\nCall-ID: {}\r\n\
             CSeq: {} OPTIONS\r\nContent-Length: {}\r\n\r\n{body}",
            tx.branch,
            tx.call_id,
            tx.cseq,
            body.len()
        )
    }

    #[test]
    fn frames_wait_for_the_whole_body() {
        let tx = Transaction::random();
        let full = reply(&tx, "200 OK", "v=0\r\n");
        assert_eq!(next_frame(&full.as_bytes()[..full.len() - 2], &tx), None);
        assert_eq!(next_frame(full.as_bytes(), &tx), Some((full.len(), Reply::Final(200))));
    }

    #[test]
    fn frames_split_back_to_back_replies() {
        let tx = Transaction::random();
        let trying = reply(&tx, "100 Trying", "");
        let both = format!("\r\n\r\n{trying}{}", reply(&tx, "503 Service Unavailable", ""));
        let (len, first) = next_frame(both.as_bytes(), &tx).unwrap();
        assert_eq!((len, first), (trying.len() + 4, Reply::Provisional(100)));
        assert_eq!(next_frame(&both.as_bytes()[len..], &tx).map(|f| f.1), Some(Reply::Final(503)));
    }

    #[test]
    fn unframeable_heads_are_garbage() {
        let tx = Transaction::random();
        let frame = next_frame(b"HTTP/1.1 400 Bad Request\r\n\r\nrest", &tx);
        assert_eq!(frame, Some((28, Reply::Garbage)));
    }
}
