//! PCI: configuration space (the 0xcf8/0xcfc mechanism, present on q35 and pc), the bus scan,
//! BARs, MSI-X, and the virtio-pci transport (virtio 1.x §4.1) in its modern form
//! (capabilities in memory BARs) and its legacy form (registers in I/O BAR 0).
//!
//! The firmware (SeaBIOS on QEMU) has assigned the BARs; fata identity-maps and uncaches the
//! low 4 GiB, so a BAR below 4 GiB is usable as is. BARs above 4 GiB are refused.

use crate::queue::Queue;
use crate::regs::{Mmio, Pio};
use crate::transport::{InitError, Transport};
use alloc::vec::Vec;
use core::fmt;

/// Address of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

fn config_ports() -> Pio {
    // SAFETY: 0xcf8..0xcff are the PCI configuration mechanism #1 ports, owned by this module.
    unsafe { Pio::new(0xcf8) }
}

impl Bdf {
    fn address(&self, off: u8) -> u32 {
        0x8000_0000
            | (u32::from(self.bus) << 16)
            | (u32::from(self.dev & 31) << 11)
            | (u32::from(self.func & 7) << 8)
            | u32::from(off & 0xfc)
    }

    /// Reads a configuration dword.
    pub fn read32(&self, off: u8) -> u32 {
        let p = config_ports();
        p.write32(0, self.address(off));
        p.read32(4)
    }

    /// Reads a configuration word.
    pub fn read16(&self, off: u8) -> u16 {
        (self.read32(off) >> ((off & 2) * 8)) as u16
    }

    /// Reads a configuration byte.
    pub fn read8(&self, off: u8) -> u8 {
        (self.read32(off) >> ((off & 3) * 8)) as u8
    }

    /// Writes a configuration dword.
    pub fn write32(&self, off: u8, v: u32) {
        let p = config_ports();
        p.write32(0, self.address(off));
        p.write32(4, v);
    }

    /// Writes a configuration word.
    pub fn write16(&self, off: u8, v: u16) {
        let shift = (off & 2) * 8;
        let old = self.read32(off);
        let new = (old & !(0xffff << shift)) | (u32::from(v) << shift);
        self.write32(off, new);
    }

    /// Vendor and device id.
    pub fn ids(&self) -> (u16, u16) {
        let v = self.read32(0);
        (v as u16, (v >> 16) as u16)
    }

    /// The capabilities: (id, offset) pairs, at most 48 (a looping list ends there).
    pub fn capabilities(&self) -> Vec<(u8, u8)> {
        let mut caps = Vec::new();
        if self.read16(0x06) & (1 << 4) == 0 {
            return caps;
        }
        let mut p = self.read8(0x34) & 0xfc;
        while p >= 0x40 && caps.len() < 48 {
            caps.push((self.read8(p), p));
            p = self.read8(p + 1) & 0xfc;
        }
        caps
    }

    /// BAR `i` decoded: `Bar::Io(port)` or `Bar::Mem(address)`.
    pub fn bar(&self, i: u8) -> Option<Bar> {
        if i > 5 {
            return None;
        }
        let v = self.read32(0x10 + 4 * i);
        if v & 1 == 1 {
            return u16::try_from(v & !3).ok().filter(|&p| p != 0).map(Bar::Io);
        }
        let mut addr = u64::from(v & !0xf);
        if (v >> 1) & 3 == 2 && i < 5 {
            addr |= u64::from(self.read32(0x10 + 4 * (i + 1))) << 32;
        }
        (addr != 0).then_some(Bar::Mem(addr))
    }

    /// Enables I/O and memory decoding and bus mastering.
    pub fn enable(&self) {
        let cmd = self.read16(0x04);
        self.write16(0x04, cmd | 0x7);
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// I/O ports.
    Io(u16),
    /// Memory at a physical address.
    Mem(u64),
}

/// Every function on every bus reachable from bus 0.
pub fn scan() -> Vec<Bdf> {
    let mut found = Vec::new();
    let mut buses = alloc::vec![0u8];
    let mut seen = [false; 256];
    while let Some(bus) = buses.pop() {
        if core::mem::replace(&mut seen[usize::from(bus)], true) {
            continue;
        }
        for dev in 0..32 {
            let f0 = Bdf { bus, dev, func: 0 };
            if f0.ids().0 == 0xffff {
                continue;
            }
            let funcs = if f0.read8(0x0e) & 0x80 != 0 { 8 } else { 1 };
            for func in 0..funcs {
                let b = Bdf { bus, dev, func };
                if b.ids().0 == 0xffff {
                    continue;
                }
                if b.read8(0x0e) & 0x7f == 1 {
                    buses.push(b.read8(0x19));
                }
                found.push(b);
            }
        }
    }
    found
}

/// Highest physical address fata maps for MMIO.
const MAPPED_LIMIT: u64 = 4 << 30;

fn mmio_window(b: &Bdf, bar: u8, offset: u32, len: u32) -> Option<Mmio> {
    let Bar::Mem(base) = b.bar(bar)? else {
        return None;
    };
    let start = base.checked_add(u64::from(offset))?;
    let end = start.checked_add(u64::from(len))?;
    if end > MAPPED_LIMIT || len == 0 {
        log::warn!(
            "virtio-pci {b}: BAR {bar} region {start:#x}..{end:#x} is above 4 GiB; not usable"
        );
        return None;
    }
    // SAFETY: the range lies in a memory BAR the firmware assigned to this device, below
    // 4 GiB where fata maps non-RAM uncached; this transport is its only user.
    Some(unsafe { Mmio::new(start as usize, len as usize) })
}

/// Points MSI-X table entry 0 at `vector` on the boot CPU and enables MSI-X. Returns whether
/// the device has MSI-X.
pub fn enable_msix(b: &Bdf, vector: u8) -> bool {
    let Some(&(_, cap)) = b.capabilities().iter().find(|(id, _)| *id == 0x11) else {
        return false;
    };
    let table = b.read32(cap + 4);
    let Some(t) = mmio_window(b, (table & 7) as u8, table & !7, 16) else {
        return false;
    };
    t.write32(0, 0xfee0_0000); // message address: LAPIC, destination APIC id 0
    t.write32(4, 0);
    t.write32(8, u32::from(vector)); // fixed delivery, edge
    t.write32(12, 0); // unmasked
    let ctl = b.read16(cap + 2);
    b.write16(cap + 2, (ctl | 0x8000) & !0x4000);
    true
}

const VIRTIO_PCI_CAP_COMMON: u8 = 1;
const VIRTIO_PCI_CAP_NOTIFY: u8 = 2;
const VIRTIO_PCI_CAP_ISR: u8 = 3;
const VIRTIO_PCI_CAP_DEVICE: u8 = 4;
/// No MSI-X vector.
const NO_VECTOR: u16 = 0xffff;

/// The virtio-pci transport.
pub enum PciTransport {
    /// Virtio 1.x: registers in memory BARs named by vendor capabilities.
    Modern {
        bdf: Bdf,
        common: Mmio,
        notify: Mmio,
        notify_mul: u32,
        isr: Mmio,
        device: Mmio,
        msix: bool,
    },
    /// Virtio 0.9: registers in I/O BAR 0.
    Legacy { bdf: Bdf, io: Pio, msix: bool },
}

impl PciTransport {
    /// Whether `b` is a virtio network device (modern id 0x1041, or transitional 0x1000 with
    /// subsystem id 1).
    pub fn is_net(b: &Bdf) -> bool {
        match b.ids() {
            (0x1af4, 0x1041) => true,
            (0x1af4, 0x1000) => b.read16(0x2e) == 1,
            _ => false,
        }
    }

    /// Sets up the transport for `b`, modern if the device offers it (unless `force_legacy`),
    /// with MSI-X entry 0 on `vector` when the device has MSI-X.
    pub fn new(b: Bdf, vector: u8, force_legacy: bool) -> Option<PciTransport> {
        b.enable();
        let msix = enable_msix(&b, vector);
        if !force_legacy && let Some(t) = Self::modern(b, msix) {
            return Some(t);
        }
        let Bar::Io(port) = b.bar(0)? else {
            return None;
        };
        // SAFETY: I/O BAR 0 of a virtio device is its legacy register block, used only here.
        let io = unsafe { Pio::new(port) };
        Some(PciTransport::Legacy { bdf: b, io, msix })
    }

    fn modern(b: Bdf, msix: bool) -> Option<PciTransport> {
        let (mut common, mut notify, mut isr, mut device, mut mul) = (None, None, None, None, 0);
        for (id, cap) in b.capabilities() {
            if id != 0x09 {
                continue;
            }
            let kind = b.read8(cap + 3);
            let bar = b.read8(cap + 4);
            let off = b.read32(cap + 8);
            let len = b.read32(cap + 12);
            let w = || mmio_window(&b, bar, off, len);
            match kind {
                VIRTIO_PCI_CAP_COMMON if common.is_none() => common = w(),
                VIRTIO_PCI_CAP_NOTIFY if notify.is_none() => {
                    notify = w();
                    mul = b.read32(cap + 16);
                }
                VIRTIO_PCI_CAP_ISR if isr.is_none() => isr = w(),
                VIRTIO_PCI_CAP_DEVICE if device.is_none() => device = w(),
                _ => {}
            }
        }
        // Windows too small for the registers we use are refused here, so the accessors below
        // never see an offset outside them.
        let common = common.filter(|w: &Mmio| w.len() >= 0x38)?;
        let notify = notify.filter(|w: &Mmio| w.len() >= 2)?;
        let isr = isr.filter(|w: &Mmio| !w.is_empty())?;
        Some(PciTransport::Modern {
            bdf: b,
            common,
            notify,
            notify_mul: mul,
            isr,
            device: device?,
            msix,
        })
    }
}

// Modern common configuration offsets.
const DEVICE_FEATURE_SELECT: usize = 0x00;
const DEVICE_FEATURE: usize = 0x04;
const DRIVER_FEATURE_SELECT: usize = 0x08;
const DRIVER_FEATURE: usize = 0x0c;
const MSIX_CONFIG: usize = 0x10;
const DEVICE_STATUS: usize = 0x14;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_SIZE: usize = 0x18;
const QUEUE_MSIX_VECTOR: usize = 0x1a;
const QUEUE_ENABLE: usize = 0x1c;
const QUEUE_NOTIFY_OFF: usize = 0x1e;
const QUEUE_DESC: usize = 0x20;
const QUEUE_DRIVER: usize = 0x28;
const QUEUE_DEVICE: usize = 0x30;

// Legacy register offsets.
const L_HOST_FEATURES: u16 = 0x00;
const L_GUEST_FEATURES: u16 = 0x04;
const L_QUEUE_PFN: u16 = 0x08;
const L_QUEUE_SIZE: u16 = 0x0c;
const L_QUEUE_SELECT: u16 = 0x0e;
const L_QUEUE_NOTIFY: u16 = 0x10;
const L_STATUS: u16 = 0x12;
const L_ISR: u16 = 0x13;
const L_CONFIG_VECTOR: u16 = 0x14;
const L_QUEUE_VECTOR: u16 = 0x16;

impl Transport for PciTransport {
    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        match self {
            PciTransport::Modern { bdf, msix, .. } => {
                write!(
                    out,
                    "virtio-pci modern @ {bdf}{}",
                    if *msix {
                        " (MSI-X)"
                    } else {
                        " (no MSI-X: polled)"
                    }
                )
            }
            PciTransport::Legacy { bdf, msix, .. } => {
                write!(
                    out,
                    "virtio-pci legacy @ {bdf}{}",
                    if *msix {
                        " (MSI-X)"
                    } else {
                        " (no MSI-X: polled)"
                    }
                )
            }
        }
    }

    fn modern(&self) -> bool {
        matches!(self, PciTransport::Modern { .. })
    }

    fn device_features(&mut self) -> u64 {
        match self {
            PciTransport::Modern { common, .. } => {
                common.write32(DEVICE_FEATURE_SELECT, 0);
                let lo = common.read32(DEVICE_FEATURE);
                common.write32(DEVICE_FEATURE_SELECT, 1);
                let hi = common.read32(DEVICE_FEATURE);
                u64::from(lo) | (u64::from(hi) << 32)
            }
            PciTransport::Legacy { io, .. } => u64::from(io.read32(L_HOST_FEATURES)),
        }
    }

    fn set_driver_features(&mut self, f: u64) {
        match self {
            PciTransport::Modern { common, .. } => {
                common.write32(DRIVER_FEATURE_SELECT, 0);
                common.write32(DRIVER_FEATURE, f as u32);
                common.write32(DRIVER_FEATURE_SELECT, 1);
                common.write32(DRIVER_FEATURE, (f >> 32) as u32);
            }
            PciTransport::Legacy { io, .. } => io.write32(L_GUEST_FEATURES, f as u32),
        }
    }

    fn status(&mut self) -> u8 {
        match self {
            PciTransport::Modern { common, .. } => common.read8(DEVICE_STATUS),
            PciTransport::Legacy { io, .. } => io.read8(L_STATUS),
        }
    }

    fn set_status(&mut self, s: u8) {
        match self {
            PciTransport::Modern { common, msix, .. } => {
                common.write8(DEVICE_STATUS, s);
                if s == 0 && *msix {
                    common.write16(MSIX_CONFIG, NO_VECTOR);
                }
            }
            PciTransport::Legacy { io, msix, .. } => {
                io.write8(L_STATUS, s);
                if s == 0 && *msix {
                    io.write16(L_CONFIG_VECTOR, NO_VECTOR);
                }
            }
        }
    }

    fn max_queue_size(&mut self, q: u16) -> u16 {
        match self {
            PciTransport::Modern { common, .. } => {
                common.write16(QUEUE_SELECT, q);
                common.read16(QUEUE_SIZE)
            }
            PciTransport::Legacy { io, .. } => {
                io.write16(L_QUEUE_SELECT, q);
                io.read16(L_QUEUE_SIZE)
            }
        }
    }

    fn queue_size_settable(&self) -> bool {
        self.modern()
    }

    fn setup_queue(&mut self, q: u16, queue: &Queue) -> Result<(), InitError> {
        let (desc, avail, used) = queue.addresses();
        match self {
            PciTransport::Modern { common, msix, .. } => {
                common.write16(QUEUE_SELECT, q);
                common.write16(QUEUE_SIZE, queue.size());
                if *msix {
                    common.write16(QUEUE_MSIX_VECTOR, 0);
                }
                for (off, v) in [
                    (QUEUE_DESC, desc),
                    (QUEUE_DRIVER, avail),
                    (QUEUE_DEVICE, used),
                ] {
                    common.write32(off, v as u32);
                    common.write32(off + 4, (v >> 32) as u32);
                }
                common.write16(QUEUE_ENABLE, 1);
            }
            PciTransport::Legacy { io, msix, .. } => {
                io.write16(L_QUEUE_SELECT, q);
                if *msix {
                    io.write16(L_QUEUE_VECTOR, 0);
                }
                let pfn = u32::try_from(desc >> 12).map_err(|_| InitError::QueueAddress)?;
                io.write32(L_QUEUE_PFN, pfn);
            }
        }
        Ok(())
    }

    fn notify(&mut self, q: u16) {
        match self {
            PciTransport::Modern {
                common,
                notify,
                notify_mul,
                ..
            } => {
                common.write16(QUEUE_SELECT, q);
                let off =
                    usize::from(common.read16(QUEUE_NOTIFY_OFF)).checked_mul(*notify_mul as usize);
                // A device that names an offset outside its own notify window is not notified.
                if let Some(off) = off.filter(|&o| notify.fits(o, 2)) {
                    notify.write16(off, q);
                }
            }
            PciTransport::Legacy { io, .. } => io.write16(L_QUEUE_NOTIFY, q),
        }
    }

    fn ack_interrupt(&mut self) -> u8 {
        match self {
            PciTransport::Modern { isr, .. } => isr.read8(0),
            PciTransport::Legacy { io, .. } => io.read8(L_ISR),
        }
    }

    fn config_u8(&mut self, off: usize) -> u8 {
        match self {
            PciTransport::Modern { device, .. } => {
                if device.fits(off, 1) {
                    device.read8(off)
                } else {
                    0
                }
            }
            PciTransport::Legacy { io, msix, .. } => {
                let base: u16 = if *msix { 0x18 } else { 0x14 };
                io.read8(base + (off as u16).min(0xff))
            }
        }
    }
}
