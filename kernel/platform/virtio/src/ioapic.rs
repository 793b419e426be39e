//! I/O APICs: routing a device's interrupt line (GSI) to a CPU vector. QEMU's microvm has one
//! at 0xfec00000 (GSIs 0..23) and, with `ioapic2`, a second at 0xfec10000 (GSIs 24..47).

/// The I/O APICs QEMU places (base, first GSI).
const IOAPICS: [(usize, u32); 2] = [(0xfec0_0000, 0), (0xfec1_0000, 24)];

fn select(base: usize, reg: u32) {
    // SAFETY: `base` is one of the I/O APIC register windows above (below 4 GiB, not RAM,
    // mapped uncached); IOREGSEL at offset 0 only selects a register.
    unsafe { core::ptr::write_volatile(base as *mut u32, reg) }
}

fn read(base: usize, reg: u32) -> u32 {
    select(base, reg);
    // SAFETY: as for `select`; IOWIN at offset 0x10 reads the selected register.
    unsafe { core::ptr::read_volatile((base + 0x10) as *const u32) }
}

fn write(base: usize, reg: u32, v: u32) {
    select(base, reg);
    // SAFETY: as for `read`; writing a redirection entry only changes interrupt routing.
    unsafe { core::ptr::write_volatile((base + 0x10) as *mut u32, v) }
}

/// Routes `gsi` (edge-triggered, active high) to `vector` on the boot CPU. Returns false if no
/// I/O APIC has that GSI.
pub(crate) fn route(gsi: u32, vector: u8) -> bool {
    for (base, first) in IOAPICS {
        let ver = read(base, 1);
        if ver == u32::MAX || ver == 0 {
            continue; // no I/O APIC here
        }
        let entries = ((ver >> 16) & 0xff) + 1;
        if gsi >= first && gsi < first + entries {
            let idx = gsi - first;
            write(base, 0x11 + 2 * idx, 0); // destination: APIC id 0
            write(base, 0x10 + 2 * idx, u32::from(vector)); // fixed, physical, high, edge, unmasked
            return true;
        }
    }
    false
}
