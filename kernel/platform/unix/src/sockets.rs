//! Socket mode (`net=socket`): fata's TCP/UDP API over the host's own sockets, rootless.
//!
//! Every socket is non-blocking. An operation that would block registers its descriptor, the
//! readiness it waits for and the task's waker with the reactor; `wait` adds those descriptors
//! to its `ppoll` set and wakes the tasks whose sockets became ready.

use fata_hal::sockets::{HostSockets, SockError};
use std::io::{ErrorKind, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
    UdpSocket,
};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Descriptors tasks wait on: (fd, poll events, waker).
static WAITERS: Mutex<Vec<(RawFd, i16, Waker)>> = Mutex::new(Vec::new());

fn register(fd: RawFd, events: i16, w: &Waker) {
    let mut v = WAITERS.lock().unwrap_or_else(|e| e.into_inner());
    if !v
        .iter()
        .any(|(f, e, old)| *f == fd && *e == events && old.will_wake(w))
    {
        v.push((fd, events, w.clone()));
    }
}

/// The descriptors to poll for waiting tasks.
pub(crate) fn poll_set() -> Vec<(RawFd, i16)> {
    WAITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(f, e, _)| (*f, *e))
        .collect()
}

/// Wakes (and forgets) the tasks waiting on `fd` for any of `revents`.
pub(crate) fn ready(fd: RawFd, revents: i16) {
    let mut woken = Vec::new();
    WAITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(f, e, w)| {
            // Errors and hang-ups wake every waiter of the descriptor.
            if *f == fd && (revents & (*e | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0) {
                woken.push(w.clone());
                false
            } else {
                true
            }
        });
    for w in woken {
        w.wake();
    }
}

fn forget(fd: RawFd) {
    WAITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(f, _, _)| *f != fd);
}

fn err(e: std::io::Error) -> SockError {
    match e.kind() {
        ErrorKind::AddrInUse => SockError::AddrInUse,
        ErrorKind::AddrNotAvailable => SockError::AddrNotAvailable,
        ErrorKind::PermissionDenied => SockError::PermissionDenied,
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted => SockError::Reset,
        ErrorKind::BrokenPipe | ErrorKind::NotConnected => SockError::Closed,
        _ => SockError::Os(e.raw_os_error().unwrap_or(0)),
    }
}

/// An address as the application sees it: IPv4 peers of a dual-stack socket arrive as
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and are shown as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Binds `port` on every address: IPv6 `[::]` (dual stack, as Linux does by default), or
/// `0.0.0.0` where the host has no IPv6.
fn bind_any<T>(port: u16, bind: impl Fn(SocketAddr) -> std::io::Result<T>) -> std::io::Result<T> {
    match bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::AddrNotAvailable | ErrorKind::Unsupported | ErrorKind::InvalidInput
            ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))
        }
        r => r,
    }
}

/// The outcome of a non-blocking operation on `fd`: done, or (would block) the task waits for
/// `events` on it.
fn io<T>(
    r: std::io::Result<T>,
    fd: RawFd,
    events: i16,
    cx: &mut Context<'_>,
) -> Poll<Result<T, SockError>> {
    match r {
        Ok(v) => Poll::Ready(Ok(v)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            register(fd, events, cx.waker());
            Poll::Pending
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Err(e) => Poll::Ready(Err(err(e))),
    }
}

/// A socket that leaves the reactor when dropped.
pub struct Sock<T: AsRawFd>(T);

impl<T: AsRawFd> Drop for Sock<T> {
    fn drop(&mut self) {
        forget(self.0.as_raw_fd());
    }
}

/// The host's sockets.
pub struct Host;

impl HostSockets for Host {
    const AVAILABLE: bool = true;
    type Listener = Sock<TcpListener>;
    type Stream = Sock<TcpStream>;
    type Udp = Sock<UdpSocket>;

    fn listen(port: u16) -> Result<Self::Listener, SockError> {
        let l = bind_any(port, TcpListener::bind).map_err(err)?;
        l.set_nonblocking(true).map_err(err)?;
        Ok(Sock(l))
    }

    fn poll_accept(
        l: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Self::Stream, SocketAddr), SockError>> {
        io(l.0.accept(), l.0.as_raw_fd(), libc::POLLIN, cx).map(|r| {
            let (s, peer) = r?;
            s.set_nonblocking(true).map_err(err)?;
            let _ = s.set_nodelay(true); // latency only
            Ok((Sock(s), canonical(peer)))
        })
    }

    fn connect(addr: SocketAddr) -> Result<Self::Stream, SockError> {
        // A blocking connect (bounded): the executor waits for it, which is acceptable for a
        // development target and keeps this module free of raw socket calls.
        let s =
            TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10)).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        let _ = s.set_nodelay(true);
        Ok(Sock(s))
    }

    fn poll_connected(_: &Self::Stream, _: &mut Context<'_>) -> Poll<Result<(), SockError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_read(
        s: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, SockError>> {
        io((&s.0).read(buf), s.0.as_raw_fd(), libc::POLLIN, cx)
    }

    fn poll_write(
        s: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, SockError>> {
        io((&s.0).write(buf), s.0.as_raw_fd(), libc::POLLOUT, cx)
    }

    fn shutdown(s: &Self::Stream) {
        let _ = s.0.shutdown(Shutdown::Write);
    }

    fn peer(s: &Self::Stream) -> Option<SocketAddr> {
        s.0.peer_addr().ok().map(canonical)
    }

    fn udp_bind(port: u16) -> Result<Self::Udp, SockError> {
        let u = bind_any(port, UdpSocket::bind).map_err(err)?;
        u.set_nonblocking(true).map_err(err)?;
        Ok(Sock(u))
    }

    fn poll_send_to(
        u: &Self::Udp,
        cx: &mut Context<'_>,
        data: &[u8],
        to: SocketAddr,
    ) -> Poll<Result<(), SockError>> {
        // A dual-stack socket reaches IPv4 peers through their IPv4-mapped address.
        let to = match (to, u.0.local_addr()) {
            (SocketAddr::V4(v4), Ok(SocketAddr::V6(_))) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => to,
        };
        io(
            u.0.send_to(data, to).map(|_| ()),
            u.0.as_raw_fd(),
            libc::POLLOUT,
            cx,
        )
    }

    fn poll_recv_from(
        u: &Self::Udp,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<(usize, SocketAddr), SockError>> {
        io(u.0.recv_from(buf), u.0.as_raw_fd(), libc::POLLIN, cx)
            .map(|r| r.map(|(n, from)| (n, canonical(from))))
    }

    fn resolve(name: &str) -> Result<Vec<IpAddr>, SockError> {
        let addrs = (name, 0)
            .to_socket_addrs()
            .map_err(|_| SockError::NameNotFound)?;
        let mut v: Vec<IpAddr> = Vec::new();
        for a in addrs {
            if !v.contains(&a.ip()) {
                v.push(a.ip());
            }
        }
        if v.is_empty() {
            Err(SockError::NameNotFound)
        } else {
            Ok(v)
        }
    }
}
