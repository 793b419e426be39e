//! The stack: the interface, the socket set, and the runner that moves frames between the
//! device and smoltcp. TCP socket lifecycles live in `conns.rs`, addressing in `addr.rs`.

use crate::config::{NetConfig, NetCounters};
use crate::conns::{Conn, Listener};
use crate::device::{Adapter, Filter};
use crate::slab::Slab;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr};
use core::task::Waker;
use fata_hal::net::NetDevice;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::socket::{dns, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress};

/// Frames processed per poll at most: timers and transmission keep going under a flood, and
/// tasks get to run; the rest wait in the device for the next round.
const FRAMES_PER_POLL: usize = 1024;
/// Aborted sockets waiting for their reset to go out, at most, before the stack sends it at
/// once: bounds the memory a burst of reclaims holds.
const DYING_FLUSH: usize = 8;

pub(crate) struct Inner {
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    /// Slots the socket set has grown to (it never shrinks by itself; see `compact`).
    set_slots: usize,
    pub(crate) config: NetConfig,
    pub(crate) conns: Slab<Conn>,
    pub(crate) listeners: Slab<Listener>,
    pub(crate) orphans: Vec<crate::slab::Id>,
    pub(crate) udp: Slab<SocketHandle>,
    pub(crate) dns: SocketHandle,
    pub(crate) dhcp: Option<SocketHandle>,
    /// Aborted sockets whose reset has not been sent yet; removed after the next egress.
    pub(crate) dying: Vec<SocketHandle>,
    pub(crate) runner_waker: Option<Waker>,
    pub(crate) now_ms: u64,
    pub(crate) on_ready: fn(u16),
    pub(crate) next_port: u16,
    pub(crate) counters: NetCounters,
    pub(crate) addr: crate::addr::Addressing,
    /// Listener ports without a listening socket, as last told to the device filter.
    pub(crate) full_ports: Vec<u16>,
    /// Polls in a row that asked to be polled again at once with no frame waiting.
    spins: u64,
}

impl Inner {
    pub(crate) fn wake_runner(&mut self) {
        if let Some(w) = self.runner_waker.take() {
            w.wake();
        }
    }

    /// Adds a socket to the set, keeping count of the set's size.
    pub(crate) fn add_socket<S: smoltcp::socket::AnySocket<'static>>(
        &mut self,
        s: S,
    ) -> SocketHandle {
        let h = self.sockets.add(s);
        self.set_slots = self.set_slots.max(self.live_sockets());
        h
    }

    fn live_sockets(&self) -> usize {
        self.conns.len() + self.udp.len() + self.dying.len() + 1 + usize::from(self.dhcp.is_some())
    }

    /// A new UDP socket bound to `port` (0: an ephemeral one).
    pub(crate) fn new_udp(&mut self, port: u16) -> Result<crate::slab::Id, crate::NetError> {
        let port = match port {
            0 => self.ephemeral_port().ok_or(crate::NetError::Exhausted)?,
            p => p,
        };
        if self.udp_port_in_use(port) {
            return Err(crate::NetError::PortInUse(port));
        }
        let n = self.config.udp_buffer.max(2048);
        let slots = (n / 512).clamp(4, 64);
        let rx = udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; slots],
            alloc::vec![0; n],
        );
        let tx = udp::PacketBuffer::new(
            alloc::vec![udp::PacketMetadata::EMPTY; slots],
            alloc::vec![0; n],
        );
        let mut s = udp::Socket::new(rx, tx);
        if s.bind(port).is_err() {
            return Err(crate::NetError::InvalidInput);
        }
        let h = self.add_socket(s);
        Ok(self.udp.insert(h))
    }

    pub(crate) fn remove_udp(&mut self, id: crate::slab::Id) {
        if let Some(h) = self.udp.remove(id) {
            self.sockets.remove(h);
        }
    }

    fn udp_port_in_use(&self, port: u16) -> bool {
        self.udp
            .iter()
            .any(|(_, &h)| self.sockets.get::<udp::Socket>(h).endpoint().port == port)
    }

    /// An unused local port for outgoing connections and unbound UDP sockets: the next one
    /// in 49152..=65535 (wrapping) that no TCP connection or UDP socket uses; `None` when
    /// every one is taken.
    pub(crate) fn ephemeral_port(&mut self) -> Option<u16> {
        for _ in 0..=(65535 - 49152) {
            let p = self.next_port;
            self.next_port = if p == 65535 { 49152 } else { p + 1 };
            let tcp_uses = self.conns.iter().any(|(_, c)| {
                self.sockets
                    .get::<tcp::Socket>(c.handle)
                    .local_endpoint()
                    .is_some_and(|e| e.port == p)
            });
            if !tcp_uses && !self.udp_port_in_use(p) {
                return Some(p);
            }
        }
        None
    }

    /// Removes aborted sockets (after the egress that sent their resets).
    pub(crate) fn remove_dying(&mut self) {
        for h in core::mem::take(&mut self.dying) {
            self.sockets.remove(h);
        }
    }

    /// Rebuilds the socket set when it has grown to four times what is alive, so the memory of
    /// a peak of connections returns. Every stored handle is renamed.
    fn compact(&mut self) {
        let live = self.live_sockets();
        // Worth it from 16 slots (8 KiB) on: a threshold of 64 let a set compacted at 50 live
        // sockets keep 25 KiB for ever once they were gone.
        if self.set_slots < 16 || live * 4 > self.set_slots {
            return;
        }
        self.remove_dying();
        let old_handles: Vec<SocketHandle> = self.sockets.iter().map(|(h, _)| h).collect();
        let mut fresh = SocketSet::new(Vec::with_capacity(old_handles.len()));
        let mut renamed = BTreeMap::new();
        for h in old_handles {
            let s = self.sockets.remove(h);
            renamed.insert(h, fresh.add(s));
        }
        self.sockets = fresh;
        self.set_slots = renamed.len();
        let r = |h: &mut SocketHandle| {
            if let Some(n) = renamed.get(h) {
                *h = *n;
            }
        };
        self.conns.values_mut().for_each(|c| r(&mut c.handle));
        self.udp.values_mut().for_each(r);
        r(&mut self.dns);
        if let Some(h) = self.dhcp.as_mut() {
            r(h);
        }
    }

    #[cfg(test)]
    pub(crate) fn set_slots_for_test(&self) -> usize {
        self.set_slots
    }

    #[cfg(test)]
    pub(crate) fn queue_capacity_for_test(&self) -> usize {
        self.orphans.capacity()
            + self
                .listeners
                .iter()
                .map(|(_, l)| l.queue_capacity())
                .sum::<usize>()
    }

    fn counters_now(&mut self) -> NetCounters {
        self.counters.tcp_sockets = self.conns.len();
        self.counters.tcp_limit = self.config.max_tcp;
        self.counters
    }
}

fn sync_full_ports(f: &Filter, ports: &[u16]) {
    if *f.full_ports.borrow() != ports {
        *f.full_ports.borrow_mut() = ports.to_vec();
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

    /// Whether the interface has the address it waits for (its IPv4 address when it expects
    /// one, from DHCP or static; else an IPv6 address beyond link-local): what the readiness
    /// line `fata: ready tcp/PORT` waits for, and what `/readyz` needs.
    pub fn is_reachable(&self) -> bool {
        self.with(|i| i.reachable())
    }

    /// The interface's IPv4 address and prefix length, once configured.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.with(|i| i.addr.v4.map(|c| (c.address(), c.prefix_len())))
    }

    /// Every address of the interface with its prefix length: IPv4, the IPv6 link-local
    /// address, static and SLAAC IPv6 addresses.
    pub fn addresses(&self) -> Vec<(IpAddr, u8)> {
        self.with(|i| {
            i.iface
                .ip_addrs()
                .iter()
                .map(|c| (c.address().into(), c.prefix_len()))
                .collect()
        })
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
        self.with(|i| i.counters_now())
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
    /// bound and the interface has an address.
    ///
    /// `seed` (the runtime passes `fata::rand::u64()`) picks the first ephemeral port
    /// (49152 + seed mod 16384; later ones follow in order) and seeds smoltcp's generator, from
    /// which smoltcp 0.14 draws every TCP initial sequence number, IPv4 id and DHCP
    /// transaction id. That generator is a 64-bit LCG with a PCG output step, seeded once and
    /// offering no per-connection hook: its numbers differ from boot to boot, but an observer
    /// who sees a few of them can predict the next (docs/networking.md).
    pub fn new(
        device: D,
        config: NetConfig,
        now_ms: u64,
        seed: u64,
        on_ready: fn(u16),
    ) -> (Runner<D>, Stack) {
        let mut device = Adapter {
            dev: device,
            filter: Filter::new(config.reply_rate),
        };
        let mac = EthernetAddress(device.dev.mac());
        let mut c = Config::new(HardwareAddress::Ethernet(mac));
        c.random_seed = seed;
        c.slaac = config.slaac;
        let iface = Interface::new(c, &mut device, Instant::from_millis(now_ms as i64));
        let mut sockets = SocketSet::new(Vec::new());
        let queries: Vec<Option<dns::DnsQuery>> = (0..4).map(|_| None).collect();
        let dns = sockets.add(dns::Socket::new(&[], queries));
        let (addr, dhcp) = crate::addr::Addressing::new(&config, now_ms, &mut sockets);
        let mut inner = Inner {
            iface,
            sockets,
            set_slots: 2,
            config,
            conns: Slab::default(),
            listeners: Slab::default(),
            orphans: Vec::new(),
            udp: Slab::default(),
            dns,
            dhcp,
            dying: Vec::new(),
            runner_waker: None,
            now_ms,
            on_ready,
            next_port: 49152 + (seed % 16384) as u16,
            counters: NetCounters::default(),
            addr,
            full_ports: Vec::new(),
            spins: 0,
        };
        inner.configure_at_start(mac);
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
        self.device.dev.service();
    }

    /// The device (for tests that inject and collect frames).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device.dev
    }

    /// Processes every waiting frame (up to a bound) and timer and sends what is due. Returns
    /// when the stack next needs polling (monotonic milliseconds), if ever.
    pub fn poll(&mut self, now_ms: u64) -> Option<u64> {
        let mut inner = self.stack.inner.borrow_mut();
        let i = &mut *inner;
        let dev = &mut self.device;
        i.now_ms = now_ms;
        dev.filter.now_ms.set(now_ms);
        let ts = Instant::from_millis(now_ms as i64);
        let mut more = true;
        for _ in 0..FRAMES_PER_POLL {
            match i.iface.poll_ingress_single(ts, dev, &mut i.sockets) {
                PollIngressSingleResult::None => {
                    more = false;
                    break;
                }
                PollIngressSingleResult::PacketProcessed
                | PollIngressSingleResult::SocketStateChanged => {
                    i.refill_listeners(false);
                    sync_full_ports(&dev.filter, &i.full_ports);
                    if i.dying.len() >= DYING_FLUSH {
                        i.iface.poll_egress(ts, dev, &mut i.sockets);
                        i.remove_dying();
                    }
                }
            }
        }
        i.iface.poll_maintenance(ts);
        i.iface.poll_egress(ts, dev, &mut i.sockets);
        i.remove_dying();
        i.poll_addressing();
        i.maintain_tcp();
        i.refill_listeners(true);
        sync_full_ports(&dev.filter, &i.full_ports);
        i.announce();
        i.iface.poll_egress(ts, dev, &mut i.sockets);
        i.remove_dying();
        i.compact();
        i.counters.device = dev.dev.stats();
        i.counters.syn_dropped = dev.filter.syn_dropped.get();
        i.counters.icmp_limited = dev.filter.icmp_limited.get();
        i.counters.rst_limited = dev.filter.rst_limited.get();
        let next = i
            .iface
            .poll_at(ts, &i.sockets)
            .map(|t| t.total_millis().max(0) as u64);
        let again = more.then_some(now_ms);
        let (tcp, addr) = (i.tcp_deadline(), i.addr.deadline(&i.config, now_ms));
        let due = [again, next, tcp, addr].into_iter().flatten().min();
        // A stack that asks to be polled again at once, over and over, with no frame waiting,
        // is spinning: say so once (with what it is waiting for) rather than burn the CPU
        // unexplained.
        if due.is_some_and(|t| t <= now_ms) && !more {
            i.spins += 1;
            if i.spins == 100_000 {
                log::warn!(
                    "net: the stack asked to be polled at once 100000 times in a row (smoltcp {next:?}, tcp {tcp:?}, addressing {addr:?}, now {now_ms})"
                );
            }
        } else {
            i.spins = 0;
        }
        due
    }
}
