//! Port I/O for the legacy devices this crate drives directly (PIC, PIT, CMOS, exit ports).
//!
//! Port instructions are `unsafe`, so this module is allowed `unsafe` code; its functions are
//! called only with those devices' fixed ports.

use x86_64::instructions::port::Port;

/// Writes a byte to an I/O port.
pub(crate) fn outb(port: u16, v: u8) {
    // SAFETY: only called with the fixed ports of the legacy devices this crate owns (PIC,
    // PIT, CMOS, isa-debug-exit, ACPI PM, keyboard controller); writing them cannot break
    // memory safety.
    unsafe { Port::<u8>::new(port).write(v) }
}

/// Writes a 16-bit word to an I/O port.
pub(crate) fn outw(port: u16, v: u16) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u16>::new(port).write(v) }
}

/// Reads a byte from an I/O port.
pub(crate) fn inb(port: u16) -> u8 {
    // SAFETY: as for `outb`; reads of these ports only change the device's own state.
    unsafe { Port::<u8>::new(port).read() }
}
