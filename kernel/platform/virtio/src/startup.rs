//! Bringing the machine up, from the boot code's call of `fata_platform_entry` (see
//! `entry`) to the [`BootInfo`] handed to the application: descriptor tables, start info,
//! heap plan, page tables, clocks, devices.

use crate::{UART, clock, exit, lapic};
use fata_boot::layout::{ImageLayout, Range};
use fata_boot::memory;
use fata_boot::start_info;
use fata_hal::{BootInfo, ExitCode};

fn out(b: &[u8]) {
    UART.write(b);
}

fn fail(code: ExitCode, args: core::fmt::Arguments<'_>) -> ! {
    fata_boot::refuse(out, code, args);
    exit::exit(code.code())
}

/// Brings the machine up, given the start info address; stops it with a message and an exit
/// code if it cannot run the application.
pub(crate) fn start(start_info_paddr: u32) -> BootInfo {
    clock::mark_boot();
    UART.init();
    fata_boot::trap::install(fata_boot::trap::Hooks {
        console: |b| UART.write(b),
        crash: || {
            UART.write(b"fata: exit 3 (CpuException)\n");
            exit::exit(ExitCode::CpuException.code())
        },
        interrupt: lapic::on_interrupt,
    });
    fata_boot::cpu::init();

    let info = match start_info::read(u64::from(start_info_paddr)) {
        Ok(i) => i,
        Err(e) => fail(e.exit_code(), format_args!("{e}")),
    };

    let layout = ImageLayout::current();
    let (ram, n, ram_bytes) = info.ram_ranges();
    let ram = &ram[..n];

    let image = Range {
        start: layout.text.start,
        end: layout.end(),
    };
    let heap = match memory::plan_heap(ram, image) {
        Ok(h) => h,
        Err(e) => fail(ExitCode::BootFailure, format_args!("{e}")),
    };
    let heap_bytes: u64 = heap.iter().flatten().map(|r| r.len as u64).sum();

    if let Err(e) = fata_boot::paging::init(ram) {
        fail(ExitCode::BootFailure, format_args!("{e}"));
    }

    lapic::start_calibration();
    let (tsc_hz, source) = clock::init();
    let lapic_hz = lapic::finish_calibration();
    if source == clock::Source::Assumed {
        fata_boot::say(
            out,
            format_args!(
                "fata: warning: no PIT and no CPUID frequency: assuming a 1 GHz TSC, time will be off\n"
            ),
        );
    }
    fata_boot::say(
        out,
        format_args!(
            "fata: virtio: {} MiB RAM, {} KiB heap, TSC {}.{:03} GHz ({}), LAPIC timer {} MHz\n",
            ram_bytes >> 20,
            heap_bytes >> 10,
            tsc_hz / 1_000_000_000,
            tsc_hz / 1_000_000 % 1000,
            match source {
                clock::Source::Pit => "PIT-calibrated",
                clock::Source::Cpuid => "from CPUID",
                clock::Source::Assumed => "assumed",
            },
            lapic_hz / 1_000_000
        ),
    );

    let mut ram_pairs = [(0u64, 0u64); 16];
    for (p, r) in ram_pairs.iter_mut().zip(ram) {
        *p = (r.start, r.end);
    }
    crate::devices::init(info.cmdline(), &ram_pairs[..ram.len().min(16)], heap_bytes);
    BootInfo {
        cmdline: info.cmdline(),
        heap,
        ram_bytes,
    }
}
