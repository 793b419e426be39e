//! UDP sockets.

use crate::NetError;
use crate::stack::Stack;
use alloc::vec;
use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::Poll;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// A bound UDP port.
pub struct UdpSocket {
    stack: Stack,
    handle: SocketHandle,
}

impl Stack {
    /// Binds UDP `port` (0: an ephemeral port).
    pub fn bind_udp(&self, port: u16) -> Result<UdpSocket, NetError> {
        self.with(|i| {
            let port = if port == 0 { i.ephemeral_port() } else { port };
            let rx =
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1024]);
            let tx =
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1024]);
            let mut s = udp::Socket::new(rx, tx);
            if s.bind(port).is_err() {
                return Err(NetError::PortInUse(port));
            }
            Ok(UdpSocket {
                stack: self.clone(),
                handle: i.sockets.add(s),
            })
        })
    }
}

impl UdpSocket {
    /// Sends a datagram to `to`.
    pub async fn send_to(&self, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(NetError::InvalidInput);
        }
        let ep = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        poll_fn(|cx| {
            self.stack.with(|i| {
                if i.address.is_none() {
                    return Poll::Ready(Err(NetError::NoAddress));
                }
                let s = i.sockets.get_mut::<udp::Socket>(self.handle);
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
                    Err(udp::SendError::Unaddressable) => Poll::Ready(Err(NetError::InvalidInput)),
                }
            })
        })
        .await
    }

    /// Receives a datagram into `buf` (truncated if longer); returns its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), NetError> {
        poll_fn(|cx| {
            self.stack.with(|i| {
                let s = i.sockets.get_mut::<udp::Socket>(self.handle);
                match s.recv_slice(buf) {
                    Ok((n, meta)) => {
                        let from = match meta.endpoint.addr {
                            IpAddress::Ipv4(a) => a,
                            #[allow(unreachable_patterns)]
                            _ => Ipv4Addr::UNSPECIFIED,
                        };
                        Poll::Ready(Ok((n, SocketAddrV4::new(from, meta.endpoint.port))))
                    }
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
        self.stack.with(|i| {
            i.sockets.remove(self.handle);
        });
    }
}
