//! 16550 UART driver: the console of the `virtio` platform (COM1 on QEMU microvm/q35/pc,
//! Firecracker and most KVM clouds).
//!
//! Driver layer: it touches its own I/O ports and nothing else, and depends only on the
//! `x86_64` crate for port access. Output is polled, never interrupt-driven: the console must
//! work in crash reports with interrupts off. Writing never fails and never blocks for long: if
//! the transmitter stays busy (no UART present, a stalled host side), bytes are dropped after
//! a bounded wait and counted.
//!
//! The port accesses are the only `unsafe` code, in the private `port` module; the crate
//! denies `unsafe_code` everywhere else.
#![no_std]
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

#[allow(unsafe_code)]
mod port {
    //! Byte-wide access to the UART's I/O ports.

    use x86_64::instructions::port::Port;

    /// Writes `v` to port `port`, one of a UART's registers.
    pub(crate) fn write(port: u16, v: u8) {
        // SAFETY: only `Uart` calls this, with a port of its own block `base..base+8`;
        // writing UART registers has no effect beyond the UART.
        unsafe { Port::<u8>::new(port).write(v) }
    }

    /// Reads port `port`, one of a UART's registers.
    pub(crate) fn read(port: u16) -> u8 {
        // SAFETY: as for `write`; reading these registers only affects the UART's own state.
        unsafe { Port::<u8>::new(port).read() }
    }
}

/// The I/O base of COM1.
pub const COM1: u16 = 0x3f8;

// Register offsets from the base. With the divisor latch (`LCR_DLAB`) on, the first two
// hold the baud-rate divisor instead.
/// Transmitter holding register (write); divisor latch low byte with DLAB.
const THR: u16 = 0;
/// Divisor latch low byte (with DLAB).
const DLL: u16 = 0;
/// Interrupt enable register; divisor latch high byte with DLAB.
const IER: u16 = 1;
/// Divisor latch high byte (with DLAB).
const DLM: u16 = 1;
/// FIFO control register (write).
const FCR: u16 = 2;
/// Line control register.
const LCR: u16 = 3;
/// Modem control register.
const MCR: u16 = 4;
/// Line status register.
const LSR: u16 = 5;

/// Line control: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// Line control: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
/// FIFO control: enable, clear both FIFOs, interrupt at 14 bytes.
const FCR_ENABLE_CLEAR_14: u8 = 0xc7;
/// Modem control: DTR and RTS.
const MCR_DTR_RTS: u8 = 0x03;
/// Divisor for 115200 baud (the 1.8432 MHz clock / 16 / 115200).
const DIVISOR_115200: u16 = 1;
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

    fn out(&self, off: u16, v: u8) {
        port::write(self.base + off, v);
    }

    fn inp(&self, off: u16) -> u8 {
        port::read(self.base + off)
    }

    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        self.out(IER, 0x00); // no interrupts
        self.out(LCR, LCR_DLAB);
        let [lo, hi] = DIVISOR_115200.to_le_bytes();
        self.out(DLL, lo);
        self.out(DLM, hi);
        self.out(LCR, LCR_8N1); // and DLAB off
        self.out(FCR, FCR_ENABLE_CLEAR_14);
        self.out(MCR, MCR_DTR_RTS);
    }

    fn put(&self, b: u8) {
        let mut spins = 0;
        while self.inp(LSR) & LSR_THRE == 0 {
            spins += 1;
            if spins >= SPIN_LIMIT {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            core::hint::spin_loop();
        }
        self.out(THR, b);
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
