//! PCI configuration space: access through configuration mechanism #1 (ports 0xcf8/0xcfc,
//! present on q35 and pc), the bus scan, BAR decoding, the capability list, and the register
//! windows a function's BARs give its driver.
//!
//! This is the only part of the PCI code that needs `unsafe`: it owns the configuration ports
//! and turns BARs into [`Mmio`] / [`Pio`] windows, whose constructors have a contract (the
//! registers belong to the device and to the one driver using the window). Everything above
//! it — the MSI-X setup and the virtio-pci transport — is safe code over those windows.
//!
//! Offsets are named after the PCI Local Bus Specification (type 0/1 configuration header) and
//! the MSI-X capability; virtio's own capability fields are in the parent module.

use crate::regs::{Mmio, Pio};
use alloc::vec::Vec;
use core::fmt;

// Configuration mechanism #1: the address register at 0xcf8, the data register at 0xcfc.
const CONFIG_PORTS: u16 = 0xcf8;
const CONFIG_ADDRESS: u16 = 0;
const CONFIG_DATA: u16 = 4;
/// `CONFIG_ADDRESS` bit 31: the access is a configuration cycle.
const CONFIG_ENABLE: u32 = 1 << 31;

// The common configuration header (types 0 and 1).
/// Vendor id (16 bits); all ones when no function answers.
pub const VENDOR_ID: u8 = 0x00;
/// Device id (16 bits).
pub const DEVICE_ID: u8 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u8 = 0x04;
/// Status register (16 bits).
pub const STATUS: u8 = 0x06;
/// Header type (8 bits): layout in bits 0..7, multi-function in bit 7.
pub const HEADER_TYPE: u8 = 0x0e;
/// The first base address register; BAR `i` is at `BAR0 + 4 * i`.
pub const BAR0: u8 = 0x10;
/// Offset of the first capability (8 bits; the low two bits are reserved).
pub const CAPABILITIES_POINTER: u8 = 0x34;
// Type 0 (endpoint) header.
/// Subsystem id (16 bits); for transitional virtio devices, the virtio device type.
pub const SUBSYSTEM_ID: u8 = 0x2e;
// Type 1 (PCI-to-PCI bridge) header.
/// The bus number behind a bridge (8 bits).
pub const SECONDARY_BUS: u8 = 0x19;

/// Command: respond to I/O space accesses.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command: respond to memory space accesses.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command: the function may master the bus (DMA, MSI-X messages).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Status: the function has a capability list.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;
/// Header type: the device implements more than one function.
pub const HEADER_MULTI_FUNCTION: u8 = 0x80;
/// Header type: the layout field.
pub const HEADER_LAYOUT: u8 = 0x7f;
/// Header layout of a PCI-to-PCI bridge.
pub const HEADER_LAYOUT_BRIDGE: u8 = 1;
/// Vendor id read from a slot where no function answers.
const NO_FUNCTION: u16 = 0xffff;

// Base address registers.
/// BAR bit 0: I/O space (otherwise memory space).
const BAR_IO: u32 = 1 << 0;
/// The address bits of an I/O BAR.
const BAR_IO_ADDRESS: u32 = !0x3;
/// The address bits of a memory BAR.
const BAR_MEM_ADDRESS: u32 = !0xf;
/// Memory BAR type field (bits 1..2).
const BAR_MEM_TYPE_SHIFT: u32 = 1;
const BAR_MEM_TYPE_MASK: u32 = 0x3;
/// Memory BAR type: 64-bit, the next BAR holds the high half.
const BAR_MEM_TYPE_64: u32 = 2;
/// The last BAR of a type 0 header.
const LAST_BAR: u8 = 5;

// Capabilities: every capability starts with its id and the offset of the next one.
/// Capability field: the capability id (8 bits).
pub const CAP_ID: u8 = 0;
/// Capability field: the offset of the next capability, 0 at the end (8 bits).
pub const CAP_NEXT: u8 = 1;
/// Capability id: vendor specific (virtio uses it for its register locations).
pub const CAP_ID_VENDOR: u8 = 0x09;
/// Capability id: MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Capabilities never start inside the 64-byte standard header.
const CAP_MIN_OFFSET: u8 = 0x40;
/// Capability offsets are dword aligned; the low two bits of pointers are reserved.
const CAP_POINTER_MASK: u8 = 0xfc;
/// The most capabilities walked: the list cannot hold more in 192 bytes, so a longer (looping)
/// list ends here.
const MAX_CAPS: usize = 48;

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
    unsafe { Pio::new(CONFIG_PORTS) }
}

impl Bdf {
    fn address(&self, off: u8) -> u32 {
        CONFIG_ENABLE
            | (u32::from(self.bus) << 16)
            | (u32::from(self.dev & 31) << 11)
            | (u32::from(self.func & 7) << 8)
            | u32::from(off & 0xfc)
    }

    /// Reads a configuration dword.
    pub fn read32(&self, off: u8) -> u32 {
        let p = config_ports();
        p.write32(CONFIG_ADDRESS, self.address(off));
        p.read32(CONFIG_DATA)
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
        p.write32(CONFIG_ADDRESS, self.address(off));
        p.write32(CONFIG_DATA, v);
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
        // Both in the first dword: one configuration read.
        const _: () = assert!(VENDOR_ID == 0 && DEVICE_ID == 2);
        let v = self.read32(VENDOR_ID);
        (v as u16, (v >> 16) as u16)
    }

    /// The capabilities: (id, offset) pairs, at most 48 (a looping list ends there).
    pub fn capabilities(&self) -> Vec<(u8, u8)> {
        let mut caps = Vec::new();
        if self.read16(STATUS) & STATUS_CAPABILITIES == 0 {
            return caps;
        }
        let mut p = self.read8(CAPABILITIES_POINTER) & CAP_POINTER_MASK;
        while p >= CAP_MIN_OFFSET && caps.len() < MAX_CAPS {
            caps.push((self.read8(p + CAP_ID), p));
            p = self.read8(p + CAP_NEXT) & CAP_POINTER_MASK;
        }
        caps
    }

    /// BAR `i` decoded: `Bar::Io(port)` or `Bar::Mem(address)`.
    pub fn bar(&self, i: u8) -> Option<Bar> {
        if i > LAST_BAR {
            return None;
        }
        let v = self.read32(BAR0 + 4 * i);
        if v & BAR_IO == BAR_IO {
            return u16::try_from(v & BAR_IO_ADDRESS)
                .ok()
                .filter(|&p| p != 0)
                .map(Bar::Io);
        }
        let mut addr = u64::from(v & BAR_MEM_ADDRESS);
        if (v >> BAR_MEM_TYPE_SHIFT) & BAR_MEM_TYPE_MASK == BAR_MEM_TYPE_64 && i < LAST_BAR {
            addr |= u64::from(self.read32(BAR0 + 4 * (i + 1))) << 32;
        }
        (addr != 0).then_some(Bar::Mem(addr))
    }

    /// Enables I/O and memory decoding and bus mastering.
    pub fn enable(&self) {
        let cmd = self.read16(COMMAND);
        self.write16(
            COMMAND,
            cmd | COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER,
        );
    }

    /// The registers at `offset..offset + len` of memory BAR `bar`; `None` if the BAR is not
    /// a memory BAR, the region is empty or it does not lie below 4 GiB (the part fata maps).
    ///
    /// Only the function's driver calls this, once per region it uses.
    pub(crate) fn mmio_window(&self, bar: u8, offset: u32, len: u32) -> Option<Mmio> {
        let Bar::Mem(base) = self.bar(bar)? else {
            return None;
        };
        let start = base.checked_add(u64::from(offset))?;
        let end = start.checked_add(u64::from(len))?;
        if end > MAPPED_LIMIT || len == 0 {
            log::warn!(
                "virtio-pci {self}: BAR {bar} region {start:#x}..{end:#x} is above 4 GiB; not usable"
            );
            return None;
        }
        // SAFETY: the range lies in a memory BAR the firmware assigned to this device, below
        // 4 GiB where fata maps non-RAM uncached; the device's one driver is its only user.
        Some(unsafe { Mmio::new(start as usize, len as usize) })
    }

    /// The ports of I/O BAR `bar`; `None` if it is not an I/O BAR.
    ///
    /// Only the function's driver calls this.
    pub(crate) fn io_window(&self, bar: u8) -> Option<Pio> {
        let Bar::Io(port) = self.bar(bar)? else {
            return None;
        };
        // SAFETY: the firmware assigned these ports to this device; the device's one driver
        // is their only user.
        Some(unsafe { Pio::new(port) })
    }
}

/// Highest physical address fata maps for MMIO.
const MAPPED_LIMIT: u64 = 4 << 30;

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
            if f0.ids().0 == NO_FUNCTION {
                continue;
            }
            let funcs = if f0.read8(HEADER_TYPE) & HEADER_MULTI_FUNCTION != 0 {
                8
            } else {
                1
            };
            for func in 0..funcs {
                let b = Bdf { bus, dev, func };
                if b.ids().0 == NO_FUNCTION {
                    continue;
                }
                if b.read8(HEADER_TYPE) & HEADER_LAYOUT == HEADER_LAYOUT_BRIDGE {
                    buses.push(b.read8(SECONDARY_BUS));
                }
                found.push(b);
            }
        }
    }
    found
}
