//! I/O APICs: routing a device's interrupt line (GSI) to a CPU vector. QEMU's microvm has one
//! at 0xfec00000 (GSIs 0..23) and, with `ioapic2`, a second at 0xfec10000 (GSIs 24..47); their
//! register windows come from [`crate::mmio::ioapics`].

use fata_virtio::regs::Mmio;

/// Register select: which register `IOWIN` reads and writes.
const IOREGSEL: usize = 0x00;
/// Register window: the selected register.
const IOWIN: usize = 0x10;
/// Register: version (bits 0..7) and the last redirection entry (bits 16..23).
const IOAPICVER: u32 = 0x01;
/// Register: the first redirection entry; entry `n` is two registers, low then high dword.
const IOREDTBL: u32 = 0x10;

fn read(regs: &Mmio, reg: u32) -> u32 {
    regs.write32(IOREGSEL, reg);
    regs.read32(IOWIN)
}

fn write(regs: &Mmio, reg: u32, v: u32) {
    regs.write32(IOREGSEL, reg);
    regs.write32(IOWIN, v);
}

/// Routes `gsi` (edge-triggered, active high) to `vector` on the boot CPU. Returns false if no
/// I/O APIC has that GSI.
pub(crate) fn route(gsi: u32, vector: u8) -> bool {
    for (regs, first) in crate::mmio::ioapics() {
        let ver = read(&regs, IOAPICVER);
        if ver == u32::MAX || ver == 0 {
            continue; // no I/O APIC here
        }
        let entries = ((ver >> 16) & 0xff) + 1;
        if gsi >= first && gsi < first + entries {
            let entry = IOREDTBL + 2 * (gsi - first);
            write(&regs, entry + 1, 0); // destination: APIC id 0
            write(&regs, entry, u32::from(vector)); // fixed, physical, high, edge, unmasked
            return true;
        }
    }
    false
}
