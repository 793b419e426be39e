#!/usr/bin/env python3
"""Router advertisements for the SLAAC tests: every 0.5 s (and so in answer to the guest's
solicitations) advertises PREFIX/64 for autoconfiguration on IFACE, from the interface's
link-local address to all nodes. usage: ra.py IFACE PREFIX (exits after SECONDS, default 30).
Runs as root inside the test's network namespace."""
import ipaddress
import socket
import struct
import sys
import time

iface, prefix = sys.argv[1], ipaddress.IPv6Address(sys.argv[2])
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
index = socket.if_nametoindex(iface)
# Type 134, code 0, checksum (the kernel fills it in), hop limit 64, no flags, router lifetime
# 1800 s, reachable time 0, retrans timer 0; then one prefix information option: type 3,
# length 4 (32 bytes), prefix length 64, flags on-link + autonomous, valid 600 s, preferred
# 300 s, reserved, the prefix.
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 600, 300, 0) + prefix.packed
end = time.time() + seconds
sent = 0
while time.time() < end:
    s.sendto(ra, ("ff02::1", 0, 0, index))
    sent += 1
    time.sleep(0.5)
print("sent", sent)
