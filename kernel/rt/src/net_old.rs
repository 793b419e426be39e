//! Networking for applications (cargo feature `net`): the stack is started at boot on the
//! platform's first network device (`service0`), configured from the keys below, and handed
//! to the application through [`Runtime::net`](crate::Runtime::net).
//!
//! ```ignore
//! let net = rt.net()?;
//! let listener = net.listen(80)?;          // prints `fata: ready tcp/80` once addressed
//! loop {
//!     let (mut conn, peer) = listener.accept().await?;
//!     fata::spawn(async move { /* conn.read / conn.write_all */ });
//! }
//! ```
//! Timeouts: wrap any operation in [`crate::time::timeout`].

use crate::config::{Ipv4List, Ipv4Net, Value};
use crate::executor::current;
use crate::platform::Plat;
use crate::time::{Duration, Instant, sleep_until};
use alloc::string::String;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;
use fata_hal::sockets::{HostSockets, SockError};
use fata_hal::{Events, Platform};
use fata_net::{DhcpMode, NetConfig, Runner};
pub use fata_net::{Ipv4Addr, NetCounters, NetError, SocketAddrV4};

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
    pub struct NetKeys {
        /// Which network: auto (the hypervisor's card, else the host's sockets), device,
        /// socket (unix: the host's sockets, no root needed) or tap:NAME (unix: a TAP device).
        net: NetSelect = NetSelect::Auto,
        /// auto: DHCP unless ipv4 is set; true: DHCP, ipv4 is the fallback; false: static.
        dhcp: Dhcp = Dhcp(DhcpMode::Auto),
        /// Static address with prefix length, e.g. 10.0.0.2/24.
        ipv4: Option<Ipv4Net> = None,
        /// Default gateway for the static address.
        gateway: Option<Ipv4Addr> = None,
        /// DNS servers for the static address (comma-separated).
        dns: Ipv4List = Ipv4List::default(),
        /// How long to wait for DHCP before the static fallback.
        dhcp_timeout: Duration = Duration::from_secs(5),
        /// Receive and send buffer of each TCP connection, in bytes.
        tcp_buffer: usize = 16384,
        /// Listening sockets kept ready per listener.
        backlog: usize = 8,
        /// Connections per listener that may wait (half-open or not yet accepted).
        max_pending: usize = 64,
        /// TCP sockets in all (listening ones included); 0: as many as a third of the heap holds.
        max_connections: usize = 0,
    }
}

/// The network could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn announce(port: u16) {
    let ms = Instant::now().as_nanos() as f64 / 1e6;
    crate::println!("fata: ready tcp/{port} after {ms:.1} ms");
}

fn now_ms() -> u64 {
    Instant::now().as_nanos() / 1_000_000
}

type S = <Plat as Platform>::Sockets;

/// Starts the network selected by the `net` key: the fata stack on a device (with its runner
/// task), or the host's sockets.
pub(crate) fn start(keys: &NetKeys) -> Result<Stack, Unavailable> {
    let name = match &keys.net {
        NetSelect::Socket if S::AVAILABLE => return Ok(host_stack()),
        NetSelect::Socket => {
            return Err(Unavailable(
                "net=socket: this platform has no host sockets".into(),
            ));
        }
        NetSelect::Auto | NetSelect::Device => "service0",
        NetSelect::Tap(n) => n.as_str(),
    };
    let (dev, events) = match Plat::open_net(name) {
        Ok(d) => d,
        Err(fata_hal::net::OpenError::NotFound(_))
            if keys.net == NetSelect::Auto && S::AVAILABLE =>
        {
            return Ok(host_stack());
        }
        Err(e) => return Err(Unavailable(alloc::format!("{e}"))),
    };
    let cfg = NetConfig {
        dhcp: keys.dhcp.0,
        ipv4: keys.ipv4.map(|n| (n.addr, n.prefix)),
        gateway: keys.gateway,
        dns: keys.dns.0.clone(),
        dhcp_timeout_ms: keys.dhcp_timeout.as_millis() as u64,
        tcp_rx_buffer: keys.tcp_buffer.clamp(1024, 1 << 20),
        tcp_tx_buffer: keys.tcp_buffer.clamp(1024, 1 << 20),
        backlog: keys.backlog.clamp(1, 1024),
        max_pending: keys.max_pending.clamp(1, 4096),
        max_tcp: match keys.max_connections {
            // A third of the heap for connections: each costs its two buffers plus about
            // 16 KiB for the application's task and the stack's bookkeeping. Hosted
            // platforms (no heap of their own) get a generous fixed limit.
            0 => crate::heap::stats()
                .map_or(4096, |h| {
                    h.total / 3 / (2 * keys.tcp_buffer.clamp(1024, 1 << 20) + 16 * 1024)
                })
                .clamp(4, 4096),
            n => n.max(1),
        },
    };
    let seed = Plat::monotonic_ns() ^ Plat::wall_ns().unwrap_or(0).rotate_left(17);
    let (runner, stack) = Runner::new(dev, cfg, now_ms(), seed, announce);
    current().add_event_source();
    crate::spawn(run(runner, events));
    Ok(Stack(Backend::Fata(stack)))
}

fn host_stack() -> Stack {
    log::info!("net: using the host's sockets (net=socket)");
    // Host sockets wake tasks from `wait`: waiting with no timer armed is not a deadlock.
    current().add_event_source();
    Stack(Backend::Host)
}

async fn run<D: fata_hal::net::NetDevice + 'static>(mut runner: Runner<D>, events: Events) {
    loop {
        runner.service_device();
        let next = runner.poll(now_ms());
        let stack = runner.stack().clone();
        let mut timer =
            next.map(|ms| sleep_until(Instant::from_nanos(ms.saturating_mul(1_000_000))));
        let mut armed = false;
        poll_fn(|cx| {
            if armed {
                return Poll::Ready(());
            }
            if let Some(t) = timer.as_mut()
                && Pin::new(t).poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            current().on_events(events.0, cx.waker().clone());
            stack.set_runner_waker(cx.waker());
            armed = true;
            Poll::Pending
        })
        .await;
    }
}

/// A short summary for status pages: address and counters.
pub fn summary(stack: &Stack) -> (Option<(Ipv4Addr, u8)>, NetCounters) {
    (stack.address(), stack.counters())
}

fn sock_err(e: SockError, port: u16) -> NetError {
    match e {
        SockError::Unsupported => NetError::Unsupported,
        SockError::AddrInUse => NetError::PortInUse(port),
        SockError::AddrNotAvailable => NetError::AddrNotAvailable,
        SockError::PermissionDenied => NetError::PermissionDenied,
        SockError::Reset => NetError::Reset,
        SockError::Closed => NetError::Closed,
        SockError::NameNotFound => NetError::NameNotFound,
        SockError::Os(n) => NetError::Os(n),
    }
}

#[derive(Clone)]
enum Backend {
    Fata(fata_net::Stack),
    Host,
}

/// The network: fata's own TCP/IP stack on a device, or (on hosted platforms, `net=socket`)
/// the host's sockets. The same API either way. Clone it freely.
#[derive(Clone)]
pub struct Stack(Backend);

impl Stack {
    /// Listens on TCP `port`; prints `fata: ready tcp/<port>` once the port can be reached.
    pub fn listen(&self, port: u16) -> Result<TcpListener, NetError> {
        match &self.0 {
            Backend::Fata(s) => s.listen(port).map(|l| TcpListener(L::Fata(l))),
            Backend::Host => {
                if port == 0 {
                    return Err(NetError::InvalidInput);
                }
                let l = S::listen(port).map_err(|e| sock_err(e, port))?;
                announce(port);
                Ok(TcpListener(L::Host(l, port)))
            }
        }
    }

    /// Opens a TCP connection.
    pub async fn connect(&self, addr: SocketAddrV4) -> Result<TcpStream, NetError> {
        match &self.0 {
            Backend::Fata(s) => s.connect(addr).await.map(|c| TcpStream(T::Fata(c))),
            Backend::Host => {
                let c = S::connect(addr).map_err(|e| sock_err(e, addr.port()))?;
                poll_fn(|cx| S::poll_connected(&c, cx))
                    .await
                    .map_err(|e| sock_err(e, addr.port()))?;
                Ok(TcpStream(T::Host(c)))
            }
        }
    }

    /// Binds UDP `port` (0: an ephemeral port).
    pub fn bind_udp(&self, port: u16) -> Result<UdpSocket, NetError> {
        match &self.0 {
            Backend::Fata(s) => s.bind_udp(port).map(|u| UdpSocket(U::Fata(u))),
            Backend::Host => S::udp_bind(port)
                .map(|u| UdpSocket(U::Host(u)))
                .map_err(|e| sock_err(e, port)),
        }
    }

    /// Resolves a name to IPv4 addresses.
    pub async fn resolve(&self, name: &str) -> Result<alloc::vec::Vec<Ipv4Addr>, NetError> {
        match &self.0 {
            Backend::Fata(s) => s.resolve(name).await,
            Backend::Host => S::resolve(name).map_err(|e| sock_err(e, 0)),
        }
    }

    /// The interface's address (fata's stack; the host's sockets have no single one).
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        match &self.0 {
            Backend::Fata(s) => s.address(),
            Backend::Host => None,
        }
    }

    /// Stack and device counters (zero for the host's sockets).
    pub fn counters(&self) -> NetCounters {
        match &self.0 {
            Backend::Fata(s) => s.counters(),
            Backend::Host => NetCounters::default(),
        }
    }
}

enum L {
    Fata(fata_net::TcpListener),
    Host(<S as HostSockets>::Listener, u16),
}

/// A bound TCP port that accepts connections.
pub struct TcpListener(L);

impl TcpListener {
    /// The port.
    pub fn port(&self) -> u16 {
        match &self.0 {
            L::Fata(l) => l.port(),
            L::Host(_, p) => *p,
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddrV4), NetError> {
        match &self.0 {
            L::Fata(l) => l.accept().await.map(|(c, a)| (TcpStream(T::Fata(c)), a)),
            L::Host(l, port) => poll_fn(|cx| S::poll_accept(l, cx))
                .await
                .map(|(c, a)| (TcpStream(T::Host(c)), a))
                .map_err(|e| sock_err(e, *port)),
        }
    }
}

enum T {
    Fata(fata_net::TcpStream),
    Host(<S as HostSockets>::Stream),
}

/// A TCP connection. Dropping it closes the connection.
pub struct TcpStream(T);

impl TcpStream {
    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        match &mut self.0 {
            T::Fata(c) => c.read(buf).await,
            T::Host(c) => poll_fn(|cx| S::poll_read(c, cx, buf))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }

    /// Writes some of `buf`; returns how much was taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        match &mut self.0 {
            T::Fata(c) => c.write(buf).await,
            T::Host(c) => poll_fn(|cx| S::poll_write(c, cx, buf))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(NetError::Closed);
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything written has left (fata's stack: acknowledged by the peer; host
    /// sockets: handed to the host kernel).
    pub async fn flush(&mut self) -> Result<(), NetError> {
        match &mut self.0 {
            T::Fata(c) => c.flush().await,
            T::Host(_) => Ok(()),
        }
    }

    /// Closes the sending side; reading continues.
    pub fn shutdown(&mut self) {
        match &mut self.0 {
            T::Fata(c) => c.shutdown(),
            T::Host(c) => S::shutdown(c),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddrV4> {
        match &self.0 {
            T::Fata(c) => c.peer_addr(),
            T::Host(c) => S::peer(c),
        }
    }
}

enum U {
    Fata(fata_net::UdpSocket),
    Host(<S as HostSockets>::Udp),
}

/// A bound UDP port.
pub struct UdpSocket(U);

impl UdpSocket {
    /// Sends a datagram to `to`.
    pub async fn send_to(&self, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        match &self.0 {
            U::Fata(u) => u.send_to(data, to).await,
            U::Host(u) => poll_fn(|cx| S::poll_send_to(u, cx, data, to))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }

    /// Receives a datagram into `buf`; returns its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), NetError> {
        match &self.0 {
            U::Fata(u) => u.recv_from(buf).await,
            U::Host(u) => poll_fn(|cx| S::poll_recv_from(u, cx, buf))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }
}

impl<C> crate::Runtime<C> {
    /// The network stack, or why there is none (no device, or the image was built without the
    /// `net` feature's device).
    pub fn net(&self) -> Result<Stack, Unavailable> {
        crate::runtime::net_stack()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Shown, load};

    #[test]
    fn network_keys_parse_and_show() {
        let l = load::<()>(
            "dhcp=true ipv4=10.0.0.2/24 gateway=10.0.0.1 dns=1.1.1.1,9.9.9.9 dhcp_timeout=2s",
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
        assert!(load::<()>("ipv4=10.0.0.2", &|_: &str| false).is_err());
        assert!(load::<()>("ipv4=10.0.0.2/33", &|_: &str| false).is_err());
        assert!(load::<()>("gateway=300.1.1.1", &|_: &str| false).is_err());
        assert!(load::<()>("dhcp=maybe", &|_: &str| false).is_err());
    }
}
