#!/usr/bin/env python3
"""Counts full and resumed TLS handshakes in a pcap of a server's side of the traffic.

    tls_resumption.py CAPTURE.pcap SERVER_PORT

bench/serve.sh captures a few seconds of wrk's new-connection-per-request HTTPS load
(`tcpdump -i lo -s 400 -w CAPTURE 'tcp src port PORT'`) and asks this whether wrk's
connections resume their TLS sessions. A ServerHello is plaintext: in TLS 1.3 a resumed
handshake's carries the pre_shared_key extension (41); in TLS 1.2 a resumed one echoes
a session id and is followed by ChangeCipherSpec instead of a Certificate. Prints one
line: `handshakes=N full=N resumed=N versions=...`.
"""

import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}.get(linktype)
    if link_len is None:
        sys.exit(f"unsupported pcap link type {linktype}")
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[at + 8 : at + 12])[0]
        frame = data[at + 16 : at + 16 + incl]
        at += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6:
            continue
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        src_port = struct.unpack(">H", tcp[:2])[0]
        offset = (tcp[12] >> 4) * 4
        yield src_port, tcp[offset:]


def server_hello(payload):
    """(version, resumed) if the payload starts with a ServerHello record, else None."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[5] != 0x02:
        return None
    body = payload[9:]
    at = 2 + 32
    sid_len = body[at]
    at += 1 + sid_len + 2 + 1
    version, psk = "TLSv1.2", False
    if at + 2 <= len(body):
        ext_len = struct.unpack(">H", body[at : at + 2])[0]
        at += 2
        end = min(at + ext_len, len(body))
        while at + 4 <= end:
            kind, length = struct.unpack(">HH", body[at : at + 4])
            value = body[at + 4 : at + 4 + length]
            if kind == 43 and value == b"\x03\x04":
                version = "TLSv1.3"
            if kind == 41:
                psk = True
            at += 4 + length
    if version == "TLSv1.3":
        return version, psk
    # TLS 1.2: after the ServerHello record, a resumed handshake sends ChangeCipherSpec
    # (record type 20); a full one sends the Certificate handshake message.
    record_len = struct.unpack(">H", payload[3:5])[0]
    rest = payload[5 + record_len :]
    return version, bool(rest) and rest[0] == 0x14


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    full = resumed = 0
    versions = {}
    for src_port, payload in packets(path):
        if src_port != port:
            continue
        hello = server_hello(payload)
        if hello is None:
            continue
        version, was_resumed = hello
        versions[version] = versions.get(version, 0) + 1
        if was_resumed:
            resumed += 1
        else:
            full += 1
    seen = ",".join(f"{v}:{n}" for v, n in sorted(versions.items())) or "none"
    print(f"handshakes={full + resumed} full={full} resumed={resumed} versions={seen}")


if __name__ == "__main__":
    main()
