//! `cargo xtask image`: a `virtio` image as a BIOS-bootable disk, for QEMU `q35`/`pc` without
//! `-kernel` and for KVM clouds that boot legacy BIOS; as a Google Compute Engine tarball; or as
//! qcow2.
//!
//! The disk carries fata's own loader (`boot/loader/loader.S`, assembled here with the C
//! toolchain every Rust install already links with), a parameter block with the boot
//! arguments, and the image's loadable segments, flat:
//!
//! | LBA | what |
//! |---|---|
//! | 0 | boot sector (loader stage 1, MBR signature) |
//! | 1–15 | loader stage 2 |
//! | 16–23 | parameter block: `FATADISK`, version, load address, PVH entry, image LBA and sectors; boot arguments from byte 64, NUL-terminated |
//! | 24– | the image |
//!
//! No root, loop device, partition tool, GRUB or Docker is needed: the file is written
//! directly. The loader enters the image through the same PVH entry as QEMU `-kernel` does, with
//! a PVH start info holding the firmware's E820 map and the arguments. [`set_args`] rewrites
//! the arguments of an existing disk (`cargo xtask image --set-args DISK -- ARGS`).

use crate::{Error, Result, bail, cmd};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTOR: u64 = 512;
/// Sectors of the loader (boot sector and stage 2).
const LOADER_SECTORS: u64 = 16;
/// Where the parameter block starts.
const PARAM_LBA: u64 = 16;
/// Its size.
const PARAM_BYTES: usize = 4096;
/// Where the image starts.
const IMAGE_LBA: u64 = 24;
/// The parameter block's first bytes.
const MAGIC: &[u8; 8] = b"FATADISK";
/// Layout version of the parameter block.
const VERSION: u32 = 1;
/// Where the boot arguments start in the parameter block.
const ARGS_OFFSET: usize = 64;
/// The longest boot arguments the parameter block holds (NUL-terminated).
pub const MAX_ARGS: usize = PARAM_BYTES - ARGS_OFFSET - 1;
/// The loader copies the image with 24-bit-plus-high-byte descriptors and the page tables map
/// images up to 16 MiB.
const MAX_IMAGE_END: u64 = 16 << 20;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A raw BIOS-bootable disk.
    Raw,
    /// `disk.raw` (a whole number of GiB, sparse) in a GNU-format gzip'd tar.
    Gce,
    /// qcow2, converted from raw by `qemu-img`.
    Qcow2,
}

impl Format {
    /// Parses `--format`.
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "raw" => Ok(Format::Raw),
            "gce" => Ok(Format::Gce),
            "qcow2" => Ok(Format::Qcow2),
            _ => bail!("unknown image format `{s}`; the formats are: raw, gce, qcow2"),
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Gce => "tar.gz",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// The image's loadable bytes from its load address on, its load address and its PVH entry.
pub struct Flat {
    /// Physical load address (1 MiB).
    pub load: u32,
    /// The PVH entry.
    pub entry: u32,
    /// The bytes (file contents of every PT_LOAD segment at its offset; `.bss` is zeroed by
    /// the image's entry code).
    pub bytes: Vec<u8>,
}

/// Flattens the fata ELF image `data`.
pub fn flatten(data: &[u8]) -> Result<Flat> {
    let e = elf::FileHeader64::<object::Endianness>::parse(data)
        .map_err(|e| Error(format!("not an ELF image: {e}")))?;
    let endian = e
        .endian()
        .map_err(|e| Error(format!("not an ELF image: {e}")))?;
    let phdrs = e
        .program_headers(endian, data)
        .map_err(|e| Error(format!("unreadable program headers: {e}")))?;
    let report = crate::elfcheck::check_bytes(data);
    let entry = report
        .pvh_entry
        .ok_or_else(|| Error("the image has no PVH entry note".into()))?;
    let loads: Vec<_> = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_filesz(endian) > 0)
        .collect();
    let lo = loads
        .iter()
        .map(|p| p.p_paddr(endian))
        .min()
        .ok_or_else(|| Error("the image has no loadable segment".into()))?;
    let hi = loads
        .iter()
        .map(|p| p.p_paddr(endian) + p.p_filesz(endian))
        .max()
        .unwrap_or(lo);
    if lo != 0x10_0000 {
        bail!("the image loads at {lo:#x}; the disk loader puts images at 1 MiB");
    }
    if hi > MAX_IMAGE_END {
        bail!("the image ends at {hi:#x}; the disk loader takes images up to 16 MiB");
    }
    let mut bytes = vec![0u8; (hi - lo) as usize];
    for p in loads {
        let seg = p
            .data(endian, data)
            .map_err(|_| Error("a loadable segment lies outside the file".into()))?;
        let at = (p.p_paddr(endian) - lo) as usize;
        bytes[at..at + seg.len()].copy_from_slice(seg);
    }
    Ok(Flat {
        load: lo as u32,
        entry,
        bytes,
    })
}

/// Checks boot arguments for the parameter block.
pub fn check_args(args: &str) -> Result<()> {
    if args.len() > MAX_ARGS {
        bail!(
            "the boot arguments are {} bytes; a disk image holds at most {MAX_ARGS}",
            args.len()
        );
    }
    if args.contains('\0') {
        bail!("the boot arguments contain a NUL byte");
    }
    Ok(())
}

fn param_block(flat: &Flat, args: &str) -> Result<Vec<u8>> {
    check_args(args)?;
    let mut b = vec![0u8; PARAM_BYTES];
    b[..8].copy_from_slice(MAGIC);
    let sectors = (flat.bytes.len() as u64).div_ceil(SECTOR) as u32;
    for (i, v) in [
        flat.load,
        flat.entry,
        IMAGE_LBA as u32,
        sectors,
        VERSION,
        args.len() as u32,
    ]
    .into_iter()
    .enumerate()
    {
        b[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    b[ARGS_OFFSET..ARGS_OFFSET + args.len()].copy_from_slice(args.as_bytes());
    Ok(b)
}

/// Assembles the loader (`boot/loader/loader.S`): 16 sectors. The intermediate files in `dir`
/// are this call's own, so concurrent builds do not read each other's half-written output.
pub fn loader(dir: &Path) -> Result<Vec<u8>> {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    std::fs::create_dir_all(dir)?;
    let src = crate::root().join("boot/loader/loader.S");
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stem = format!("loader-{}-{n}", std::process::id());
    let obj = dir.join(format!("{stem}.o"));
    let bin = dir.join(format!("{stem}.bin"));
    let mut c = Command::new("cc");
    c.arg("-c").arg(&src).arg("-o").arg(&obj);
    cmd::run(&mut c, "assembling the disk loader")?;
    let mut l = Command::new("ld");
    l.args([
        "-m",
        "elf_x86_64",
        "-Ttext=0x7c00",
        "--oformat=binary",
        "-e",
        "_start",
    ])
    .arg("-o")
    .arg(&bin)
    .arg(&obj);
    cmd::run(&mut l, "linking the disk loader")?;
    let b = std::fs::read(&bin)?;
    let _ = std::fs::remove_file(&obj);
    let _ = std::fs::remove_file(&bin);
    if b.len() as u64 != LOADER_SECTORS * SECTOR || b[510..512] != [0x55, 0xaa] {
        bail!(
            "the assembled loader is {} bytes without a boot signature; expected {}",
            b.len(),
            LOADER_SECTORS * SECTOR
        );
    }
    Ok(b)
}

/// Whether `path` is a raw disk written by [`write_raw`] (its parameter block is there).
pub fn is_fata_disk(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 8];
    f.seek(SeekFrom::Start(PARAM_LBA * SECTOR)).is_ok()
        && f.read_exact(&mut magic).is_ok()
        && &magic == MAGIC
}

/// Refuses to overwrite `out` unless it is absent or one of ours: a raw fata disk, or a file
/// under the repository's `target/` (where the defaults go).
pub fn check_overwrite(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let ours_dir = out
        .canonicalize()
        .is_ok_and(|p| p.starts_with(crate::root().join("target")));
    if is_fata_disk(out) || ours_dir {
        return Ok(());
    }
    bail!(
        "{} exists and is not a disk image `cargo xtask image` wrote; refusing to overwrite it (remove it or choose another --out)",
        out.display()
    )
}

/// Writes a raw BIOS-bootable disk of the ELF image `elf` with boot arguments `args`, at
/// least `min_bytes` long (rounded up to 1 MiB; sparse). Returns the disk's size.
pub fn write_raw(elf: &Path, args: &str, out: &Path, min_bytes: u64) -> Result<u64> {
    check_overwrite(out)?;
    let data = std::fs::read(elf)?;
    let flat = flatten(&data)?;
    let params = param_block(&flat, args)?;
    let loader = loader(&crate::root().join("target/image"))?;
    let mut disk = loader;
    disk.extend_from_slice(&params);
    debug_assert_eq!(disk.len() as u64, IMAGE_LBA * SECTOR);
    disk.extend_from_slice(&flat.bytes);
    let used = disk.len() as u64;
    let size = used.max(min_bytes).next_multiple_of(1 << 20);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = out.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&disk)?;
        f.set_len(size)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, out)?;
    Ok(size)
}

/// Rewrites the boot arguments of the raw disk `path`, which must be one [`write_raw`] wrote.
pub fn set_args(path: &Path, args: &str) -> Result<()> {
    check_args(args)?;
    if !is_fata_disk(path) {
        bail!(
            "{} is not a raw disk written by `cargo xtask image` (no parameter block at LBA 16); for qcow2, set the arguments on the raw disk and convert again",
            path.display()
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut area = vec![0u8; PARAM_BYTES - ARGS_OFFSET];
    area[..args.len()].copy_from_slice(args.as_bytes());
    f.seek(SeekFrom::Start(PARAM_LBA * SECTOR + 28))?;
    f.write_all(&(args.len() as u32).to_le_bytes())?;
    f.seek(SeekFrom::Start(PARAM_LBA * SECTOR + ARGS_OFFSET as u64))?;
    f.write_all(&area)?;
    f.sync_all()?;
    Ok(())
}

/// The boot arguments stored on the raw disk `path`.
pub fn get_args(path: &Path) -> Result<String> {
    if !is_fata_disk(path) {
        bail!("{} is not a raw fata disk", path.display());
    }
    let mut f = std::fs::File::open(path)?;
    let mut area = vec![0u8; PARAM_BYTES - ARGS_OFFSET];
    f.seek(SeekFrom::Start(PARAM_LBA * SECTOR + ARGS_OFFSET as u64))?;
    f.read_exact(&mut area)?;
    let end = area.iter().position(|&b| b == 0).unwrap_or(area.len());
    String::from_utf8(area[..end].to_vec())
        .map_err(|_| Error("the stored arguments are not UTF-8".into()))
}

/// What [`make`] wrote.
#[derive(Clone, Debug)]
pub struct Made {
    /// The artefact.
    pub path: PathBuf,
}

/// Writes the artefact of `format` for the ELF image `elf` to `out`.
pub fn make(elf: &Path, format: Format, args: &str, out: &Path) -> Result<Made> {
    match format {
        Format::Raw => {
            write_raw(elf, args, out, 0)?;
            Ok(Made {
                path: out.to_path_buf(),
            })
        }
        Format::Qcow2 => {
            check_overwrite(out)?;
            // The raw disk it is converted from is this call's own, then removed.
            let raw = out.with_extension("qcow2-source.raw");
            let _ = std::fs::remove_file(&raw);
            write_raw(elf, args, &raw, 0)?;
            crate::setup::ensure_program("qemu-img", "qemu-utils")?;
            let mut c = Command::new("qemu-img");
            c.args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
                .arg(&raw)
                .arg(out);
            let r = cmd::run(&mut c, "converting the disk to qcow2");
            let _ = std::fs::remove_file(&raw);
            r?;
            Ok(Made {
                path: out.to_path_buf(),
            })
        }
        Format::Gce => {
            check_overwrite(out)?;
            // GCE wants exactly one file, `disk.raw`, a whole number of GiB.
            let dir = out.with_extension("").with_extension("gce.d");
            std::fs::create_dir_all(&dir)?;
            let raw = dir.join("disk.raw");
            let _ = std::fs::remove_file(&raw);
            write_raw(elf, args, &raw, 1 << 30)?;
            let len = std::fs::metadata(&raw)?.len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&raw)?
                .set_len(len.next_multiple_of(1 << 30))?;
            let mut c = Command::new("tar");
            c.args(["--format=gnu", "-S", "-czf"])
                .arg(out)
                .arg("-C")
                .arg(&dir)
                .arg("disk.raw");
            cmd::run(&mut c, "packing disk.raw for Compute Engine")?;
            std::fs::remove_dir_all(&dir)?;
            Ok(Made {
                path: out.to_path_buf(),
            })
        }
    }
}

/// Writes a blank (sparse) data disk of `bytes` next to an artefact, for `fata::kv`.
pub fn data_disk(out: &Path, bytes: u64) -> Result<()> {
    if bytes == 0 || !bytes.is_multiple_of(SECTOR) {
        bail!("a data disk is a whole number of 512-byte sectors, not {bytes} bytes");
    }
    if out.exists() {
        bail!(
            "{} exists; a data disk is never overwritten (it may hold data)",
            out.display()
        );
    }
    let f = std::fs::File::create(out)?;
    f.set_len(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_unknown_ones_list_the_choices() {
        assert_eq!(Format::parse("gce").unwrap(), Format::Gce);
        let e = Format::parse("vmdk").unwrap_err().0;
        assert!(e.contains("raw, gce, qcow2"), "{e}");
    }

    #[test]
    fn arguments_longer_than_the_block_or_with_nul_are_refused() {
        check_args(&"a".repeat(MAX_ARGS)).unwrap();
        let e = check_args(&"a".repeat(MAX_ARGS + 1)).unwrap_err().0;
        assert!(e.contains("at most 4031"), "{e}");
        assert!(check_args("a\0b").is_err());
    }

    #[test]
    fn a_data_disk_is_blank_sparse_whole_sectors_and_never_overwritten() {
        let p = std::env::temp_dir().join(format!("fata-data-disk-{}.raw", std::process::id()));
        let _ = std::fs::remove_file(&p);
        assert!(data_disk(&p, 1000).is_err(), "not whole sectors");
        data_disk(&p, 64 << 20).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 64 << 20);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&m) * 512 < 1 << 20,
            "sparse"
        );
        std::fs::write(&p, b"data").unwrap();
        assert!(
            data_disk(&p, 64 << 20)
                .unwrap_err()
                .0
                .contains("never overwritten")
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn the_parameter_block_says_where_and_what_to_load() {
        let flat = Flat {
            load: 0x10_0000,
            entry: 0x10_0040,
            bytes: vec![1; 1000],
        };
        let b = param_block(&flat, "name=you").unwrap();
        assert_eq!(&b[..8], MAGIC);
        let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!((w(8), w(12), w(16), w(20)), (0x10_0000, 0x10_0040, 24, 2));
        assert_eq!(&b[64..72], b"name=you");
        assert_eq!(b[72], 0);
    }
}
