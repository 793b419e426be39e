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
use fata_hal::{Events, Platform};
use fata_net::{DhcpMode, NetConfig, Runner};
pub use fata_net::{
    Ipv4Addr, NetCounters, NetError, SocketAddrV4, Stack, TcpListener, TcpStream, UdpSocket,
};

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
    /// The platform's default: the hypervisor's network card (`service0`).
    Device,
    /// A Linux TAP device (`unix`): `tap:NAME`.
    Tap(alloc::string::String),
}

impl Value for NetSelect {
    const TYPE: &'static str = "device|tap:NAME";
    fn parse(s: &str) -> Result<Self, &'static str> {
        match s {
            "device" => Ok(NetSelect::Device),
            _ => match s.strip_prefix("tap:") {
                Some(n) if !n.is_empty() && n.len() < 16 => Ok(NetSelect::Tap(n.into())),
                _ => Err("expected device or tap:NAME (an interface name of 1 to 15 characters)"),
            },
        }
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetSelect::Device => f.write_str("device"),
            NetSelect::Tap(n) => write!(f, "tap:{n}"),
        }
    }
}

crate::config! {
    /// Network keys, present in every image built with the `net` feature.
    pub struct NetKeys {
        /// Which network: device (the hypervisor's card) or tap:NAME (unix: a TAP device).
        net: NetSelect = NetSelect::Device,
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

/// Opens `service0` and starts the stack's runner task.
pub(crate) fn start(keys: &NetKeys) -> Result<Stack, Unavailable> {
    let name = match &keys.net {
        NetSelect::Device => "service0",
        NetSelect::Tap(n) => n.as_str(),
    };
    let (dev, events) = Plat::open_net(name).map_err(|e| Unavailable(alloc::format!("{e}")))?;
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
    };
    let seed = Plat::monotonic_ns() ^ Plat::wall_ns().unwrap_or(0).rotate_left(17);
    let (runner, stack) = Runner::new(dev, cfg, now_ms(), seed, announce);
    current().add_event_source();
    crate::spawn(run(runner, events));
    Ok(stack)
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
