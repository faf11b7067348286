use super::*;

fn local() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 40_123))
}

fn request(tx: &Transaction, transport: Transport) -> String {
    options_request(tx, "sip1.chi.example.net", 5060, transport, local()).to_string()
}

/// A reply as Kamailio's `sl_send_reply` writes it, echoing the request's identifiers.
fn reply(status: &str, branch: &str, call_id: &str, cseq: &str) -> String {
    format!(
        "SIP/2.0 {status}\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:40123;branch={branch};rport=40123;received=192.0.2.10\r\n\
         From: <sip:switchback@192.0.2.10>;tag=abc\r\n\
         To: <sip:sip1.chi.example.net:5060>;tag=xyz\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq}\r\n\
         Server: kamailio (5.6.3 (x86_64/linux))\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn ok_for(tx: &Transaction) -> String {
    reply("200 OK", &tx.branch, &tx.call_id, &format!("{} OPTIONS", tx.cseq))
}

#[test]
fn each_attempt_gets_fresh_identifiers() {
    let (a, b) = (Transaction::random(), Transaction::random());
    assert!(a.branch.starts_with("z9hG4bK") && a.branch.len() > "z9hG4bK".len() + 8);
    assert_ne!(a.branch, b.branch);
    assert_ne!(a.call_id, b.call_id);
    assert_ne!(a.from_tag, b.from_tag);
    assert!(a.cseq >= 1 && a.cseq < 1 << 31);
}

#[test]
fn the_request_carries_what_rfc_3261_asks_for() {
    let tx = Transaction::random();
    let text = request(&tx, Transport::Udp);
    assert!(text.starts_with("OPTIONS sip:sip1.chi.example.net:5060 SIP/2.0\r\n"), "{text}");
    assert!(text.contains(&format!("Via: SIP/2.0/UDP 192.0.2.10:40123;branch={};rport\r\n", tx.branch)));
    assert!(text.contains("Max-Forwards: 70\r\n"));
    assert!(text.contains(&format!("From: <sip:switchback@192.0.2.10>;tag={}\r\n", tx.from_tag)));
    assert!(text.contains("To: <sip:sip1.chi.example.net:5060>\r\n"));
    assert!(text.contains(&format!("Call-ID: {}\r\n", tx.call_id)));
    assert!(text.contains(&format!("CSeq: {} OPTIONS\r\n", tx.cseq)));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
}

#[test]
fn the_request_parses_back_with_its_identifiers() {
    let tx = Transaction::random();
    let parsed = rsip::SipMessage::try_from(request(&tx, Transport::Tcp).as_str());
    let Ok(rsip::SipMessage::Request(parsed)) = parsed else { panic!("not a request: {parsed:?}") };
    assert_eq!(parsed.method, rsip::Method::Options);
    let via = parsed.via_header().and_then(|v| v.typed());
    let Ok(via) = via else { panic!("no typed Via: {via:?}") };
    assert_eq!(via.transport, rsip::Transport::Tcp);
    assert_eq!(via.branch().map(|b| b.value().to_owned()), Some(tx.branch.clone()));
    assert_eq!(parsed.call_id_header().map(|c| c.value().to_owned()).ok(), Some(tx.call_id));
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let tx = Transaction::random();
    let from = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 40_000));
    let text = options_request(&tx, "::1", 5060, Transport::Udp, from).to_string();
    assert!(text.starts_with("OPTIONS sip:[::1]:5060 SIP/2.0\r\n"), "{text}");
    assert!(text.contains("Via: SIP/2.0/UDP [::1]:40000;branch="), "{text}");
}

#[test]
fn a_matching_reply_gives_its_status() {
    let tx = Transaction::random();
    assert_eq!(classify(ok_for(&tx).as_bytes(), &tx), Reply::Final(200));
    let unavailable =
        reply("503 Service Unavailable", &tx.branch, &tx.call_id, &format!("{} OPTIONS", tx.cseq));
    assert_eq!(classify(unavailable.as_bytes(), &tx), Reply::Final(503));
    let trying = reply("100 Trying", &tx.branch, &tx.call_id, &format!("{} OPTIONS", tx.cseq));
    assert_eq!(classify(trying.as_bytes(), &tx), Reply::Provisional(100));
}

#[test]
fn a_reply_must_match_branch_call_id_and_cseq() {
    let tx = Transaction::random();
    let cseq = format!("{} OPTIONS", tx.cseq);
    let other_branch = reply("200 OK", "z9hG4bKother", &tx.call_id, &cseq);
    let other_call = reply("200 OK", &tx.branch, "someone-else", &cseq);
    let other_number = reply("200 OK", &tx.branch, &tx.call_id, &format!("{} OPTIONS", tx.cseq + 1));
    let other_method = reply("200 OK", &tx.branch, &tx.call_id, &format!("{} INVITE", tx.cseq));
    for stray in [other_branch, other_call, other_number, other_method] {
        assert_eq!(classify(stray.as_bytes(), &tx), Reply::Stray, "{stray}");
    }
}

#[test]
fn only_the_top_via_counts() {
    let tx = Transaction::random();
    let cseq = format!("{} OPTIONS", tx.cseq);
    let ours_below = reply("200 OK", "z9hG4bKproxy", &tx.call_id, &cseq).replacen(
        "\r\nFrom:",
        &format!("\r\nVia: SIP/2.0/UDP 192.0.2.10:40123;branch={}\r\nFrom:", tx.branch),
        1,
    );
    assert_eq!(classify(ours_below.as_bytes(), &tx), Reply::Stray);
    let ours_on_top_of_a_list = ok_for(&tx).replacen(
        ";received=192.0.2.10\r\n",
        ";received=192.0.2.10, SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx\r\n",
        1,
    );
    assert_eq!(classify(ours_on_top_of_a_list.as_bytes(), &tx), Reply::Final(200));
}

#[test]
fn compact_headers_are_understood() {
    let tx = Transaction::random();
    let compact = ok_for(&tx).replace("\r\nVia:", "\r\nv:").replace("\r\nCall-ID:", "\r\ni:");
    assert_eq!(classify(compact.as_bytes(), &tx), Reply::Final(200));
}

#[test]
fn garbage_and_requests_are_not_replies() {
    let tx = Transaction::random();
    assert_eq!(classify(b"\x00\x01garbage\xff", &tx), Reply::Garbage);
    assert_eq!(classify(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &tx), Reply::Garbage);
    assert_eq!(classify(request(&tx, Transport::Udp).as_bytes(), &tx), Reply::Garbage);
    let headless = format!("SIP/2.0 200 OK\r\nCall-ID: {}\r\nContent-Length: 0\r\n\r\n", tx.call_id);
    assert_eq!(classify(headless.as_bytes(), &tx), Reply::Garbage);
}

#[test]
fn what_each_reply_leaves_behind() {
    assert_eq!(Reply::Stray.remembered(), Some(Failure::WrongTransaction));
    assert_eq!(Reply::Garbage.remembered(), Some(Failure::BadResponse));
    assert_eq!(Reply::Provisional(180).remembered(), None);
}

#[test]
fn status_codes_map_to_health() {
    assert_eq!(judge(200, &[]), Ok(()));
    assert_eq!(judge(202, &[]), Ok(()));
    assert_eq!(judge(503, &[]), Err(Failure::Status(503)));
    assert_eq!(judge(404, &[]), Err(Failure::Status(404)));
    assert_eq!(judge(404, &[404, 405]), Ok(()));
    assert_eq!(judge(302, &[]), Err(Failure::Status(302)));
}

#[test]
fn content_length_frames_stream_replies() {
    assert_eq!(content_length(b"SIP/2.0 200 OK\r\nContent-Length: 12\r\n\r\n"), Some(12));
    assert_eq!(content_length(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\n"), Some(3));
    assert_eq!(content_length(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n"), Some(0));
    assert_eq!(content_length(b"SIP/2.0 200 OK\r\nContent-Length: lots\r\n\r\n"), None);
    assert_eq!(content_length(b"\xff\xfe\r\n\r\n"), None);
}
