//! Ending the domain: `SCHEDOP_shutdown` with `poweroff` for exit code 0 and `crash` for any
//! other (the reason cannot carry the code, so the runtime prints `fata: exit N (Name)` first;
//! it is repeated on Xen's debug port for `xl dmesg`). And the refusal to run anywhere but Xen.

use crate::{console, hw, hypercall};

/// Exits with `code`.
pub(crate) fn exit(code: u8) -> ! {
    let digits = [b'0' + code / 100, b'0' + code / 10 % 10, b'0' + code % 10];
    let skip = if code >= 100 {
        0
    } else if code >= 10 {
        1
    } else {
        2
    };
    console::debug_port(b"fata: exit ");
    console::debug_port(&digits[skip..]);
    console::debug_port(b"\n");
    // Let xenconsoled read the last lines before the domain goes away.
    console::drain(2_000_000_000);
    let reason = if code == 0 {
        hypercall::SHUTDOWN_POWEROFF
    } else {
        hypercall::SHUTDOWN_CRASH
    };
    let _refused = hypercall::shutdown(reason);
    console::debug_port(b"fata: Xen refused SCHEDOP_shutdown\n");
    hw::halt_forever()
}

/// The image was started without Xen underneath: say so on every console a machine may have
/// (COM1, the debug port) and stop with exit code 4 through QEMU's `isa-debug-exit` if present.
pub(crate) fn not_on_xen() -> ! {
    let msg = b"fata: cannot boot: this image is for Xen (a PVH domU; boot it with `xl create` and the .xl file built next to it), but no Xen hypervisor was found. For QEMU, KVM or Firecracker build with --target virtio.\nfata: exit 4 (BootFailure)\n";
    for &b in msg {
        hw::outb(0x3f8, b);
    }
    console::debug_port(msg);
    hw::outb(0xf4, 4);
    hw::halt_forever()
}
