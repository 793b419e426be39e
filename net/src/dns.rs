//! Name resolution through the DNS servers from DHCP (or the `dns=` key).

use crate::NetError;
use crate::stack::Stack;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::Ipv4Addr;
use core::task::Poll;
use smoltcp::socket::dns;
use smoltcp::wire::{DnsQueryType, IpAddress};

impl Stack {
    /// Resolves `name` to IPv4 addresses (a dotted-quad name resolves to itself).
    pub async fn resolve(&self, name: &str) -> Result<Vec<Ipv4Addr>, NetError> {
        if let Ok(a) = name.parse::<Ipv4Addr>() {
            return Ok(alloc::vec![a]);
        }
        if name.is_empty() || name.len() > 253 {
            return Err(NetError::InvalidInput);
        }
        let q = self.with(|i| {
            if i.address.is_none() {
                return Err(NetError::NoAddress);
            }
            let cx = i.iface.context();
            let r = i
                .sockets
                .get_mut::<dns::Socket>(i.dns)
                .start_query(cx, name, DnsQueryType::A);
            i.wake_runner();
            r.map_err(|e| match e {
                dns::StartQueryError::NoFreeSlot => NetError::Exhausted,
                dns::StartQueryError::NameTooLong | dns::StartQueryError::InvalidName => {
                    NetError::InvalidInput
                }
            })
        })?;
        poll_fn(|cx| {
            self.with(|i| {
                let s = i.sockets.get_mut::<dns::Socket>(i.dns);
                match s.get_query_result(q) {
                    Ok(addrs) => Poll::Ready(Ok(addrs
                        .iter()
                        .filter_map(|a| match a {
                            IpAddress::Ipv4(v4) => Some(*v4),
                            #[allow(unreachable_patterns)]
                            _ => None,
                        })
                        .collect())),
                    Err(dns::GetQueryResultError::Pending) => {
                        s.register_query_waker(q, cx.waker());
                        Poll::Pending
                    }
                    Err(dns::GetQueryResultError::Failed) => {
                        Poll::Ready(Err(NetError::NameNotFound))
                    }
                }
            })
        })
        .await
    }
}
