//! What a platform learned at boot and hands to the runtime.

/// A region of RAM handed to the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte of the region.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
}

/// At most this many heap regions are passed from a platform to the runtime.
pub const MAX_HEAP_REGIONS: usize = 8;

/// Boot information: the command line and the memory the heap may use.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// The boot command line (`key=value` words), already validated as UTF-8.
    pub cmdline: &'static str,
    /// Free RAM for the heap. Unused slots are `None`. Empty on hosted platforms, which use
    /// the host allocator.
    pub heap: [Option<MemoryRegion>; MAX_HEAP_REGIONS],
    /// Total RAM the machine reported, in bytes (0 if unknown).
    pub ram_bytes: u64,
}

impl BootInfo {
    /// Boot information with a command line and no heap regions.
    pub const fn hosted(cmdline: &'static str) -> BootInfo {
        BootInfo {
            cmdline,
            heap: [None; MAX_HEAP_REGIONS],
            ram_bytes: 0,
        }
    }

    /// The heap regions that are present.
    pub fn heap_regions(&self) -> impl Iterator<Item = MemoryRegion> + '_ {
        self.heap.iter().flatten().copied()
    }

    /// Total bytes in the heap regions.
    pub fn heap_bytes(&self) -> usize {
        self.heap_regions().map(|r| r.len).sum()
    }
}
