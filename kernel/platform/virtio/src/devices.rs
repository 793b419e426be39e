//! Finding and starting devices: virtio-mmio devices named on the command line
//! (`virtio_mmio.device=`, as QEMU microvm and Firecracker pass them) and virtio-pci devices
//! found by scanning PCI. Each acquired device gets an event slot: its interrupt is routed to
//! vector `0x30 + slot` and `wait` reports bit `slot`.
//!
//! The entropy device (virtio-rng) is polled and gets no slot.
//!
//! Slot 0 is the network device (`service0`); disk `diskN` is slot `1 + N`. The disks are the
//! virtio-blk devices in a fixed order: the virtio-mmio ones in command-line order, then the
//! PCI ones in scan order. `wait` reports 64 slots (vectors 0x30..0x6f), so `disk0` to `disk62`
//! can be opened.

use crate::{ioapic, mmio};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fata_hal::Events;
use fata_hal::block::OpenError as BlockOpenError;
use fata_hal::net::OpenError;
use fata_virtio::blk::{self, VirtioBlk};
use fata_virtio::mmio::{CmdlineDevice, MmioTransport, parse_cmdline_device};
use fata_virtio::net::{Budget, VirtioNet};
use fata_virtio::pci::{self, Bdf, PciTransport};
use fata_virtio::regs::Mmio;
use fata_virtio::rng::VirtioRng;

/// First vector for device interrupts.
pub(crate) const DEVICE_VECTOR_BASE: u8 = 0x30;

/// The virtio device id of a network device.
const VIRTIO_ID_NET: u32 = 1;
/// The virtio device id of a block device.
const VIRTIO_ID_BLOCK: u32 = 2;
/// The event slot of `disk0`; `diskN` has `FIRST_DISK_SLOT + N`.
const FIRST_DISK_SLOT: u8 = 1;
/// Event slots `wait` reports (bits of [`Events`], vectors 0x30..0x6f).
const EVENT_SLOTS: u8 = 64;
/// Disks that can have a slot.
const MAX_DISKS: usize = (EVENT_SLOTS - FIRST_DISK_SLOT) as usize;

static CMDLINE: spin::Once<&'static str> = spin::Once::new();
/// The heap's size, so device buffers can be scaled to the machine.
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static NET_TAKEN: AtomicBool = AtomicBool::new(false);
/// Bit `n`: `disk<n>` is acquired.
static DISKS_TAKEN: AtomicU64 = AtomicU64::new(0);
/// Event bits of devices without an interrupt (no I/O APIC input, no MSI-X): `wait` wakes at
/// least every millisecond and reports them, so they are polled.
pub(crate) static POLLED: AtomicU64 = AtomicU64::new(0);

fn poll_slot(slot: u8) {
    POLLED.fetch_or(1 << slot, Ordering::Relaxed);
}

/// Remembers what device discovery needs from boot: the command line and the RAM ranges
/// (a device window claimed inside RAM is refused).
pub(crate) fn init(cmdline: &'static str, ram: &[(u64, u64)], heap_bytes: u64) {
    CMDLINE.call_once(|| cmdline);
    HEAP_BYTES.store(heap_bytes, Ordering::Relaxed);
    mmio::init(ram);
}

/// The virtio-mmio windows the command line names (`virtio_mmio.device=`), in order, that
/// parse and lie outside RAM below 4 GiB; with `warn`, the others are logged (once: only
/// `open_net` passes it).
fn cmdline_mmio(warn: bool) -> impl Iterator<Item = (CmdlineDevice, Mmio)> {
    let cmdline = CMDLINE.get().copied().unwrap_or("");
    cmdline.split_whitespace().filter_map(move |word| {
        let v = word.strip_prefix("virtio_mmio.device=")?;
        let Some(d) = parse_cmdline_device(v) else {
            if warn {
                log::warn!("ignoring malformed boot argument `{word}`");
            }
            return None;
        };
        let Some(regs) = mmio::device_window(d.base, d.size) else {
            if warn {
                log::warn!("ignoring `{word}`: the window is in RAM or above 4 GiB");
            }
            return None;
        };
        Some((d, regs))
    })
}

/// Every PCI function reachable from bus 0, scanned once (the network card, the disks and the
/// entropy device are all looked for in it).
fn pci_functions() -> &'static [Bdf] {
    static FOUND: spin::Once<Vec<Bdf>> = spin::Once::new();
    FOUND.call_once(pci::scan)
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
    // `NET_TAKEN` makes this the only driver of the window.
    for (d, regs) in cmdline_mmio(true) {
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
            poll_slot(slot);
        }
        return start(Box::new(t), events);
    }
    for &b in pci_functions() {
        if PciTransport::is_net(&b) {
            let Some(t) = PciTransport::new(b, Some(vector), false) else {
                return Err(OpenError::Failed(format!(
                    "virtio-pci device {b} has no usable registers"
                )));
            };
            if !t.interrupts() {
                poll_slot(slot);
            }
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
    log::info!(
        "net: {what}, mac {}, queues rx {rxq} tx {txq}, {} rx buffers posted",
        fata_hal::net::Mac(fata_hal::net::NetDevice::mac(&dev)),
        dev.rx_posted()
    );
    Ok((dev, events))
}

/// The virtio device id of an entropy device.
const VIRTIO_ID_RNG: u32 = 4;
/// How long one read of the entropy device may take (it is polled at boot and for reseeds).
const RNG_TIMEOUT_NS: u64 = 200_000_000;

/// Starts the first virtio-rng device (virtio-mmio from the command line, then PCI), polled:
/// it gets no interrupt and no event slot. `None` if there is none or it fails to start (said
/// in the log).
pub(crate) fn open_rng() -> Option<alloc::boxed::Box<dyn fata_hal::entropy::EntropySource>> {
    let mmio = cmdline_mmio(false)
        .filter_map(|(_, regs)| MmioTransport::probe(regs))
        .find(|t| t.device_id() == VIRTIO_ID_RNG)
        .map(|t| Box::new(t) as Box<dyn fata_virtio::Transport>);
    let transport = mmio.or_else(|| {
        let &b = pci_functions().iter().find(|b| PciTransport::is_rng(b))?;
        PciTransport::new(b, None, false).map(|t| Box::new(t) as Box<dyn fata_virtio::Transport>)
    })?;
    let budget = fata_virtio::rng::Budget {
        now_ns: crate::clock::monotonic_ns,
        timeout_ns: RNG_TIMEOUT_NS,
    };
    match VirtioRng::new(transport, budget) {
        Ok(d) => Some(Box::new(d)),
        Err(e) => {
            log::warn!("virtio-rng: not started: {e}");
            None
        }
    }
}

/// The index `n` of a disk name `disk<n>` (decimal, no sign or leading zero), if it is one
/// that can have an event slot.
fn disk_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("disk")?;
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    plain
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|&n| n < MAX_DISKS)
}

/// A virtio-blk device found, not yet started.
enum Disk {
    Mmio { dev: CmdlineDevice, regs: Mmio },
    Pci(Bdf),
}

/// The virtio-blk devices, in disk order: virtio-mmio (command-line order), then PCI.
/// Probing reads only the identification registers of each window.
fn find_disks() -> Vec<Disk> {
    let mut disks: Vec<Disk> = cmdline_mmio(false)
        .filter(|&(_, regs)| {
            MmioTransport::probe(regs).is_some_and(|t| t.device_id() == VIRTIO_ID_BLOCK)
        })
        .map(|(dev, regs)| Disk::Mmio { dev, regs })
        .collect();
    disks.extend(
        pci_functions()
            .iter()
            .copied()
            .filter(PciTransport::is_blk)
            .map(Disk::Pci),
    );
    disks
}

/// Opens `disk<n>`, the `n`-th virtio-blk device.
pub(crate) fn open_block(name: &str) -> Result<(VirtioBlk, Events), BlockOpenError> {
    let Some(n) = disk_index(name) else {
        return Err(BlockOpenError::NotFound(format!(
            "`{name}`: disks are named disk0, disk1, ... (at most disk{})",
            MAX_DISKS - 1
        )));
    };
    let bit = 1u64 << n;
    if DISKS_TAKEN.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return Err(BlockOpenError::InUse);
    }
    let opened = start_disk(name, n);
    if opened.is_err() {
        DISKS_TAKEN.fetch_and(!bit, Ordering::SeqCst);
    }
    opened
}

/// Finds and starts `disk<n>` (already marked taken, which makes this its only driver).
fn start_disk(name: &str, n: usize) -> Result<(VirtioBlk, Events), BlockOpenError> {
    let mut disks = find_disks();
    let count = disks.len();
    if n >= count {
        return Err(BlockOpenError::NotFound(match count {
            0 => format!("`{name}`: no virtio-blk device on virtio-mmio (command line) or PCI"),
            1 => format!("`{name}`: there is one disk, disk0"),
            _ => format!(
                "`{name}`: there are {count} disks, disk0 to disk{}",
                count - 1
            ),
        }));
    }
    let slot = FIRST_DISK_SLOT + n as u8;
    let vector = DEVICE_VECTOR_BASE + slot;
    let transport: Box<dyn fata_virtio::Transport> = match disks.swap_remove(n) {
        Disk::Mmio { dev, regs } => {
            let Some(t) = MmioTransport::probe(regs) else {
                return Err(BlockOpenError::Failed(format!(
                    "the virtio-mmio device at {:#x} went away",
                    dev.base
                )));
            };
            if !ioapic::route(dev.irq, vector) {
                log::warn!(
                    "no I/O APIC input for IRQ {}: {name} will be polled",
                    dev.irq
                );
                poll_slot(slot);
            }
            Box::new(t)
        }
        Disk::Pci(b) => match PciTransport::new(b, Some(vector), false) {
            Some(t) => {
                if !t.interrupts() {
                    poll_slot(slot);
                }
                Box::new(t)
            }
            None => {
                return Err(BlockOpenError::Failed(format!(
                    "virtio-pci device {b} has no usable registers"
                )));
            }
        },
    };
    // The runtime logs the opened disk (`fata::block::open`: its `describe()`, size and cache
    // mode), so there is no second line here.
    let dev = VirtioBlk::new(transport, blk::Budget::default())
        .map_err(|e| BlockOpenError::Failed(format!("{e}")))?;
    Ok((dev, Events(1 << slot)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_are_disk_and_a_plain_decimal_index_below_the_slot_limit() {
        assert_eq!(disk_index("disk0"), Some(0));
        assert_eq!(disk_index("disk7"), Some(7));
        assert_eq!(disk_index("disk62"), Some(62));
        for bad in [
            "disk",
            "disk63",
            "disk00",
            "disk01",
            "disk-1",
            "disk+1",
            "disk 1",
            "Disk0",
            "sda",
            "disk1x",
            "disk99999999999999999999999",
        ] {
            assert_eq!(disk_index(bad), None, "{bad}");
        }
        assert_eq!(
            usize::from(FIRST_DISK_SLOT) + MAX_DISKS,
            64,
            "every slot has a bit"
        );
    }
}
