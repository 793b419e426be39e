//! The memory-mapped register windows the platform uses: the local APIC (at the address in
//! `IA32_APIC_BASE`), the I/O APICs (where QEMU places them) and the virtio-mmio devices the
//! command line announces, after checking that such a window lies outside RAM and below
//! 4 GiB, where the page tables map device memory uncached.
//!
//! Making a window ([`Mmio::new`]) is `unsafe`: this module is where those addresses are
//! trusted, so it is allowed `unsafe` code. The drivers of the windows (`lapic`, `ioapic`,
//! `devices`) are safe code.

use fata_virtio::regs::Mmio;

/// Physical memory the page tables map (device memory uncached).
const MAPPED_LIMIT: u64 = 1 << 32;
/// Size of the local APIC's register window.
const LAPIC_WINDOW: usize = 4096;
/// The I/O APICs QEMU places (base, first GSI): microvm has one at 0xfec00000 (GSIs 0..23)
/// and, with `ioapic2`, a second at 0xfec10000 (GSIs 24..47).
const IOAPICS: [(usize, u32); 2] = [(0xfec0_0000, 0), (0xfec1_0000, 24)];
/// Size of an I/O APIC's register window (`IOREGSEL`, `IOWIN`).
const IOAPIC_WINDOW: usize = 0x20;

static RAM: spin::Once<([(u64, u64); 16], usize)> = spin::Once::new();

/// Remembers the RAM ranges (start, end) so that no device window is made inside RAM.
pub(crate) fn init(ram: &[(u64, u64)]) {
    RAM.call_once(|| {
        let mut a = [(0, 0); 16];
        let n = ram.len().min(16);
        a[..n].copy_from_slice(&ram[..n]);
        (a, n)
    });
}

/// Whether `start..start + len` overlaps RAM (or RAM is not known yet).
fn in_ram(start: u64, len: u64) -> bool {
    let Some((ram, n)) = RAM.get() else {
        return true;
    };
    let end = start.saturating_add(len);
    ram[..*n].iter().any(|&(s, e)| start < e && s < end)
}

/// Enables the local APIC and returns its register window.
pub(crate) fn lapic() -> Mmio {
    let base = crate::cpu::enable_lapic();
    // SAFETY: IA32_APIC_BASE names the local APIC's register page; it is not RAM and lies in
    // the identity-mapped, uncached device range. `lapic` calls this once and is its only user.
    unsafe { Mmio::new(base as usize, LAPIC_WINDOW) }
}

/// The I/O APICs that may exist, with the first GSI of each. A missing one reads all ones.
pub(crate) fn ioapics() -> [(Mmio, u32); 2] {
    IOAPICS.map(|(base, first)| {
        // SAFETY: QEMU's I/O APIC register windows, below 4 GiB and not RAM, mapped uncached
        // (an absent one is unbacked device space: reads return all ones, writes are ignored).
        // `ioapic` is their only user.
        (unsafe { Mmio::new(base, IOAPIC_WINDOW) }, first)
    })
}

/// The register window of a virtio-mmio device announced on the command line, unless it
/// reaches above 4 GiB or into RAM.
///
/// Only `devices` calls this, for the device it acquires, and then drives it alone.
pub(crate) fn device_window(base: u64, size: u64) -> Option<Mmio> {
    if base.saturating_add(size) > MAPPED_LIMIT || in_ram(base, size) {
        return None;
    }
    // SAFETY: the window lies below 4 GiB outside every RAM region (checked above), where
    // the page tables map device memory uncached; the hypervisor announced a device there,
    // and its one driver (acquired once, in `devices`) is the only user.
    Some(unsafe { Mmio::new(base as usize, size as usize) })
}
