//! TCP: [`TcpListener`] (with a backlog) and [`TcpStream`].

use crate::NetError;
use crate::stack::Stack;
use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::Poll;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// A bound TCP port that accepts connections.
pub struct TcpListener {
    stack: Stack,
    id: usize,
    port: u16,
}

impl Stack {
    /// Listens on `port` (all addresses). The readiness line `fata: ready tcp/<port>` is
    /// printed once the interface has an address.
    pub fn listen(&self, port: u16) -> Result<TcpListener, NetError> {
        if port == 0 {
            return Err(NetError::InvalidInput);
        }
        self.with(|i| {
            if i.port_in_use(port) {
                return Err(NetError::PortInUse(port));
            }
            Ok(TcpListener {
                stack: self.clone(),
                id: i.add_listener(port),
                port,
            })
        })
    }

    /// Opens a connection to `addr`.
    pub async fn connect(&self, addr: SocketAddrV4) -> Result<TcpStream, NetError> {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(NetError::InvalidInput);
        }
        let handle = self.with(|i| {
            if i.address.is_none() {
                return Err(NetError::NoAddress);
            }
            let Some(h) = i.new_tcp_socket() else {
                return Err(NetError::Exhausted);
            };
            let port = i.ephemeral_port();
            let remote = IpEndpoint::new(IpAddress::Ipv4(*addr.ip()), addr.port());
            let cx = i.iface.context();
            if i.sockets
                .get_mut::<tcp::Socket>(h)
                .connect(cx, remote, port)
                .is_err()
            {
                i.remove_tcp(h);
                return Err(NetError::InvalidInput);
            }
            i.wake_runner();
            Ok(h)
        })?;
        let stream = TcpStream {
            stack: self.clone(),
            handle,
        };
        poll_fn(|cx| {
            self.with(|i| {
                let s = i.sockets.get_mut::<tcp::Socket>(handle);
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
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddrV4), NetError> {
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(l) = i.listeners.get_mut(self.id).and_then(Option::as_mut) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                match l.ready.pop_front() {
                    Some(h) => {
                        i.counters.accepted += 1;
                        // The listener has room again: let the runner refill it.
                        i.wake_runner();
                        let peer = match i.sockets.get::<tcp::Socket>(h).remote_endpoint() {
                            Some(IpEndpoint {
                                addr: IpAddress::Ipv4(a),
                                port,
                            }) => SocketAddrV4::new(a, port),
                            _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        };
                        Poll::Ready(Ok((
                            TcpStream {
                                stack: self.stack.clone(),
                                handle: h,
                            },
                            peer,
                        )))
                    }
                    None => {
                        l.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
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
pub struct TcpStream {
    stack: Stack,
    handle: SocketHandle,
}

impl TcpStream {
    /// Reads into `buf`; `Ok(0)` at the end of the stream (the peer closed its side).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.stack.with(|i| {
                let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
                if s.can_recv() {
                    let n = s.recv_slice(buf).unwrap_or(0);
                    // The receive window opened: the peer may send more once the stack says so.
                    i.wake_runner();
                    return Poll::Ready(Ok(n));
                }
                if !s.may_recv() {
                    // End of stream (peer's FIN, or the connection is gone).
                    return Poll::Ready(Ok(0));
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
                let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
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
                let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
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
            i.sockets.get_mut::<tcp::Socket>(self.handle).close();
            i.wake_runner();
        });
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddrV4> {
        self.stack.with(
            |i| match i.sockets.get::<tcp::Socket>(self.handle).remote_endpoint() {
                Some(IpEndpoint {
                    addr: IpAddress::Ipv4(a),
                    port,
                }) => Some(SocketAddrV4::new(a, port)),
                _ => None,
            },
        )
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.stack.with(|i| i.orphan(self.handle));
    }
}
