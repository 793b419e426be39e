//! Host sockets: the platform's own TCP/IP, for hosted platforms (`unix`, `net=socket`).
//!
//! Poll-style, like `Future::poll`: an operation that cannot complete now registers the task's
//! waker with the platform, whose [`Platform::wait`](crate::Platform::wait) wakes it when the
//! socket is ready. Bare-metal platforms have no host sockets ([`NoSockets`]).

use core::net::{IpAddr, SocketAddr};
use core::task::{Context, Poll};

/// What a host socket operation can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockError {
    /// The platform has no host sockets.
    Unsupported,
    /// The port is already in use.
    AddrInUse,
    /// The address is not available on this host.
    AddrNotAvailable,
    /// Not allowed (a privileged port, for instance).
    PermissionDenied,
    /// Refused or reset by the peer.
    Reset,
    /// The connection is closed for this operation.
    Closed,
    /// The name does not resolve.
    NameNotFound,
    /// Another operating-system error (its `errno`).
    Os(i32),
}

/// The platform's sockets.
pub trait HostSockets: 'static {
    /// Whether the platform has host sockets at all.
    const AVAILABLE: bool;
    /// A listening TCP socket.
    type Listener;
    /// A TCP connection.
    type Stream;
    /// A UDP socket.
    type Udp;

    /// Listens on TCP `port` on all addresses of both families where the host has them.
    fn listen(port: u16) -> Result<Self::Listener, SockError>;
    /// Accepts a connection.
    fn poll_accept(
        l: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Self::Stream, SocketAddr), SockError>>;
    /// Starts connecting to `addr`.
    fn connect(addr: SocketAddr) -> Result<Self::Stream, SockError>;
    /// Completes a connection started by [`HostSockets::connect`].
    fn poll_connected(s: &Self::Stream, cx: &mut Context<'_>) -> Poll<Result<(), SockError>>;
    /// Reads; `Ok(0)` at the end of the stream.
    fn poll_read(
        s: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, SockError>>;
    /// Writes some of `buf`.
    fn poll_write(
        s: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, SockError>>;
    /// Closes the sending side.
    fn shutdown(s: &Self::Stream);
    /// The peer's address.
    fn peer(s: &Self::Stream) -> Option<SocketAddr>;
    /// Binds UDP `port` (0: any), both families where the host has them.
    fn udp_bind(port: u16) -> Result<Self::Udp, SockError>;
    /// Sends a datagram.
    fn poll_send_to(
        u: &Self::Udp,
        cx: &mut Context<'_>,
        data: &[u8],
        to: SocketAddr,
    ) -> Poll<Result<(), SockError>>;
    /// Receives a datagram.
    fn poll_recv_from(
        u: &Self::Udp,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<(usize, SocketAddr), SockError>>;
    /// Resolves a name with the host's resolver (may block briefly).
    fn resolve(name: &str) -> Result<alloc::vec::Vec<IpAddr>, SockError>;
}

/// No host sockets.
pub struct NoSockets;

/// Never constructed.
pub enum NoSocket {}

impl HostSockets for NoSockets {
    const AVAILABLE: bool = false;
    type Listener = NoSocket;
    type Stream = NoSocket;
    type Udp = NoSocket;

    fn listen(_: u16) -> Result<NoSocket, SockError> {
        Err(SockError::Unsupported)
    }
    fn poll_accept(
        l: &NoSocket,
        _: &mut Context<'_>,
    ) -> Poll<Result<(NoSocket, SocketAddr), SockError>> {
        match *l {}
    }
    fn connect(_: SocketAddr) -> Result<NoSocket, SockError> {
        Err(SockError::Unsupported)
    }
    fn poll_connected(s: &NoSocket, _: &mut Context<'_>) -> Poll<Result<(), SockError>> {
        match *s {}
    }
    fn poll_read(
        s: &NoSocket,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<Result<usize, SockError>> {
        match *s {}
    }
    fn poll_write(s: &NoSocket, _: &mut Context<'_>, _: &[u8]) -> Poll<Result<usize, SockError>> {
        match *s {}
    }
    fn shutdown(s: &NoSocket) {
        match *s {}
    }
    fn peer(s: &NoSocket) -> Option<SocketAddr> {
        match *s {}
    }
    fn udp_bind(_: u16) -> Result<NoSocket, SockError> {
        Err(SockError::Unsupported)
    }
    fn poll_send_to(
        u: &NoSocket,
        _: &mut Context<'_>,
        _: &[u8],
        _: SocketAddr,
    ) -> Poll<Result<(), SockError>> {
        match *u {}
    }
    fn poll_recv_from(
        u: &NoSocket,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<Result<(usize, SocketAddr), SockError>> {
        match *u {}
    }
    fn resolve(_: &str) -> Result<alloc::vec::Vec<IpAddr>, SockError> {
        Err(SockError::Unsupported)
    }
}
