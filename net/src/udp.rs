//! UDP sockets, over IPv4 and IPv6.

use crate::NetError;
use crate::slab::Id;
use crate::stack::Stack;
use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::Poll;
use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

/// A bound UDP port (all addresses, both families).
pub struct UdpSocket {
    stack: Stack,
    id: Id,
}

impl Stack {
    /// Binds UDP `port` (0: an ephemeral port).
    pub fn bind_udp(&self, port: u16) -> Result<UdpSocket, NetError> {
        self.with(|i| {
            Ok(UdpSocket {
                stack: self.clone(),
                id: i.new_udp(port)?,
            })
        })
    }
}

impl UdpSocket {
    /// Sends a datagram to `to`.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<(), NetError> {
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(NetError::InvalidInput);
        }
        let ep = IpEndpoint::new(to.ip().into(), to.port());
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(&h) = i.udp.get(self.id) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                let s = i.sockets.get_mut::<udp::Socket>(h);
                if data.len() > s.payload_send_capacity() {
                    return Poll::Ready(Err(NetError::TooLarge));
                }
                match s.send_slice(data, ep) {
                    Ok(()) => {
                        i.wake_runner();
                        Poll::Ready(Ok(()))
                    }
                    Err(udp::SendError::BufferFull) => {
                        s.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::NoAddress)),
                }
            })
        })
        .await
    }

    /// Receives a datagram into `buf`; returns its length and sender. A datagram longer than
    /// `buf` is dropped with [`NetError::TooLarge`].
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        poll_fn(|cx| {
            self.stack.with(|i| {
                let Some(&h) = i.udp.get(self.id) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                let s = i.sockets.get_mut::<udp::Socket>(h);
                match s.recv_slice(buf) {
                    Ok((n, meta)) => Poll::Ready(Ok((
                        n,
                        SocketAddr::new(meta.endpoint.addr.into(), meta.endpoint.port),
                    ))),
                    Err(udp::RecvError::Exhausted) => {
                        s.register_recv_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(udp::RecvError::Truncated) => Poll::Ready(Err(NetError::TooLarge)),
                }
            })
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.stack.with(|i| i.remove_udp(self.id));
    }
}
