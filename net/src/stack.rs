//! The stack: interface, sockets, DHCP/static configuration, listeners with backlogs, and the
//! runner that moves frames between the device and smoltcp.

use crate::device::Adapter;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::Ipv4Addr;
use core::task::Waker;
use fata_hal::net::{NetDevice, NetStats};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, dns, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr};

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpMode {
    /// DHCP unless a static address is given.
    Auto,
    /// DHCP; the static address (if given) is the fallback when no server answers in time.
    On,
    /// Static address only.
    Off,
}

/// Interface and socket settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// DHCP or static.
    pub dhcp: DhcpMode,
    /// Static address and prefix length.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Default gateway for the static address.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers for the static address (DHCP supplies its own).
    pub dns: Vec<Ipv4Addr>,
    /// How long DHCP may take before the static fallback applies.
    pub dhcp_timeout_ms: u64,
    /// Receive buffer of each TCP connection.
    pub tcp_rx_buffer: usize,
    /// Send buffer of each TCP connection.
    pub tcp_tx_buffer: usize,
    /// Listening sockets kept ready per listener.
    pub backlog: usize,
    /// Connections per listener waiting in SYN-RECEIVED or for `accept`, at most.
    pub max_pending: usize,
    /// TCP sockets of all kinds (listening, connected, closing) at most: each holds two
    /// buffers, so this bounds the memory a connection flood can take.
    pub max_tcp: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            dhcp: DhcpMode::Auto,
            ipv4: None,
            gateway: None,
            dns: Vec::new(),
            dhcp_timeout_ms: 5000,
            tcp_rx_buffer: 8192,
            tcp_tx_buffer: 8192,
            backlog: 8,
            max_pending: 64,
            max_tcp: 256,
        }
    }
}

/// Stack counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Connections handed to `accept`.
    pub accepted: u64,
    /// Half-open or unaccepted connections aborted because a listener's queue was full (SYN
    /// floods land here).
    pub pending_dropped: u64,
    /// Orphaned connections that had to be aborted because they did not close in time.
    pub close_timeouts: u64,
    /// TCP sockets not created because `max_tcp` were in use (connections refused).
    pub tcp_limit_hits: u64,
    /// The device's own counters, as of the last poll.
    pub device: NetStats,
}

pub(crate) struct Listener {
    pub(crate) port: u16,
    listening: Vec<SocketHandle>,
    half_open: VecDeque<SocketHandle>,
    pub(crate) ready: VecDeque<SocketHandle>,
    pub(crate) waker: Option<Waker>,
    announced: bool,
}

struct Orphan {
    handle: SocketHandle,
    deadline_ms: u64,
    aborted: bool,
}

pub(crate) struct Inner {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) config: NetConfig,
    dhcp: Option<SocketHandle>,
    pub(crate) dns: SocketHandle,
    pub(crate) listeners: Vec<Option<Listener>>,
    orphans: Vec<Orphan>,
    runner_waker: Option<Waker>,
    pub(crate) address: Option<Ipv4Cidr>,
    pub(crate) now_ms: u64,
    started_ms: u64,
    fallback_done: bool,
    on_ready: fn(u16),
    next_port: u16,
    pub(crate) counters: NetCounters,
    tcp_count: usize,
}

/// How long a closed connection may linger before it is aborted.
const CLOSE_TIMEOUT_MS: u64 = 10_000;

impl Inner {
    /// A new TCP socket, unless `max_tcp` are in use.
    pub(crate) fn new_tcp_socket(&mut self) -> Option<SocketHandle> {
        if self.tcp_count >= self.config.max_tcp {
            self.counters.tcp_limit_hits += 1;
            return None;
        }
        self.tcp_count += 1;
        let rx = tcp::SocketBuffer::new(vec![0; self.config.tcp_rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; self.config.tcp_tx_buffer]);
        let mut s = tcp::Socket::new(rx, tx);
        s.set_nagle_enabled(false);
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(60)));
        Some(self.sockets.add(s))
    }

    /// Removes a TCP socket.
    pub(crate) fn remove_tcp(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
        self.tcp_count -= 1;
    }

    /// An unused local port for outgoing connections.
    pub(crate) fn ephemeral_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p >= 65000 { 49152 } else { p + 1 };
        p
    }

    /// Closes a socket whose owner is gone; it is removed once closed (or aborted after a
    /// timeout).
    pub(crate) fn orphan(&mut self, handle: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(handle).close();
        self.orphans.push(Orphan {
            handle,
            deadline_ms: self.now_ms + CLOSE_TIMEOUT_MS,
            aborted: false,
        });
        self.wake_runner();
    }

    pub(crate) fn wake_runner(&mut self) {
        if let Some(w) = self.runner_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn port_in_use(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
    }

    pub(crate) fn add_listener(&mut self, port: u16) -> usize {
        let l = Listener {
            port,
            listening: Vec::new(),
            half_open: VecDeque::new(),
            ready: VecDeque::new(),
            waker: None,
            announced: false,
        };
        let id = match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        };
        self.maintain_listeners();
        self.announce();
        id
    }

    pub(crate) fn remove_listener(&mut self, id: usize) {
        let Some(l) = self.listeners.get_mut(id).and_then(Option::take) else {
            return;
        };
        for h in l.listening {
            self.remove_tcp(h);
        }
        for h in l.half_open.into_iter().chain(l.ready) {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.orphans.push(Orphan {
                handle: h,
                deadline_ms: self.now_ms,
                aborted: true,
            });
        }
        self.wake_runner();
    }

    /// Moves connections that left LISTEN into the listener's queues, caps the queues and
    /// opens new listening sockets. Runs after every received frame, so a burst of SYNs finds
    /// a listening socket for each connection the queues can hold.
    fn maintain_listeners(&mut self) {
        let backlog = self.config.backlog.max(1);
        let cap = self.config.max_pending.max(backlog);
        for id in 0..self.listeners.len() {
            let Some(mut l) = self.listeners[id].take() else {
                continue;
            };
            let before = l.ready.len();
            let mut i = 0;
            while i < l.listening.len() {
                let h = l.listening[i];
                match self.sockets.get::<tcp::Socket>(h).state() {
                    tcp::State::Listen => i += 1,
                    tcp::State::SynReceived => {
                        l.listening.swap_remove(i);
                        l.half_open.push_back(h);
                    }
                    tcp::State::Established | tcp::State::CloseWait => {
                        l.listening.swap_remove(i);
                        l.ready.push_back(h);
                    }
                    _ => {
                        l.listening.swap_remove(i);
                        self.remove_tcp(h);
                    }
                }
            }
            let mut still = VecDeque::new();
            while let Some(h) = l.half_open.pop_front() {
                match self.sockets.get::<tcp::Socket>(h).state() {
                    tcp::State::SynReceived => still.push_back(h),
                    tcp::State::Established | tcp::State::CloseWait => l.ready.push_back(h),
                    _ => {
                        self.remove_tcp(h);
                    }
                }
            }
            l.half_open = still;
            while l.half_open.len() + l.ready.len() > cap {
                let h = match l.half_open.pop_front() {
                    Some(h) => h,
                    None => l
                        .ready
                        .pop_front()
                        .expect("queues over the cap are not empty"),
                };
                self.sockets.get_mut::<tcp::Socket>(h).abort();
                self.orphans.push(Orphan {
                    handle: h,
                    deadline_ms: self.now_ms,
                    aborted: true,
                });
                self.counters.pending_dropped += 1;
            }
            while l.listening.len() < backlog
                && l.half_open.len() + l.ready.len() + l.listening.len() < cap + backlog
            {
                let Some(h) = self.new_tcp_socket() else {
                    break;
                };
                if self
                    .sockets
                    .get_mut::<tcp::Socket>(h)
                    .listen(l.port)
                    .is_err()
                {
                    self.remove_tcp(h);
                    break;
                }
                l.listening.push(h);
            }
            if l.ready.len() > before
                && let Some(w) = l.waker.take()
            {
                w.wake();
            }
            self.listeners[id] = Some(l);
        }
    }

    fn reap_orphans(&mut self) {
        let now = self.now_ms;
        let mut i = 0;
        while i < self.orphans.len() {
            let o = &mut self.orphans[i];
            let s = self.sockets.get_mut::<tcp::Socket>(o.handle);
            let state = s.state();
            if state == tcp::State::Closed || state == tcp::State::TimeWait {
                let h = o.handle;
                self.orphans.swap_remove(i);
                self.remove_tcp(h);
                continue;
            }
            if !o.aborted && now >= o.deadline_ms {
                s.abort();
                o.aborted = true;
                self.counters.close_timeouts += 1;
            }
            i += 1;
        }
    }

    /// Prints the readiness line for every bound listener once the interface has an address.
    fn announce(&mut self) {
        if self.address.is_none() {
            return;
        }
        for l in self.listeners.iter_mut().flatten() {
            if !l.announced {
                l.announced = true;
                (self.on_ready)(l.port);
            }
        }
    }

    fn set_address(&mut self, cidr: Ipv4Cidr, gateway: Option<Ipv4Addr>, dns: &[Ipv4Addr]) {
        self.iface.update_ip_addrs(|a| {
            a.clear();
            let _ = a.push(IpCidr::Ipv4(cidr));
        });
        match gateway {
            Some(gw) => {
                let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        let servers: Vec<IpAddress> = dns.iter().map(|&d| IpAddress::Ipv4(d)).collect();
        self.sockets
            .get_mut::<dns::Socket>(self.dns)
            .update_servers(&servers);
        self.address = Some(cidr);
        self.announce();
    }

    fn clear_address(&mut self) {
        self.iface.update_ip_addrs(|a| a.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
        self.address = None;
    }

    fn static_config(&mut self) -> Option<(Ipv4Cidr, Option<Ipv4Addr>, Vec<Ipv4Addr>)> {
        let (a, len) = self.config.ipv4?;
        Some((
            Ipv4Cidr::new(a, len),
            self.config.gateway,
            self.config.dns.clone(),
        ))
    }

    fn poll_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            Some(dhcpv4::Event::Configured(c)) => {
                let dns: Vec<Ipv4Addr> = c.dns_servers.iter().copied().collect();
                log::info!(
                    "net: DHCP lease {} from {}, gateway {}, dns {:?}",
                    c.address,
                    c.server.address,
                    c.router
                        .map_or(alloc::string::String::from("none"), |r| alloc::format!(
                            "{r}"
                        )),
                    dns
                );
                Some(Some((c.address, c.router, dns)))
            }
            Some(dhcpv4::Event::Deconfigured) => Some(None),
            None => None,
        };
        match event {
            Some(Some((address, router, dns))) => self.set_address(address, router, &dns),
            // smoltcp also reports "deconfigured" when the client starts: only a lost lease counts.
            Some(None) if self.address.is_some() => {
                log::warn!("net: DHCP lease lost");
                self.clear_address();
            }
            Some(None) => {}
            None => {}
        }
    }

    fn check_fallback(&mut self) {
        if self.fallback_done || self.dhcp.is_none() || self.address.is_some() {
            return;
        }
        if self.now_ms < self.started_ms + self.config.dhcp_timeout_ms {
            return;
        }
        self.fallback_done = true;
        match self.static_config() {
            Some((cidr, gw, dns)) => {
                log::warn!(
                    "net: no DHCP answer within {} ms; falling back to the static address {cidr}",
                    self.config.dhcp_timeout_ms
                );
                if let Some(h) = self.dhcp.take() {
                    self.sockets.remove(h); // the DHCP socket
                }
                self.set_address(cidr, gw, &dns);
            }
            None => log::warn!(
                "net: no DHCP answer within {} ms; still trying (set ipv4= for a static fallback)",
                self.config.dhcp_timeout_ms
            ),
        }
    }

    fn fallback_deadline(&self) -> Option<u64> {
        (!self.fallback_done && self.dhcp.is_some() && self.address.is_none())
            .then_some(self.started_ms + self.config.dhcp_timeout_ms)
    }
}

/// A handle on the network stack. Clone it freely; all clones are the same stack.
#[derive(Clone)]
pub struct Stack {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

impl Stack {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.borrow_mut())
    }

    /// The interface's IPv4 address and prefix length, once configured.
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        self.with(|i| i.address.map(|c| (c.address(), c.prefix_len())))
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.with(|i| match i.iface.hardware_addr() {
            HardwareAddress::Ethernet(e) => e.0,
            #[allow(unreachable_patterns)]
            _ => [0; 6],
        })
    }

    /// Counters (stack and device).
    pub fn counters(&self) -> NetCounters {
        self.with(|i| i.counters)
    }

    /// Registers the waker of the task that runs [`Runner::poll`]: socket operations that
    /// need the stack to act (data to send, a window to update, a close) wake it.
    pub fn set_runner_waker(&self, w: &Waker) {
        self.with(|i| i.runner_waker = Some(w.clone()));
    }
}

/// Owns the device and drives the stack.
pub struct Runner<D: NetDevice> {
    device: Adapter<D>,
    stack: Stack,
}

impl<D: NetDevice> Runner<D> {
    /// Creates the stack on `device`. `on_ready(port)` is called once per listener when it is
    /// bound and the interface has an address; `seed` randomises sequence numbers and ports.
    pub fn new(
        device: D,
        config: NetConfig,
        now_ms: u64,
        seed: u64,
        on_ready: fn(u16),
    ) -> (Runner<D>, Stack) {
        let mut device = Adapter(device);
        let mac = EthernetAddress(device.0.mac());
        let mut c = Config::new(HardwareAddress::Ethernet(mac));
        c.random_seed = seed;
        let iface = Interface::new(c, &mut device, Instant::from_millis(now_ms as i64));
        let mut sockets = SocketSet::new(Vec::new());
        let queries: Vec<Option<dns::DnsQuery>> = (0..4).map(|_| None).collect();
        let dns_handle = sockets.add(dns::Socket::new(&[], queries));
        let use_dhcp = match config.dhcp {
            DhcpMode::Auto => config.ipv4.is_none(),
            DhcpMode::On => true,
            DhcpMode::Off => false,
        };
        let dhcp = use_dhcp.then(|| sockets.add(dhcpv4::Socket::new()));
        let mut inner = Inner {
            iface,
            sockets,
            config,
            dhcp,
            dns: dns_handle,
            listeners: Vec::new(),
            orphans: Vec::new(),
            runner_waker: None,
            address: None,
            now_ms,
            started_ms: now_ms,
            fallback_done: false,
            on_ready,
            next_port: 49152 + (seed % 15000) as u16,
            counters: NetCounters::default(),
            tcp_count: 0,
        };
        if !use_dhcp {
            match inner.static_config() {
                Some((cidr, gw, dns)) => {
                    log::info!("net: static address {cidr}");
                    inner.set_address(cidr, gw, &dns);
                }
                None => {
                    log::warn!("net: DHCP is off and no ipv4= is set: the interface has no address")
                }
            }
        } else {
            log::info!("net: asking for a DHCP lease");
        }
        let stack = Stack {
            inner: Rc::new(RefCell::new(inner)),
        };
        (
            Runner {
                device,
                stack: stack.clone(),
            },
            stack,
        )
    }

    /// The stack handle.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Lets the device acknowledge its interrupt and reclaim finished work.
    pub fn service_device(&mut self) {
        self.device.0.service();
    }

    /// Processes every waiting frame and timer and sends what is due. Returns when the stack
    /// next needs polling (monotonic milliseconds), if ever.
    pub fn poll(&mut self, now_ms: u64) -> Option<u64> {
        let mut inner = self.stack.inner.borrow_mut();
        let i = &mut *inner;
        i.now_ms = now_ms;
        let ts = Instant::from_millis(now_ms as i64);
        // A bounded number of frames per poll keeps timers and transmission going under a
        // flood; the rest wait for the next round (the device keeps them posted).
        let mut more = true;
        for _ in 0..1024 {
            match i
                .iface
                .poll_ingress_single(ts, &mut self.device, &mut i.sockets)
            {
                PollIngressSingleResult::None => {
                    more = false;
                    break;
                }
                PollIngressSingleResult::PacketProcessed
                | PollIngressSingleResult::SocketStateChanged => i.maintain_listeners(),
            }
        }
        i.iface.poll_egress(ts, &mut self.device, &mut i.sockets);
        i.poll_dhcp();
        i.check_fallback();
        i.maintain_listeners();
        i.reap_orphans();
        i.announce();
        i.iface.poll_egress(ts, &mut self.device, &mut i.sockets);
        i.counters.device = self.device.0.stats();
        let next = i
            .iface
            .poll_at(ts, &i.sockets)
            .map(|t| t.total_millis().max(0) as u64);
        let orphan = i
            .orphans
            .iter()
            .filter(|o| !o.aborted)
            .map(|o| o.deadline_ms)
            .min();
        let again = more.then_some(now_ms);
        [again, next, orphan, i.fallback_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}
