#!/usr/bin/env python3
"""A one-name DNS server for the resolver tests: answers A queries for NAME with its IPv4
ADDRs, AAAA queries with its IPv6 ADDRs (an empty answer when it has none of that family) and
NXDOMAIN for any other name. usage: dns.py LISTEN_IP NAME ADDR [ADDR...] (exits after 30 s).
LISTEN_IP may be IPv4 or IPv6."""
import ipaddress
import socket
import struct
import sys
import time

ip, name, addrs = sys.argv[1], sys.argv[2].rstrip(".").lower(), sys.argv[3:]
addrs = [ipaddress.ip_address(a) for a in addrs]
family = socket.AF_INET6 if ":" in ip else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((ip, 53))
s.settimeout(0.5)
end = time.time() + 30
while time.time() < end:
    try:
        q, peer = s.recvfrom(512)
    except socket.timeout:
        continue
    if len(q) < 12:
        continue
    tid = q[:2]
    labels, i = [], 12
    while i < len(q) and q[i] != 0:
        labels.append(q[i + 1 : i + 1 + q[i]].decode(errors="replace"))
        i += q[i] + 1
    if i + 5 > len(q):
        continue
    question = q[12 : i + 5]
    qtype = struct.unpack("!H", q[i + 1 : i + 3])[0]
    qname = ".".join(labels).lower()
    if qname != name:
        s.sendto(tid + b"\x81\x83" + struct.pack("!HHHH", 1, 0, 0, 0) + question, peer)
        continue
    version = {1: 4, 28: 6}.get(qtype)
    records = [a for a in addrs if a.version == version]
    answers = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(a.packed)) + a.packed for a in records
    )
    s.sendto(tid + b"\x81\x80" + struct.pack("!HHHH", 1, len(records), 0, 0) + question + answers, peer)
