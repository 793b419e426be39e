//! Name resolution through the DNS servers from DHCP or the `dns` setting: A and AAAA
//! queries for the families the interface has addresses of, asked at once.

use crate::NetError;
use crate::stack::Stack;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::IpAddr;
use core::task::Poll;
use smoltcp::socket::dns;
use smoltcp::wire::{DnsQueryType, IpCidr};

impl Stack {
    /// Resolves `name` to addresses: IPv4 (A) if the interface has an IPv4 address, IPv6
    /// (AAAA) if it has one beyond link-local; IPv6 first when both exist. A literal address
    /// resolves to itself.
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, NetError> {
        if let Ok(a) = name.parse::<IpAddr>() {
            return Ok(alloc::vec![a]);
        }
        if name.is_empty() || name.len() > 253 {
            return Err(NetError::InvalidInput);
        }
        let queries = self.with(|i| {
            let (mut v4, mut v6) = (false, false);
            for c in i.iface.ip_addrs() {
                match c {
                    IpCidr::Ipv4(_) => v4 = true,
                    IpCidr::Ipv6(c) if !crate::addr::is_link_local(c) => v6 = true,
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
            let types: Vec<DnsQueryType> = [(v6, DnsQueryType::Aaaa), (v4, DnsQueryType::A)]
                .into_iter()
                .filter_map(|(have, t)| have.then_some(t))
                .collect();
            if types.is_empty() {
                return Err(NetError::NoAddress);
            }
            let mut started = Vec::new();
            for t in types {
                let cx = i.iface.context();
                let s = i.sockets.get_mut::<dns::Socket>(i.dns);
                match s.start_query(cx, name, t) {
                    Ok(q) => started.push(q),
                    Err(e) => {
                        for q in started {
                            s.cancel_query(q);
                        }
                        return Err(match e {
                            dns::StartQueryError::NoFreeSlot => NetError::Exhausted,
                            _ => NetError::InvalidInput,
                        });
                    }
                }
            }
            i.wake_runner();
            Ok(started)
        })?;
        // Each query and its outcome, in the order asked (AAAA first).
        let mut lookup = Lookup {
            stack: self,
            queries: queries.into_iter().map(|q| (q, None)).collect(),
        };
        poll_fn(|cx| lookup.poll(cx)).await;
        let addrs: Vec<IpAddr> = core::mem::take(&mut lookup.queries)
            .into_iter()
            .flat_map(|(_, r)| r.and_then(Result::ok).unwrap_or_default())
            .collect();
        if addrs.is_empty() {
            Err(NetError::NameNotFound)
        } else {
            Ok(addrs)
        }
    }
}

type Outcome = Option<Result<Vec<IpAddr>, ()>>;

/// Queries in flight. Dropped before they finish (a timeout), it cancels them so their slots
/// return; a finished query's slot is already free and must not be cancelled.
struct Lookup<'a> {
    stack: &'a Stack,
    queries: Vec<(dns::QueryHandle, Outcome)>,
}

impl Lookup<'_> {
    fn poll(&mut self, cx: &mut core::task::Context<'_>) -> Poll<()> {
        self.stack.with(|i| {
            let s = i.sockets.get_mut::<dns::Socket>(i.dns);
            for (q, outcome) in self.queries.iter_mut().filter(|(_, o)| o.is_none()) {
                match s.get_query_result(*q) {
                    Ok(addrs) => *outcome = Some(Ok(addrs.iter().map(|a| (*a).into()).collect())),
                    Err(dns::GetQueryResultError::Pending) => {
                        s.register_query_waker(*q, cx.waker())
                    }
                    Err(dns::GetQueryResultError::Failed) => *outcome = Some(Err(())),
                }
            }
        });
        if self.queries.iter().all(|(_, o)| o.is_some()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Lookup<'_> {
    fn drop(&mut self) {
        if self.queries.iter().all(|(_, o)| o.is_some()) {
            return;
        }
        self.stack.with(|i| {
            let s = i.sockets.get_mut::<dns::Socket>(i.dns);
            for (q, _) in self.queries.iter().filter(|(_, o)| o.is_none()) {
                s.cancel_query(*q);
            }
        });
    }
}
