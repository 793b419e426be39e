//! The PVH start info (`struct hvm_start_info`, Xen `arch-x86/hvm/start_info.h`): the boot
//! command line and the memory map the loader passes in `%ebx`.
//!
//! The structure is written by the host, so it is treated like a network packet: each field
//! is checked (magic, version, pointer ranges, counts, lengths) before any of it is trusted,
//! and everything is copied into the image before the loader's memory can be reused.
//! [`parse`] takes a memory-reading function so the checks are unit-tested on the host;
//! [`read`] runs it on physical memory.

use core::fmt;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const MAGIC: u32 = 0x336e_c578;
/// The longest boot command line accepted, in bytes.
pub const MAX_CMDLINE: usize = 4096;
/// The most memory map entries kept.
pub const MAX_MEMMAP: usize = 64;
/// Start info, command line and memory map must lie below this address (the boot map).
pub const READABLE_LIMIT: u64 = 1 << 30;

/// `XEN_HVM_MEMMAP_TYPE_RAM`.
pub const MEMMAP_RAM: u32 = 1;

/// One memory map entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemEntry {
    /// Physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` (1 = RAM).
    pub kind: u32,
}

/// What the loader told us, copied into the image.
pub struct StartInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    memmap: [MemEntry; MAX_MEMMAP],
    memmap_len: usize,
    /// Entries beyond [`MAX_MEMMAP`] that were dropped.
    pub memmap_dropped: usize,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp: u64,
}

impl StartInfo {
    /// An empty start info.
    pub const fn new() -> StartInfo {
        StartInfo {
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            memmap: [MemEntry {
                addr: 0,
                size: 0,
                kind: 0,
            }; MAX_MEMMAP],
            memmap_len: 0,
            memmap_dropped: 0,
            rsdp: 0,
        }
    }

    /// The command line (checked to be UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn memmap(&self) -> &[MemEntry] {
        &self.memmap[..self.memmap_len]
    }

    /// The RAM entries of the memory map.
    pub fn ram(&self) -> impl Iterator<Item = &MemEntry> {
        self.memmap()
            .iter()
            .filter(|e| e.kind == MEMMAP_RAM && e.size > 0)
    }
}

impl Default for StartInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl StartInfo {
    /// The RAM regions as address ranges (the first `n` of the array) and their total size.
    pub fn ram_ranges(&self) -> ([crate::layout::Range; MAX_MEMMAP], usize, u64) {
        let mut ram = [crate::layout::Range { start: 0, end: 0 }; MAX_MEMMAP];
        let mut n = 0;
        let mut bytes = 0u64;
        for e in self.ram().take(MAX_MEMMAP) {
            ram[n] = crate::layout::Range {
                start: e.addr,
                end: e.addr.saturating_add(e.size),
            };
            bytes = bytes.saturating_add(e.size);
            n += 1;
        }
        (ram, n, bytes)
    }
}

impl StartInfoError {
    /// The exit code a platform stops with: a bad command line is a usage error (the user
    /// can fix it), anything else a boot failure.
    pub fn exit_code(&self) -> fata_hal::ExitCode {
        match self {
            StartInfoError::CmdlineTooLong { .. } | StartInfoError::CmdlineNotUtf8 { .. } => {
                fata_hal::ExitCode::Usage
            }
            _ => fata_hal::ExitCode::BootFailure,
        }
    }
}

/// Why the start info was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic number is wrong: not booted through PVH.
    BadMagic(u32),
    /// A pointer lies outside memory this early code can read.
    Unreadable { what: &'static str, addr: u64 },
    /// Version 0 start info has no memory map, and there is no other source for one.
    NoMemoryMap,
    /// The command line is longer than [`MAX_CMDLINE`] bytes (`len` is a lower bound if huge).
    CmdlineTooLong { len: usize },
    /// The command line is not UTF-8; `at` is the offset of the first bad byte.
    CmdlineNotUtf8 { at: usize },
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StartInfoError::BadMagic(m) => write!(
                f,
                "start info magic is {m:#x}, expected {MAGIC:#x}: the image must be booted through PVH"
            ),
            StartInfoError::Unreadable { what, addr } => {
                write!(
                    f,
                    "the loader put the {what} at {addr:#x}, above the boot map"
                )
            }
            StartInfoError::NoMemoryMap => {
                write!(
                    f,
                    "the loader passed no memory map (PVH start info version 0)"
                )
            }
            StartInfoError::CmdlineTooLong { len } => write!(
                f,
                "the boot command line is {len} bytes or more; the limit is {MAX_CMDLINE}"
            ),
            StartInfoError::CmdlineNotUtf8 { at } => {
                write!(
                    f,
                    "the boot command line is not UTF-8 (bad byte at offset {at})"
                )
            }
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

fn check(what: &'static str, addr: u64, len: u64) -> Result<(), StartInfoError> {
    match addr.checked_add(len) {
        Some(end) if end <= READABLE_LIMIT => Ok(()),
        _ => Err(StartInfoError::Unreadable { what, addr }),
    }
}

/// Size of `struct hvm_start_info` (version 1).
const HEADER: usize = 56;
/// Size of `struct hvm_memmap_table_entry`.
const ENTRY: usize = 24;

/// Parses the start info at `paddr` into `out`, reading memory with `read(addr, buf)`.
pub fn parse(
    paddr: u64,
    read: &mut dyn FnMut(u64, &mut [u8]),
    out: &mut StartInfo,
) -> Result<(), StartInfoError> {
    check("start info", paddr, HEADER as u64)?;
    let mut h = [0u8; HEADER];
    read(paddr, &mut h);
    let magic = u32_at(&h, 0);
    if magic != MAGIC {
        return Err(StartInfoError::BadMagic(magic));
    }
    let version = u32_at(&h, 4);
    let cmdline_paddr = u64_at(&h, 24);
    out.rsdp = u64_at(&h, 32);

    // Command line: NUL-terminated, read in chunks so that no byte past the NUL is needed.
    out.cmdline_len = 0;
    if cmdline_paddr != 0 {
        let mut len = 0usize;
        loop {
            let mut chunk = [0u8; 64];
            check("command line", cmdline_paddr, (len + chunk.len()) as u64)?;
            read(cmdline_paddr + len as u64, &mut chunk);
            if let Some(nul) = chunk.iter().position(|&c| c == 0) {
                len += nul;
                break;
            }
            len += chunk.len();
            if len > MAX_CMDLINE {
                return Err(StartInfoError::CmdlineTooLong { len });
            }
        }
        if len > MAX_CMDLINE {
            return Err(StartInfoError::CmdlineTooLong { len });
        }
        read(cmdline_paddr, &mut out.cmdline[..len]);
        if let Err(e) = core::str::from_utf8(&out.cmdline[..len]) {
            return Err(StartInfoError::CmdlineNotUtf8 {
                at: e.valid_up_to(),
            });
        }
        out.cmdline_len = len;
    }

    if version < 1 {
        return Err(StartInfoError::NoMemoryMap);
    }
    let memmap_paddr = u64_at(&h, 40);
    let entries = u32_at(&h, 48) as usize;
    if memmap_paddr == 0 || entries == 0 {
        return Err(StartInfoError::NoMemoryMap);
    }
    let kept = entries.min(MAX_MEMMAP);
    check("memory map", memmap_paddr, (kept * ENTRY) as u64)?;
    out.memmap_len = 0;
    out.memmap_dropped = entries - kept;
    for i in 0..kept {
        let mut e = [0u8; ENTRY];
        read(memmap_paddr + (i * ENTRY) as u64, &mut e);
        out.memmap[i] = MemEntry {
            addr: u64_at(&e, 0),
            size: u64_at(&e, 8),
            kind: u32_at(&e, 16),
        };
        out.memmap_len += 1;
    }
    Ok(())
}

/// The image side: the static copy and the reads of physical memory, which need `unsafe`
/// (a raw copy from a loader-supplied address, a write-once static).
#[cfg(not(test))]
#[allow(unsafe_code)]
mod imp {
    use super::*;

    struct Static(core::cell::UnsafeCell<StartInfo>);
    // SAFETY: written once by `read`, guarded by `TAKEN`, on the only CPU; read-only after.
    unsafe impl Sync for Static {}
    static INFO: Static = Static(core::cell::UnsafeCell::new(StartInfo::new()));
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    fn read_phys(addr: u64, buf: &mut [u8]) {
        // SAFETY: `parse` only asks for ranges below `READABLE_LIMIT`, which the boot page
        // tables identity-map; the bytes are plain data (no references or invariants) and
        // nothing else writes them while we copy.
        unsafe {
            core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len());
        }
    }

    /// Reads and checks the start info at `paddr` (call once, before [`crate::paging::init`]).
    pub fn read(paddr: u64) -> Result<&'static StartInfo, StartInfoError> {
        if TAKEN.swap(true, core::sync::atomic::Ordering::SeqCst) {
            // SAFETY: already filled by the first call; no mutable reference remains.
            return Ok(unsafe { &*INFO.0.get() });
        }
        // SAFETY: `TAKEN` makes this the only mutable reference ever created.
        let info = unsafe { &mut *INFO.0.get() };
        parse(paddr, &mut read_phys, info)?;
        Ok(info)
    }
}
#[cfg(not(test))]
pub use imp::read;

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u8>);
    impl Mem {
        fn new() -> Mem {
            Mem(vec![0; 0x10000])
        }
        fn put(&mut self, at: usize, b: &[u8]) {
            self.0[at..at + b.len()].copy_from_slice(b);
        }
        fn header(&mut self, magic: u32, version: u32, cmdline: u64, memmap: u64, n: u32) {
            let mut h = [0u8; HEADER];
            h[0..4].copy_from_slice(&magic.to_le_bytes());
            h[4..8].copy_from_slice(&version.to_le_bytes());
            h[24..32].copy_from_slice(&cmdline.to_le_bytes());
            h[40..48].copy_from_slice(&memmap.to_le_bytes());
            h[48..52].copy_from_slice(&n.to_le_bytes());
            self.put(0x100, &h);
        }
        fn entry(&mut self, i: usize, addr: u64, size: u64, kind: u32) {
            let at = 0x2000 + i * ENTRY;
            self.put(at, &addr.to_le_bytes());
            self.put(at + 8, &size.to_le_bytes());
            self.put(at + 16, &kind.to_le_bytes());
        }
        fn parse(&self) -> Result<Box<StartInfo>, StartInfoError> {
            let mut out = Box::new(StartInfo::new());
            let mem = &self.0;
            parse(
                0x100,
                &mut |a, b| b.copy_from_slice(&mem[a as usize..a as usize + b.len()]),
                &mut out,
            )?;
            Ok(out)
        }
    }

    #[test]
    fn valid_start_info_yields_cmdline_and_ram() {
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0x1000, 0x2000, 2);
        m.put(0x1000, b"name=fata log=debug\0");
        m.entry(0, 0, 0x9fc00, 1);
        m.entry(1, 0x10_0000, 0x3f0_0000, 1);
        let i = m.parse().unwrap();
        assert_eq!(i.cmdline(), "name=fata log=debug");
        assert_eq!(i.ram().count(), 2);
        assert_eq!(i.memmap()[1].size, 0x3f0_0000);
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut m = Mem::new();
        m.header(0xdead_beef, 1, 0, 0x2000, 1);
        assert_eq!(m.parse().err(), Some(StartInfoError::BadMagic(0xdead_beef)));
    }

    #[test]
    fn over_long_cmdline_is_refused_not_truncated() {
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0x4000, 0x2000, 1);
        m.put(0x4000, &[b'a'; MAX_CMDLINE + 10]);
        assert!(matches!(
            m.parse().err(),
            Some(StartInfoError::CmdlineTooLong { .. })
        ));
        // Exactly at the limit is fine.
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0x4000, 0x2000, 1);
        m.put(0x4000, &[b'a'; MAX_CMDLINE]);
        m.entry(0, 0, 0x1000, 1);
        assert_eq!(m.parse().unwrap().cmdline().len(), MAX_CMDLINE);
    }

    #[test]
    fn non_utf8_cmdline_and_missing_memmap_are_refused() {
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0x1000, 0x2000, 1);
        m.put(0x1000, b"ok\xff\0");
        assert_eq!(
            m.parse().err(),
            Some(StartInfoError::CmdlineNotUtf8 { at: 2 })
        );
        let mut m = Mem::new();
        m.header(MAGIC, 0, 0, 0, 0);
        assert_eq!(m.parse().err(), Some(StartInfoError::NoMemoryMap));
    }

    #[test]
    fn pointers_outside_the_boot_map_are_refused() {
        let mut m = Mem::new();
        m.header(MAGIC, 1, READABLE_LIMIT - 8, 0x2000, 1);
        assert!(matches!(
            m.parse().err(),
            Some(StartInfoError::Unreadable { .. })
        ));
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0, u64::MAX - 4, 1);
        assert!(matches!(
            m.parse().err(),
            Some(StartInfoError::Unreadable { .. })
        ));
    }

    #[test]
    fn huge_entry_counts_are_capped() {
        let mut m = Mem::new();
        m.header(MAGIC, 1, 0, 0x2000, 1000);
        let i = m.parse().unwrap();
        assert_eq!(i.memmap().len(), MAX_MEMMAP);
        assert_eq!(i.memmap_dropped, 1000 - MAX_MEMMAP);
    }
}
