#!/usr/bin/env python3
"""The guest's TCP initial sequence numbers, as an outside client sees them: opens COUNT
connections to IP:PORT with the host's TCP stack while a raw socket (root) watches the SYN-ACKs
that come back, and prints `isn=N` for each (the SYN-ACK's sequence number).
usage: isn.py IP PORT COUNT."""
import socket
import struct
import sys
import time

ip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(5)
seen = {}
for _ in range(count):
    c = socket.create_connection((ip, port), timeout=5)
    local = c.getsockname()[1]
    deadline = time.time() + 5
    while local not in seen and time.time() < deadline:
        pkt, (src, _) = raw.recvfrom(2048)
        if src != ip:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        sport, dport, seq, _ack, _off, flags = struct.unpack("!HHIIBB", pkt[ihl : ihl + 14])
        if sport == port and dport == local and flags & 0x12 == 0x12:
            seen[local] = seq
    c.close()
    if local not in seen:
        sys.exit(f"no SYN-ACK seen for local port {local}")
    print(f"isn={seen[local]}")
