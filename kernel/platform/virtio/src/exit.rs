//! Ending the machine: QEMU's `isa-debug-exit` first (it carries the exit code), then the
//! power-off and reset paths that exist on machines without it.

use crate::cpu::triple_fault;
use crate::pio::{outb, outw};

/// `isa-debug-exit` I/O base (QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exits with `code`. QEMU with `isa-debug-exit` exits with status `(code << 1) | 1`.
pub(crate) fn exit(code: u8) -> ! {
    outb(DEBUG_EXIT_PORT, code);
    // No debug-exit device: the exit code is lost, but the machine must still stop.
    // ACPI S5 on q35 (ICH9 PM1a_CNT at 0x604) and on pc (PIIX4 at 0xb004).
    outw(0x604, 0x2000);
    outw(0xb004, 0x2000);
    // Keyboard-controller reset (Firecracker's shutdown path; QEMU with -no-reboot exits).
    outb(0x64, 0xfe);
    // Last resort, for machines with none of the above (QEMU microvm without debug-exit):
    // a triple fault resets the machine, and `-no-reboot` turns a reset into an exit.
    triple_fault()
}
