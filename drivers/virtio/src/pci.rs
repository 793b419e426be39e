//! PCI: the virtio-pci transport (virtio 1.x §4.1) in its modern form (capabilities in
//! memory BARs) and its legacy form (registers in I/O BAR 0), and MSI-X; configuration space,
//! the bus scan and BARs are in [`config`].
//!
//! The firmware (SeaBIOS on QEMU) has assigned the BARs; fata identity-maps and uncaches the
//! low 4 GiB, so a BAR below 4 GiB is usable as is. BARs above 4 GiB are refused.
//!
//! Safe code: the register windows come from [`config`], the one PCI module with `unsafe`.

#[allow(unsafe_code)]
pub mod config;

use crate::queue::Ring;
use crate::regs::{Mmio, Pio};
use crate::transport::{InitError, Transport};
pub use config::{Bar, Bdf, scan};
use config::{CAP_ID_MSIX, CAP_ID_VENDOR, SUBSYSTEM_ID};
use core::fmt;

// The MSI-X capability (PCI Local Bus Specification 3.0 §6.8.2), relative to its start.
/// Message Control (16 bits).
const MSIX_CONTROL: u8 = 2;
/// Table offset (bits 3..31) and the BAR that holds the table (bits 0..2), 32 bits.
const MSIX_TABLE: u8 = 4;
/// Message Control: MSI-X is on.
const MSIX_CONTROL_ENABLE: u16 = 1 << 15;
/// Message Control: every vector is masked.
const MSIX_CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// The BAR indicator bits of the table register.
const MSIX_TABLE_BIR: u32 = 0x7;
// One 16-byte entry of the MSI-X table.
const MSIX_ENTRY_SIZE: u32 = 16;
const MSIX_ENTRY_ADDR_LO: usize = 0;
const MSIX_ENTRY_ADDR_HI: usize = 4;
const MSIX_ENTRY_DATA: usize = 8;
const MSIX_ENTRY_VECTOR_CONTROL: usize = 12;
/// Message address of the local APIC with destination APIC id 0 (the boot CPU).
const MSI_ADDRESS_BOOT_CPU: u32 = 0xfee0_0000;
/// The MSI-X table entry fata uses for all of a device's interrupts.
const MSIX_ENTRY: u16 = 0;

/// The configuration-space offset of field `off` of the capability at `cap`, if the whole
/// dword lies inside the 256-byte space: the device chooses where its capabilities are, and
/// one placed at the very end must not make the offset wrap (or panic).
fn cap_field(cap: u8, off: u8) -> Option<u8> {
    cap.checked_add(off).filter(|a| *a <= 0xfc)
}

/// Points MSI-X table entry 0 at `vector` on the boot CPU and enables MSI-X. Returns whether
/// the device has MSI-X.
pub fn enable_msix(b: &Bdf, vector: u8) -> bool {
    let Some(&(_, cap)) = b.capabilities().iter().find(|(id, _)| *id == CAP_ID_MSIX) else {
        return false;
    };
    let (Some(table_at), Some(control_at)) =
        (cap_field(cap, MSIX_TABLE), cap_field(cap, MSIX_CONTROL))
    else {
        return false;
    };
    let table = b.read32(table_at);
    let Some(t) = b.mmio_window(
        (table & MSIX_TABLE_BIR) as u8,
        table & !MSIX_TABLE_BIR,
        MSIX_ENTRY_SIZE,
    ) else {
        return false;
    };
    t.write32(MSIX_ENTRY_ADDR_LO, MSI_ADDRESS_BOOT_CPU);
    t.write32(MSIX_ENTRY_ADDR_HI, 0);
    t.write32(MSIX_ENTRY_DATA, u32::from(vector)); // fixed delivery, edge
    t.write32(MSIX_ENTRY_VECTOR_CONTROL, 0); // unmasked
    let ctl = b.read16(control_at);
    b.write16(
        control_at,
        (ctl | MSIX_CONTROL_ENABLE) & !MSIX_CONTROL_FUNCTION_MASK,
    );
    true
}

/// The vendor id of virtio devices.
const VIRTIO_VENDOR: u16 = 0x1af4;
/// Device id of a modern (virtio 1.x only) network device: 0x1040 + `VIRTIO_ID_NET`.
const VIRTIO_DEVICE_NET: u16 = 0x1041;
/// Device id of a transitional network device (legacy and modern interfaces).
const VIRTIO_DEVICE_NET_TRANSITIONAL: u16 = 0x1000;
/// Virtio device type of a network device (`VIRTIO_ID_NET`), a transitional device's
/// subsystem id.
const VIRTIO_ID_NET: u16 = 1;
/// Device id of a modern block device: 0x1040 + `VIRTIO_ID_BLOCK`.
const VIRTIO_DEVICE_BLK: u16 = 0x1042;
/// Device id of a transitional block device.
const VIRTIO_DEVICE_BLK_TRANSITIONAL: u16 = 0x1001;
/// Virtio device type of a block device (`VIRTIO_ID_BLOCK`), a transitional device's
/// subsystem id.
const VIRTIO_ID_BLOCK: u16 = 2;
/// Device id of a modern entropy device: 0x1040 + `VIRTIO_ID_RNG`.
const VIRTIO_DEVICE_RNG: u16 = 0x1044;
/// Device id of a transitional entropy device.
const VIRTIO_DEVICE_RNG_TRANSITIONAL: u16 = 0x1005;
/// Virtio device type of an entropy device (`VIRTIO_ID_RNG`), a transitional device's
/// subsystem id.
const VIRTIO_ID_RNG: u16 = 4;

// A virtio vendor capability (`struct virtio_pci_cap`, §4.1.4), relative to its start. It
// begins with the generic `cap_vndr` and `cap_next` ([`config::CAP_ID`], [`config::CAP_NEXT`])
// and `cap_len` (at 2, not needed: the fields below are inside every version's capability).
/// `cfg_type` (8 bits): which register block the capability locates.
const VIRTIO_CAP_CFG_TYPE: u8 = 3;
/// `bar` (8 bits): the BAR that holds the block.
const VIRTIO_CAP_BAR: u8 = 4;
/// `offset` (32 bits): where the block starts in the BAR.
const VIRTIO_CAP_OFFSET: u8 = 8;
/// `length` (32 bits): the length of the block.
const VIRTIO_CAP_LENGTH: u8 = 12;
/// `notify_off_multiplier` (32 bits), only in the notification capability
/// (`struct virtio_pci_notify_cap`).
const VIRTIO_CAP_NOTIFY_OFF_MULTIPLIER: u8 = 16;

// `cfg_type` values: the register blocks.
/// Common configuration (`struct virtio_pci_common_cfg`).
const VIRTIO_PCI_CAP_COMMON: u8 = 1;
/// Notifications.
const VIRTIO_PCI_CAP_NOTIFY: u8 = 2;
/// The interrupt status byte.
const VIRTIO_PCI_CAP_ISR: u8 = 3;
/// Device-specific configuration.
const VIRTIO_PCI_CAP_DEVICE: u8 = 4;
/// No MSI-X vector (`VIRTIO_MSI_NO_VECTOR`).
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
        Self::is_type(
            b,
            VIRTIO_DEVICE_NET,
            VIRTIO_DEVICE_NET_TRANSITIONAL,
            VIRTIO_ID_NET,
        )
    }

    /// Whether `b` is a virtio entropy device (modern id 0x1044, or transitional 0x1005 with
    /// subsystem id 4).
    pub fn is_rng(b: &Bdf) -> bool {
        Self::is_type(
            b,
            VIRTIO_DEVICE_RNG,
            VIRTIO_DEVICE_RNG_TRANSITIONAL,
            VIRTIO_ID_RNG,
        )
    }

    /// Whether `b` is a virtio block device (modern id 0x1042, or transitional 0x1001 with
    /// subsystem id 2).
    pub fn is_blk(b: &Bdf) -> bool {
        Self::is_type(
            b,
            VIRTIO_DEVICE_BLK,
            VIRTIO_DEVICE_BLK_TRANSITIONAL,
            VIRTIO_ID_BLOCK,
        )
    }

    /// Whether `b` is the virtio device of type `virtio_id`: its modern PCI device id, or its
    /// transitional one with the type as subsystem id.
    fn is_type(b: &Bdf, modern: u16, transitional: u16, virtio_id: u16) -> bool {
        match b.ids() {
            (VIRTIO_VENDOR, id) if id == modern => true,
            (VIRTIO_VENDOR, id) if id == transitional => b.read16(SUBSYSTEM_ID) == virtio_id,
            _ => false,
        }
    }

    /// Sets up the transport for `b`, modern if the device offers it (unless `force_legacy`),
    /// with MSI-X entry 0 on `vector` when the device has MSI-X (`None`: a device the driver
    /// polls, whose MSI-X stays off).
    pub fn new(b: Bdf, vector: Option<u8>, force_legacy: bool) -> Option<PciTransport> {
        b.enable();
        let msix = vector.is_some_and(|v| enable_msix(&b, v));
        if !force_legacy && let Some(t) = Self::modern(b, msix) {
            return Some(t);
        }
        // I/O BAR 0 of a virtio device is its legacy register block.
        let io = b.io_window(LEGACY_BAR)?;
        Some(PciTransport::Legacy { bdf: b, io, msix })
    }

    /// Whether the device interrupts (through MSI-X); without it the platform must poll it.
    pub fn interrupts(&self) -> bool {
        match self {
            PciTransport::Modern { msix, .. } | PciTransport::Legacy { msix, .. } => *msix,
        }
    }

    fn modern(b: Bdf, msix: bool) -> Option<PciTransport> {
        let (mut common, mut notify, mut isr, mut device, mut mul) = (None, None, None, None, 0);
        for (id, cap) in b.capabilities() {
            if id != CAP_ID_VENDOR {
                continue;
            }
            // A capability too close to the end of the space to hold its fields is ignored.
            let Some(length_at) = cap_field(cap, VIRTIO_CAP_LENGTH) else {
                continue;
            };
            let kind = b.read8(cap + VIRTIO_CAP_CFG_TYPE);
            let bar = b.read8(cap + VIRTIO_CAP_BAR);
            let off = b.read32(cap + VIRTIO_CAP_OFFSET);
            let len = b.read32(length_at);
            let w = || b.mmio_window(bar, off, len);
            match kind {
                VIRTIO_PCI_CAP_COMMON if common.is_none() => common = w(),
                VIRTIO_PCI_CAP_NOTIFY if notify.is_none() => {
                    let Some(mul_at) = cap_field(cap, VIRTIO_CAP_NOTIFY_OFF_MULTIPLIER) else {
                        continue;
                    };
                    notify = w();
                    mul = b.read32(mul_at);
                }
                VIRTIO_PCI_CAP_ISR if isr.is_none() => isr = w(),
                VIRTIO_PCI_CAP_DEVICE if device.is_none() => device = w(),
                _ => {}
            }
        }
        // Windows too small for the registers we use are refused here, so the accessors below
        // never see an offset outside them.
        let common = common.filter(|w: &Mmio| w.len() >= COMMON_CFG_LEN)?;
        let notify = notify.filter(|w: &Mmio| w.len() >= size_of::<u16>())?;
        let isr = isr.filter(|w: &Mmio| w.len() >= ISR_LEN)?;
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

// Modern common configuration (`struct virtio_pci_common_cfg`, §4.1.4.3).
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
/// The common configuration up to the last field used (`queue_device`, 64 bits).
const COMMON_CFG_LEN: usize = QUEUE_DEVICE + 8;
/// The interrupt status register (8 bits) is the first byte of the ISR block.
const ISR_STATUS: usize = 0;
const ISR_LEN: usize = ISR_STATUS + 1;
/// `queue_enable`: the queue is in use.
const QUEUE_ENABLED: u16 = 1;

/// The I/O BAR of the legacy interface.
const LEGACY_BAR: u8 = 0;

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
/// `L_QUEUE_PFN` takes the queue's address in 4 KiB pages.
const LEGACY_PFN_SHIFT: u32 = 12;
/// Device-specific configuration without MSI-X (the MSI-X registers are absent).
const L_CONFIG: u16 = 0x14;
/// Device-specific configuration with MSI-X (after `L_CONFIG_VECTOR` and `L_QUEUE_VECTOR`).
const L_CONFIG_MSIX: u16 = 0x18;
/// The device-specific configuration the legacy interface reaches (to the end of the BAR's
/// 256 ports).
const L_CONFIG_MAX: u16 = 0xff;

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

    fn setup_queue(&mut self, q: u16, ring: &Ring) -> Result<(), InitError> {
        let Ring {
            size,
            desc,
            avail,
            used,
        } = *ring;
        match self {
            PciTransport::Modern { common, msix, .. } => {
                common.write16(QUEUE_SELECT, q);
                common.write16(QUEUE_SIZE, size);
                if *msix {
                    common.write16(QUEUE_MSIX_VECTOR, MSIX_ENTRY);
                }
                for (off, v) in [
                    (QUEUE_DESC, desc),
                    (QUEUE_DRIVER, avail),
                    (QUEUE_DEVICE, used),
                ] {
                    // A 64-bit field, written as its low and high dwords.
                    common.write32(off, v as u32);
                    common.write32(off + size_of::<u32>(), (v >> 32) as u32);
                }
                common.write16(QUEUE_ENABLE, QUEUE_ENABLED);
            }
            PciTransport::Legacy { io, msix, .. } => {
                io.write16(L_QUEUE_SELECT, q);
                if *msix {
                    io.write16(L_QUEUE_VECTOR, MSIX_ENTRY);
                }
                let pfn =
                    u32::try_from(desc >> LEGACY_PFN_SHIFT).map_err(|_| InitError::QueueAddress)?;
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
            PciTransport::Modern { isr, .. } => isr.read8(ISR_STATUS),
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
                let base = if *msix { L_CONFIG_MSIX } else { L_CONFIG };
                match usize::from(base).checked_add(off) {
                    Some(at) if at <= usize::from(L_CONFIG_MAX) => io.read8(at as u16),
                    _ => 0,
                }
            }
        }
    }

    fn config_u32(&mut self, off: usize) -> u32 {
        match self {
            PciTransport::Modern { device, .. } => {
                if device.fits(off, 4) {
                    device.read32(off)
                } else {
                    0
                }
            }
            PciTransport::Legacy { io, msix, .. } => {
                let base = if *msix { L_CONFIG_MSIX } else { L_CONFIG };
                match usize::from(base).checked_add(off) {
                    Some(at) if at + 4 <= usize::from(L_CONFIG_MAX) + 1 => io.read32(at as u16),
                    _ => 0,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_fields_past_the_end_of_config_space_are_refused() {
        assert_eq!(cap_field(0x40, VIRTIO_CAP_LENGTH), Some(0x4c));
        assert_eq!(cap_field(0xf0, VIRTIO_CAP_LENGTH), Some(0xfc));
        assert_eq!(cap_field(0xf4, VIRTIO_CAP_LENGTH), None);
        assert_eq!(cap_field(0xfc, VIRTIO_CAP_NOTIFY_OFF_MULTIPLIER), None);
        assert_eq!(cap_field(0xfc, MSIX_TABLE), None);
        assert_eq!(cap_field(0xf8, MSIX_TABLE), Some(0xfc));
    }
}
