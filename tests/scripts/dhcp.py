#!/usr/bin/env python3
"""A minimal DHCPv4 server for the direct-mode test: answers every DISCOVER with an OFFER and
every REQUEST with an ACK for one address (/24, router and DNS = the server). Runs inside the
test's network namespace; exits after 60 s.
usage: dhcp.py IFACE SERVER_IP CLIENT_IP"""
import socket
import struct
import sys
import time

iface, server, client = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, 25, iface.encode())  # SO_BINDTODEVICE
s.bind(("0.0.0.0", 67))
s.settimeout(0.5)
end = time.time() + 60


def options(msg_type):
    o = bytes([53, 1, msg_type])
    o += bytes([54, 4]) + socket.inet_aton(server)
    o += bytes([51, 4]) + struct.pack("!I", 3600)
    o += bytes([1, 4]) + socket.inet_aton("255.255.255.0")
    o += bytes([3, 4]) + socket.inet_aton(server)
    o += bytes([6, 4]) + socket.inet_aton(server)
    return o + b"\xff"


while time.time() < end:
    try:
        req, _ = s.recvfrom(1500)
    except socket.timeout:
        continue
    if len(req) < 240 or req[236:240] != b"\x63\x82\x53\x63":
        continue
    kind, i = None, 240
    while i < len(req) and req[i] != 255:
        if req[i] == 0:
            i += 1
            continue
        if req[i] == 53:
            kind = req[i + 2]
        i += 2 + req[i + 1]
    reply = {1: 2, 3: 5}.get(kind)
    if reply is None:
        continue
    xid, flags, chaddr = req[4:8], req[10:12], req[28:44]
    bootp = struct.pack("!BBBB", 2, 1, 6, 0) + xid + b"\0\0" + flags
    bootp += b"\0" * 4 + socket.inet_aton(client) + socket.inet_aton(server) + b"\0" * 4 + chaddr
    bootp += b"\0" * 192 + b"\x63\x82\x53\x63" + options(reply)
    s.sendto(bootp, ("255.255.255.255", 68))
