//! Trap handling: the Rust side of the interrupt stubs.
//!
//! A CPU exception is fatal in fata (there is no user space to blame and no process to kill):
//! it prints a crash report — vector and name, RIP, error code, CR2, registers, a few stack
//! words and, where it can tell, the cause in words (stack overflow into a guard page, null
//! pointer, write to read-only memory, execution of data) — and calls the platform's crash
//! hook, which exits non-zero. Device and timer interrupts are recorded in a pending set that
//! the platform's `wait` collects, and the platform's interrupt hook acknowledges them.

use crate::layout::ImageLayout;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Registers saved by the stubs, lowest address first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// What the platform provides to the trap layer.
pub struct Hooks {
    /// Writes crash reports. Must work with interrupts disabled and never block for long.
    pub console: fn(&[u8]),
    /// Ends the machine after a crash report (exit code: CPU exception). Never returns.
    pub crash: fn() -> !,
    /// Called for every interrupt vector >= 32 (acknowledge it: LAPIC EOI, ...).
    pub interrupt: fn(u8),
}

static HOOKS: spin::Once<Hooks> = spin::Once::new();
static CRASHING: AtomicBool = AtomicBool::new(false);
static PENDING: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// The address of the platform's idle `hlt` (the one that follows `sti`), 0 if none.
static IDLE_HALT: AtomicU64 = AtomicU64::new(0);

/// Names the platform's idle `hlt` instruction (the one right after its `sti`). An interrupt
/// taken *at* that address — before the `hlt` ran, which the `sti` interrupt shadow forbids on
/// hardware but a nested hypervisor under emulation has been seen to allow — returns past it:
/// otherwise the CPU would halt after the interrupt's handler ran, with the wake-up it brought
/// already consumed, and sleep through the events it announced.
pub fn set_idle_halt(addr: u64) {
    IDLE_HALT.store(addr, Ordering::Relaxed);
}

/// Installs the platform's hooks (once; later calls are ignored).
pub fn install(hooks: Hooks) {
    HOOKS.call_once(|| hooks);
}

/// Takes the set of interrupt vectors seen since the last call (bit `v % 64` of word `v / 64`).
pub fn take_pending() -> [u64; 4] {
    core::array::from_fn(|i| PENDING[i].swap(0, Ordering::AcqRel))
}

/// Name of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "non-maskable interrupt (NMI)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point exception (#XM)",
        20 => "virtualization exception (#VE)",
        21 => "control protection exception (#CP)",
        9 | 15 | 22..=31 => "reserved exception",
        _ => "unexpected interrupt",
    }
}

/// The cause of a fault in words, when the layout tells it.
pub fn diagnose(layout: &ImageLayout, vector: u64, error: u64, cr2: u64) -> Option<Diagnosis> {
    if vector != 14 {
        return None;
    }
    let write = error & 2 != 0;
    let fetch = error & 16 != 0;
    let present = error & 1 != 0;
    if let Some(stack) = layout.guard_hit(cr2) {
        return Some(Diagnosis::StackOverflow(stack.name));
    }
    if cr2 < 4096 {
        return Some(Diagnosis::NullPointer);
    }
    if fetch && present {
        return Some(Diagnosis::ExecuteNonExecutable);
    }
    if write && present && (layout.text.contains(cr2) || layout.rodata.contains(cr2)) {
        return Some(Diagnosis::WriteReadOnly);
    }
    None
}

/// A fault's cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    /// A stack grew into the guard page below it.
    StackOverflow(&'static str),
    /// An access to page 0.
    NullPointer,
    /// An instruction fetch from a no-execute page.
    ExecuteNonExecutable,
    /// A write to code or read-only data.
    WriteReadOnly,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnosis::StackOverflow(s) => write!(f, "stack overflow: {s} ran into its guard page"),
            Diagnosis::NullPointer => f.write_str("null pointer dereference"),
            Diagnosis::ExecuteNonExecutable => {
                f.write_str("attempt to execute non-executable memory")
            }
            Diagnosis::WriteReadOnly => f.write_str("write to read-only memory"),
        }
    }
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(h) = HOOKS.get() {
            (h.console)(s.as_bytes());
        }
        Ok(())
    }
}

/// Writes the crash report for `frame` with `words` stack words (read by the caller).
pub fn report(
    out: &mut dyn Write,
    frame: &TrapFrame,
    cr2: u64,
    diagnosis: Option<Diagnosis>,
    words: &[u64],
) -> fmt::Result {
    let v = frame.vector;
    writeln!(
        out,
        "\nfata: CPU exception {v} ({}) at rip={:#018x}",
        vector_name(v),
        frame.rip
    )?;
    if let Some(d) = diagnosis {
        writeln!(out, "fata:   cause: {d}")?;
    }
    write!(out, "fata:   error={:#x}", frame.error)?;
    if v == 14 {
        let e = frame.error;
        write!(
            out,
            " ({} {} {})",
            if e & 1 != 0 {
                "protection violation,"
            } else {
                "page not present,"
            },
            if e & 16 != 0 {
                "instruction fetch"
            } else if e & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if e & 4 != 0 {
                "in user mode"
            } else {
                "in kernel mode"
            }
        )?;
    }
    writeln!(out, " cr2={cr2:#018x}")?;
    writeln!(
        out,
        "fata:   rsp={:#018x} rbp={:#018x} rflags={:#x} cs={:#x}",
        frame.rsp, frame.rbp, frame.rflags, frame.cs
    )?;
    writeln!(
        out,
        "fata:   rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x}",
        frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi
    )?;
    if words.is_empty() {
        writeln!(
            out,
            "fata:   stack: not readable (rsp is outside every known stack)"
        )?;
    } else {
        write!(out, "fata:   stack:")?;
        for w in words {
            write!(out, " {w:#x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The image side: the entry from the stubs and the CPU state it reads, which need `unsafe`
/// (the `fata_trap` symbol, reads of CR2 and of the interrupted stack, `hlt`).
#[cfg(not(test))]
#[allow(unsafe_code)]
mod imp {
    use super::*;

    fn read_cr2() -> u64 {
        let cr2: u64;
        // SAFETY: reading CR2 has no side effects; we run at CPL 0.
        unsafe {
            core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags))
        };
        cr2
    }

    /// Up to 8 words from the interrupted stack, only if they lie inside one of the image's
    /// stacks (so reading them cannot fault again).
    fn stack_words(layout: &ImageLayout, rsp: u64, out: &mut [u64; 8]) -> usize {
        let Some(stack) = layout.stack_of(rsp) else {
            return 0;
        };
        let n = (((stack.memory.end - rsp) / 8) as usize).min(out.len());
        for (i, w) in out.iter_mut().take(n).enumerate() {
            // SAFETY: `rsp + 8 * i` is 8 bytes below the end of a mapped, writable stack of the
            // image (checked above); a stack holds plain words, so any bit pattern is valid.
            *w = unsafe { core::ptr::read_volatile((rsp + 8 * i as u64) as *const u64) };
        }
        n
    }

    /// Entry from the assembly stubs.
    #[unsafe(no_mangle)]
    extern "C" fn fata_trap(frame: &mut TrapFrame) {
        let v = frame.vector;
        if v >= 32 {
            let idle = IDLE_HALT.load(Ordering::Relaxed);
            if idle != 0 && frame.rip == idle {
                // `hlt` is one byte: resume after it (see `set_idle_halt`).
                frame.rip += 1;
            }
            PENDING[(v / 64) as usize].fetch_or(1 << (v % 64), Ordering::AcqRel);
            if let Some(h) = HOOKS.get() {
                (h.interrupt)(v as u8);
            }
            return;
        }
        let Some(hooks) = HOOKS.get() else {
            // No console yet: nothing to report through; stop the CPU.
            halt_forever()
        };
        if CRASHING.swap(true, Ordering::SeqCst) {
            (hooks.console)(b"\nfata: another CPU exception while reporting a crash\n");
            (hooks.crash)()
        }
        let layout = ImageLayout::current();
        let cr2 = read_cr2();
        let mut words = [0u64; 8];
        let n = stack_words(&layout, frame.rsp, &mut words);
        let _ = report(
            &mut Console,
            frame,
            cr2,
            diagnose(&layout, v, frame.error, cr2),
            &words[..n],
        );
        (hooks.crash)()
    }

    fn halt_forever() -> ! {
        loop {
            // SAFETY: stopping the CPU with interrupts off is always allowed at CPL 0.
            unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testing::sample;

    #[test]
    fn guard_page_fault_is_diagnosed_as_stack_overflow() {
        let l = sample();
        let d = diagnose(&l, 14, 2, l.stacks[0].guard + 0xff8);
        assert_eq!(d, Some(Diagnosis::StackOverflow("the boot stack")));
    }

    #[test]
    fn null_write_to_text_and_exec_of_data_are_told_apart() {
        let l = sample();
        assert_eq!(diagnose(&l, 14, 0, 8), Some(Diagnosis::NullPointer));
        assert_eq!(
            diagnose(&l, 14, 3, l.text.start),
            Some(Diagnosis::WriteReadOnly)
        );
        assert_eq!(
            diagnose(&l, 14, 17, l.data.start),
            Some(Diagnosis::ExecuteNonExecutable)
        );
        assert_eq!(diagnose(&l, 13, 0, 0), None);
    }

    #[test]
    fn report_names_vector_rip_error_cr2_and_stack() {
        let f = TrapFrame {
            vector: 14,
            error: 2,
            rip: 0x10_2345,
            rsp: 0x12_0000,
            ..Default::default()
        };
        let mut s = String::new();
        report(
            &mut s,
            &f,
            0x11_6ff8,
            Some(Diagnosis::StackOverflow("the boot stack")),
            &[1, 2],
        )
        .unwrap();
        assert!(
            s.contains("CPU exception 14 (page fault (#PF)) at rip=0x0000000000102345"),
            "{s}"
        );
        assert!(
            s.contains("cause: stack overflow: the boot stack ran into its guard page"),
            "{s}"
        );
        assert!(s.contains("page not present, write in kernel mode"), "{s}");
        assert!(s.contains("cr2=0x0000000000116ff8"), "{s}");
        assert!(s.contains("stack: 0x1 0x2"), "{s}");
    }
}
