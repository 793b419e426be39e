//! Addressing: IPv4 by DHCP, static, or DHCP with a static fallback; IPv6 link-local, static
//! and SLAAC; DNS servers; the readiness line.
//!
//! DHCP's fallback clock runs from the start of each period without a lease — boot, or the
//! moment a lease is lost — so a lease lost after hours gets the full `dhcp_timeout` to come
//! back before the static address takes over (or the console says DHCP is still trying).

use crate::config::{DhcpMode, NetConfig};
use crate::stack::Inner;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, dns};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Cidr, Ipv6Cidr};

/// Largest number of DNS servers used (the DNS socket's capacity).
const MAX_DNS: usize = 4;
/// While SLAAC has not produced an address, the runner wakes this often so router
/// solicitations are retried even when nothing else is going on (smoltcp's `poll_at` can
/// lose SLAAC's own deadline)...
const SLAAC_TICK_MS: u64 = 1000;
/// ...for as long as smoltcp solicits routers: three solicitations 4 s apart. On a network
/// without a router the runner then sleeps undisturbed; an advertisement still arrives as a
/// frame.
const SLAAC_DISCOVERY_MS: u64 = 15_000;

pub(crate) struct Addressing {
    pub(crate) v4: Option<Ipv4Cidr>,
    /// Whether an IPv4 address is expected (DHCP or a static one): the readiness line then
    /// waits for it.
    expect_v4: bool,
    /// DHCP has had no lease since this time (boot, or the loss of one).
    dhcp_waiting_since: Option<u64>,
    /// The fallback, or that DHCP is still trying, was said for this period.
    fallback_said: bool,
    dhcp_dns: Vec<Ipv4Addr>,
    /// IPv6 addresses as last logged.
    v6_seen: Vec<Ipv6Cidr>,
    /// When the stack started.
    started_ms: u64,
}

/// Whether `a` can be this host's own address.
pub(crate) fn usable_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback())
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    }
}

/// The EUI-64 link-local address of `mac` (RFC 4291 appendix A).
fn link_local(mac: EthernetAddress) -> Ipv6Addr {
    let m = mac.0;
    let pair = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        pair(m[0] ^ 0x02, m[1]),
        pair(m[2], 0xff),
        pair(0xfe, m[3]),
        pair(m[4], m[5]),
    )
}

/// The configured static IPv4 address as a CIDR, if it is one this host can have (smoltcp's
/// constructor panics on a prefix above 32: `NetConfig` is public, so it is checked here).
fn static_v4(config: &NetConfig) -> Option<Ipv4Cidr> {
    let (a, len) = config.ipv4?;
    if usable_unicast(a.into()) && len <= 32 {
        Some(Ipv4Cidr::new(a, len))
    } else {
        log::warn!("net: ignoring ipv4={a}/{len}: not a unicast address and prefix");
        None
    }
}

impl Addressing {
    pub(crate) fn new(
        config: &NetConfig,
        now_ms: u64,
        sockets: &mut SocketSet<'static>,
    ) -> (Addressing, Option<SocketHandle>) {
        let use_dhcp = match config.dhcp {
            DhcpMode::Auto => config.ipv4.is_none(),
            DhcpMode::On => true,
            DhcpMode::Off => false,
        };
        let dhcp = use_dhcp.then(|| sockets.add(dhcpv4::Socket::new()));
        (
            Addressing {
                v4: None,
                expect_v4: use_dhcp || config.ipv4.is_some(),
                dhcp_waiting_since: use_dhcp.then_some(now_ms),
                fallback_said: false,
                dhcp_dns: Vec::new(),
                v6_seen: Vec::new(),
                started_ms: now_ms,
            },
            dhcp,
        )
    }

    /// When addressing next needs the runner: the DHCP fallback, or a SLAAC retry.
    pub(crate) fn deadline(&self, config: &NetConfig, now_ms: u64) -> Option<u64> {
        let fallback = match self.dhcp_waiting_since {
            Some(t) if !self.fallback_said => Some(t + config.dhcp_timeout_ms),
            _ => None,
        };
        let discovering = now_ms < self.started_ms + SLAAC_DISCOVERY_MS;
        let slaac =
            (config.slaac && discovering && !self.v6_seen.iter().any(|c| !is_link_local(c)))
                .then_some(now_ms + SLAAC_TICK_MS);
        [fallback, slaac].into_iter().flatten().min()
    }
}

/// Whether `c` is a link-local address (fe80::/10).
pub(crate) fn is_link_local(c: &Ipv6Cidr) -> bool {
    c.address().segments()[0] & 0xffc0 == 0xfe80
}

impl Inner {
    /// Link-local and static IPv6, static IPv4 when DHCP is off, DNS servers.
    pub(crate) fn configure_at_start(&mut self, mac: EthernetAddress) {
        let ll = Ipv6Cidr::new(link_local(mac), 64);
        self.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv6(ll));
        });
        if let Some((a, len)) = self.config.ipv6 {
            if usable_unicast(a.into()) && len <= 128 {
                self.iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(a, len)));
                });
                log::info!("net: static IPv6 address {a}/{len}");
                if let Some(gw) = self.config.gateway6 {
                    let _ = self.iface.routes_mut().add_default_ipv6_route(gw);
                }
            } else {
                log::warn!("net: ignoring ipv6={a}/{len}: not a unicast address");
            }
        }
        if self.dhcp.is_some() {
            log::info!("net: asking for a DHCP lease");
        } else {
            match static_v4(&self.config) {
                Some(cidr) => self.set_v4(cidr, self.config.gateway, None),
                None if self.config.ipv6.is_none() && !self.config.slaac => {
                    log::warn!("net: no DHCP, no static address and no SLAAC: only link-local")
                }
                None => {}
            }
        }
        self.update_dns();
        self.note_v6_changes();
    }

    fn set_v4(&mut self, cidr: Ipv4Cidr, gateway: Option<Ipv4Addr>, why: Option<&str>) {
        self.iface.update_ip_addrs(|a| {
            a.retain(|c| !matches!(c, IpCidr::Ipv4(_)));
            let _ = a.push(IpCidr::Ipv4(cidr));
        });
        match gateway {
            Some(gw) => {
                let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        if let Some(why) = why {
            log::warn!("{why}; falling back to the static address {cidr}");
        } else if self.dhcp.is_none() {
            log::info!("net: static address {cidr}");
        }
        self.addr.v4 = Some(cidr);
        self.announce();
    }

    fn clear_v4(&mut self) {
        self.iface
            .update_ip_addrs(|a| a.retain(|c| !matches!(c, IpCidr::Ipv4(_))));
        self.iface.routes_mut().remove_default_ipv4_route();
        self.addr.v4 = None;
    }

    fn update_dns(&mut self) {
        let mut servers: Vec<IpAddress> = Vec::new();
        let all = self
            .config
            .dns
            .iter()
            .copied()
            .chain(self.addr.dhcp_dns.iter().map(|&a| IpAddr::V4(a)));
        for a in all {
            let a = IpAddress::from(a);
            if !servers.contains(&a) && servers.len() < MAX_DNS {
                servers.push(a);
            }
        }
        self.sockets
            .get_mut::<dns::Socket>(self.dns)
            .update_servers(&servers);
    }

    /// DHCP events, the static fallback, IPv6 address changes.
    pub(crate) fn poll_addressing(&mut self) {
        self.poll_dhcp();
        self.check_fallback();
        self.note_v6_changes();
    }

    fn poll_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            Some(dhcpv4::Event::Configured(c)) => Some(Some((
                c.address,
                c.router,
                c.server.address,
                c.dns_servers.iter().copied().collect::<Vec<Ipv4Addr>>(),
            ))),
            Some(dhcpv4::Event::Deconfigured) => Some(None),
            None => None,
        };
        match event {
            Some(Some((address, router, server, dns))) => {
                log::info!(
                    "net: DHCP lease {} from {}, gateway {}, dns {:?}",
                    address,
                    server,
                    router.map_or(alloc::string::String::from("none"), |r| alloc::format!(
                        "{r}"
                    )),
                    dns
                );
                self.addr.dhcp_dns = dns;
                self.addr.dhcp_waiting_since = None;
                self.addr.fallback_said = false;
                self.update_dns();
                self.set_v4(address, router, None);
            }
            // smoltcp also reports "deconfigured" when the client starts: only a lost lease
            // counts, and the fallback clock starts again from now.
            Some(None) if self.addr.v4.is_some() => {
                log::warn!("net: DHCP lease lost; asking again");
                self.clear_v4();
                self.addr.dhcp_dns.clear();
                self.update_dns();
                self.addr.dhcp_waiting_since = Some(self.now_ms);
                self.addr.fallback_said = false;
            }
            Some(None) | None => {}
        }
    }

    fn check_fallback(&mut self) {
        let Some(since) = self.addr.dhcp_waiting_since else {
            return;
        };
        if self.addr.fallback_said || self.now_ms < since + self.config.dhcp_timeout_ms {
            return;
        }
        self.addr.fallback_said = true;
        let why = alloc::format!(
            "net: no DHCP answer within {} ms",
            self.config.dhcp_timeout_ms
        );
        match static_v4(&self.config) {
            Some(cidr) => {
                // The fallback is final: DHCP stops, so the address does not change under
                // the connections that start using it.
                if let Some(h) = self.dhcp.take() {
                    self.sockets.remove(h);
                }
                self.addr.dhcp_waiting_since = None;
                self.set_v4(cidr, self.config.gateway, Some(&why));
            }
            None => log::warn!("{why}; still trying (set ipv4= for a static fallback)"),
        }
    }

    fn note_v6_changes(&mut self) {
        let v6 = |a: &IpCidr| match a {
            IpCidr::Ipv6(c) => Some(*c),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        // Runs every poll: compare first, collect only when something changed.
        if self
            .iface
            .ip_addrs()
            .iter()
            .filter_map(v6)
            .eq(self.addr.v6_seen.iter().copied())
        {
            return;
        }
        let now: Vec<Ipv6Cidr> = self.iface.ip_addrs().iter().filter_map(v6).collect();
        for c in &now {
            if !self.addr.v6_seen.contains(c) {
                log::info!("net: IPv6 address {c}");
            }
        }
        for c in &self.addr.v6_seen {
            if !now.contains(c) {
                log::warn!("net: IPv6 address {c} expired");
            }
        }
        self.addr.v6_seen = now;
        self.announce();
    }

    /// Whether the interface can be reached: it has its IPv4 address, or (with no IPv4
    /// expected) an IPv6 address beyond link-local — or only link-local by configuration.
    pub(crate) fn reachable(&self) -> bool {
        if self.addr.expect_v4 {
            return self.addr.v4.is_some();
        }
        self.addr.v6_seen.iter().any(|c| !is_link_local(c)) || !self.config.slaac
    }

    /// Prints the readiness line for every bound listener once the interface is reachable.
    pub(crate) fn announce(&mut self) {
        if !self.reachable() {
            return;
        }
        let on_ready = self.on_ready;
        for l in self.listeners.values_mut() {
            if !l.announced {
                l.announced = true;
                on_ready(l.port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_eui64_of_the_mac() {
        let a = link_local(EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(a, "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn a_static_address_with_an_impossible_prefix_is_refused_not_a_panic() {
        let mut c = NetConfig {
            ipv4: Some((Ipv4Addr::new(10, 0, 0, 2), 33)),
            ..NetConfig::default()
        };
        assert_eq!(static_v4(&c), None);
        c.ipv4 = Some((Ipv4Addr::new(224, 0, 0, 1), 4));
        assert_eq!(static_v4(&c), None);
        c.ipv4 = Some((Ipv4Addr::new(10, 0, 0, 2), 24));
        assert!(static_v4(&c).is_some());
    }

    #[test]
    fn only_unicast_addresses_are_usable() {
        for bad in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "127.0.0.1",
            "::",
            "ff02::1",
            "::1",
        ] {
            assert!(!usable_unicast(bad.parse().unwrap()), "{bad}");
        }
        for good in ["10.0.0.2", "fd00::2", "2001:db8::1"] {
            assert!(usable_unicast(good.parse().unwrap()), "{good}");
        }
    }
}
