//! 16550 UART driver: the console of the `virtio` platform (COM1 on QEMU microvm/q35/pc,
//! Firecracker and most KVM clouds).
//!
//! Driver layer: it touches its own I/O ports and nothing else, and depends only on the
//! `x86_64` crate for port access. Output is polled, never interrupt-driven: the console must
//! work in crash reports with interrupts off. Writing never fails and never blocks for long: if
//! the transmitter stays busy (no UART present, a stalled host side), bytes are dropped after
//! a bounded wait and counted.
#![no_std]

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// The I/O base of COM1.
pub const COM1: u16 = 0x3f8;

/// Line status register: transmitter holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// How many status polls to wait for room before dropping a byte.
const SPIN_LIMIT: u32 = 100_000;

/// A 16550-compatible UART at an I/O port base.
pub struct Uart {
    base: u16,
    dropped: AtomicU64,
}

impl Uart {
    /// A UART at `base` (not yet initialised).
    pub const fn new(base: u16) -> Uart {
        Uart {
            base,
            dropped: AtomicU64::new(0),
        }
    }

    fn port(&self, off: u16) -> Port<u8> {
        Port::new(self.base + off)
    }

    fn out(&self, off: u16, v: u8) {
        // SAFETY: the ports `base..base+8` belong to this UART and writing its registers has
        // no effect beyond the UART.
        unsafe { self.port(off).write(v) }
    }

    fn inp(&self, off: u16) -> u8 {
        // SAFETY: as for `out`; reading these registers only affects the UART's own state.
        unsafe { self.port(off).read() }
    }

    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        self.out(1, 0x00); // no interrupts
        self.out(3, 0x80); // DLAB on
        self.out(0, 0x01); // divisor 1: 115200 baud
        self.out(1, 0x00);
        self.out(3, 0x03); // 8N1, DLAB off
        self.out(2, 0xc7); // FIFO on, cleared, 14-byte threshold
        self.out(4, 0x03); // DTR, RTS
    }

    fn put(&self, b: u8) {
        let mut spins = 0;
        while self.inp(5) & LSR_THRE == 0 {
            spins += 1;
            if spins >= SPIN_LIMIT {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            core::hint::spin_loop();
        }
        self.out(0, b);
    }

    /// Writes `bytes`, turning `\n` into `\r\n`.
    pub fn write(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    /// Bytes dropped because the transmitter never became ready.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
