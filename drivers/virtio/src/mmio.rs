//! virtio-mmio transport (virtio 1.x §4.2), version 1 (legacy) and 2 (modern). QEMU's
//! microvm uses it (legacy unless `force-legacy=false`), as does Firecracker (modern).
//!
//! Devices are found from `virtio_mmio.device=<size>@<addr>:<irq>` boot arguments (what QEMU
//! and Firecracker put on the command line) — see [`parse_cmdline_device`].

use crate::queue::Ring;
use crate::regs::Mmio;
use crate::transport::{InitError, Transport};
use core::fmt;

/// "virt" in little endian.
pub const MAGIC: u32 = 0x7472_6976;

const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const GUEST_PAGE_SIZE: usize = 0x028;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_ALIGN: usize = 0x03c;
const QUEUE_PFN: usize = 0x040;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
const QUEUE_DRIVER_LOW: usize = 0x090;
const QUEUE_DRIVER_HIGH: usize = 0x094;
const QUEUE_DEVICE_LOW: usize = 0x0a0;
const QUEUE_DEVICE_HIGH: usize = 0x0a4;
const CONFIG: usize = 0x100;

/// The page size a version 1 device is told (`GuestPageSize`), in which `QueuePFN` counts;
/// also the used ring's alignment (`QueueAlign`), which the queue layout follows.
const LEGACY_PAGE_SIZE: u32 = 1 << LEGACY_PAGE_SHIFT;
const LEGACY_PAGE_SHIFT: u32 = 12;
/// `QueueReady`: the queue is in use.
const QUEUE_IS_READY: u32 = 1;

/// A device announced on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdlineDevice {
    /// Physical base address.
    pub base: u64,
    /// Size of the register window.
    pub size: u64,
    /// Interrupt (GSI).
    pub irq: u32,
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let v = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => digits.parse().ok()?,
    };
    v.checked_mul(mult)
}

/// Parses the value of a `virtio_mmio.device=` argument: `<size>@<base>:<irq>[:<id>]`.
pub fn parse_cmdline_device(v: &str) -> Option<CmdlineDevice> {
    let (size, rest) = v.split_once('@')?;
    let mut parts = rest.split(':');
    let base = parse_num(parts.next()?)?;
    let irq = u32::try_from(parse_num(parts.next()?)?).ok()?;
    let size = parse_num(size)?;
    (size >= 0x100 && base.is_multiple_of(0x100)).then_some(CmdlineDevice { base, size, irq })
}

/// A virtio-mmio device.
pub struct MmioTransport {
    regs: Mmio,
    version: u32,
}

impl MmioTransport {
    /// Probes the window: `None` unless it holds a virtio device (magic, version 1 or 2, a
    /// non-zero device id).
    pub fn probe(regs: Mmio) -> Option<MmioTransport> {
        if regs.read32(MAGIC_VALUE) != MAGIC {
            return None;
        }
        let version = regs.read32(VERSION);
        if !(1..=2).contains(&version) || regs.read32(DEVICE_ID) == 0 {
            return None;
        }
        Some(MmioTransport { regs, version })
    }

    /// The virtio device id (1: network, 2: block, 4: entropy).
    pub fn device_id(&self) -> u32 {
        self.regs.read32(DEVICE_ID)
    }
}

impl Transport for MmioTransport {
    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            out,
            "virtio-mmio v{} @ {:#x}",
            self.version,
            self.regs.base()
        )
    }

    fn modern(&self) -> bool {
        self.version == 2
    }

    fn device_features(&mut self) -> u64 {
        self.regs.write32(DEVICE_FEATURES_SEL, 0);
        let lo = self.regs.read32(DEVICE_FEATURES);
        self.regs.write32(DEVICE_FEATURES_SEL, 1);
        let hi = self.regs.read32(DEVICE_FEATURES);
        u64::from(lo) | (u64::from(hi) << 32)
    }

    fn set_driver_features(&mut self, f: u64) {
        self.regs.write32(DRIVER_FEATURES_SEL, 0);
        self.regs.write32(DRIVER_FEATURES, f as u32);
        self.regs.write32(DRIVER_FEATURES_SEL, 1);
        self.regs.write32(DRIVER_FEATURES, (f >> 32) as u32);
        if self.version == 1 {
            self.regs.write32(GUEST_PAGE_SIZE, LEGACY_PAGE_SIZE);
        }
    }

    fn status(&mut self) -> u8 {
        self.regs.read32(STATUS) as u8
    }

    fn set_status(&mut self, s: u8) {
        self.regs.write32(STATUS, u32::from(s));
    }

    fn max_queue_size(&mut self, q: u16) -> u16 {
        self.regs.write32(QUEUE_SEL, u32::from(q));
        u16::try_from(self.regs.read32(QUEUE_NUM_MAX))
            .unwrap_or(32768)
            .min(32768)
    }

    fn queue_size_settable(&self) -> bool {
        true
    }

    fn setup_queue(&mut self, q: u16, ring: &Ring) -> Result<(), InitError> {
        let Ring {
            size,
            desc,
            avail,
            used,
        } = *ring;
        self.regs.write32(QUEUE_SEL, u32::from(q));
        self.regs.write32(QUEUE_NUM, u32::from(size));
        if self.version == 1 {
            let pfn =
                u32::try_from(desc >> LEGACY_PAGE_SHIFT).map_err(|_| InitError::QueueAddress)?;
            self.regs.write32(QUEUE_ALIGN, LEGACY_PAGE_SIZE);
            self.regs.write32(QUEUE_PFN, pfn);
        } else {
            self.regs.write32(QUEUE_DESC_LOW, desc as u32);
            self.regs.write32(QUEUE_DESC_HIGH, (desc >> 32) as u32);
            self.regs.write32(QUEUE_DRIVER_LOW, avail as u32);
            self.regs.write32(QUEUE_DRIVER_HIGH, (avail >> 32) as u32);
            self.regs.write32(QUEUE_DEVICE_LOW, used as u32);
            self.regs.write32(QUEUE_DEVICE_HIGH, (used >> 32) as u32);
            self.regs.write32(QUEUE_READY, QUEUE_IS_READY);
        }
        Ok(())
    }

    fn notify(&mut self, q: u16) {
        self.regs.write32(QUEUE_NOTIFY, u32::from(q));
    }

    fn ack_interrupt(&mut self) -> u8 {
        let s = self.regs.read32(INTERRUPT_STATUS);
        if s != 0 {
            self.regs.write32(INTERRUPT_ACK, s);
        }
        s as u8
    }

    fn config_u8(&mut self, off: usize) -> u8 {
        if CONFIG
            .checked_add(off)
            .is_some_and(|at| self.regs.fits(at, 1))
        {
            self.regs.read8(CONFIG + off)
        } else {
            0
        }
    }

    fn config_u32(&mut self, off: usize) -> u32 {
        match CONFIG.checked_add(off) {
            Some(at) if self.regs.fits(at, 4) => self.regs.read32(at),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_and_firecracker_cmdline_devices_parse() {
        assert_eq!(
            parse_cmdline_device("512@0xfeb00e00:12"),
            Some(CmdlineDevice {
                base: 0xfeb0_0e00,
                size: 512,
                irq: 12
            })
        );
        assert_eq!(
            parse_cmdline_device("4K@0xd0000000:5:0"),
            Some(CmdlineDevice {
                base: 0xd000_0000,
                size: 4096,
                irq: 5
            })
        );
    }

    #[test]
    fn malformed_cmdline_devices_are_ignored() {
        for bad in [
            "",
            "512",
            "512@",
            "512@0xfeb00e00",
            "x@0x1000:1",
            "512@0xfeb00e01:1",
            "16@0x1000:1",
            "512@0x1000:99999999999",
        ] {
            assert_eq!(parse_cmdline_device(bad), None, "{bad}");
        }
    }
}
