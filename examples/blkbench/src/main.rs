//! Raw block-device figures for `cargo xtask bench --only storage`: on the disk `disk0`, from
//! sector 0 on (its contents are overwritten),
//! 1. a sequential write of `seq_bytes` in requests of `seq_request` bytes, one at a time
//!    (a request larger than the device takes is cut into pieces that are in flight together),
//!    then one flush — the time includes the flush;
//! 2. a sequential read of the same range in the same requests (then the first request is read
//!    again and compared with what was written);
//! 3. random writes of `rand_bytes` inside the first `rand_region` bytes, one at a time, each
//!    followed by a flush (queue depth 1): `warmup` of them uncounted, then `rand_time` of them,
//!    with the latency of every write + flush pair.
//!
//! Each figure is one console line, `blkbench: NAME key=value ...`, then `blkbench: done`, and
//! the image exits 0; any failure exits 1 saying what failed.
//!
//! `cargo xtask run --release --example blkbench --disk /tmp/b.img:256M -- rand_time=2s`
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use fata::block::Disk;
use fata::time::{Duration, Instant};

fata::config! {
    pub struct Config {
        /// The disk to overwrite.
        disk: String = "disk0",
        /// Bytes of the sequential write and read.
        seq_bytes: u64 = 64 << 20,
        /// Bytes per sequential request (at most the device's largest request).
        seq_request: u32 = 1 << 20,
        /// Bytes per random write.
        rand_bytes: u32 = 4096,
        /// The random writes land in the first this many bytes of the disk.
        rand_region: u64 = 64 << 20,
        /// Random writes before the measured ones, not counted.
        warmup: Duration = Duration::from_secs(1),
        /// How long the random writes are measured.
        rand_time: Duration = Duration::from_secs(10),
    }
}

/// xorshift64: the data written and the random offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e9
}

/// The `p`-th percentile (0–100) of sorted values.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let cfg = rt.config();
    let disk = fata::block::open(&cfg.disk).map_err(|e| format!("{}: {e}", cfg.disk))?;
    let info = disk.info();
    let ss = u64::from(info.sector_size);
    fata::println!(
        "blkbench: disk sector_size={} sectors={} max_request_bytes={} max_in_flight={} cache={}",
        info.sector_size,
        info.sectors,
        info.max_request_bytes,
        info.max_in_flight,
        info.cache.name()
    );
    if info.read_only {
        return Err(format!("{} is read-only: blkbench overwrites it", cfg.disk));
    }
    let request = u64::from(cfg.seq_request);
    if request == 0 || !request.is_multiple_of(ss) || !cfg.seq_bytes.is_multiple_of(request) {
        return Err(format!(
            "seq_bytes ({}) must be a multiple of the request size ({request}), itself a multiple of the sector size ({ss})",
            cfg.seq_bytes
        ));
    }
    let rand = u64::from(cfg.rand_bytes);
    if rand == 0 || !rand.is_multiple_of(ss) || rand > info.max_request_bytes as u64 {
        return Err(format!(
            "rand_bytes ({rand}) must be a multiple of the sector size ({ss}) and at most {} bytes",
            info.max_request_bytes
        ));
    }
    if cfg.seq_bytes > info.bytes() || cfg.rand_region > info.bytes() || cfg.rand_region < rand {
        return Err(format!(
            "the disk holds {} bytes: seq_bytes ({}) and rand_region ({}) must fit, and rand_region hold one random write",
            info.bytes(),
            cfg.seq_bytes,
            cfg.rand_region
        ));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Pieces of a sequential request: as large as the device takes, all submitted at once.
    sequential(&disk, cfg, info.max_request_bytes, ss, &mut rng).await?;
    random(&disk, cfg, rand, ss, &mut rng).await?;
    fata::println!("blkbench: done");
    Ok(())
}

/// One request of the sequential figures, at `sector`, held as `pieces` of at most the
/// device's largest request, which are all submitted at once (what Linux's block layer does
/// with a request larger than the device takes); returns the pieces once every one completed.
async fn transfer(
    disk: &Disk,
    write: bool,
    sector: u64,
    pieces: Vec<Vec<u8>>,
    ss: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let what = if write { "write" } else { "read" };
    let mut at = sector;
    let handles: Vec<_> = pieces
        .into_iter()
        .map(|piece| {
            let d = disk.clone();
            let here = at;
            at += piece.len() as u64 / ss;
            fata::spawn(async move {
                let r = if write {
                    d.write(here, piece).await
                } else {
                    d.read(here, piece).await
                };
                r.map_err(|e| format!("sequential {what} at sector {here}: {e}"))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await?);
    }
    Ok(out)
}

/// Figures 1 and 2.
async fn sequential(
    disk: &Disk,
    cfg: &Config,
    piece: usize,
    ss: u64,
    rng: &mut Rng,
) -> Result<(), String> {
    let (bytes, request) = (cfg.seq_bytes, u64::from(cfg.seq_request));
    let mut data = vec![0u8; request as usize];
    rng.fill(&mut data);
    let first: Vec<Vec<u8>> = data.chunks(piece).map(<[u8]>::to_vec).collect();
    let mut buf = first.clone();
    let per = request / ss;
    let count = bytes / request;
    let start = Instant::now();
    for i in 0..count {
        // Each request's first 8 bytes carry its index, so no two requests write the same data.
        buf[0][..8].copy_from_slice(&i.to_le_bytes());
        buf = transfer(disk, true, i * per, buf, ss).await?;
    }
    disk.flush()
        .await
        .map_err(|e| format!("flush after the sequential write: {e}"))?;
    let t = secs(start.elapsed());
    let pieces = first.len();
    fata::println!(
        "blkbench: seq_write bytes={bytes} request_bytes={request} pieces={pieces} secs={t:.4} mb_s={:.2}",
        bytes as f64 / t / 1e6
    );
    let start = Instant::now();
    for i in 0..count {
        buf = transfer(disk, false, i * per, buf, ss).await?;
    }
    let t = secs(start.elapsed());
    fata::println!(
        "blkbench: seq_read bytes={bytes} request_bytes={request} pieces={pieces} secs={t:.4} mb_s={:.2}",
        bytes as f64 / t / 1e6
    );
    let back = transfer(disk, false, 0, buf, ss).await?;
    let mut want = first;
    want[0][..8].copy_from_slice(&0u64.to_le_bytes());
    if back != want {
        return Err("the first request read back differs from what was written".to_string());
    }
    Ok(())
}

/// Figure 3.
async fn random(
    disk: &Disk,
    cfg: &Config,
    rand: u64,
    ss: u64,
    rng: &mut Rng,
) -> Result<(), String> {
    let slots = cfg.rand_region / rand;
    let per = rand / ss;
    let mut buf = vec![0u8; rand as usize];
    rng.fill(&mut buf);
    let mut lat: Vec<u64> = Vec::new();
    let warm_end = Instant::now().as_nanos() + cfg.warmup.as_nanos() as u64;
    let mut measure_start: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let counted = now.as_nanos() >= warm_end;
        if counted && measure_start.is_none() {
            measure_start = Some(now);
        }
        if let Some(s) = measure_start
            && now.as_nanos() - s.as_nanos() >= cfg.rand_time.as_nanos() as u64
        {
            let t = secs(now.duration_since(s));
            let n = lat.len();
            lat.sort_unstable();
            fata::println!(
                "blkbench: rand_write_flush bytes={rand} ops={n} secs={t:.4} iops={:.1} p50_us={:.1} p99_us={:.1}",
                n as f64 / t,
                percentile(&lat, 50) as f64 / 1e3,
                percentile(&lat, 99) as f64 / 1e3
            );
            return Ok(());
        }
        let sector = (rng.next() % slots) * per;
        buf[..8].copy_from_slice(&rng.next().to_le_bytes());
        let t0 = Instant::now();
        buf = disk
            .write(sector, buf)
            .await
            .map_err(|e| format!("random write at sector {sector}: {e}"))?;
        disk.flush()
            .await
            .map_err(|e| format!("flush after a random write: {e}"))?;
        if counted {
            lat.push(t0.elapsed().as_nanos() as u64);
        }
    }
}
