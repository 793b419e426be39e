//! fata's network stack: smoltcp behind an async socket API.
//!
//! Layer: depends on the HAL (for [`NetDevice`](fata_hal::net::NetDevice)) and smoltcp, and is
//! the only crate that depends on smoltcp; no smoltcp type appears in its public API, so a
//! host-sockets implementation can stand behind the same API. It knows nothing of the
//! platform or the runtime: the runtime owns a [`Runner`], calls [`Runner::poll`] and sleeps
//! until [`Runner::poll`]'s deadline, a device interrupt, or a socket operation that needs the
//! stack ([`Stack::set_runner_waker`]).
//!
//! - [`Stack`]: a cheap, clonable handle; [`Stack::listen`] / [`Stack::connect`] /
//!   [`Stack::bind_udp`] / [`Stack::resolve`], over IPv4 and IPv6.
//! - TCP connections are admitted against a connection limit and the memory left; at the limit
//!   the stack makes room by resetting closing and idle connections before it refuses anyone
//!   (`conns.rs`). Half-open connections time out; a SYN flood costs bounded memory.
//! - Replies the stack makes on its own (ICMP errors, echo replies, resets) are rate limited
//!   (`filter.rs`).
//! - Addressing: DHCPv4 (lease logged, renewed, DNS servers taken from it), static, or DHCP
//!   with a static fallback; IPv6 link-local, static and SLAAC ([`NetConfig`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod addr;
mod config;
mod conns;
mod device;
mod dns;
mod filter;
mod slab;
mod stack;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

pub use config::{DhcpMode, MemoryGuard, NetConfig, NetCounters};
pub use conns::closing_allowance;
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
pub use stack::{Runner, Stack};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

use core::fmt;

/// What can go wrong with a network operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The interface has no address of that family yet (DHCP or SLAAC pending).
    NoAddress,
    /// The port is already bound by this stack.
    PortInUse(u16),
    /// The peer refused or reset the connection.
    Reset,
    /// The connection is closed for this operation (peer closed, or we shut down).
    Closed,
    /// An argument is invalid (port 0, unspecified address, empty name, ...).
    InvalidInput,
    /// The name could not be resolved.
    NameNotFound,
    /// No DNS server is known.
    NoDnsServer,
    /// Too many sockets or queries at once.
    Exhausted,
    /// The stack reset this idle connection to make room for a new one at its connection
    /// limit (see `TcpStream::set_idle`).
    Reclaimed,
    /// A datagram is larger than the socket's buffer.
    TooLarge,
    /// The address is not available on this host (socket mode).
    AddrNotAvailable,
    /// Not allowed, e.g. a port below 1024 without privileges (socket mode).
    PermissionDenied,
    /// The platform cannot do this (no network of that kind).
    Unsupported,
    /// Another operating-system error, by `errno` (socket mode).
    Os(i32),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoAddress => f.write_str("the interface has no address of that family yet"),
            NetError::PortInUse(p) => write!(f, "port {p} is already in use"),
            NetError::Reset => f.write_str("connection refused or reset by the peer"),
            NetError::Closed => f.write_str("connection closed"),
            NetError::InvalidInput => f.write_str("invalid argument"),
            NetError::NameNotFound => f.write_str("name not found"),
            NetError::NoDnsServer => f.write_str("no DNS server configured"),
            NetError::Exhausted => f.write_str("too many sockets or queries"),
            NetError::Reclaimed => {
                f.write_str("the idle connection was closed to make room for a new one")
            }
            NetError::TooLarge => f.write_str("datagram too large"),
            NetError::AddrNotAvailable => f.write_str("address not available on this host"),
            NetError::PermissionDenied => {
                f.write_str("permission denied (ports below 1024 need privileges)")
            }
            NetError::Unsupported => f.write_str("not supported on this platform"),
            NetError::Os(e) => write!(f, "operating-system error {e}"),
        }
    }
}
