#!/usr/bin/env python3
"""A ping flood for the rate-limit test: sends COUNT ICMP echo requests to IP as fast as it
can (raw socket, root), then counts the echo replies that arrive within a second of the
last request. usage: icmp.py IP COUNT. Prints `sent=N replies=M seconds=S`."""
import socket
import struct
import sys
import time

from inet import csum

ip, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
ident = 0x4641
replies = 0


def drain():
    global replies
    while True:
        try:
            pkt = s.recv(2048)
        except BlockingIOError:
            return
        ihl = (pkt[0] & 0x0F) * 4
        t, _, _, rid, _ = struct.unpack("!BBHHH", pkt[ihl : ihl + 8])
        if t == 0 and rid == ident:
            replies += 1


start = time.time()
for seq in range(count):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"fata" * 14
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (ip, 0))
    drain()
end = time.time() + 1
while time.time() < end:
    drain()
    time.sleep(0.01)
print("sent=%d replies=%d seconds=%.2f" % (count, replies, time.time() - start - 1))
