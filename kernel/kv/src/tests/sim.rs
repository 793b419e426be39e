//! A simulated disk with a volatile write cache, crashes, torn sectors, I/O errors and bit
//! flips, and a tiny executor to drive the store on it.

use fata_hal::block::{BlockError, BlockInfo, CacheMode, Disk};
use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A seeded pseudo-random source (splitmix64).
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub struct Sim {
    pub info: BlockInfo,
    /// What survives a power cut.
    pub stable: Vec<u8>,
    /// Sector writes since the last flush, in the order they completed.
    pub pending: Vec<(u64, Vec<u8>)>,
    /// Writes and flushes done so far.
    pub ops: u64,
    /// The device dies when the write or flush with this number is submitted.
    pub crash_at: Option<u64>,
    pub crashed: bool,
    /// The write or flush with this number fails with an I/O error (the device lives on).
    pub fail_at: Option<u64>,
    pub reads: u64,
    /// Every sector written (for tests that need to know what a step touched).
    pub touched: std::collections::BTreeSet<u64>,
}

/// The disk handle: the store owns one clone, the test keeps another.
#[derive(Clone)]
pub struct SimDisk(pub Rc<RefCell<Sim>>);

impl SimDisk {
    pub fn new(sector_size: u32, sectors: u64) -> SimDisk {
        SimDisk::from_image(
            sector_size,
            vec![0; (sectors * u64::from(sector_size)) as usize],
        )
    }

    pub fn from_image(sector_size: u32, image: Vec<u8>) -> SimDisk {
        let sectors = image.len() as u64 / u64::from(sector_size);
        SimDisk(Rc::new(RefCell::new(Sim {
            info: BlockInfo {
                sector_size,
                sectors,
                read_only: false,
                max_request_bytes: 16 * sector_size as usize,
                max_in_flight: 4,
                cache: CacheMode::Volatile,
            },
            stable: image,
            pending: Vec::new(),
            ops: 0,
            crash_at: None,
            crashed: false,
            fail_at: None,
            reads: 0,
            touched: Default::default(),
        })))
    }

    /// What the medium holds after a power cut now: the stable image plus any subset of the
    /// pending sector writes, applied in any order, some torn (half old, half new) or garbage.
    pub fn power_cut(&self, rng: &mut Rng) -> Vec<u8> {
        let s = self.0.borrow();
        let ss = s.info.sector_size as usize;
        let mut img = s.stable.clone();
        let mut order: Vec<usize> = (0..s.pending.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for i in order {
            let (sector, data) = &s.pending[i];
            let at = *sector as usize * ss;
            let dst = &mut img[at..at + ss];
            match rng.below(8) {
                0..=2 => {}
                3..=5 => dst.copy_from_slice(data),
                6 => {
                    let cut = rng.below(ss as u64 / 64) as usize * 64;
                    dst[..cut].copy_from_slice(&data[..cut]);
                }
                _ => dst.iter_mut().for_each(|b| *b = rng.next() as u8),
            }
        }
        img
    }

    /// The stable image with exactly the pending writes of `keep` (a bit mask) applied.
    pub fn with_pending(&self, keep: u64) -> Vec<u8> {
        let s = self.0.borrow();
        let ss = s.info.sector_size as usize;
        let mut img = s.stable.clone();
        for (i, (sector, data)) in s.pending.iter().enumerate() {
            if keep & (1 << i) != 0 {
                let at = *sector as usize * ss;
                img[at..at + ss].copy_from_slice(data);
            }
        }
        img
    }

    pub fn pending_len(&self) -> usize {
        self.0.borrow().pending.len()
    }

    fn step(&self) -> Result<(), BlockError> {
        let mut s = self.0.borrow_mut();
        if s.crashed {
            return Err(BlockError::Device("crashed".into()));
        }
        s.ops += 1;
        if s.crash_at == Some(s.ops) {
            s.crashed = true;
            return Err(BlockError::Device("crashed".into()));
        }
        if s.fail_at == Some(s.ops) {
            return Err(BlockError::Io);
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    fn info(&self) -> BlockInfo {
        self.0.borrow().info
    }

    async fn read(&self, sector: u64, mut buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        let mut s = self.0.borrow_mut();
        if s.crashed {
            return Err(BlockError::Device("crashed".into()));
        }
        s.info.check(sector, buf.len(), false)?;
        s.reads += 1;
        let ss = s.info.sector_size as usize;
        let at = sector as usize * ss;
        let n = buf.len();
        buf.copy_from_slice(&s.stable[at..at + n]);
        let end = sector + (buf.len() / ss) as u64;
        for (p, data) in &s.pending {
            if (sector..end).contains(p) {
                let o = (*p - sector) as usize * ss;
                buf[o..o + ss].copy_from_slice(data);
            }
        }
        Ok(buf)
    }

    async fn write(&self, sector: u64, buf: Vec<u8>) -> Result<Vec<u8>, BlockError> {
        self.0.borrow().info.check(sector, buf.len(), true)?;
        self.step()?;
        let mut s = self.0.borrow_mut();
        let ss = s.info.sector_size as usize;
        for (i, chunk) in buf.chunks(ss).enumerate() {
            s.touched.insert(sector + i as u64);
            s.pending.push((sector + i as u64, chunk.to_vec()));
        }
        if s.info.cache == CacheMode::WriteThrough {
            let p = std::mem::take(&mut s.pending);
            apply(&mut s.stable, ss, p);
        }
        Ok(buf)
    }

    async fn flush(&self) -> Result<(), BlockError> {
        self.step()?;
        let mut s = self.0.borrow_mut();
        let ss = s.info.sector_size as usize;
        let p = std::mem::take(&mut s.pending);
        apply(&mut s.stable, ss, p);
        Ok(())
    }
}

fn apply(img: &mut [u8], ss: usize, writes: Vec<(u64, Vec<u8>)>) {
    for (sector, data) in writes {
        let at = sector as usize * ss;
        img[at..at + ss].copy_from_slice(&data);
    }
}

/// Polls `main` and the `background` futures until `main` completes (everything here
/// completes without real waiting, so a stall is a bug).
pub fn run<T>(
    background: &mut [std::pin::Pin<Box<dyn Future<Output = ()>>>],
    main: impl Future<Output = T>,
) -> T {
    let mut main = pin!(main);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000_000 {
        if let Poll::Ready(v) = main.as_mut().poll(&mut cx) {
            return v;
        }
        for b in background.iter_mut() {
            let _ = b.as_mut().poll(&mut cx);
        }
    }
    panic!("the store stalled");
}
