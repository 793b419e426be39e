//! Disks attached to a booted image: `--disk PATH[:SIZE][:ro][:cache=MODE]`, as a value
//! ([`DiskSpec`]), its preparation on the host (a missing image is created sparse) and what it
//! becomes on each target.
//!
//! The disks are numbered in the order given: the first is `disk0`, the next `disk1`, ...
//!
//! - **virtio** (QEMU): `-drive id=diskN,file=PATH,format=raw,if=none,cache=MODE` and a
//!   virtio-blk device on it, `virtio-blk-device` on microvm, `virtio-blk-pci` on q35/pc, one
//!   after the other after the network card. On microvm, QEMU plugs the `-device`s into its
//!   virtio-mmio transports in command-line order, starting from the transport at the highest
//!   address (0xfeb00e00, then 0xfeb00c00, ...), and lists them as `virtio_mmio.device=`
//!   boot arguments in that same order (checked with QEMU 7.2: `info qtree` against the command
//!   line the guest prints with `log=debug`). So the N-th virtio-blk among the guest's
//!   `virtio_mmio.device=` arguments, taken in command-line order, is `diskN`; taken by
//!   ascending address, the order would be reversed. On PCI machines the devices get the free
//!   slots in command-line order (q35, QEMU 7.2: network card 01.0, `disk0` 02.0, `disk1`
//!   03.0), so a bus scan in slot order meets `disk0` first.
//! - **unix**: the boot arguments `diskN=PATH` (and `diskN_ro=true`), which the platform opens
//!   as files. QEMU's cache modes do not apply: a process always writes through the host's page
//!   cache and flushes with `fdatasync`.

use crate::target::{Machine, Target};
use crate::{Error, Result, bail};
use std::path::PathBuf;

/// QEMU's `cache=` mode of a drive (qemu-options.hx): how the host caches the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Host page cache; the guest's flush reaches the disk (QEMU's default).
    #[default]
    Writeback,
    /// `O_DIRECT`, no host page cache; flushes still needed (the file system must support
    /// `O_DIRECT`: tmpfs does not).
    None,
    /// Every write is durable when it completes (`O_DSYNC`).
    Writethrough,
    /// `O_DIRECT` and `O_DSYNC`.
    Directsync,
    /// Flushes are ignored: nothing is durable. For throw-away images only.
    Unsafe,
}

impl CacheMode {
    /// Every mode.
    pub const ALL: [CacheMode; 5] = [
        CacheMode::Writeback,
        CacheMode::None,
        CacheMode::Writethrough,
        CacheMode::Directsync,
        CacheMode::Unsafe,
    ];

    /// The `cache=` value.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Writeback => "writeback",
            CacheMode::None => "none",
            CacheMode::Writethrough => "writethrough",
            CacheMode::Directsync => "directsync",
            CacheMode::Unsafe => "unsafe",
        }
    }

    /// Parses a `cache=` value.
    pub fn parse(s: &str) -> Result<CacheMode> {
        CacheMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = CacheMode::ALL.iter().map(|m| m.name()).collect();
                Error(format!(
                    "unknown cache mode `{s}`; the modes are: {}",
                    names.join(", ")
                ))
            })
    }
}

/// One disk to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image file (raw) or host block device.
    pub path: PathBuf,
    /// Bytes: a missing file is created with this size (sparse); an existing one must have it.
    /// `None`: the file must exist.
    pub size: Option<u64>,
    /// Attach read-only.
    pub read_only: bool,
    /// QEMU's host cache mode (virtio only; the unix target accepts only the default).
    pub cache: CacheMode,
}

impl DiskSpec {
    /// An existing image, read-write, default cache mode.
    pub fn new(path: impl Into<PathBuf>) -> DiskSpec {
        DiskSpec {
            path: path.into(),
            size: None,
            read_only: false,
            cache: CacheMode::default(),
        }
    }

    /// An image of `bytes` bytes, created sparse when missing.
    pub fn sized(path: impl Into<PathBuf>, bytes: u64) -> DiskSpec {
        DiskSpec {
            size: Some(bytes),
            ..DiskSpec::new(path)
        }
    }

    /// Parses a `--disk` value: `PATH[:SIZE][:ro][:cache=MODE]`. The suffixes are taken from
    /// the right in any order, so a path may contain `:` as long as what follows its last `:`
    /// is not a size or an option.
    pub fn parse(s: &str) -> Result<DiskSpec> {
        let mut parts: Vec<&str> = s.split(':').collect();
        let mut spec = DiskSpec::new("");
        while parts.len() > 1 {
            let last = parts[parts.len() - 1];
            if last == "ro" {
                spec.read_only = true;
            } else if let Some(mode) = last.strip_prefix("cache=") {
                spec.cache =
                    CacheMode::parse(mode).map_err(|e| Error(format!("--disk {s}: {e}")))?;
            } else if spec.size.is_none() && looks_like_size(last) {
                spec.size = Some(parse_size(last).map_err(|e| Error(format!("--disk {s}: {e}")))?);
            } else {
                break;
            }
            parts.pop();
        }
        let path = parts.join(":");
        if path.is_empty() {
            bail!(
                "--disk {s}: no PATH; expected PATH[:SIZE][:ro][:cache=MODE], e.g. --disk data.img:64M"
            );
        }
        spec.path = PathBuf::from(path);
        Ok(spec)
    }

    /// Makes the image ready: creates a missing file of [`DiskSpec::size`] bytes (sparse), or
    /// checks that an existing one is a non-empty file of that size (or a block device).
    /// Never resizes. Returns whether it created the file.
    pub fn prepare(&self) -> Result<bool> {
        let p = self.path.display();
        if self.path.to_str().is_none() {
            bail!("--disk {p}: the path is not UTF-8, which boot arguments must be");
        }
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(size) = self.size else {
                    bail!(
                        "--disk {p}: no such file; give a size to create it, e.g. --disk {p}:64M"
                    );
                };
                let f = std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(&self.path)
                    .map_err(|e| Error(format!("--disk {p}: cannot create it: {e}")))?;
                f.set_len(size)
                    .map_err(|e| Error(format!("--disk {p}: cannot size it: {e}")))?;
                eprintln!("xtask: created {p} ({}, sparse)", show_size(size));
                Ok(true)
            }
            Err(e) => bail!("--disk {p}: {e}"),
            Ok(m) if m.is_dir() => {
                bail!("--disk {p}: is a directory; name an image file or a block device")
            }
            Ok(m) if m.is_file() => {
                let len = m.len();
                match self.size {
                    Some(want) if want != len => bail!(
                        "--disk {p}: the file has {len} bytes ({}), not {want} ({}) as asked; it is not resized: leave out the size, remove the file, or resize it yourself (truncate -s)",
                        show_size(len),
                        show_size(want)
                    ),
                    _ if len == 0 => {
                        bail!("--disk {p}: the file is empty; give it a size (truncate -s 64M {p})")
                    }
                    _ => Ok(false),
                }
            }
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_block_device() {
                    bail!("--disk {p}: neither a regular file nor a block device");
                }
                if self.size.is_some() {
                    bail!("--disk {p}: a block device has its own size; leave out SIZE");
                }
                Ok(false)
            }
        }
    }

    /// The QEMU arguments that attach this disk as `disk{index}` on `machine`.
    pub fn qemu_args(&self, index: usize, machine: Machine) -> Vec<String> {
        let mut drive = format!(
            "id=disk{index},file={},format=raw,if=none,cache={}",
            qemu_escape(&self.path.to_string_lossy()),
            self.cache.name()
        );
        if self.read_only {
            drive.push_str(",readonly=on");
        }
        let model = match machine {
            Machine::Microvm => "virtio-blk-device",
            Machine::Q35 | Machine::Pc => "virtio-blk-pci",
        };
        vec![
            "-drive".into(),
            drive,
            "-device".into(),
            format!("{model},drive=disk{index}"),
        ]
    }

    /// The boot arguments that attach this disk as `disk{index}` to a unix process.
    pub fn unix_args(&self, index: usize) -> Result<Vec<String>> {
        let p = self.path.display();
        if self.cache != CacheMode::Writeback {
            bail!(
                "--disk {p}: cache={}: the unix target has one cache mode (the host's page cache, fdatasync on flush); cache= is for QEMU",
                self.cache.name()
            );
        }
        let Some(path) = self.path.to_str() else {
            bail!("--disk {p}: the path is not UTF-8, which boot arguments must be");
        };
        let mut args = vec![format!("disk{index}={path}")];
        if self.read_only {
            args.push(format!("disk{index}_ro=true"));
        }
        Ok(args)
    }
}

/// Makes every disk ready for `target` ([`DiskSpec::prepare`]), after checking that the
/// target can attach them all (so nothing is created for a run that cannot start) and that no
/// file is attached twice.
pub fn prepare_all(disks: &[DiskSpec], target: Target) -> Result<()> {
    if target == Target::Unix {
        unix_args(disks)?;
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    for d in disks {
        d.prepare()?;
        let real = std::fs::canonicalize(&d.path)
            .map_err(|e| Error(format!("--disk {}: {e}", d.path.display())))?;
        if let Some(j) = seen.iter().position(|p| *p == real) {
            bail!(
                "--disk {}: the same file as disk{j}; a disk can be attached once",
                d.path.display()
            );
        }
        seen.push(real);
    }
    Ok(())
}

/// The QEMU arguments that attach `disks` as `disk0`, `disk1`, ... on `machine`.
pub fn qemu_args(disks: &[DiskSpec], machine: Machine) -> Vec<String> {
    disks
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.qemu_args(i, machine))
        .collect()
}

/// The boot arguments that attach `disks` as `disk0`, `disk1`, ... to a unix process.
pub fn unix_args(disks: &[DiskSpec]) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        args.extend(d.unix_args(i)?);
    }
    Ok(args)
}

/// Whether a boot argument names a disk on the unix target (`diskN=...`, `diskN_ro=...`), which
/// would clash with the disks `--disk` numbers.
pub fn is_disk_arg(arg: &str) -> bool {
    let key = arg.split_once('=').map_or(arg, |(k, _)| k);
    let key = key.strip_suffix("_ro").unwrap_or(key);
    key.strip_prefix("disk")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a `:`-separated part of a `--disk` value is meant as a size (starts with a digit,
/// letters and digits only), so a bad one is reported instead of being taken as a path.
fn looks_like_size(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Parses a disk size: bytes, or a number with `K`, `M`, `G` or `T` (binary units, either
/// case). It must be a whole number of 512-byte sectors, and not zero.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = |why: &str| {
        Error(format!(
            "size `{s}` {why}; sizes are bytes or a number with K, M, G or T (e.g. 512K, 64M, 1G)"
        ))
    };
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad("has an unknown unit")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("is not a number"));
    }
    let n: u64 = digits.parse().map_err(|_| bad("is too large"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| bad("is too large"))?;
    // QEMU and the HAL use 512-byte sectors; the largest file size Linux allows is i64::MAX.
    if bytes > i64::MAX as u64 {
        return Err(bad("is too large"));
    }
    if bytes == 0 {
        return Err(bad("is zero"));
    }
    if !bytes.is_multiple_of(512) {
        return Err(bad("is not a whole number of 512-byte sectors"));
    }
    Ok(bytes)
}

/// `64 MiB`, `512 KiB`, `1000 bytes`: the largest binary unit that divides the size.
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Escapes a value for QEMU's `key=value,...` option syntax (a comma is doubled).
fn qemu_escape(s: &str) -> String {
    s.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A path under the temporary directory (nothing there yet), removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(what: &str) -> TempPath {
            static N: AtomicU32 = AtomicU32::new(0);
            TempPath(std::env::temp_dir().join(format!(
                "xtask-disk-{}-{what}-{}.img",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn sizes_parse_in_binary_units_and_bad_ones_say_the_syntax() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for (bad, why) in [
            ("", "is not a number"),
            ("M", "is not a number"),
            ("64X", "unknown unit"),
            ("6.4M", "is not a number"),
            ("-1", "is not a number"),
            ("0", "is zero"),
            ("0K", "is zero"),
            ("1000", "512-byte sectors"),
            ("99999999999999999999", "too large"),
            ("16777216T", "too large"),
            ("9000000T", "too large"),
        ] {
            let e = parse_size(bad).unwrap_err().0;
            assert!(e.contains(why) && e.contains("64M"), "{bad}: {e}");
        }
    }

    #[test]
    fn disk_values_parse_path_size_and_options_from_the_right() {
        assert_eq!(DiskSpec::parse("a.img").unwrap(), DiskSpec::new("a.img"));
        assert_eq!(
            DiskSpec::parse("a.img:64M").unwrap(),
            DiskSpec::sized("a.img", 64 << 20)
        );
        let s = DiskSpec::parse("/x/a.img:1G:ro:cache=unsafe").unwrap();
        assert_eq!(
            s,
            DiskSpec {
                path: "/x/a.img".into(),
                size: Some(1 << 30),
                read_only: true,
                cache: CacheMode::Unsafe,
            }
        );
        // Options and size in any order; a path may hold `:`.
        assert_eq!(
            DiskSpec::parse("a.img:ro:64M").unwrap().size,
            Some(64 << 20)
        );
        assert!(DiskSpec::parse("a.img:ro").unwrap().read_only);
        assert_eq!(
            DiskSpec::parse("dir:v1/a.img:512K").unwrap(),
            DiskSpec::sized("dir:v1/a.img", 512 << 10)
        );
        assert_eq!(
            DiskSpec::parse("a:b.img").unwrap().path,
            PathBuf::from("a:b.img")
        );
    }

    #[test]
    fn bad_disk_values_are_errors_that_name_the_value() {
        for (bad, why) in [
            ("", "no PATH"),
            (":64M", "no PATH"),
            (":ro", "no PATH"),
            ("a.img:64X", "unknown unit"),
            ("a.img:1000", "512-byte sectors"),
            ("a.img:0", "is zero"),
            ("a.img:cache=fast", "unknown cache mode `fast`"),
        ] {
            let e = DiskSpec::parse(bad).unwrap_err().0;
            assert!(
                e.contains(&format!("--disk {bad}")) && e.contains(why),
                "{bad}: {e}"
            );
        }
        let e = DiskSpec::parse("a.img:cache=fast").unwrap_err().0;
        assert!(
            e.contains("writeback, none, writethrough, directsync, unsafe"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_image_is_created_sparse_with_its_size() {
        let t = TempPath::new("create");
        assert!(DiskSpec::sized(&t.0, 64 << 20).prepare().unwrap());
        let m = std::fs::metadata(&t.0).unwrap();
        assert_eq!(m.len(), 64 << 20);
        assert!(
            m.blocks() * 512 < 1 << 20,
            "{} bytes allocated for a sparse 64 MiB file",
            m.blocks() * 512
        );
        // A second run finds it at the size asked and leaves it alone.
        assert!(!DiskSpec::sized(&t.0, 64 << 20).prepare().unwrap());
        assert!(!DiskSpec::new(&t.0).prepare().unwrap());
    }

    #[test]
    fn an_existing_image_of_another_size_is_refused_and_not_resized() {
        let t = TempPath::new("size");
        std::fs::write(&t.0, vec![1u8; 4096]).unwrap();
        let e = DiskSpec::sized(&t.0, 8192).prepare().unwrap_err().0;
        assert!(
            e.contains("has 4096 bytes (4 KiB), not 8192 (8 KiB)") && e.contains("not resized"),
            "{e}"
        );
        assert_eq!(std::fs::read(&t.0).unwrap(), vec![1u8; 4096]);
    }

    #[test]
    fn missing_empty_and_odd_paths_are_refused_with_what_to_do() {
        let t = TempPath::new("missing");
        let e = DiskSpec::new(&t.0).prepare().unwrap_err().0;
        assert!(e.contains("no such file") && e.contains(":64M"), "{e}");
        assert!(!t.0.exists(), "nothing is created without a size");
        std::fs::write(&t.0, b"").unwrap();
        let e = DiskSpec::new(&t.0).prepare().unwrap_err().0;
        assert!(
            e.contains("is empty") && e.contains("truncate -s 64M"),
            "{e}"
        );
        let e = DiskSpec::new(std::env::temp_dir()).prepare().unwrap_err().0;
        assert!(e.contains("is a directory"), "{e}");
        let e = DiskSpec::new("/dev/null").prepare().unwrap_err().0;
        assert!(
            e.contains("neither a regular file nor a block device"),
            "{e}"
        );
        let e = DiskSpec::sized("/nonexistent-dir/a.img", 512)
            .prepare()
            .unwrap_err()
            .0;
        assert!(e.contains("cannot create it"), "{e}");
    }

    #[test]
    fn virtio_disks_become_drives_in_order_with_the_machine_s_device_model() {
        let mut ro = DiskSpec::new("/i/b,c.img");
        ro.read_only = true;
        ro.cache = CacheMode::None;
        assert_eq!(
            ro.qemu_args(1, Machine::Microvm),
            [
                "-drive",
                "id=disk1,file=/i/b,,c.img,format=raw,if=none,cache=none,readonly=on",
                "-device",
                "virtio-blk-device,drive=disk1"
            ]
        );
        assert_eq!(
            DiskSpec::new("a.img").qemu_args(0, Machine::Q35),
            [
                "-drive",
                "id=disk0,file=a.img,format=raw,if=none,cache=writeback",
                "-device",
                "virtio-blk-pci,drive=disk0"
            ]
        );
        assert_eq!(
            DiskSpec::new("a.img").qemu_args(0, Machine::Pc)[3],
            "virtio-blk-pci,drive=disk0"
        );
    }

    #[test]
    fn unix_disks_become_boot_arguments_and_qemu_cache_modes_are_refused() {
        let mut d = DiskSpec::new("/i/a b.img");
        assert_eq!(d.unix_args(2).unwrap(), ["disk2=/i/a b.img"]);
        d.read_only = true;
        assert_eq!(
            d.unix_args(0).unwrap(),
            ["disk0=/i/a b.img", "disk0_ro=true"]
        );
        d.cache = CacheMode::Unsafe;
        let e = d.unix_args(0).unwrap_err().0;
        assert!(e.contains("cache=unsafe") && e.contains("for QEMU"), "{e}");
    }

    #[test]
    fn disks_are_numbered_in_order_and_one_file_is_attached_once() {
        let a = TempPath::new("order-a");
        let b = TempPath::new("order-b");
        let disks = [
            DiskSpec::sized(&a.0, 1 << 20),
            DiskSpec::sized(&b.0, 2 << 20),
        ];
        prepare_all(&disks, Target::Virtio).unwrap();
        assert_eq!(std::fs::metadata(&a.0).unwrap().len(), 1 << 20);
        assert_eq!(std::fs::metadata(&b.0).unwrap().len(), 2 << 20);
        assert_eq!(
            unix_args(&disks).unwrap(),
            [
                format!("disk0={}", a.0.display()),
                format!("disk1={}", b.0.display())
            ]
        );
        let q = qemu_args(&disks, Machine::Microvm);
        assert_eq!(q.len(), 8);
        assert!(q[1].starts_with("id=disk0,") && q[1].contains(&*a.0.to_string_lossy()));
        assert_eq!(q[3], "virtio-blk-device,drive=disk0");
        assert!(q[5].starts_with("id=disk1,") && q[5].contains(&*b.0.to_string_lossy()));
        assert_eq!(q[7], "virtio-blk-device,drive=disk1");
        // The same file, even by another spelling of its path.
        let other =
            a.0.parent()
                .unwrap()
                .join(".")
                .join(a.0.file_name().unwrap());
        let twice = [DiskSpec::new(&a.0), DiskSpec::new(&other)];
        let e = prepare_all(&twice, Target::Virtio).unwrap_err().0;
        assert!(e.contains("the same file as disk0"), "{e}");
    }

    #[test]
    fn a_cache_mode_the_unix_target_refuses_creates_no_file() {
        let t = TempPath::new("nocreate");
        let mut d = DiskSpec::sized(&t.0, 1 << 20);
        d.cache = CacheMode::Writethrough;
        let e = prepare_all(&[d.clone()], Target::Unix).unwrap_err().0;
        assert!(e.contains("cache=writethrough"), "{e}");
        assert!(!t.0.exists());
        prepare_all(&[d], Target::Virtio).unwrap();
        assert!(t.0.exists());
    }

    #[test]
    fn disk_boot_arguments_are_recognised() {
        for a in ["disk0=/x", "disk12=/x", "disk0_ro=true", "disk3"] {
            assert!(is_disk_arg(a), "{a}");
        }
        for a in ["disk=/x", "diskx=1", "name=disk0", "disks=2", "log=debug"] {
            assert!(!is_disk_arg(a), "{a}");
        }
    }

    #[test]
    fn sizes_show_in_the_largest_whole_unit() {
        assert_eq!(show_size(64 << 20), "64 MiB");
        assert_eq!(show_size(512 << 10), "512 KiB");
        assert_eq!(show_size(1536 << 20), "1536 MiB");
        assert_eq!(show_size(1 << 30), "1 GiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }
}
