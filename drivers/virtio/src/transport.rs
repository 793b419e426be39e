//! What the virtio drivers need from a transport (virtio 1.x §4), and the device-independent
//! initialisation sequence (§3.1).

use crate::queue::{Buffers, Queue, Ring};
use core::fmt;

/// Device status bits.
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const FAILED: u8 = 128;
}

/// `VIRTIO_F_VERSION_1`: the device follows the 1.0 specification (modern).
pub const F_VERSION_1: u64 = 1 << 32;

/// Interrupt status bit: the device used buffers.
pub const ISR_QUEUE: u8 = 1;
/// Interrupt status bit: the device configuration changed.
pub const ISR_CONFIG: u8 = 2;

/// Why a device could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The device refused the negotiated features.
    FeaturesRefused,
    /// The device has no queue with this index.
    NoQueue(u16),
    /// The device reported a queue size that is not a power of two.
    BadQueueSize(u16),
    /// The queue is too small for the driver's requests (`need` descriptors each).
    QueueTooSmall { size: u16, need: u16 },
    /// The heap could not hold the queues and buffers.
    OutOfMemory,
    /// The transport cannot take a queue where it was put (legacy: above 16 TiB).
    QueueAddress,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::FeaturesRefused => f.write_str("the device refused the driver's features"),
            InitError::NoQueue(q) => write!(f, "the device has no queue {q}"),
            InitError::BadQueueSize(s) => {
                write!(f, "the device reported queue size {s}, not a power of two")
            }
            InitError::QueueTooSmall { size, need } => write!(
                f,
                "the device's queue has {size} entries; one request needs {need}"
            ),
            InitError::OutOfMemory => f.write_str("not enough memory for the queues and buffers"),
            InitError::QueueAddress => f.write_str("queue memory is out of the transport's reach"),
        }
    }
}

/// A virtio transport.
pub trait Transport {
    /// Short description for logs ("virtio-mmio v1 @ 0xfeb00e00", ...).
    fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result;
    /// Whether the device speaks virtio 1.x (modern) rather than 0.9 (legacy).
    fn modern(&self) -> bool;
    /// The feature bits the device offers.
    fn device_features(&mut self) -> u64;
    /// Tells the device which features the driver uses.
    fn set_driver_features(&mut self, f: u64);
    /// Reads the device status.
    fn status(&mut self) -> u8;
    /// Writes the device status (0 resets the device).
    fn set_status(&mut self, s: u8);
    /// The largest size queue `q` may have; 0 if there is no such queue.
    fn max_queue_size(&mut self, q: u16) -> u16;
    /// Whether the driver may choose a smaller queue size than the maximum (legacy PCI: no).
    fn queue_size_settable(&self) -> bool;
    /// Gives queue `q`, laid out as `ring` says, to the device.
    fn setup_queue(&mut self, q: u16, ring: &Ring) -> Result<(), InitError>;
    /// Tells the device that queue `q` has new buffers.
    fn notify(&mut self, q: u16);
    /// Reads and acknowledges the interrupt status (bit 0: used buffers, bit 1: configuration).
    fn ack_interrupt(&mut self) -> u8;
    /// Reads a byte of the device-specific configuration.
    fn config_u8(&mut self, off: usize) -> u8;
    /// Reads a little-endian 32-bit field of the device-specific configuration (`off` is a
    /// multiple of 4). The specification asks for one 32-bit access for 32- and 64-bit
    /// fields (§4.1.3.1, §4.2.2.2): the transports do that; this default, byte by byte, is
    /// for simulated devices.
    fn config_u32(&mut self, off: usize) -> u32 {
        u32::from_le_bytes(core::array::from_fn(|i| self.config_u8(off + i)))
    }
}

/// Reads a little-endian 64-bit field of the device-specific configuration as two 32-bit
/// halves, again if the high half changed meanwhile (a field the device updates, such as a
/// disk's capacity, is never read torn; a device that keeps changing it gets the last read).
pub fn config_u64(t: &mut dyn Transport, off: usize) -> u64 {
    let mut hi = t.config_u32(off + 4);
    let mut lo = 0;
    for _ in 0..4 {
        lo = t.config_u32(off);
        let again = t.config_u32(off + 4);
        if again == hi {
            break;
        }
        hi = again;
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Resets the device and negotiates features: the device's offer masked by `wanted`
/// (plus `VERSION_1` for modern devices). Returns the features in use.
pub fn negotiate(t: &mut dyn Transport, wanted: u64) -> Result<u64, InitError> {
    t.set_status(0);
    t.set_status(status::ACKNOWLEDGE);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let offered = t.device_features();
    let mut use_ = offered & wanted;
    if t.modern() {
        use_ |= offered & F_VERSION_1;
    }
    t.set_driver_features(use_);
    if t.modern() {
        t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        if t.status() & status::FEATURES_OK == 0 {
            t.set_status(status::FAILED);
            return Err(InitError::FeaturesRefused);
        }
    }
    Ok(use_)
}

/// Creates queue `q` at the device's size, capped at `cap` where the transport allows it.
pub fn make_queue<B: Buffers>(
    t: &mut dyn Transport,
    q: u16,
    cap: u16,
) -> Result<Queue<B>, InitError> {
    let max = t.max_queue_size(q);
    if max == 0 {
        return Err(InitError::NoQueue(q));
    }
    if !max.is_power_of_two() {
        return Err(InitError::BadQueueSize(max));
    }
    let size = if t.queue_size_settable() {
        max.min(cap.max(1))
    } else {
        max
    };
    let queue = Queue::new(size).ok_or(InitError::OutOfMemory)?;
    t.setup_queue(q, &queue.ring())?;
    Ok(queue)
}

/// Tells the device the driver is ready.
pub fn driver_ok(t: &mut dyn Transport) {
    let s = t.status();
    t.set_status(s | status::DRIVER_OK);
}

/// A simulated transport for the drivers' unit tests: the test plays the device through the
/// shared [`fake::Regs`] and the queue's device-side helpers.
#[cfg(test)]
pub(crate) mod fake {
    use super::{InitError, Transport};
    use crate::queue::Ring;
    use alloc::rc::Rc;
    use core::cell::RefCell;
    use core::fmt;

    /// The transport side of a simulated device (virtio-blk, virtio-rng): registers and configuration.
    #[derive(Default)]
    pub(crate) struct Regs {
        pub(crate) modern: bool,
        pub(crate) offered: u64,
        pub(crate) accepted: u64,
        pub(crate) status: u8,
        pub(crate) queue_max: u16,
        pub(crate) ring: Option<Ring>,
        pub(crate) config: [u8; 32],
        pub(crate) notified: usize,
        pub(crate) isr: u8,
    }

    impl Regs {
        pub(crate) fn set_config(&mut self, off: usize, bytes: &[u8]) {
            self.config[off..off + bytes.len()].copy_from_slice(bytes);
        }
    }

    #[derive(Clone)]
    pub(crate) struct Fake(pub(crate) Rc<RefCell<Regs>>);

    impl Transport for Fake {
        fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
            out.write_str("fake transport")
        }
        fn modern(&self) -> bool {
            self.0.borrow().modern
        }
        fn device_features(&mut self) -> u64 {
            self.0.borrow().offered
        }
        fn set_driver_features(&mut self, f: u64) {
            self.0.borrow_mut().accepted = f;
        }
        fn status(&mut self) -> u8 {
            self.0.borrow().status
        }
        fn set_status(&mut self, s: u8) {
            self.0.borrow_mut().status = s;
        }
        fn max_queue_size(&mut self, q: u16) -> u16 {
            if q == 0 { self.0.borrow().queue_max } else { 0 }
        }
        fn queue_size_settable(&self) -> bool {
            self.0.borrow().modern
        }
        fn setup_queue(&mut self, _: u16, ring: &Ring) -> Result<(), InitError> {
            self.0.borrow_mut().ring = Some(*ring);
            Ok(())
        }
        fn notify(&mut self, _: u16) {
            self.0.borrow_mut().notified += 1;
        }
        fn ack_interrupt(&mut self) -> u8 {
            core::mem::take(&mut self.0.borrow_mut().isr)
        }
        fn config_u8(&mut self, off: usize) -> u8 {
            self.0.borrow().config.get(off).copied().unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device whose configuration is a capacity that grows by 2^32 after each read of its
    /// high half, for the first `changes` reads: the value changes between the two halves.
    struct Growing {
        capacity: u64,
        changes: u32,
    }

    impl Transport for Growing {
        fn describe(&self, out: &mut dyn fmt::Write) -> fmt::Result {
            out.write_str("growing")
        }
        fn modern(&self) -> bool {
            true
        }
        fn device_features(&mut self) -> u64 {
            0
        }
        fn set_driver_features(&mut self, _: u64) {}
        fn status(&mut self) -> u8 {
            0
        }
        fn set_status(&mut self, _: u8) {}
        fn max_queue_size(&mut self, _: u16) -> u16 {
            0
        }
        fn queue_size_settable(&self) -> bool {
            true
        }
        fn setup_queue(&mut self, _: u16, _: &Ring) -> Result<(), InitError> {
            Ok(())
        }
        fn notify(&mut self, _: u16) {}
        fn ack_interrupt(&mut self) -> u8 {
            0
        }
        fn config_u8(&mut self, off: usize) -> u8 {
            let b = self.capacity.to_le_bytes().get(off).copied().unwrap_or(0);
            if off == 7 && self.changes > 0 {
                self.changes -= 1;
                self.capacity += 1 << 32;
            }
            b
        }
    }

    #[test]
    fn a_64_bit_field_is_read_again_when_its_high_half_changes() {
        let mut steady = Growing {
            capacity: 0x1_0000_0002,
            changes: 0,
        };
        assert_eq!(config_u64(&mut steady, 0), 0x1_0000_0002);
        let mut moving = Growing {
            capacity: 0xffff_fffe,
            changes: 2,
        };
        // High halves read: 0, then 1 (changed: again), then 2 (changed: again), then 2.
        assert_eq!(config_u64(&mut moving, 0), 0x2_ffff_fffe);
        let mut endless = Growing {
            capacity: 5,
            changes: u32::MAX,
        };
        let v = config_u64(&mut endless, 0);
        assert_eq!(v & 0xffff_ffff, 5, "gives up after a few reads, no hang");
    }
}
