//! Test doubles: a platform with a virtual clock that [`Platform::wait`] advances to the
//! deadline, and a console that records what was written. Per-thread state, so unit tests
//! running in parallel do not see each other.
extern crate std;

use crate::{Events, ExitCode, Nanos, Platform};
use std::cell::{Cell, RefCell};
use std::string::String;
use std::vec::Vec;

std::thread_local! {
    static NOW: Cell<Nanos> = const { Cell::new(0) };
    static CONSOLE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static WAITS: RefCell<Vec<Option<Nanos>>> = const { RefCell::new(Vec::new()) };
    static ENTROPY: RefCell<Vec<MockEntropy>> = const { RefCell::new(Vec::new()) };
    static ENTROPY_FILLS: Cell<u64> = const { Cell::new(0) };
}

/// A platform whose clock only moves when the code under test waits.
pub struct MockPlatform;

impl MockPlatform {
    /// Sets the virtual clock.
    pub fn set_now(ns: Nanos) {
        NOW.with(|n| n.set(ns));
    }

    /// Everything written to the console so far (lossy UTF-8), and clears it.
    pub fn take_console() -> String {
        CONSOLE
            .with(|c| String::from_utf8_lossy(&core::mem::take(&mut *c.borrow_mut())).into_owned())
    }

    /// Sets the entropy sources that [`Platform::entropy_sources`] hands out (none by default).
    pub fn set_entropy(sources: Vec<MockEntropy>) {
        ENTROPY.with(|e| *e.borrow_mut() = sources);
    }

    /// How many times any mock entropy source was asked to fill a buffer (successfully or not).
    pub fn entropy_fills() -> u64 {
        ENTROPY_FILLS.with(|n| n.get())
    }

    /// The deadlines passed to `wait`, in order, and clears them.
    pub fn take_waits() -> Vec<Option<Nanos>> {
        WAITS.with(|w| core::mem::take(&mut *w.borrow_mut()))
    }
}

impl Platform for MockPlatform {
    const NAME: &'static str = "mock";
    type Net = crate::net::NoNet;
    type Sockets = crate::sockets::NoSockets;
    type Block = MemDisk;

    fn open_block(_: &str) -> Result<(MemDisk, Events), crate::block::OpenError> {
        Err(crate::block::OpenError::NotFound(
            "the mock platform has no disks (use MemDisk directly)".into(),
        ))
    }

    fn open_net(_: &str) -> Result<(crate::net::NoNet, Events), crate::net::OpenError> {
        Err(crate::net::OpenError::NotFound(
            "the mock platform has no network device",
        ))
    }

    fn entropy_sources() -> Vec<std::boxed::Box<dyn crate::entropy::EntropySource>> {
        ENTROPY.with(|e| {
            e.borrow()
                .iter()
                .map(|s| std::boxed::Box::new(s.clone()) as _)
                .collect()
        })
    }

    fn console_write(bytes: &[u8]) {
        CONSOLE.with(|c| c.borrow_mut().extend_from_slice(bytes));
    }

    fn monotonic_ns() -> Nanos {
        NOW.with(|n| n.get())
    }

    fn wall_ns() -> Option<Nanos> {
        None
    }

    fn wait(deadline: Option<Nanos>) -> Events {
        WAITS.with(|w| w.borrow_mut().push(deadline));
        match deadline {
            Some(d) => NOW.with(|n| n.set(n.get().max(d))),
            None => panic!("mock platform: wait without deadline would sleep forever"),
        }
        Events::NONE
    }

    fn exit(code: ExitCode) -> ! {
        panic!("mock platform: exit({code:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_wait_advances_clock_to_deadline_and_never_back() {
        MockPlatform::set_now(100);
        MockPlatform::wait(Some(50));
        assert_eq!(MockPlatform::monotonic_ns(), 100);
        MockPlatform::wait(Some(500));
        assert_eq!(MockPlatform::monotonic_ns(), 500);
        assert_eq!(MockPlatform::take_waits(), [Some(50), Some(500)]);
    }

    #[test]
    fn mock_entropy_sources_are_handed_out_as_set_and_a_failing_one_fails() {
        use crate::entropy::EntropyError;
        assert!(
            MockPlatform::entropy_sources().is_empty(),
            "none by default"
        );
        MockPlatform::set_entropy(std::vec![
            MockEntropy::new("a", 10),
            MockEntropy::failing("b", EntropyError::Timeout),
        ]);
        let mut s = MockPlatform::entropy_sources();
        let names: Vec<_> = s.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["a", "b"]);
        let mut buf = [0u8; 3];
        s[0].fill(&mut buf).unwrap();
        s[0].fill(&mut buf).unwrap();
        assert_eq!(buf, [13, 14, 15], "the stream continues");
        assert_eq!(s[1].fill(&mut buf), Err(EntropyError::Timeout));
        assert_eq!(MockPlatform::entropy_fills(), 3);
    }
}

/// An entropy source for unit tests: a named, deterministic byte stream (each fill continues
/// where the last ended, starting from `seed`), or a source that always fails with `fails`.
#[derive(Clone, Debug)]
pub struct MockEntropy {
    /// The name it reports.
    pub name: &'static str,
    /// Where its stream starts.
    pub seed: u8,
    /// Bytes produced so far.
    pub produced: u64,
    /// The error every fill returns, if set.
    pub fails: Option<crate::entropy::EntropyError>,
}

impl MockEntropy {
    /// A source `name` whose bytes are `seed, seed + 1, ...` (wrapping).
    pub fn new(name: &'static str, seed: u8) -> MockEntropy {
        MockEntropy {
            name,
            seed,
            produced: 0,
            fails: None,
        }
    }

    /// A source `name` that always fails with `e`.
    pub fn failing(name: &'static str, e: crate::entropy::EntropyError) -> MockEntropy {
        MockEntropy {
            fails: Some(e),
            ..MockEntropy::new(name, 0)
        }
    }
}

impl crate::entropy::EntropySource for MockEntropy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), crate::entropy::EntropyError> {
        ENTROPY_FILLS.with(|n| n.set(n.get() + 1));
        if let Some(e) = &self.fails {
            return Err(e.clone());
        }
        for b in buf {
            *b = self.seed.wrapping_add(self.produced as u8);
            self.produced += 1;
        }
        Ok(())
    }
}

/// A network device for unit tests: frames pushed with [`MockNet::inject`] are received,
/// frames the stack sends are collected for [`MockNet::sent`]. Two devices can be wired
/// back to back by moving frames between them.
#[derive(Default)]
pub struct MockNet {
    /// Frames waiting to be received.
    pub inbox: std::collections::VecDeque<Vec<u8>>,
    /// Frames sent.
    pub outbox: Vec<Vec<u8>>,
    /// MAC address.
    pub mac: [u8; 6],
}

impl MockNet {
    /// A device with this MAC address.
    pub fn new(mac: [u8; 6]) -> MockNet {
        MockNet {
            mac,
            ..Default::default()
        }
    }

    /// Queues a frame for reception.
    pub fn inject(&mut self, frame: Vec<u8>) {
        self.inbox.push_back(frame);
    }

    /// Takes the frames sent so far.
    pub fn sent(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.outbox)
    }
}

/// A received mock frame.
pub struct MockRx(Vec<u8>);
/// Room for a mock frame.
pub struct MockTx<'a>(&'a mut Vec<Vec<u8>>);

impl crate::net::RxToken for MockRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl crate::net::TxToken for MockTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = std::vec![0; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl crate::net::NetDevice for MockNet {
    type Rx<'a> = MockRx;
    type Tx<'a> = MockTx<'a>;
    fn receive(&mut self) -> Option<(MockRx, MockTx<'_>)> {
        let f = self.inbox.pop_front()?;
        Some((MockRx(f), MockTx(&mut self.outbox)))
    }
    fn transmit(&mut self) -> Option<MockTx<'_>> {
        Some(MockTx(&mut self.outbox))
    }
    fn caps(&self) -> crate::net::NetCaps {
        crate::net::NetCaps {
            max_frame: 1514,
            max_burst: 64,
        }
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn link_up(&self) -> bool {
        true
    }
    fn stats(&self) -> crate::net::NetStats {
        crate::net::NetStats::default()
    }
    fn service(&mut self) {}
}

/// A block device in memory for unit tests: requests complete in submission order, one
/// [`BlockDevice::service`] call after they were submitted, so callers must wait for them like
/// for a real device. At most `info.max_in_flight` requests are taken at once.
pub struct MemDisk {
    /// The device's properties.
    pub info: crate::block::BlockInfo,
    /// The contents (`info.sectors * info.sector_size` bytes).
    pub data: Vec<u8>,
    /// The next write fails with an I/O error when set (then clears).
    pub fail_next_write: bool,
    queued: std::collections::VecDeque<(u64, crate::block::Request)>,
    done: std::collections::VecDeque<crate::block::Completion>,
    stats: crate::block::BlockStats,
}

impl MemDisk {
    /// A zeroed, writable disk of `sectors` sectors of `sector_size` bytes.
    pub fn new(sector_size: u32, sectors: u64) -> MemDisk {
        MemDisk {
            info: crate::block::BlockInfo {
                sector_size,
                sectors,
                read_only: false,
                max_request_bytes: 64 * 1024,
                max_in_flight: 4,
                cache: crate::block::CacheMode::Volatile,
            },
            data: std::vec![0; (sectors * u64::from(sector_size)) as usize],
            fail_next_write: false,
            queued: Default::default(),
            done: Default::default(),
            stats: Default::default(),
        }
    }

    fn run(&mut self, tag: u64, req: crate::block::Request) -> crate::block::Completion {
        use crate::block::{BlockError, Request};
        let ss = u64::from(self.info.sector_size);
        let result = match req {
            Request::Flush if self.info.read_only => Err(BlockError::ReadOnly),
            Request::Flush => {
                self.stats.flushes += 1;
                Ok(Vec::new())
            }
            Request::Read { sector, mut buf } => {
                self.info.check(sector, buf.len(), false).map(|()| {
                    let at = (sector * ss) as usize;
                    let n = buf.len();
                    buf.copy_from_slice(&self.data[at..at + n]);
                    self.stats.reads += 1;
                    buf
                })
            }
            Request::Write { sector, buf } => {
                let info = self.info;
                info.check(sector, buf.len(), true).and_then(|()| {
                    if core::mem::take(&mut self.fail_next_write) {
                        return Err(BlockError::Io);
                    }
                    let at = (sector * ss) as usize;
                    self.data[at..at + buf.len()].copy_from_slice(&buf);
                    self.stats.writes += 1;
                    Ok(buf)
                })
            }
        };
        crate::block::Completion { tag, result }
    }
}

impl crate::block::BlockDevice for MemDisk {
    fn info(&self) -> crate::block::BlockInfo {
        self.info
    }
    fn submit(&mut self, tag: u64, req: crate::block::Request) -> crate::block::Submitted {
        if self.queued.len() >= self.info.max_in_flight {
            return crate::block::Submitted::Busy(req);
        }
        self.queued.push_back((tag, req));
        crate::block::Submitted::Queued
    }
    fn complete(&mut self) -> Option<crate::block::Completion> {
        self.done.pop_front()
    }
    fn service(&mut self) {
        while let Some((tag, req)) = self.queued.pop_front() {
            let c = self.run(tag, req);
            self.done.push_back(c);
        }
    }
    fn stats(&self) -> crate::block::BlockStats {
        self.stats
    }
    fn describe(&self) -> String {
        std::format!("memory disk, {} sectors", self.info.sectors)
    }
}
