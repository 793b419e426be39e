//! TCP: [`TcpListener`] and [`TcpStream`], over IPv4 and IPv6.

use crate::NetError;
use crate::conns::Role;
use crate::slab::Id;
use crate::stack::Stack;
use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::Poll;
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

/// A bound TCP port that accepts connections on every address of both families.
pub struct TcpListener {
    stack: Stack,
    id: Id,
    port: u16,
}

impl Stack {
    /// Listens on `port` (all addresses, IPv4 and IPv6). The readiness line is printed (through
    /// the runner's `on_ready`) once the interface has an address.
    pub fn listen(&self, port: u16) -> Result<TcpListener, NetError> {
        if port == 0 {
            return Err(NetError::InvalidInput);
        }
        self.with(|i| {
            if i.port_in_use(port) {
                return Err(NetError::PortInUse(port));
            }
            let id = i.add_listener(port);
            i.wake_runner();
            Ok(TcpListener {
                stack: self.clone(),
                id,
                port,
            })
        })
    }

    /// Opens a connection to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, NetError> {
        if addr.port() == 0 || !crate::addr::usable_unicast(addr.ip()) {
            return Err(NetError::InvalidInput);
        }
        let id = self.with(|i| {
            let have_family = i.iface.ip_addrs().iter().any(|c| {
                c.address().version() == smoltcp::wire::IpAddress::from(addr.ip()).version()
            });
            if !have_family {
                return Err(NetError::NoAddress);
            }
            let port = i.ephemeral_port().ok_or(NetError::Exhausted)?;
            let Some(id) = i.new_tcp(Role::Open) else {
                i.counters.tcp_limit_hits += 1;
                return Err(NetError::Exhausted);
            };
            let remote = IpEndpoint::new(addr.ip().into(), addr.port());
            let cx = i.iface.context();
            let h = i.conns.get(id).map(|c| c.handle);
            let ok = h.is_some_and(|h| {
                i.sockets
                    .get_mut::<tcp::Socket>(h)
                    .connect(cx, remote, port)
                    .is_ok()
            });
            if !ok {
                i.orphan(id);
                return Err(NetError::InvalidInput);
            }
            i.wake_runner();
            Ok(id)
        })?;
        let stream = TcpStream {
            stack: self.clone(),
            id,
        };
        poll_fn(|cx| {
            self.with(|i| {
                let Some(s) = i.tcp(id) else {
                    return Poll::Ready(Err(NetError::Reclaimed));
                };
                match s.state() {
                    tcp::State::Established | tcp::State::CloseWait => Poll::Ready(Ok(())),
                    tcp::State::Closed | tcp::State::TimeWait => Poll::Ready(Err(NetError::Reset)),
                    _ => {
                        s.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                }
            })
        })
        .await?;
        Ok(stream)
    }
}

impl TcpListener {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the next established connection.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        poll_fn(|cx| {
            self.stack.with(|i| match i.accept(self.id) {
                None => Poll::Ready(Err(NetError::Closed)),
                Some(Ok(c)) => {
                    // The listener's queue has room again; the runner may need to refill.
                    i.wake_runner();
                    let peer = i
                        .tcp(c)
                        .and_then(|s| s.remote_endpoint())
                        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |e| {
                            SocketAddr::new(e.addr.into(), e.port)
                        });
                    Poll::Ready(Ok((
                        TcpStream {
                            stack: self.stack.clone(),
                            id: c,
                        },
                        peer,
                    )))
                }
                Some(Err(())) => {
                    if let Some(l) = i.listeners.get_mut(self.id) {
                        l.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            })
        })
        .await
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.stack.with(|i| i.remove_listener(self.id));
    }
}

/// A TCP connection. Dropping it closes the connection gracefully in the background.
///
/// When the stack runs out of connections it may reset one the application marked idle
/// ([`TcpStream::set_idle`]); every operation on it then fails with
/// [`NetError::Reclaimed`].
pub struct TcpStream {
    stack: Stack,
    id: Id,
}

impl TcpStream {
    /// Reads into `buf`; `Ok(0)` at the end of the stream (the peer closed its side).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(s) = i.tcp(self.id) else {
                    return Poll::Ready(Err(NetError::Reclaimed));
                };
                if s.can_recv() {
                    let n = s.recv_slice(buf).unwrap_or(0);
                    // The receive window opened: the peer may send more once the stack says so.
                    i.wake_runner();
                    return Poll::Ready(Ok(n));
                }
                if !s.may_recv() {
                    // End of stream (peer's FIN), or the connection is gone.
                    return Poll::Ready(if s.state() == tcp::State::Closed {
                        Err(NetError::Reset)
                    } else {
                        Ok(0)
                    });
                }
                s.register_recv_waker(cx.waker());
                Poll::Pending
            })
        })
        .await
    }

    /// Writes some of `buf`; returns how much was queued.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(s) = i.tcp(self.id) else {
                    return Poll::Ready(Err(NetError::Reclaimed));
                };
                if !s.may_send() {
                    return Poll::Ready(Err(if s.state() == tcp::State::Closed {
                        NetError::Reset
                    } else {
                        NetError::Closed
                    }));
                }
                if s.can_send() {
                    let n = s.send_slice(buf).unwrap_or(0);
                    i.wake_runner();
                    return Poll::Ready(Ok(n));
                }
                s.register_send_waker(cx.waker());
                Poll::Pending
            })
        })
        .await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(s) = i.tcp(self.id) else {
                    return Poll::Ready(Err(NetError::Reclaimed));
                };
                if s.send_queue() == 0 {
                    return Poll::Ready(Ok(()));
                }
                if !s.is_open() {
                    return Poll::Ready(Err(NetError::Reset));
                }
                s.register_send_waker(cx.waker());
                Poll::Pending
            })
        })
        .await
    }

    /// Closes the sending side (sends FIN after the queued data); reading continues.
    pub fn shutdown(&mut self) {
        self.stack.with(|i| {
            if let Some(s) = i.tcp(self.id) {
                s.close();
            }
            i.wake_runner();
        });
    }

    /// Marks the connection idle (or busy again): waiting for the peer's next request with
    /// nothing in flight, like an HTTP keep-alive connection between requests. When the stack
    /// is at its connection limit and a new client arrives, it resets the connection that has
    /// been idle longest — only if nothing is queued in either direction at that moment — and
    /// operations on it then fail with [`NetError::Reclaimed`]. Connections start busy.
    pub fn set_idle(&mut self, idle: bool) {
        self.stack.with(|i| {
            let now = i.now_ms;
            if let Some(c) = i.conns.get_mut(self.id)
                && c.idle != idle
            {
                c.idle = idle;
                c.since_ms = now;
            }
        });
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stack.with(|i| {
            let e = i.tcp(self.id)?.remote_endpoint()?;
            Some(SocketAddr::new(e.addr.into(), e.port))
        })
    }

    /// The local address the connection uses.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stack.with(|i| {
            let e = i.tcp(self.id)?.local_endpoint()?;
            Some(SocketAddr::new(e.addr.into(), e.port))
        })
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.stack.with(|i| i.orphan(self.id));
    }
}
