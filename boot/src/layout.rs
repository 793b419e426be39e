//! The image's memory layout, as the linker script (`boot/link.ld`) and the entry code laid it
//! out: where text, read-only data, writable data and each stack with its guard page are.
//!
//! [`ImageLayout`] is plain data so the page-table plan can be unit-tested on the host;
//! [`ImageLayout::current`] reads the real addresses from linker symbols inside an image.

/// 4 KiB.
pub const PAGE_SIZE: u64 = 4096;

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// A stack and the unmapped guard page below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// Human name, used in crash reports ("boot", "interrupt stack 1", ...).
    pub name: &'static str,
    /// The guard page (one page, never mapped).
    pub guard: u64,
    /// Usable stack memory.
    pub memory: Range,
}

/// Addresses of the image's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// Executable code.
    pub text: Range,
    /// Read-only data (including the ELF notes).
    pub rodata: Range,
    /// Writable data, `.bss`, stacks, up to the end of the image.
    pub data: Range,
    /// Every stack with its guard page; all inside `data`.
    pub stacks: [Stack; 4],
}

impl ImageLayout {
    /// The guard page that contains `addr`, if any, and the stack it protects.
    pub fn guard_hit(&self, addr: u64) -> Option<&Stack> {
        self.stacks
            .iter()
            .find(|s| addr >= s.guard && addr < s.guard + PAGE_SIZE)
    }

    /// The stack whose memory contains `addr`, if any.
    pub fn stack_of(&self, addr: u64) -> Option<&Stack> {
        self.stacks.iter().find(|s| s.memory.contains(addr))
    }

    /// End of the image: the first byte after everything the image occupies.
    pub fn end(&self) -> u64 {
        self.data.end
    }
}

/// The linker's symbols. Declaring them takes an `unsafe extern` block (the only `unsafe`
/// here); only their addresses are used, which is safe.
#[cfg(not(test))]
#[allow(unsafe_code)]
mod symbols {
    use super::{ImageLayout, Range, Stack};

    unsafe extern "C" {
        static __text_start: u8;
        static __text_end: u8;
        static __rodata_start: u8;
        static __rodata_end: u8;
        static __data_start: u8;
        static __image_end: u8;
        static __fata_guard_boot: u8;
        static __fata_stack_boot_bottom: u8;
        static __fata_stack_boot_top: u8;
        static __fata_guard_ist1: u8;
        static __fata_stack_ist1_bottom: u8;
        static __fata_stack_ist1_top: u8;
        static __fata_guard_ist2: u8;
        static __fata_stack_ist2_bottom: u8;
        static __fata_stack_ist2_top: u8;
        static __fata_guard_ist3: u8;
        static __fata_stack_ist3_bottom: u8;
        static __fata_stack_ist3_top: u8;
    }

    macro_rules! addr {
        ($sym:ident) => {
            (&raw const $sym) as u64
        };
    }

    impl ImageLayout {
        /// The layout of the running image, from the linker's symbols.
        pub fn current() -> ImageLayout {
            ImageLayout {
                text: Range {
                    start: addr!(__text_start),
                    end: addr!(__text_end),
                },
                rodata: Range {
                    start: addr!(__rodata_start),
                    end: addr!(__rodata_end),
                },
                data: Range {
                    start: addr!(__data_start),
                    end: addr!(__image_end),
                },
                stacks: [
                    Stack {
                        name: "the boot stack",
                        guard: addr!(__fata_guard_boot),
                        memory: Range {
                            start: addr!(__fata_stack_boot_bottom),
                            end: addr!(__fata_stack_boot_top),
                        },
                    },
                    Stack {
                        name: "exception stack",
                        guard: addr!(__fata_guard_ist1),
                        memory: Range {
                            start: addr!(__fata_stack_ist1_bottom),
                            end: addr!(__fata_stack_ist1_top),
                        },
                    },
                    Stack {
                        name: "double-fault stack",
                        guard: addr!(__fata_guard_ist2),
                        memory: Range {
                            start: addr!(__fata_stack_ist2_bottom),
                            end: addr!(__fata_stack_ist2_top),
                        },
                    },
                    Stack {
                        name: "interrupt stack",
                        guard: addr!(__fata_guard_ist3),
                        memory: Range {
                            start: addr!(__fata_stack_ist3_bottom),
                            end: addr!(__fata_stack_ist3_top),
                        },
                    },
                ],
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A layout shaped like a real image, for unit tests.
    pub fn sample() -> ImageLayout {
        let stack = |name, guard: u64, size: u64| Stack {
            name,
            guard,
            memory: Range {
                start: guard + PAGE_SIZE,
                end: guard + PAGE_SIZE + size,
            },
        };
        ImageLayout {
            text: Range {
                start: 0x10_0000,
                end: 0x11_0000,
            },
            rodata: Range {
                start: 0x11_0000,
                end: 0x11_4000,
            },
            data: Range {
                start: 0x11_4000,
                end: 0x17_8000,
            },
            stacks: [
                stack("the boot stack", 0x11_6000, 0x4_0000),
                stack("exception stack", 0x15_7000, 0x8000),
                stack("double-fault stack", 0x16_0000, 0x8000),
                stack("interrupt stack", 0x16_9000, 0x8000),
            ],
        }
    }
}
