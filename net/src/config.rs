//! The stack's settings and counters.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use fata_hal::net::NetStats;

/// How the interface gets its IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpMode {
    /// DHCP unless a static address is given.
    Auto,
    /// DHCP; the static address (if given) is the fallback when no server answers in time.
    On,
    /// Static address only.
    Off,
}

/// How the stack learns how much memory is left, so it refuses (or makes room for) a new
/// connection before the heap runs out rather than after.
#[derive(Clone, Copy, Debug)]
pub struct MemoryGuard {
    /// Free heap bytes now.
    pub free: fn() -> usize,
    /// Bytes that must stay free after a new connection's buffers are taken (for the
    /// application's own per-connection memory and everything else).
    pub reserve: usize,
}

/// Interface and socket settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// DHCP or static IPv4.
    pub dhcp: DhcpMode,
    /// Static IPv4 address and prefix length.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Default IPv4 gateway for the static address.
    pub gateway: Option<Ipv4Addr>,
    /// Static IPv6 address and prefix length (in addition to the link-local address and any
    /// SLAAC address).
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// Default IPv6 gateway for the static address (SLAAC learns its own from router
    /// advertisements).
    pub gateway6: Option<Ipv6Addr>,
    /// IPv6 stateless address autoconfiguration from router advertisements.
    pub slaac: bool,
    /// DNS servers (used in addition to those a DHCP lease names).
    pub dns: Vec<IpAddr>,
    /// How long DHCP may go without a lease (from boot, or from losing one) before the static
    /// fallback applies.
    pub dhcp_timeout_ms: u64,
    /// Receive buffer of each TCP connection.
    pub tcp_rx_buffer: usize,
    /// Send buffer of each TCP connection.
    pub tcp_tx_buffer: usize,
    /// Receive and send payload buffer of each UDP socket.
    pub udp_buffer: usize,
    /// Connections per listener that may wait half-open or unaccepted; beyond it the oldest is
    /// reset. 0: no cap of its own (the connection limit and memory still apply).
    pub backlog: usize,
    /// Live TCP sockets (listening, half-open, connected) at most; closing ones may add
    /// [`closing_allowance`](crate::closing_allowance) more.
    pub max_tcp: usize,
    /// When set, a new TCP socket also needs this much memory to be left.
    pub memory: Option<MemoryGuard>,
    /// Replies the stack makes on its own (ICMP echo replies; ICMP errors and resets for
    /// segments nobody wants) per second, each kind; 0: unlimited.
    pub reply_rate: u32,
    /// How long a connection may stay half-open (SYN received, handshake not completed).
    pub handshake_timeout_ms: u64,
    /// How long a connection the application dropped may take to close before it is reset.
    pub close_timeout_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            dhcp: DhcpMode::Auto,
            ipv4: None,
            gateway: None,
            ipv6: None,
            gateway6: None,
            slaac: true,
            dns: Vec::new(),
            dhcp_timeout_ms: 5000,
            tcp_rx_buffer: 8192,
            tcp_tx_buffer: 8192,
            udp_buffer: 8192,
            backlog: 0,
            max_tcp: 256,
            memory: None,
            reply_rate: 200,
            handshake_timeout_ms: 10_000,
            close_timeout_ms: 10_000,
        }
    }
}

/// Stack counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Connections handed to `accept`.
    pub accepted: u64,
    /// Half-open or unaccepted connections reset: a listener's backlog was full, or an old
    /// half-open one made room at the connection limit (SYN floods land here).
    pub pending_dropped: u64,
    /// Half-open connections reset because the handshake did not complete in time.
    pub handshake_timeouts: u64,
    /// Connections the application dropped that had to be reset because they did not close in
    /// time.
    pub close_timeouts: u64,
    /// Idle or closing connections reset to make room for a new one at the connection limit.
    pub reclaimed: u64,
    /// Times a TCP socket was needed and none could be had (limit or memory): a connect
    /// failed, or a listener had no free socket for a moment.
    pub tcp_limit_hits: u64,
    /// Connection requests dropped unanswered because their listener had no free socket (the
    /// client retries).
    pub syn_dropped: u64,
    /// ICMP echo replies and errors not sent because of the rate limit.
    pub icmp_limited: u64,
    /// Resets for unwanted segments not sent because of the rate limit.
    pub rst_limited: u64,
    /// TCP sockets in use now (listening ones included).
    pub tcp_sockets: usize,
    /// The connection limit in force.
    pub tcp_limit: usize,
    /// The device's own counters, as of the last poll.
    pub device: NetStats,
}
