//! Two stacks on in-memory devices wired back to back, a virtual clock, a minimal executor,
//! frame builders for what the peer stack cannot be made to send (hostile frames, DHCP
//! servers, router advertisements), and a per-thread heap counter.
//!
//! Host `a` (10.0.0.1, fd00::1, MAC ...:0a) is usually the server under test; host `b`
//! (10.0.0.2, fd00::2, MAC ...:0b) the client. A third, fake host (MAC ...:0c) exists only
//! as frames a test injects into `a`; what `a` sends to it lands in `World::to_fake`.

use crate::config::{DhcpMode, NetConfig};
use crate::stack::{Runner, Stack};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::pin::Pin;
use core::task::{Context, Waker};
use fata_hal::mock::MockNet;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, IpRepr,
};

pub(crate) const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub(crate) const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub(crate) const MAC_FAKE: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
pub(crate) const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(crate) const IP_FAKE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
pub(crate) const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub(crate) const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

std::thread_local! {
    static READY: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
    static SPAWNED: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
}

fn on_ready(port: u16) {
    READY.with(|r| r.borrow_mut().push(port));
}

/// Ports announced ready so far on this thread (and clears the record).
pub(crate) fn take_ready() -> Vec<u16> {
    READY.with(|r| core::mem::take(&mut *r.borrow_mut()))
}

/// Static settings for a test host: its address, big limits, no memory guard.
pub(crate) fn config(v4: Ipv4Addr, v6: Ipv6Addr) -> NetConfig {
    NetConfig {
        dhcp: DhcpMode::Off,
        ipv4: Some((v4, 24)),
        ipv6: Some((v6, 64)),
        slaac: false,
        tcp_rx_buffer: 2048,
        tcp_tx_buffer: 2048,
        max_tcp: 4096,
        ..NetConfig::default()
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A task's wake-up flag: a task is polled only when something woke it (or it is new), as a
/// real executor does, so a lost wake-up leaves it stuck and fails the test.
#[derive(Default)]
struct Woken(core::sync::atomic::AtomicBool);

impl alloc::task::Wake for Woken {
    fn wake(self: alloc::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &alloc::sync::Arc<Self>) {
        self.0.store(true, core::sync::atomic::Ordering::Relaxed);
    }
}

/// A task and its wake-up flag.
struct Spawned {
    task: Task,
    woken: alloc::sync::Arc<Woken>,
}

impl Spawned {
    fn new(task: Task) -> Spawned {
        let woken = alloc::sync::Arc::new(Woken::default());
        woken.0.store(true, core::sync::atomic::Ordering::Relaxed);
        Spawned { task, woken }
    }

    /// Polls the task if it was woken; returns whether it is still pending.
    fn poll_if_woken(&mut self) -> bool {
        if !self
            .woken
            .0
            .swap(false, core::sync::atomic::Ordering::Relaxed)
        {
            return true;
        }
        let waker = Waker::from(self.woken.clone());
        self.task
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    }
}

/// Starts a task on the world running on this thread.
pub(crate) fn spawn(f: impl Future<Output = ()> + 'static) {
    SPAWNED.with(|s| s.borrow_mut().push(Box::pin(f)));
}

pub(crate) struct Host {
    pub(crate) runner: Runner<MockNet>,
    pub(crate) stack: Stack,
    pub(crate) next: Option<u64>,
}

impl Host {
    pub(crate) fn new(mac: [u8; 6], config: NetConfig, now: u64, seed: u64) -> Host {
        let (runner, stack) = Runner::new(MockNet::new(mac), config, now, seed, on_ready);
        Host {
            runner,
            stack,
            next: None,
        }
    }
}

pub(crate) struct World {
    pub(crate) now: u64,
    pub(crate) a: Host,
    pub(crate) b: Host,
    tasks: Vec<Spawned>,
    /// Frames `a` sent to the fake host (or to everyone).
    pub(crate) to_fake: Vec<Vec<u8>>,
    /// Every frame `a` sent, if recording.
    pub(crate) sent_by_a: Option<Vec<Vec<u8>>>,
    /// Drop every frame between `a` and `b` (a peer that vanished).
    pub(crate) cut: bool,
}

impl World {
    pub(crate) fn new(a: NetConfig, b: NetConfig) -> World {
        take_ready();
        World {
            now: 1000,
            a: Host::new(MAC_A, a, 1000, 1),
            b: Host::new(MAC_B, b, 1000, 2),
            tasks: Vec::new(),
            to_fake: Vec::new(),
            sent_by_a: None,
            cut: false,
        }
    }

    /// Two statically addressed hosts with default test settings, `a` changed by `f`.
    pub(crate) fn pair(f: impl FnOnce(&mut NetConfig)) -> World {
        let mut a = config(IP_A, IP6_A);
        f(&mut a);
        World::new(a, config(IP_B, IP6_B))
    }

    /// Queues a frame for `a` as if it came from the wire.
    pub(crate) fn inject(&mut self, frame: Vec<u8>) {
        self.a.runner.device_mut().inject(frame);
    }

    fn adopt_spawned(&mut self) {
        let new: Vec<Task> = SPAWNED.with(|s| core::mem::take(&mut *s.borrow_mut()));
        self.tasks.extend(new.into_iter().map(Spawned::new));
    }

    /// One round: every woken task polled, both stacks polled, frames moved. Returns whether any
    /// frame moved.
    fn step(&mut self) -> bool {
        self.adopt_spawned();
        self.tasks.retain_mut(Spawned::poll_if_woken);
        self.adopt_spawned();
        self.a.next = self.a.runner.poll(self.now);
        self.b.next = self.b.runner.poll(self.now);
        let from_a = self.a.runner.device_mut().sent();
        let from_b = self.b.runner.device_mut().sent();
        let moved = !from_a.is_empty() || !from_b.is_empty();
        for f in from_a {
            if let Some(log) = self.sent_by_a.as_mut() {
                log.push(f.clone());
            }
            let dst = &f[..6];
            if dst == MAC_FAKE || dst[0] & 1 == 1 {
                self.to_fake.push(f.clone());
            }
            if !self.cut && (dst == MAC_B || dst[0] & 1 == 1) {
                self.b.runner.device_mut().inject(f);
            }
        }
        for f in from_b {
            if !self.cut {
                self.a.runner.device_mut().inject(f);
            }
        }
        moved
    }

    /// Runs until `done` holds or the clock passes `limit_ms` from now; returns whether `done`
    /// held. Time only moves when nothing is on the wire, to the next deadline either stack
    /// asked for (at least 1 ms).
    pub(crate) fn run_until(
        &mut self,
        limit_ms: u64,
        mut done: impl FnMut(&mut World) -> bool,
    ) -> bool {
        let end = self.now + limit_ms;
        loop {
            if done(self) {
                return true;
            }
            if self.now > end {
                return false;
            }
            // A second round lets tasks see what the stacks did in the first (a real executor
            // would have been woken); only then is the world idle.
            let moved = self.step() || self.step();
            let pending = !self.a.runner.device_mut().inbox.is_empty()
                || !self.b.runner.device_mut().inbox.is_empty();
            if !moved && !pending && !done(self) {
                let next = [self.a.next, self.b.next]
                    .into_iter()
                    .flatten()
                    .filter(|t| *t > self.now)
                    .min()
                    .unwrap_or(self.now + 1);
                self.now = next.max(self.now + 1).min(end + 1);
            }
        }
    }

    /// Runs for `ms` of virtual time.
    pub(crate) fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        self.run_until(ms, |w| w.now >= end);
    }
}

/// A value a task fills in, to be checked by the test.
pub(crate) fn cell<T>(v: T) -> Rc<RefCell<T>> {
    Rc::new(RefCell::new(v))
}

/// A counter tasks bump.
pub(crate) fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn checksums() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

/// An Ethernet frame from the fake host to `a` carrying an IPv4 packet.
pub(crate) fn ipv4_frame(
    dst_ip: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
    emit: impl FnOnce(&mut [u8], &IpAddress, &IpAddress),
) -> Vec<u8> {
    ipv4_frame_from(
        MAC_FAKE,
        IP_FAKE,
        MAC_A,
        dst_ip,
        protocol,
        payload_len,
        emit,
    )
}

pub(crate) fn ipv4_frame_from(
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_mac: [u8; 6],
    dst_ip: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
    emit: impl FnOnce(&mut [u8], &IpAddress, &IpAddress),
) -> Vec<u8> {
    let ip = IpRepr::new(src_ip.into(), dst_ip.into(), protocol, payload_len, 64);
    ip_frame(src_mac, dst_mac, ip, emit)
}

/// An Ethernet frame to `dst_mac` carrying an IPv6 packet.
pub(crate) fn ipv6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    protocol: IpProtocol,
    payload_len: usize,
    emit: impl FnOnce(&mut [u8], &IpAddress, &IpAddress),
) -> Vec<u8> {
    let ip = IpRepr::new(src_ip.into(), dst_ip.into(), protocol, payload_len, 255);
    ip_frame(src_mac, dst_mac, ip, emit)
}

/// An Ethernet frame carrying the IP packet `ip`, its payload written by `emit`.
fn ip_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: IpRepr,
    emit: impl FnOnce(&mut [u8], &IpAddress, &IpAddress),
) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: match ip {
            IpRepr::Ipv4(_) => EthernetProtocol::Ipv4,
            IpRepr::Ipv6(_) => EthernetProtocol::Ipv6,
        },
    };
    let mut buf = alloc::vec![0u8; eth.buffer_len() + ip.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let packet = frame.payload_mut();
    ip.emit(&mut packet[..], &checksums());
    emit(
        &mut packet[ip.header_len()..],
        &ip.src_addr(),
        &ip.dst_addr(),
    );
    buf
}

/// A TCP segment from the fake host to `a`.
pub(crate) fn tcp_from_fake(
    sport: u16,
    dport: u16,
    control: smoltcp::wire::TcpControl,
    seq: i32,
    ack: Option<i32>,
) -> Vec<u8> {
    use smoltcp::wire::{TcpPacket, TcpRepr, TcpSeqNumber};
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(seq),
        ack_number: ack.map(TcpSeqNumber),
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    ipv4_frame(IP_A, IpProtocol::Tcp, repr.buffer_len(), |b, s, d| {
        repr.emit(&mut TcpPacket::new_unchecked(b), s, d, &checksums());
    })
}

/// The IPv4 destination of an ARP request or reply frame is not needed; this answers `a`'s ARP
/// requests for the fake host so `a` can send it replies.
pub(crate) fn arp_reply_for_fake() -> Vec<u8> {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr};
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(MAC_FAKE),
        source_protocol_addr: IP_FAKE,
        target_hardware_addr: EthernetAddress(MAC_A),
        target_protocol_addr: IP_A,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(MAC_FAKE),
        dst_addr: EthernetAddress(MAC_A),
        ethertype: EthernetProtocol::Arp,
    };
    let mut buf = alloc::vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// An address as the API returns it.
pub(crate) fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}
