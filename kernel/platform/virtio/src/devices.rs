//! Finding and starting devices: virtio-mmio devices named on the command line
//! (`virtio_mmio.device=`, as QEMU microvm and Firecracker pass them) and virtio-pci devices
//! found by scanning PCI. Each acquired device gets an event slot: its interrupt is routed to
//! vector `0x30 + slot` and `wait` reports bit `slot`.

use crate::{ioapic, mmio};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fata_hal::Events;
use fata_hal::net::OpenError;
use fata_virtio::mmio::{MmioTransport, parse_cmdline_device};
use fata_virtio::net::{Budget, VirtioNet};
use fata_virtio::pci::{self, PciTransport};

/// First vector for device interrupts.
pub(crate) const DEVICE_VECTOR_BASE: u8 = 0x30;

/// The virtio device id of a network device.
const VIRTIO_ID_NET: u32 = 1;

static CMDLINE: spin::Once<&'static str> = spin::Once::new();
/// The heap's size, so device buffers can be scaled to the machine.
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static NET_TAKEN: AtomicBool = AtomicBool::new(false);

/// Remembers what device discovery needs from boot: the command line and the RAM ranges
/// (a device window claimed inside RAM is refused).
pub(crate) fn init(cmdline: &'static str, ram: &[(u64, u64)], heap_bytes: u64) {
    CMDLINE.call_once(|| cmdline);
    HEAP_BYTES.store(heap_bytes, Ordering::Relaxed);
    mmio::init(ram);
}

/// Opens the first virtio network device as `service0`.
pub(crate) fn open_net(name: &str) -> Result<(VirtioNet, Events), OpenError> {
    if name != "service0" {
        return Err(OpenError::NotFound(
            "only `service0` (the first virtio-net device) exists",
        ));
    }
    if NET_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(OpenError::InUse);
    }
    let slot = 0u8;
    let vector = DEVICE_VECTOR_BASE + slot;
    let events = Events(1 << slot);
    let cmdline = CMDLINE.get().copied().unwrap_or("");
    for word in cmdline.split_whitespace() {
        let Some(v) = word.strip_prefix("virtio_mmio.device=") else {
            continue;
        };
        let Some(d) = parse_cmdline_device(v) else {
            log::warn!("ignoring malformed boot argument `{word}`");
            continue;
        };
        // `NET_TAKEN` makes this the only driver of the window.
        let Some(regs) = mmio::device_window(d.base, d.size) else {
            log::warn!("ignoring `{word}`: the window is in RAM or above 4 GiB");
            continue;
        };
        let Some(t) = MmioTransport::probe(regs) else {
            continue;
        };
        if t.device_id() != VIRTIO_ID_NET {
            continue;
        }
        if !ioapic::route(d.irq, vector) {
            log::warn!(
                "no I/O APIC input for IRQ {}: the network device will be polled",
                d.irq
            );
        }
        return start(Box::new(t), events);
    }
    for b in pci::scan() {
        if PciTransport::is_net(&b) {
            let Some(t) = PciTransport::new(b, vector, false) else {
                return Err(OpenError::Failed(format!(
                    "virtio-pci device {b} has no usable registers"
                )));
            };
            return start(Box::new(t), events);
        }
    }
    NET_TAKEN.store(false, Ordering::SeqCst);
    Err(OpenError::NotFound(
        "no virtio-net device on virtio-mmio (command line) or PCI",
    ))
}

fn start(
    t: Box<dyn fata_virtio::Transport>,
    events: Events,
) -> Result<(VirtioNet, Events), OpenError> {
    let dev = VirtioNet::new(
        t,
        Budget::for_heap(HEAP_BYTES.load(Ordering::Relaxed) as usize),
    )
    .map_err(|e| OpenError::Failed(format!("{e}")))?;
    let mut what = String::new();
    let _ = dev.describe(&mut what);
    let (rxq, txq) = dev.queue_sizes();
    let m = fata_hal::net::NetDevice::mac(&dev);
    log::info!(
        "net: {what}, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, queues rx {rxq} tx {txq}, {} rx buffers posted",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        dev.rx_posted()
    );
    Ok((dev, events))
}
