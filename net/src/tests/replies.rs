//! Replies the stack makes on its own are rate limited: echo replies, ICMP errors, resets.

use super::harness::*;
use crate::filter::{Reply, classify_reply};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol, TcpControl, UdpPacket, UdpRepr};

fn echo_request(seq: u16) -> alloc::vec::Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: seq,
        data: &[0; 56],
    };
    ipv4_frame(IP_A, IpProtocol::Icmp, repr.buffer_len(), |b, _, _| {
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(b),
            &ChecksumCapabilities::default(),
        )
    })
}

fn udp_to(port: u16) -> alloc::vec::Vec<u8> {
    let repr = UdpRepr {
        src_port: 5555,
        dst_port: port,
    };
    ipv4_frame(IP_A, IpProtocol::Udp, 8 + 4, |b, s, d| {
        repr.emit(
            &mut UdpPacket::new_unchecked(b),
            s,
            d,
            4,
            |p| p.copy_from_slice(b"data"),
            &ChecksumCapabilities::default(),
        )
    })
}

fn count(w: &mut World, kind: Reply) -> usize {
    let n = w
        .to_fake
        .iter()
        .filter(|f| classify_reply(f) == kind)
        .count();
    w.to_fake.clear();
    n
}

/// Injects `frames` all at once, lets the stack answer without the clock moving, and counts
/// the replies of `kind`.
fn flood(w: &mut World, frames: impl Iterator<Item = alloc::vec::Vec<u8>>, kind: Reply) -> usize {
    for f in frames {
        w.inject(f);
    }
    let now = w.now;
    w.run_until(0, |w| w.a.runner.device_mut().inbox.is_empty());
    assert_eq!(w.now, now, "the clock moved");
    count(w, kind)
}

#[test]
fn a_ping_flood_gets_a_burst_of_replies_then_the_rate() {
    let mut w = World::pair(|c| c.reply_rate = 200);
    w.inject(arp_reply_for_fake());
    w.run_for(1);
    assert_eq!(
        flood(&mut w, (0..3).map(echo_request), Reply::Echo),
        3,
        "pings are answered"
    );
    let burst = flood(&mut w, (0..1000).map(echo_request), Reply::Echo);
    assert!(
        (40..=50).contains(&burst),
        "{burst} replies to 1000 pings at once"
    );
    assert!(w.a.stack.counters().icmp_limited >= 950);
    // A second later the bucket holds a burst again (200/s, at most 50 saved).
    w.run_for(1000);
    let later = flood(&mut w, (0..1000).map(echo_request), Reply::Echo);
    assert_eq!(later, 50);
}

#[test]
fn port_unreachable_and_closed_port_resets_are_rate_limited() {
    let mut w = World::pair(|c| c.reply_rate = 100);
    w.inject(arp_reply_for_fake());
    w.run_for(1);
    let unreachable = flood(&mut w, (0..500).map(|_| udp_to(9)), Reply::IcmpError);
    assert_eq!(unreachable, 25, "burst of a quarter of the rate");
    w.run_for(1000);
    let resets = flood(
        &mut w,
        (0..500).map(|n| tcp_from_fake(20_000 + n, 81, TcpControl::Syn, 1, None)),
        Reply::Reset,
    );
    assert_eq!(resets, 25);
    let c = w.a.stack.counters();
    assert_eq!(c.icmp_limited, 475, "{c:?}");
    assert_eq!(c.rst_limited, 475, "{c:?}");
}

#[test]
fn rate_zero_means_unlimited() {
    let mut w = World::pair(|c| c.reply_rate = 0);
    w.inject(arp_reply_for_fake());
    w.run_for(1);
    assert_eq!(flood(&mut w, (0..300).map(echo_request), Reply::Echo), 300);
}
