#!/usr/bin/env python3
"""Hostile traffic for the TAP robustness test, sent from the host side of a TAP device with a
raw AF_PACKET socket (run as root inside the test's network namespace).

usage: frames.py IFACE GUEST_MAC GUEST_IP
Sends, in order: oversize frames (8000 bytes), header-only frames (14 bytes: an IPv4
ethertype with no packet; the host kernel will not send anything shorter), garbage frames of random
length and content, and a SYN flood to GUEST_IP:80 from spoofed, unanswerable sources.
Prints a summary line; deterministic (fixed seed)."""
import random
import socket
import struct
import sys

from inet import csum

iface, guest_mac, guest_ip = sys.argv[1], sys.argv[2], sys.argv[3]
rnd = random.Random(1234)
dst = bytes.fromhex(guest_mac.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
src = s.getsockname()[4][:6]



def syn(src_ip, sport):
    sip, dip = socket.inet_aton(src_ip), socket.inet_aton(guest_ip)
    tcp = struct.pack("!HHIIBBHHH", sport, 80, rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = sip + dip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rnd.getrandbits(16), 0, 64, 6, 0, sip, dip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst + src + b"\x08\x00" + ip + tcp


sent = {"oversize": 0, "header_only": 0, "garbage": 0, "syn": 0}
for _ in range(50):
    s.send(dst + src + b"\x08\x00" + bytes(rnd.getrandbits(8) for _ in range(7986)))
    sent["oversize"] += 1
for _ in range(50):
    s.send(dst + src + b"\x08\x00")
    sent["header_only"] += 1
for _ in range(500):
    n = rnd.randint(14, 1514)
    s.send(dst + bytes(rnd.getrandbits(8) for _ in range(n - 6)))
    sent["garbage"] += 1
for i in range(2000):
    s.send(syn("10.77.0.%d" % (100 + i % 100), 1024 + i))
    sent["syn"] += 1
print("sent", " ".join("%s=%d" % kv for kv in sent.items()))
