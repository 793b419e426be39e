//! Device registers: memory-mapped (virtio-mmio, virtio-pci capabilities, MSI-X tables) and
//! I/O ports (PCI configuration space, legacy virtio-pci).

use x86_64::instructions::port::Port;

/// A window of memory-mapped device registers.
#[derive(Clone, Copy, Debug)]
pub struct Mmio {
    base: usize,
    len: usize,
}

impl Mmio {
    /// A register window at `base` of `len` bytes.
    ///
    /// # Safety
    /// `base..base + len` must be device registers (not RAM), identity-mapped and uncached,
    /// belonging to the one driver that uses this window.
    pub unsafe fn new(base: usize, len: usize) -> Mmio {
        Mmio { base, len }
    }

    /// Base address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length of the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a register of `size` bytes at `off` lies inside the window and is aligned.
    /// Offsets that come from a device must be checked with this first: the accessors panic
    /// on an offset outside the window (a driver bug, not a device fault).
    pub fn fits(&self, off: usize, size: usize) -> bool {
        off.checked_add(size).is_some_and(|e| e <= self.len) && off.is_multiple_of(size)
    }

    fn ptr<T>(&self, off: usize) -> *mut T {
        assert!(
            self.fits(off, size_of::<T>()),
            "register offset {off:#x} outside a {:#x}-byte window",
            self.len
        );
        (self.base + off) as *mut T
    }

    /// Reads an 8-bit register.
    pub fn read8(&self, off: usize) -> u8 {
        // SAFETY: `new`'s contract makes the window device registers; `ptr` checked the offset.
        unsafe { self.ptr::<u8>(off).read_volatile() }
    }

    /// Reads a 16-bit register.
    pub fn read16(&self, off: usize) -> u16 {
        // SAFETY: as for `read8`.
        unsafe { self.ptr::<u16>(off).read_volatile() }
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, off: usize) -> u32 {
        // SAFETY: as for `read8`.
        unsafe { self.ptr::<u32>(off).read_volatile() }
    }

    /// Writes an 8-bit register.
    pub fn write8(&self, off: usize, v: u8) {
        // SAFETY: as for `read8`.
        unsafe { self.ptr::<u8>(off).write_volatile(v) }
    }

    /// Writes a 16-bit register.
    pub fn write16(&self, off: usize, v: u16) {
        // SAFETY: as for `read8`.
        unsafe { self.ptr::<u16>(off).write_volatile(v) }
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, off: usize, v: u32) {
        // SAFETY: as for `read8`.
        unsafe { self.ptr::<u32>(off).write_volatile(v) }
    }
}

/// A block of I/O ports.
#[derive(Clone, Copy, Debug)]
pub struct Pio {
    base: u16,
}

impl Pio {
    /// Ports `base..` of one device.
    ///
    /// # Safety
    /// The ports must belong to the device the caller drives (for example a PCI I/O BAR the
    /// firmware assigned to it).
    pub unsafe fn new(base: u16) -> Pio {
        Pio { base }
    }

    /// Reads a byte.
    pub fn read8(&self, off: u16) -> u8 {
        // SAFETY: `new`'s contract: the ports are this device's registers.
        unsafe { Port::<u8>::new(self.base + off).read() }
    }

    /// Reads a 16-bit word.
    pub fn read16(&self, off: u16) -> u16 {
        // SAFETY: as for `read8`.
        unsafe { Port::<u16>::new(self.base + off).read() }
    }

    /// Reads a 32-bit word.
    pub fn read32(&self, off: u16) -> u32 {
        // SAFETY: as for `read8`.
        unsafe { Port::<u32>::new(self.base + off).read() }
    }

    /// Writes a byte.
    pub fn write8(&self, off: u16, v: u8) {
        // SAFETY: as for `read8`.
        unsafe { Port::<u8>::new(self.base + off).write(v) }
    }

    /// Writes a 16-bit word.
    pub fn write16(&self, off: u16, v: u16) {
        // SAFETY: as for `read8`.
        unsafe { Port::<u16>::new(self.base + off).write(v) }
    }

    /// Writes a 32-bit word.
    pub fn write32(&self, off: u16, v: u32) {
        // SAFETY: as for `read8`.
        unsafe { Port::<u32>::new(self.base + off).write(v) }
    }
}
