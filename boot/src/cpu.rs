//! Descriptor tables: the final GDT, a TSS whose interrupt stack table gives every vector a
//! known-good stack, and an IDT that sends all 256 vectors to the stubs in `entry`.
//!
//! Every vector runs on an IST stack because the precompiled `core` uses the red zone: an
//! interrupt pushing onto the interrupted stack would corrupt it. Exceptions use IST1,
//! NMI / double fault / machine check IST2, device and timer interrupts IST3.

/// Code segment selector.
pub const KERNEL_CS: u16 = 0x08;
const KERNEL_DS: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

/// Which IST slot (1-based) a vector runs on.
pub fn ist_for(vector: u8) -> u8 {
    match vector {
        2 | 8 | 18 => 2,
        0..=31 => 1,
        _ => 3,
    }
}

/// A 16-byte IDT gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate (interrupts stay disabled in the handler).
    pub fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist & 7,
            attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }

    /// The handler address.
    pub fn handler(&self) -> u64 {
        u64::from(self.offset_low)
            | (u64::from(self.offset_mid) << 16)
            | (u64::from(self.offset_high) << 32)
    }
}

/// The 64-bit task state segment.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
pub struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

impl Tss {
    const fn new() -> Tss {
        Tss {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist: [0; 7],
            reserved2: 0,
            reserved3: 0,
            iomap_base: 104,
        }
    }
}

/// The two GDT words of an available 64-bit TSS descriptor.
pub fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// The image side: the static tables and the instructions that load them, which need
/// `unsafe` (a write-once static, `lgdt`/`ltr`/`lidt`, the trap stubs' symbol).
#[cfg(not(test))]
#[allow(unsafe_code)]
mod imp {
    use super::*;
    use crate::layout::ImageLayout;
    use core::cell::UnsafeCell;

    #[repr(C, align(16))]
    struct Tables {
        gdt: [u64; 5],
        tss: Tss,
        idt: [Gate; 256],
    }

    struct Static(UnsafeCell<Tables>);
    // SAFETY: written once by `init` (guarded by `DONE`) on the only CPU with interrupts
    // disabled; afterwards only the CPU reads them.
    unsafe impl Sync for Static {}
    static TABLES: Static = Static(UnsafeCell::new(Tables {
        gdt: [0; 5],
        tss: Tss::new(),
        idt: [Gate::EMPTY; 256],
    }));
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    unsafe extern "C" {
        static fata_trap_stubs: u8;
    }

    #[repr(C, packed(2))]
    struct Pointer {
        limit: u16,
        base: u64,
    }

    /// Loads the final GDT, TSS and IDT. Call once, first thing after entry.
    pub fn init() {
        if DONE.swap(true, core::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let layout = ImageLayout::current();
        // SAFETY: `DONE` makes this the only reference ever created to the tables.
        let t = unsafe { &mut *TABLES.0.get() };
        t.gdt[1] = 0x00af_9a00_0000_ffff;
        t.gdt[2] = 0x00cf_9200_0000_ffff;
        for (slot, stack) in layout.stacks[1..].iter().enumerate() {
            t.tss.ist[slot] = stack.memory.end;
        }
        let [lo, hi] = tss_descriptor(&raw const t.tss as u64);
        t.gdt[3] = lo;
        t.gdt[4] = hi;
        let stubs = (&raw const fata_trap_stubs) as u64;
        for (v, gate) in t.idt.iter_mut().enumerate() {
            *gate = Gate::interrupt(stubs + 16 * v as u64, ist_for(v as u8));
        }
        let gdt = Pointer {
            limit: (core::mem::size_of_val(&t.gdt) - 1) as u16,
            base: t.gdt.as_ptr() as u64,
        };
        let idt = Pointer {
            limit: (core::mem::size_of_val(&t.idt) - 1) as u16,
            base: t.idt.as_ptr() as u64,
        };
        // SAFETY: the GDT keeps the boot GDT's code (0x08) and data (0x10) selectors, so the
        // far return reloads CS with an equivalent segment; the TSS descriptor is valid and
        // not busy; the IDT gates point at the stubs in `entry`, each running on an IST stack
        // set above. The tables are statics, so they live as long as the CPU uses them.
        unsafe {
            core::arch::asm!(
                "lgdt [{gdt}]",
                "push {cs}",
                "lea {tmp}, [rip + 2f]",
                "push {tmp}",
                "retfq",
                "2:",
                "mov ds, {ds:x}",
                "mov es, {ds:x}",
                "mov ss, {ds:x}",
                "ltr {tss:x}",
                "lidt [{idt}]",
                gdt = in(reg) &raw const gdt,
                idt = in(reg) &raw const idt,
                cs = in(reg) u64::from(KERNEL_CS),
                ds = in(reg) KERNEL_DS,
                tss = in(reg) TSS_SEL,
                tmp = out(reg) _,
            );
        }
    }
}
#[cfg(not(test))]
pub use imp::init;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_gets_an_ist_stack_and_faults_that_imply_a_broken_stack_get_their_own() {
        for v in 0..=255u8 {
            assert!((1..=3).contains(&ist_for(v)));
        }
        assert_eq!(ist_for(8), 2);
        assert_ne!(ist_for(14), ist_for(8));
        assert_ne!(ist_for(14), ist_for(0x30));
    }

    #[test]
    fn gate_encodes_the_full_handler_address() {
        let g = Gate::interrupt(0x1234_5678_9abc_def0, 3);
        assert_eq!(g.handler(), 0x1234_5678_9abc_def0);
        assert_eq!(g.ist, 3);
        assert_eq!(core::mem::size_of::<Gate>(), 16);
        assert_eq!(core::mem::size_of::<Tss>(), 104);
    }

    #[test]
    fn tss_descriptor_splits_the_base() {
        let [lo, hi] = tss_descriptor(0x1122_3344_5566_7788);
        assert_eq!(lo & 0xffff, 103);
        assert_eq!((lo >> 16) & 0xff_ffff, 0x66_7788);
        assert_eq!((lo >> 56) & 0xff, 0x55);
        assert_eq!((lo >> 40) & 0xff, 0x89);
        assert_eq!(hi, 0x1122_3344);
    }
}
