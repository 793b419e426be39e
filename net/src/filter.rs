//! What the stack lets through its own device adapter, before and after smoltcp.
//!
//! Pure functions and small state, unit-tested on hand-made frames:
//! - [`classify_reply`]: which replies smoltcp generates on its own (ICMP errors, echo replies,
//!   TCP resets for segments no socket wants) — these are rate limited like hardened stacks do
//!   (FreeBSD's `icmplim` covers closed-port resets too; Linux limits ICMP errors and echo), so
//!   a scan or a flood cannot turn the guest into a reflector or burn its transmit ring.
//! - [`syn_port`]: the destination port of a connection request (SYN without ACK), so a SYN for
//!   a listener that has no free socket right now is dropped silently (the client retries, as
//!   with a full Linux backlog) instead of being answered with a reset.
//!
//! Frames are parsed defensively: anything short or malformed classifies as "other" and is left
//! to smoltcp's own checked parsing.

/// The kind of a frame smoltcp sends in direct reply to a received one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// ICMP or ICMPv6 echo reply.
    Echo,
    /// ICMP or ICMPv6 error (unreachable, time exceeded, parameter problem, too big).
    IcmpError,
    /// A TCP reset.
    Reset,
    /// Anything else (ACKs, SYN-ACKs, ARP, neighbour advertisements, ...).
    Other,
}

const ETH_HDR: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_ICMPV6: u8 = 58;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_RST: u8 = 0x04;
const TCP_FLAG_ACK: u8 = 0x10;

/// The transport protocol and its header of an Ethernet frame carrying IPv4 or IPv6 (IPv6
/// extension headers are not followed: such frames classify as other).
fn transport(frame: &[u8]) -> Option<(u8, &[u8])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_HDR..)?;
    match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ip.first()? >> 4 != 4 || ihl < 20 {
                return None;
            }
            // Only first fragments carry the transport header.
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            if frag != 0 {
                return None;
            }
            Some((*ip.get(9)?, ip.get(ihl..)?))
        }
        ETHERTYPE_IPV6 => {
            if ip.first()? >> 4 != 6 {
                return None;
            }
            Some((*ip.get(6)?, ip.get(40..)?))
        }
        _ => None,
    }
}

/// What kind of reply `frame` (an Ethernet frame smoltcp is about to send) is.
pub(crate) fn classify_reply(frame: &[u8]) -> Reply {
    let Some((proto, l4)) = transport(frame) else {
        return Reply::Other;
    };
    match (proto, l4.first()) {
        (PROTO_ICMP, Some(0)) => Reply::Echo,
        (PROTO_ICMP, Some(3 | 11 | 12)) => Reply::IcmpError,
        (PROTO_ICMPV6, Some(129)) => Reply::Echo,
        (PROTO_ICMPV6, Some(1..=4)) => Reply::IcmpError,
        (PROTO_TCP, _) => match l4.get(13) {
            Some(flags) if flags & TCP_FLAG_RST != 0 => Reply::Reset,
            _ => Reply::Other,
        },
        _ => Reply::Other,
    }
}

/// The destination port if `frame` is a TCP connection request (SYN without ACK).
pub(crate) fn syn_port(frame: &[u8]) -> Option<u16> {
    let (proto, tcp) = transport(frame)?;
    if proto != PROTO_TCP {
        return None;
    }
    let flags = *tcp.get(13)?;
    (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST) == TCP_FLAG_SYN)
        .then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up. Rate 0: unlimited.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    rate: u32,
    burst: u32,
    /// Tokens, in thousandths.
    milli: u64,
    last_ms: u64,
}

impl Bucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Bucket {
        Bucket {
            rate,
            burst,
            milli: u64::from(burst) * 1000,
            last_ms: 0,
        }
    }

    /// Takes a token at `now_ms` if there is one.
    pub(crate) fn take(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli = (self.milli + elapsed.saturating_mul(u64::from(self.rate)))
            .min(u64::from(self.burst) * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// An Ethernet + IPv4 frame with protocol `proto` and transport bytes `l4`.
    pub(crate) fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = proto;
        f.extend_from_slice(l4);
        f
    }

    fn v6(next: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[14 + 6] = next;
        f.extend_from_slice(l4);
        f
    }

    fn tcp(dst_port: u16, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[2..4].copy_from_slice(&dst_port.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    #[test]
    fn replies_are_classified_for_both_families() {
        assert_eq!(classify_reply(&v4(PROTO_ICMP, &[0, 0])), Reply::Echo);
        assert_eq!(classify_reply(&v4(PROTO_ICMP, &[3, 3])), Reply::IcmpError);
        assert_eq!(classify_reply(&v4(PROTO_ICMP, &[8, 0])), Reply::Other);
        assert_eq!(classify_reply(&v6(PROTO_ICMPV6, &[129, 0])), Reply::Echo);
        assert_eq!(classify_reply(&v6(PROTO_ICMPV6, &[1, 4])), Reply::IcmpError);
        assert_eq!(classify_reply(&v6(PROTO_ICMPV6, &[136, 0])), Reply::Other);
        assert_eq!(
            classify_reply(&v4(PROTO_TCP, &tcp(80, TCP_FLAG_RST | TCP_FLAG_ACK))),
            Reply::Reset
        );
        assert_eq!(
            classify_reply(&v6(PROTO_TCP, &tcp(80, TCP_FLAG_SYN | TCP_FLAG_ACK))),
            Reply::Other
        );
    }

    #[test]
    fn syn_port_only_for_connection_requests() {
        assert_eq!(syn_port(&v4(PROTO_TCP, &tcp(80, TCP_FLAG_SYN))), Some(80));
        assert_eq!(syn_port(&v6(PROTO_TCP, &tcp(443, TCP_FLAG_SYN))), Some(443));
        assert_eq!(
            syn_port(&v4(PROTO_TCP, &tcp(80, TCP_FLAG_SYN | TCP_FLAG_ACK))),
            None
        );
        assert_eq!(syn_port(&v4(PROTO_TCP, &tcp(80, TCP_FLAG_ACK))), None);
        assert_eq!(syn_port(&v4(PROTO_ICMP, &[8, 0])), None);
    }

    #[test]
    fn truncated_and_malformed_frames_classify_as_other() {
        let full = v4(PROTO_TCP, &tcp(80, TCP_FLAG_SYN));
        for n in 0..full.len() {
            assert_eq!(classify_reply(&full[..n]), Reply::Other);
            let _ = syn_port(&full[..n]);
        }
        let mut bad_ihl = full.clone();
        bad_ihl[14] = 0x41;
        assert_eq!(syn_port(&bad_ihl), None);
        let mut fragment = full.clone();
        fragment[14 + 7] = 8;
        assert_eq!(syn_port(&fragment), None);
        let mut bytes = 0x1234_5678_u32;
        for _ in 0..2000 {
            let f: Vec<u8> = (0..(bytes % 80) as usize)
                .map(|_| {
                    bytes ^= bytes << 13;
                    bytes ^= bytes >> 17;
                    bytes ^= bytes << 5;
                    bytes as u8
                })
                .collect();
            let _ = classify_reply(&f);
            let _ = syn_port(&f);
        }
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = Bucket::new(100, 10);
        let burst = (0..50).filter(|_| b.take(1000)).count();
        assert_eq!(burst, 10);
        // 100 per second: one more every 10 ms.
        assert!(!b.take(1005));
        assert!(b.take(1010));
        let second = (0..1000).filter(|i| b.take(1010 + i)).count();
        assert!((95..=105).contains(&second), "{second}");
        let mut unlimited = Bucket::new(0, 0);
        assert!((0..10_000).all(|_| unlimited.take(0)));
        // The clock going backwards does not mint tokens.
        let mut c = Bucket::new(100, 1);
        assert!(c.take(5000));
        assert!(!c.take(10));
        assert!(!c.take(5000));
    }
}
