//! The virtio-net driver over every transport and queue size QEMU offers here: virtio-mmio on
//! microvm, virtio-pci modern and legacy on q35 and pc, queue sizes 256 and 1024.
#![forbid(unsafe_code)]

use fata_tests::client::check_echo;
use fata_tests::{Machine, boot_user_net};
use std::time::Duration;

fn echo_on(machine: Machine, nic: &[&str], expect: &str) {
    let vm = boot_user_net("echo", machine, 7, &[], nic);
    vm.vm.wait_for_line(expect, Duration::from_secs(5)).unwrap();
    check_echo(vm.addr, 256 * 1024).unwrap();
}

#[test]
fn mmio_transport_on_microvm() {
    echo_on(Machine::Microvm, &[], "net: virtio-mmio v1 @ 0xfeb");
}

#[test]
fn mmio_modern_transport_on_microvm() {
    let vm = fata_tests::boot_user_net_with(
        "echo",
        Machine::Microvm,
        7,
        &[],
        &[],
        &["-global", "virtio-mmio.force-legacy=false"],
    );
    vm.vm
        .wait_for_line("net: virtio-mmio v2 @ 0xfeb", Duration::from_secs(5))
        .unwrap();
    check_echo(vm.addr, 256 * 1024).unwrap();
}

#[test]
fn pci_modern_with_queue_size_256() {
    echo_on(
        Machine::Q35,
        &["rx_queue_size=256"],
        "virtio-pci modern @ 00:01.0 (MSI-X), mac 52:54:00:12:34:56, queues rx 256",
    );
}

#[test]
fn pci_modern_with_queue_size_1024() {
    echo_on(
        Machine::Q35,
        &["rx_queue_size=1024", "tx_queue_size=1024"],
        "queues rx 1024",
    );
}

#[test]
fn pci_legacy_device() {
    echo_on(Machine::Q35, &["disable-modern=on"], "virtio-pci legacy @");
}

#[test]
fn pci_legacy_with_queue_size_1024_on_pc() {
    echo_on(
        Machine::Pc,
        &["disable-modern=on", "rx_queue_size=1024"],
        "virtio-pci legacy @ 00:02.0 (MSI-X), mac 52:54:00:12:34:56, queues rx 1024",
    );
}

#[test]
fn pci_card_without_msix_is_polled_and_echoes() {
    echo_on(
        Machine::Pc,
        &["disable-modern=on", "vectors=0"],
        "virtio-pci legacy @ 00:02.0 (no MSI-X: polled)",
    );
}
