//! Addressing: DHCP lease loss and the static fallback, SLAAC, AAAA lookups.

use super::harness::*;
use crate::config::DhcpMode;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, NdiscPrefixInfoFlags, NdiscPrefixInformation,
    NdiscRepr, NdiscRouterFlags, UdpPacket, UdpRepr,
};

const LEASED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const FALLBACK: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Answers every DHCP message `a` sent to the fake host (a server at IP_FAKE) with an offer
/// or an acknowledgement of `LEASED` for `lease_s` seconds, if `serving`.
fn serve_dhcp(w: &mut World, lease_s: u32, serving: bool) {
    for f in core::mem::take(&mut w.to_fake) {
        let Some((kind, xid)) = dhcp_request(&f) else {
            continue;
        };
        if !serving {
            continue;
        }
        let reply_type = match kind {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            _ => continue,
        };
        let repr = DhcpRepr {
            message_type: reply_type,
            transaction_id: xid,
            secs: 0,
            client_hardware_address: EthernetAddress(MAC_A),
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: LEASED,
            server_ip: IP_FAKE,
            router: Some(IP_FAKE),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(IP_FAKE),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(lease_s),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let udp = UdpRepr {
            src_port: 67,
            dst_port: 68,
        };
        let len = 8 + repr.buffer_len();
        let frame = ipv4_frame_from(
            MAC_FAKE,
            IP_FAKE,
            MAC_A,
            Ipv4Addr::BROADCAST,
            IpProtocol::Udp,
            len,
            |b, s, d| {
                udp.emit(
                    &mut UdpPacket::new_unchecked(b),
                    s,
                    d,
                    repr.buffer_len(),
                    |p| repr.emit(&mut DhcpPacket::new_unchecked(p)).unwrap(),
                    &ChecksumCapabilities::default(),
                )
            },
        );
        w.inject(frame);
    }
}

/// The message type and transaction id of a DHCP client message.
fn dhcp_request(frame: &[u8]) -> Option<(DhcpMessageType, u32)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let repr = DhcpRepr::parse(&dhcp).ok()?;
    Some((repr.message_type, repr.transaction_id))
}

#[test]
fn a_lost_dhcp_lease_gets_the_full_timeout_before_the_static_fallback() {
    let mut cfg = config(FALLBACK, IP6_A);
    cfg.dhcp = DhcpMode::On;
    cfg.dhcp_timeout_ms = 5_000;
    let mut w = World::new(cfg, config(IP_B, IP6_B));
    w.inject(arp_reply_for_fake());
    assert!(w.run_until(10_000, |w| {
        serve_dhcp(w, 60, true);
        w.a.stack.ipv4() == Some((LEASED, 24))
    }));
    let leased_at = w.now;
    // The server goes away: the lease runs out after 60 s.
    assert!(w.run_until(120_000, |w| {
        serve_dhcp(w, 60, false);
        w.a.stack.ipv4().is_none()
    }));
    let lost_at = w.now;
    assert!(
        lost_at >= leased_at + 59_000,
        "lost after {} ms",
        lost_at - leased_at
    );
    assert!(w.run_until(60_000, |w| {
        serve_dhcp(w, 60, false);
        w.a.stack.ipv4().is_some()
    }));
    assert_eq!(w.a.stack.ipv4(), Some((FALLBACK, 24)));
    let waited = w.now - lost_at;
    assert!(
        (5_000..=6_000).contains(&waited),
        "fallback {waited} ms after the loss"
    );
}

#[test]
fn without_any_dhcp_answer_the_fallback_applies_after_the_timeout_from_boot() {
    let mut cfg = config(FALLBACK, IP6_A);
    cfg.dhcp = DhcpMode::On;
    cfg.dhcp_timeout_ms = 2_000;
    let mut w = World::new(cfg, config(IP_B, IP6_B));
    let start = w.now;
    assert!(w.run_until(10_000, |w| w.a.stack.ipv4().is_some()));
    assert!((2_000..=3_000).contains(&(w.now - start)));
    assert_eq!(w.a.stack.ipv4(), Some((FALLBACK, 24)));
}

/// A router advertisement for `fd77::/64` from the fake host to all nodes.
fn router_advertisement() -> Vec<u8> {
    let router: Ipv6Addr = "fe80::c".parse().unwrap();
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let repr = Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: NdiscRouterFlags::empty(),
        router_lifetime: smoltcp::time::Duration::from_secs(1800),
        reachable_time: smoltcp::time::Duration::from_millis(0),
        retrans_time: smoltcp::time::Duration::from_millis(0),
        lladdr: Some(EthernetAddress(MAC_FAKE).into()),
        mtu: None,
        prefix_info: Some(NdiscPrefixInformation {
            prefix_len: 64,
            flags: NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF,
            valid_lifetime: smoltcp::time::Duration::from_secs(600),
            preferred_lifetime: smoltcp::time::Duration::from_secs(300),
            prefix: "fd77::".parse().unwrap(),
        }),
    });
    ipv6_frame(
        MAC_FAKE,
        [0x33, 0x33, 0, 0, 0, 1],
        router,
        all_nodes,
        IpProtocol::Icmpv6,
        repr.buffer_len(),
        |b, _, _| {
            repr.emit(
                &router,
                &all_nodes,
                &mut Icmpv6Packet::new_unchecked(b),
                &ChecksumCapabilities::default(),
            )
        },
    )
}

#[test]
fn slaac_takes_an_address_from_a_router_advertisement_and_then_announces() {
    let mut cfg = config(IP_A, IP6_A);
    cfg.dhcp = DhcpMode::Off;
    cfg.ipv4 = None;
    cfg.ipv6 = None;
    cfg.slaac = true;
    let mut w = World::new(cfg, config(IP_B, IP6_B));
    let _l = w.a.stack.listen(80).unwrap();
    w.run_for(500);
    // Only link-local so far, and router solicitations went out: not ready yet.
    assert!(take_ready().is_empty());
    let solicited = w
        .to_fake
        .iter()
        .any(|f| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == 58 && f[54] == 133);
    assert!(solicited, "no router solicitation");
    w.inject(router_advertisement());
    let want: IpAddr = "fd77::ff:fe00:a".parse::<Ipv6Addr>().unwrap().into();
    assert!(w.run_until(2_000, |w| {
        w.a.stack
            .addresses()
            .iter()
            .any(|(a, l)| *a == want && *l == 64)
    }));
    w.run_for(10);
    assert_eq!(take_ready(), [80]);
}

/// A DNS answer to the query in `frame` (from `a` to the fake server) with one AAAA record
/// and one A record, whichever was asked.
fn dns_answer(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 53 {
        return None;
    }
    let q = udp.payload();
    // Header (12) + the question as sent, then one answer pointing back at the name.
    let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
    let mut m = q.to_vec();
    m[2] = 0x81; // response, recursion desired
    m[3] = 0x80; // recursion available, no error
    m[6..8].copy_from_slice(&1u16.to_be_bytes()); // one answer
    m.extend_from_slice(&[0xc0, 12]);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    match qtype {
        1 => {
            m.extend_from_slice(&4u16.to_be_bytes());
            m.extend_from_slice(&[10, 0, 0, 42]);
        }
        28 => {
            m.extend_from_slice(&16u16.to_be_bytes());
            m.extend_from_slice(&"fd00::42".parse::<Ipv6Addr>().unwrap().octets());
        }
        _ => return None,
    }
    let sport = udp.src_port();
    let udp = UdpRepr {
        src_port: 53,
        dst_port: sport,
    };
    Some(ipv4_frame(IP_A, IpProtocol::Udp, 8 + m.len(), |b, s, d| {
        udp.emit(
            &mut UdpPacket::new_unchecked(b),
            s,
            d,
            m.len(),
            |p| p.copy_from_slice(&m),
            &ChecksumCapabilities::default(),
        )
    }))
}

#[test]
fn resolve_asks_for_aaaa_and_a_records_and_returns_both() {
    let mut cfg = config(IP_A, IP6_A);
    cfg.dns = alloc::vec![IpAddr::V4(IP_FAKE)];
    let mut w = World::new(cfg, config(IP_B, IP6_B));
    w.inject(arp_reply_for_fake());
    let out = cell(None);
    {
        let (stack, out) = (w.a.stack.clone(), out.clone());
        spawn(async move {
            *out.borrow_mut() = Some(stack.resolve("fata.test").await);
        });
    }
    assert!(w.run_until(5_000, |w| {
        for f in core::mem::take(&mut w.to_fake) {
            if let Some(a) = dns_answer(&f) {
                w.inject(a);
            }
        }
        out.borrow().is_some()
    }));
    let got = out.borrow_mut().take().unwrap().unwrap();
    let v6: IpAddr = "fd00::42".parse::<Ipv6Addr>().unwrap().into();
    assert_eq!(got, [v6, v4(Ipv4Addr::new(10, 0, 0, 42))]);
}
