//! Bringing the domain up, from the boot code's call of `fata_platform_entry` to the
//! [`BootInfo`] handed to the application, in the order of `XEN-NOTES.md` §2: detect Xen,
//! hypercall page, start info, heap plan, page tables (with Xen's special pages mapped
//! write-back), shared_info, event upcall, pvclock, console ring, timer, grant table, xenstore.

use crate::{clock, console, devices, events, exit, grant, hw, hypercall};
use fata_boot::layout::{ImageLayout, Range};
use fata_boot::memory;
use fata_boot::start_info;
use fata_hal::{BootInfo, ExitCode};

fn out(b: &[u8]) {
    console::write(b);
}

fn fail(code: ExitCode, args: core::fmt::Arguments<'_>) -> ! {
    fata_boot::refuse(out, code, args);
    exit::exit(code.code())
}

/// The first CPUID leaf of Xen's range (`0x40000000 + k * 0x100`) and its maximum leaf.
fn find_xen() -> Option<u32> {
    (0..0x100u32)
        .map(|k| 0x4000_0000 + k * 0x100)
        .find(|&base| {
            let (max, b, c, d) = hw::cpuid(base);
            let mut sig = [0u8; 12];
            sig[..4].copy_from_slice(&b.to_le_bytes());
            sig[4..8].copy_from_slice(&c.to_le_bytes());
            sig[8..].copy_from_slice(&d.to_le_bytes());
            &sig == b"XenVMMXenVMM" && max.wrapping_sub(base) >= 2
        })
}

/// Brings the domain up, given the start info address; stops it with a message and an exit
/// code if it cannot run the application.
pub(crate) fn start(start_info_paddr: u32) -> BootInfo {
    fata_boot::trap::install(fata_boot::trap::Hooks {
        console: |b| {
            console::debug_port(b);
            console::write(b);
        },
        crash: || {
            console::write(b"fata: exit 3 (CpuException)\n");
            exit::exit(ExitCode::CpuException.code())
        },
        interrupt: events::on_interrupt,
    });
    fata_boot::cpu::init();
    fata_boot::trap::set_idle_halt(hw::idle_hlt_address());

    let Some(base) = find_xen() else {
        exit::not_on_xen();
    };
    let (version, _, _, _) = hw::cpuid(base + 1);
    let (_, msr, _, _) = hw::cpuid(base + 2);
    hw::install_hypercall_page(msr);
    if !hw::hypercall_page_filled() {
        fail(
            ExitCode::BootFailure,
            format_args!("Xen did not fill the hypercall page (MSR {msr:#x})"),
        );
    }

    let info = match start_info::read(u64::from(start_info_paddr)) {
        Ok(i) => i,
        Err(e) => fail(e.exit_code(), format_args!("{e}")),
    };

    let layout = ImageLayout::current();
    // Two more slots: the console and xenstore pages are mapped like RAM (below).
    let mut ram = [Range { start: 0, end: 0 }; start_info::MAX_MEMMAP + 2];
    let (regions, n, ram_bytes) = info.ram_ranges();
    ram[..n].copy_from_slice(&regions[..n]);
    let image = Range {
        start: layout.text.start,
        end: layout.end(),
    };
    let heap = match memory::plan_heap(&ram[..n], image) {
        Ok(h) => h,
        Err(e) => fail(ExitCode::BootFailure, format_args!("{e}")),
    };
    let heap_bytes: u64 = heap.iter().flatten().map(|r| r.len as u64).sum();

    // The console and xenstore rings: special pages outside the RAM map.
    let param = |index: u32, what: &str| match hypercall::hvm_get_param(index) {
        Ok(v) => v,
        Err(e) => fail(
            ExitCode::BootFailure,
            format_args!("Xen gave no {what} (HVM parameter {index}: {e})"),
        ),
    };
    let console_pfn = param(hypercall::HVM_PARAM_CONSOLE_PFN, "console ring");
    let console_port = param(hypercall::HVM_PARAM_CONSOLE_EVTCHN, "console event channel") as u32;
    let store_pfn = param(hypercall::HVM_PARAM_STORE_PFN, "xenstore ring");
    let store_port = param(hypercall::HVM_PARAM_STORE_EVTCHN, "xenstore event channel") as u32;
    for (pfn, what) in [(console_pfn, "console"), (store_pfn, "xenstore")] {
        let at = pfn << 12;
        let in_heap = heap
            .iter()
            .flatten()
            .any(|r| (r.start as u64) < at + 4096 && at < r.start as u64 + r.len as u64);
        if pfn == 0 || at >= memory::MAPPED_LIMIT || in_heap || image.contains(at) {
            fail(
                ExitCode::BootFailure,
                format_args!("Xen placed the {what} ring at {at:#x}, outside the pages it may use"),
            );
        }
    }
    // Mapped write-back like RAM (they are RAM-backed), not uncached like device memory.
    ram[n] = Range {
        start: console_pfn << 12,
        end: (console_pfn << 12) + 4096,
    };
    ram[n + 1] = Range {
        start: store_pfn << 12,
        end: (store_pfn << 12) + 4096,
    };
    if let Err(e) = fata_boot::paging::init(&ram[..n + 2]) {
        fail(ExitCode::BootFailure, format_args!("{e}"));
    }

    if let Err(e) = hypercall::map_shared_info() {
        fail(
            ExitCode::BootFailure,
            format_args!("cannot map shared_info: {e}"),
        );
    }
    events::mask_all();
    if let Err(e) = hypercall::hvm_set_param(
        hypercall::HVM_PARAM_CALLBACK_IRQ,
        (2 << 56) | u64::from(events::CALLBACK_VECTOR),
    ) {
        fail(
            ExitCode::BootFailure,
            format_args!("cannot set the event upcall vector: {e}"),
        );
    }
    if !clock::init() {
        fail(
            ExitCode::BootFailure,
            format_args!("Xen publishes no pvclock"),
        );
    }
    console::init(console_pfn, console_port);

    let timer = match hypercall::evtchn_bind_virq(hypercall::VIRQ_TIMER) {
        Ok(p) => p,
        Err(e) => fail(
            ExitCode::BootFailure,
            format_args!("cannot bind the timer: {e}"),
        ),
    };
    events::unmask(timer);
    let grants = match grant::init() {
        Ok(g) => g,
        Err(e) => fail(
            ExitCode::BootFailure,
            format_args!("cannot map the grant table: {e}"),
        ),
    };
    devices::init(store_pfn, store_port, heap_bytes);

    fata_boot::say(
        out,
        format_args!(
            "fata: xen: Xen {}.{} (PVH), {} MiB RAM, {} KiB heap, pvclock, {} grants, event channels: console {}, xenstore {}, timer {}\n",
            version >> 16,
            version & 0xffff,
            ram_bytes >> 20,
            heap_bytes >> 10,
            grants,
            console_port,
            store_port,
            timer
        ),
    );
    BootInfo {
        cmdline: info.cmdline(),
        heap,
        ram_bytes,
    }
}
