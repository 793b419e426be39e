//! Networking for applications (cargo feature `net`): the stack is started at boot on the
//! platform's first network device (`service0`), configured from the network keys, and handed
//! to the application through [`Runtime::net`](crate::Runtime::net). IPv4 and IPv6.
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
//!
//! The same types run on fata's own TCP/IP stack (`fata-net` over a device) or, on hosted
//! platforms with `net=socket`, on the host's sockets.

#[cfg(feature = "acme")]
pub mod acme;
#[cfg(feature = "tls")]
pub mod https;
mod keys;
mod start;
#[cfg(feature = "tls")]
pub mod tls;

pub(crate) use keys::NetKeys;
pub use keys::{Dhcp, NetSelect};
pub(crate) use start::start;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::poll_fn;
use fata_hal::sockets::{HostSockets, SockError};
pub use fata_net::{
    IpAddr, Ipv4Addr, Ipv6Addr, NetCounters, NetError, SocketAddr, SocketAddrV4, SocketAddrV6,
};
use start::{HostImpl, announce};

/// The network could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

/// Which TCP/IP implementation a [`Stack`] and its sockets use.
#[derive(Clone)]
enum Backend {
    /// fata's own stack on a network device.
    Own(fata_net::Stack),
    /// The host's sockets.
    Host,
}

/// The network: fata's own TCP/IP stack on a device, or (on hosted platforms, `net=socket`)
/// the host's sockets. The same API either way. Clone it freely.
#[derive(Clone)]
pub struct Stack(Backend);

impl Stack {
    /// Listens on TCP `port`, all addresses of both families; prints `fata: ready tcp/<port>`
    /// once the port can be reached.
    pub fn listen(&self, port: u16) -> Result<TcpListener, NetError> {
        match &self.0 {
            Backend::Own(s) => s.listen(port).map(|l| TcpListener(ListenerImpl::Own(l))),
            Backend::Host => {
                if port == 0 {
                    return Err(NetError::InvalidInput);
                }
                let l = HostImpl::listen(port).map_err(|e| sock_err(e, port))?;
                announce(port);
                Ok(TcpListener(ListenerImpl::Host(l, port)))
            }
        }
    }

    /// Opens a TCP connection (`(Ipv4Addr, u16)`, `SocketAddrV6`, ... all convert).
    pub async fn connect(&self, addr: impl Into<SocketAddr>) -> Result<TcpStream, NetError> {
        let addr = addr.into();
        match &self.0 {
            Backend::Own(s) => s.connect(addr).await.map(|c| TcpStream(StreamImpl::Own(c))),
            Backend::Host => {
                let c = HostImpl::connect(addr).map_err(|e| sock_err(e, addr.port()))?;
                poll_fn(|cx| HostImpl::poll_connected(&c, cx))
                    .await
                    .map_err(|e| sock_err(e, addr.port()))?;
                Ok(TcpStream(StreamImpl::Host(c)))
            }
        }
    }

    /// Binds UDP `port` (0: an ephemeral port), all addresses of both families.
    pub fn bind_udp(&self, port: u16) -> Result<UdpSocket, NetError> {
        match &self.0 {
            Backend::Own(s) => s.bind_udp(port).map(|u| UdpSocket(UdpImpl::Own(u))),
            Backend::Host => HostImpl::udp_bind(port)
                .map(|u| UdpSocket(UdpImpl::Host(u)))
                .map_err(|e| sock_err(e, port)),
        }
    }

    /// Resolves a name to addresses (AAAA and A records for the families the interface
    /// has; IPv6 first when it has both).
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, NetError> {
        match &self.0 {
            Backend::Own(s) => s.resolve(name).await,
            Backend::Host => HostImpl::resolve(name).map_err(|e| sock_err(e, 0)),
        }
    }

    /// The interface's IPv4 address and prefix length, once configured (fata's stack; the
    /// host's sockets have no single one).
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        match &self.0 {
            Backend::Own(s) => s.ipv4(),
            Backend::Host => None,
        }
    }

    /// Every address of the interface with its prefix length (fata's stack; empty for the
    /// host's sockets).
    pub fn addresses(&self) -> Vec<(IpAddr, u8)> {
        match &self.0 {
            Backend::Own(s) => s.addresses(),
            Backend::Host => Vec::new(),
        }
    }

    /// Whether the interface has the address it waits for (DHCP lease, static address or
    /// SLAAC); always true for the host's sockets.
    pub fn is_reachable(&self) -> bool {
        match &self.0 {
            Backend::Own(s) => s.is_reachable(),
            Backend::Host => true,
        }
    }

    /// Stack and device counters (zero for the host's sockets).
    pub fn counters(&self) -> NetCounters {
        match &self.0 {
            Backend::Own(s) => s.counters(),
            Backend::Host => NetCounters::default(),
        }
    }
}

enum ListenerImpl {
    Own(fata_net::TcpListener),
    Host(<HostImpl as HostSockets>::Listener, u16),
}

/// A bound TCP port that accepts connections.
pub struct TcpListener(ListenerImpl);

impl TcpListener {
    /// The port.
    pub fn port(&self) -> u16 {
        match &self.0 {
            ListenerImpl::Own(l) => l.port(),
            ListenerImpl::Host(_, p) => *p,
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        match &self.0 {
            ListenerImpl::Own(l) => l
                .accept()
                .await
                .map(|(c, a)| (TcpStream(StreamImpl::Own(c)), a)),
            ListenerImpl::Host(l, port) => poll_fn(|cx| HostImpl::poll_accept(l, cx))
                .await
                .map(|(c, a)| (TcpStream(StreamImpl::Host(c)), a))
                .map_err(|e| sock_err(e, *port)),
        }
    }
}

enum StreamImpl {
    Own(fata_net::TcpStream),
    Host(<HostImpl as HostSockets>::Stream),
}

/// A connection an application protocol can run over: plain TCP ([`TcpStream`]) or, with
/// the `tls` feature, TLS ([`tls::TlsStream`]), so one HTTP server serves both.
#[allow(async_fn_in_trait)] // single-threaded executor: no Send bound wanted
pub trait Stream {
    /// Why an operation failed ([`NetError`] for TCP, `TlsError` for TLS).
    type Error: fmt::Display;
    /// Reads at least one byte, or returns 0 when the peer has closed.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;
    /// Sends all of `buf`.
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error>;
    /// Closes the sending direction (TLS: after close_notify) and waits until what was sent
    /// has been acknowledged; bound it with a timeout.
    async fn close(&mut self);
    /// Closes the sending direction at once, without waiting (TLS: without close_notify;
    /// for a peer that has gone or misbehaved).
    fn shutdown(&mut self);
    /// Marks the connection idle (between requests), so the stack may close it first when
    /// it is at its connection limit.
    fn set_idle(&mut self, idle: bool);
}

impl Stream for TcpStream {
    type Error = NetError;
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        TcpStream::read(self, buf).await
    }
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        TcpStream::write_all(self, buf).await
    }
    async fn close(&mut self) {
        TcpStream::shutdown(self);
        let _ = TcpStream::flush(self).await;
    }
    fn shutdown(&mut self) {
        TcpStream::shutdown(self)
    }
    fn set_idle(&mut self, idle: bool) {
        TcpStream::set_idle(self, idle)
    }
}

/// A TCP connection. Dropping it closes the connection.
pub struct TcpStream(StreamImpl);

impl TcpStream {
    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        match &mut self.0 {
            StreamImpl::Own(c) => c.read(buf).await,
            StreamImpl::Host(c) => poll_fn(|cx| HostImpl::poll_read(c, cx, buf))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }

    /// Writes some of `buf`; returns how much was taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        match &mut self.0 {
            StreamImpl::Own(c) => c.write(buf).await,
            StreamImpl::Host(c) => poll_fn(|cx| HostImpl::poll_write(c, cx, buf))
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
            StreamImpl::Own(c) => c.flush().await,
            StreamImpl::Host(_) => Ok(()),
        }
    }

    /// Closes the sending side; reading continues.
    pub fn shutdown(&mut self) {
        match &mut self.0 {
            StreamImpl::Own(c) => c.shutdown(),
            StreamImpl::Host(c) => HostImpl::shutdown(c),
        }
    }

    /// Marks the connection idle (waiting for the peer's next request, nothing in flight) or
    /// busy. At its connection limit, fata's stack resets the connection idle longest to make
    /// room for a new client rather than refuse it; operations on it then fail with
    /// [`NetError::Reclaimed`]. The host's sockets ignore the mark.
    pub fn set_idle(&mut self, idle: bool) {
        if let StreamImpl::Own(c) = &mut self.0 {
            c.set_idle(idle);
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match &self.0 {
            StreamImpl::Own(c) => c.peer_addr(),
            StreamImpl::Host(c) => HostImpl::peer(c),
        }
    }
}

enum UdpImpl {
    Own(fata_net::UdpSocket),
    Host(<HostImpl as HostSockets>::Udp),
}

/// A bound UDP port.
pub struct UdpSocket(UdpImpl);

impl UdpSocket {
    /// Sends a datagram to `to`.
    pub async fn send_to(&self, data: &[u8], to: impl Into<SocketAddr>) -> Result<(), NetError> {
        let to = to.into();
        match &self.0 {
            UdpImpl::Own(u) => u.send_to(data, to).await,
            UdpImpl::Host(u) => poll_fn(|cx| HostImpl::poll_send_to(u, cx, data, to))
                .await
                .map_err(|e| sock_err(e, 0)),
        }
    }

    /// Receives a datagram into `buf`; returns its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        match &self.0 {
            UdpImpl::Own(u) => u.recv_from(buf).await,
            UdpImpl::Host(u) => poll_fn(|cx| HostImpl::poll_recv_from(u, cx, buf))
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
