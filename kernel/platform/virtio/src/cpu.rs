//! The privileged CPU instructions the platform uses: the time-stamp counter, the local
//! APIC's enable bit in `IA32_APIC_BASE`, the idle `sti; hlt`, and the ways to stop.
//!
//! Executing these is `unsafe`, so this module is allowed `unsafe` code; each function here
//! is safe to call at any time, and the rest of the crate uses them instead.

use x86_64::registers::model_specific::Msr;

/// `IA32_APIC_BASE`: the local APIC's physical base address and its global enable bit.
const IA32_APIC_BASE: u32 = 0x1b;
/// `IA32_APIC_BASE` bit 11: the local APIC is enabled.
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
/// `IA32_APIC_BASE` bits 12..51: the page of the register window.
const APIC_BASE_ADDRESS: u64 = 0x000f_ffff_ffff_f000;

/// Reads the time-stamp counter.
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enables the local APIC at its current base and returns the base's physical address.
pub(crate) fn enable_lapic() -> u64 {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: reading IA32_APIC_BASE has no side effects; every x86_64 CPU has it.
    let v = unsafe { msr.read() };
    // SAFETY: setting the global-enable bit of IA32_APIC_BASE at the same base only
    // (re-)enables the local APIC.
    unsafe { msr.write(v | APIC_GLOBAL_ENABLE) };
    v & APIC_BASE_ADDRESS
}

/// Halts until the next interrupt, which is taken; returns with interrupts disabled again.
pub(crate) fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` is the atomic idle idiom: the interrupt shadow of `sti` makes `hlt`
    // run before any interrupt is taken, so a wake-up cannot be lost between the two.
    // Every vector has an IST stack and the stubs save all state, so the handler cannot
    // corrupt the stack or registers of this function. Interrupts are off again after `cli`.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Resets the machine with a triple fault (the hypervisor stops the guest, or QEMU exits with
/// `-no-reboot`); if that does not stop it, halts forever.
pub(crate) fn triple_fault() -> ! {
    let empty_idt = [0u16; 5];
    // SAFETY: loading an empty IDT and raising an exception is meant to triple-fault: the CPU
    // resets (or the hypervisor stops the guest). Nothing runs after it.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) &empty_idt, options(nostack)) };
    loop {
        // SAFETY: halting with interrupts disabled only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}
