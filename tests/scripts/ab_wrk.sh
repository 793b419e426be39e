#!/bin/bash
# A/B throughput of two http images (e.g. before and after a change), for figures in docs:
# boots each in turn on a TAP in a fresh network namespace (QEMU microvm, TCG, 64 MiB,
# 10.77.0.2/24), warms up with `wrk -d1s`, then reports `wrk -t2 -c16 -d5s` requests/s on
# /612.html; ROUNDS rounds (default 3), alternating. Needs root, iproute2, QEMU and wrk.
# usage: ab_wrk.sh IMAGE_A IMAGE_B [ROUNDS]
set -eu
A=$1 B=$2 ROUNDS=${3:-3}
NS=fata-ab-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev tap0 mode tap
ip netns exec "$NS" ip addr add 10.77.0.1/24 dev tap0
ip netns exec "$NS" ip link set tap0 up
LOG=$(mktemp)
for _ in $(seq 1 "$ROUNDS"); do
  for img in "$A" "$B"; do
    ip netns exec "$NS" qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on,acpi=off \
      -accel tcg -cpu max -m 64M -nodefaults -no-user-config -nographic -no-reboot \
      -serial stdio -kernel "$img" -append 'ipv4=10.77.0.2/24 gateway=10.77.0.1' \
      -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
      -device virtio-net-device,netdev=n0 > "$LOG" 2>&1 &
    QEMU=$!
    for _ in $(seq 1 100); do grep -q "fata: ready" "$LOG" && break; sleep 0.1; done
    ip netns exec "$NS" wrk -t2 -c16 -d1s http://10.77.0.2/612.html > /dev/null
    rps=$(ip netns exec "$NS" wrk -t2 -c16 -d5s http://10.77.0.2/612.html | awk '/Requests\/sec/ {print $2}')
    echo "$img $rps"
    kill "$QEMU"
    wait "$QEMU" 2> /dev/null || true
  done
done
rm -f "$LOG"
