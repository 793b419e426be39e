#!/usr/bin/env python3
"""A one-name DNS server for the resolver test: answers A queries for NAME with ADDR and
NXDOMAIN for anything else. usage: dns.py LISTEN_IP NAME ADDR (exits after 30 s)."""
import socket
import struct
import sys
import time

ip, name, addr = sys.argv[1], sys.argv[2].rstrip(".").lower(), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
    question = q[12 : i + 5]
    qname = ".".join(labels).lower()
    if qname == name:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
        s.sendto(tid + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0) + question + answer, peer)
    else:
        s.sendto(tid + b"\x81\x83" + struct.pack("!HHHH", 1, 0, 0, 0) + question, peer)
