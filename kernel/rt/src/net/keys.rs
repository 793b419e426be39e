//! The network's boot keys, and how the stack is sized from them and from the machine.

use crate::config::{IpList, Ipv4Net, Ipv6Net, Value};
use crate::time::Duration;
use core::fmt;
use fata_net::{DhcpMode, Ipv4Addr, Ipv6Addr, MemoryGuard, NetConfig};

/// The `dhcp` key: `auto` (DHCP unless `ipv4` is set), `true` (DHCP, with `ipv4` as the
/// fallback after `dhcp_timeout`), `false` (static only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dhcp(pub DhcpMode);

impl Value for Dhcp {
    const TYPE: &'static str = "auto|true|false";
    fn parse(s: &str) -> Result<Self, &'static str> {
        match s {
            "auto" => Ok(Dhcp(DhcpMode::Auto)),
            "true" | "on" | "yes" => Ok(Dhcp(DhcpMode::On)),
            "false" | "off" | "no" => Ok(Dhcp(DhcpMode::Off)),
            _ => Err("expected auto, true or false"),
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            DhcpMode::Auto => "auto",
            DhcpMode::On => "true",
            DhcpMode::Off => "false",
        })
    }
}

/// The `net` key: which network the stack runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetSelect {
    /// The hypervisor's network card if there is one, else the host's sockets.
    Auto,
    /// The hypervisor's network card (`service0`).
    Device,
    /// The host's own sockets (`unix`): rootless, no TAP device needed.
    Socket,
    /// A Linux TAP device (`unix`): `tap:NAME`.
    Tap(alloc::string::String),
}

impl Value for NetSelect {
    const TYPE: &'static str = "auto|device|socket|tap:NAME";
    fn parse(s: &str) -> Result<Self, &'static str> {
        match s {
            "auto" => Ok(NetSelect::Auto),
            "device" => Ok(NetSelect::Device),
            "socket" => Ok(NetSelect::Socket),
            _ => match s.strip_prefix("tap:") {
                Some(n) if !n.is_empty() && n.len() < 16 => Ok(NetSelect::Tap(n.into())),
                _ => Err(
                    "expected auto, device, socket or tap:NAME (an interface name of 1 to 15 characters)",
                ),
            },
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetSelect::Auto => f.write_str("auto"),
            NetSelect::Socket => f.write_str("socket"),
            NetSelect::Device => f.write_str("device"),
            NetSelect::Tap(n) => write!(f, "tap:{n}"),
        }
    }
}

crate::config! {
    /// Network keys, present in every image built with the `net` feature.
    pub(crate) struct NetKeys {
        /// Which network: auto (the hypervisor's card, else the host's sockets), device,
        /// socket (unix: the host's sockets, no root needed) or tap:NAME (unix: a TAP device).
        net: NetSelect = NetSelect::Auto,
        /// auto: DHCP unless ipv4 is set; true: DHCP, ipv4 is the fallback; false: static.
        dhcp: Dhcp = Dhcp(DhcpMode::Auto),
        /// Static IPv4 address with prefix length, e.g. 10.0.0.2/24.
        ipv4: Option<Ipv4Net> = None,
        /// Default IPv4 gateway for the static address.
        gateway: Option<Ipv4Addr> = None,
        /// Static IPv6 address with prefix length, e.g. fd00::2/64 (besides link-local and SLAAC).
        ipv6: Option<Ipv6Net> = None,
        /// Default IPv6 gateway for the static address.
        gateway6: Option<Ipv6Addr> = None,
        /// IPv6 addresses from router advertisements (SLAAC).
        slaac: bool = true,
        /// DNS servers, IPv4 or IPv6, comma-separated (used besides those DHCP names).
        dns: IpList = IpList::default(),
        /// How long DHCP may go without a lease (from boot or a lost lease) before the static fallback.
        dhcp_timeout: Duration = Duration::from_secs(5),
        /// Receive and send buffer of each TCP connection in bytes; 0: from the memory
        /// (2 KiB per MiB of heap, 2 to 16 KiB).
        tcp_buffer: usize = 0,
        /// Connections per listener that may wait half-open or unaccepted; 0: no cap of its own.
        backlog: usize = 0,
        /// TCP connections at most (listening sockets included; closing ones may add a quarter
        /// more); 0: as many as the memory holds.
        max_connections: usize = 0,
        /// ICMP echo replies, ICMP errors and resets the stack sends on its own, per second and
        /// kind; 0: unlimited.
        icmp_rate: u32 = 200,
    }
}

/// Memory a connection costs besides its two buffers, as the automatic limit assumes: the
/// stack's socket and bookkeeping (about 1 KiB) and the application's task and buffers (the
/// http example: about 6 KiB). Applications with heavier connections still cannot exhaust
/// the heap: the memory guard refuses new connections when free memory runs low.
pub(crate) const PER_CONNECTION: usize = 8 * 1024;

/// The stack's sizes: from the keys where set, else from the heap (`heap`: total and in use;
/// `None` on hosted platforms, whose heap is the host's).
pub(crate) fn sizing(
    keys: &NetKeys,
    heap: Option<(usize, usize)>,
    free: fn() -> usize,
) -> NetConfig {
    let auto_buffer = match heap {
        Some((total, _)) => prev_power_of_two(total / 1024).clamp(2048, 16384),
        None => 16384,
    };
    let buffer = match keys.tcp_buffer {
        0 => auto_buffer,
        n => n.clamp(1024, 1 << 20),
    };
    // Memory that stays free for everything else: a sixteenth of the heap, 64 KiB at least.
    let reserve = heap.map(|(total, _)| (total / 16).max(64 * 1024));
    let max_tcp = match (keys.max_connections, heap, reserve) {
        (0, Some((total, in_use)), Some(reserve)) => {
            // Sockets that fit, closing ones included (`fata_net::closing_allowance`).
            let fit = total.saturating_sub(in_use).saturating_sub(reserve)
                / (2 * buffer + PER_CONNECTION);
            (fit.saturating_sub(4) * 4 / 5).clamp(8, 65536)
        }
        (0, _, _) => 4096,
        (n, _, _) => n,
    };
    NetConfig {
        dhcp: keys.dhcp.0,
        ipv4: keys.ipv4.map(|n| (n.addr, n.prefix)),
        gateway: keys.gateway,
        ipv6: keys.ipv6.map(|n| (n.addr, n.prefix)),
        gateway6: keys.gateway6,
        slaac: keys.slaac,
        dns: keys.dns.0.clone(),
        dhcp_timeout_ms: keys.dhcp_timeout.as_millis() as u64,
        tcp_rx_buffer: buffer,
        tcp_tx_buffer: buffer,
        udp_buffer: buffer.max(4096),
        backlog: keys.backlog,
        max_tcp,
        memory: reserve.map(|reserve| MemoryGuard { free, reserve }),
        reply_rate: keys.icmp_rate,
        ..NetConfig::default()
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Shown, load};
    use fata_net::closing_allowance;

    fn no_free() -> usize {
        0
    }

    #[test]
    fn network_keys_parse_and_show() {
        let l = load::<()>(
            "dhcp=true ipv4=10.0.0.2/24 gateway=10.0.0.1 dns=1.1.1.1,2606:4700::1111 dhcp_timeout=2s ipv6=fd00::2/64 gateway6=fd00::1 slaac=false",
            &|_: &str| false,
        )
        .unwrap();
        assert_eq!(l.net.dhcp, Dhcp(DhcpMode::On));
        assert_eq!(
            l.net.ipv4,
            Some(Ipv4Net {
                addr: Ipv4Addr::new(10, 0, 0, 2),
                prefix: 24
            })
        );
        assert_eq!(l.net.dns.0.len(), 2);
        assert_eq!(alloc::format!("{}", Shown(&l.net.ipv4)), "10.0.0.2/24");
        assert_eq!(alloc::format!("{}", Shown(&l.net.ipv6)), "fd00::2/64");
        assert!(!l.net.slaac);
        assert!(load::<()>("ipv4=10.0.0.2", &|_: &str| false).is_err());
        assert!(load::<()>("ipv4=10.0.0.2/33", &|_: &str| false).is_err());
        assert!(load::<()>("gateway=300.1.1.1", &|_: &str| false).is_err());
        assert!(load::<()>("dhcp=maybe", &|_: &str| false).is_err());
        assert!(load::<()>("ipv6=ff02::1/64", &|_: &str| false).is_err());
    }

    #[test]
    fn buffers_and_the_connection_limit_scale_with_the_heap() {
        let keys = NetKeys::defaults();
        // A 4 MiB guest: about 2.4 MB of heap, 0.3 MB in use at boot.
        let small = sizing(&keys, Some((2_400_000, 300_000)), no_free);
        assert_eq!(small.tcp_rx_buffer, 2048);
        assert!(small.max_tcp >= 64 + 8, "{}", small.max_tcp);
        // A 64 MiB guest.
        let big = sizing(&keys, Some((62 << 20, 500_000)), no_free);
        assert_eq!(big.tcp_rx_buffer, 16384);
        assert!(big.max_tcp >= 1000, "{}", big.max_tcp);
        // Every connection at its full cost still leaves the reserve.
        for (total, used) in [
            (2_400_000, 300_000),
            (62 << 20, 500_000),
            (300_000, 250_000),
        ] {
            let c = sizing(&keys, Some((total, used)), no_free);
            let sockets = c.max_tcp + closing_allowance(c.max_tcp);
            let cost = sockets * (2 * c.tcp_rx_buffer + PER_CONNECTION);
            let reserve = c.memory.unwrap().reserve;
            assert!(
                c.max_tcp == 8 || used + cost + reserve <= total,
                "{total}: {c:?}"
            );
        }
        // Hosted: the host's memory, fixed figures, no guard.
        let hosted = sizing(&keys, None, no_free);
        assert_eq!((hosted.tcp_rx_buffer, hosted.max_tcp), (16384, 4096));
        assert!(hosted.memory.is_none());
        // Keys win.
        let mut set = NetKeys::defaults();
        set.tcp_buffer = 100;
        set.max_connections = 3;
        let c = sizing(&set, Some((62 << 20, 0)), no_free);
        assert_eq!((c.tcp_rx_buffer, c.max_tcp), (1024, 3));
    }
}
