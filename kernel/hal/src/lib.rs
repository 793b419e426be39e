//! fata's hardware abstraction layer (HAL): the contract between the runtime and a platform.
//!
//! This crate depends on nothing. A platform (`kernel/platform/*`) implements [`Platform`]
//! once; the runtime (`fata`) and all library code are written against these traits, so the
//! same code runs on a hypervisor, on Linux, and against the mocks in [`mock`] in unit tests.
//!
//! The set is deliberately small, in the spirit of Solo5: boot information, a console that
//! never fails, a monotonic and a wall clock, one blocking call ([`Platform::wait`]) and
//! [`Platform::exit`]. Device classes (network, block, entropy) get their own trait modules.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod boot;
pub mod entropy;
pub mod exit;
#[cfg(any(test, feature = "mock"))]
pub mod mock;
pub mod net;
pub mod sockets;

pub use boot::{BootInfo, MemoryRegion};
pub use exit::ExitCode;

/// Nanoseconds since an arbitrary point fixed at boot (monotonic clock) or since the Unix epoch
/// (wall clock).
pub type Nanos = u64;

/// Everything the runtime needs from the machine it runs on.
///
/// All methods are associated functions: a platform is a singleton that exists from boot to
/// exit, and the runtime selects exactly one at compile time.
pub trait Platform: 'static {
    /// Short platform name printed in the boot banner (`virtio`, `xen`, `unix`).
    const NAME: &'static str;

    /// Writes bytes to the console. Best effort: never fails, never blocks for long.
    fn console_write(bytes: &[u8]);

    /// Monotonic time in nanoseconds. Never goes backwards, never fails.
    fn monotonic_ns() -> Nanos;

    /// Wall-clock time in nanoseconds since the Unix epoch, or `None` if the platform has no
    /// trustworthy source for it.
    fn wall_ns() -> Option<Nanos>;

    /// The only blocking call: idles the CPU until an event arrives or the monotonic clock
    /// reaches `deadline` (`None`: no deadline). Returns the set of device events seen.
    /// May return early (spurious wake-ups are allowed); callers re-check their state.
    fn wait(deadline: Option<Nanos>) -> Events;

    /// Ends the program with `code`. Never returns.
    fn exit(code: ExitCode) -> !;

    /// The platform's network device type (a device that never has frames where there is none).
    type Net: net::NetDevice + 'static;

    /// Acquires the network device `name` (`service0` is the first NIC; devices are acquired
    /// once). Returns the device and the [`Events`] bits [`Platform::wait`] reports for it.
    fn open_net(name: &str) -> Result<(Self::Net, Events), net::OpenError>;

    /// The platform's block device type ([`block::NoBlock`] where there are none).
    type Block: block::BlockDevice + 'static;

    /// Acquires the disk `name`: `disk0`, `disk1`, ... in the order the disks were attached
    /// (devices are acquired once). Returns the device and the [`Events`] bits
    /// [`Platform::wait`] reports for it.
    fn open_block(name: &str) -> Result<(Self::Block, Events), block::OpenError>;

    /// Every entropy source the machine has (CPU instructions, an rng device, the host's
    /// `getrandom`), in the order the runtime should name them; empty if there is none. Called
    /// once, at boot: the runtime keeps the sources to reseed from.
    fn entropy_sources() -> alloc::vec::Vec<alloc::boxed::Box<dyn entropy::EntropySource>>;

    /// The platform's own sockets, for hosted platforms (`sockets::NoSockets` elsewhere).
    type Sockets: sockets::HostSockets;

    /// Whether a boot argument key belongs to the platform (for instance the
    /// `virtio_mmio.device=` entries that QEMU appends on microvm) rather than to the
    /// application's configuration.
    fn is_platform_arg(key: &str) -> bool {
        let _ = key;
        false
    }
}

/// A set of device events returned by [`Platform::wait`]: bit `n` is device slot `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(pub u64);

impl Events {
    /// No event: the wait ended by its deadline or spuriously.
    pub const NONE: Events = Events(0);

    /// Whether no device reported anything.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}
