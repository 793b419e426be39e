//! The PVH entry point, written in assembly because no Rust can run before SSE, long mode
//! and a stack exist. Also the ELF note that tells PVH loaders (QEMU `-kernel`, Firecracker,
//! Cloud Hypervisor, Xen) where to enter, and the boot and IST stacks with their guard pages.
//!
//! Wholly `unsafe` by nature (`global_asm!`), hence allowed `unsafe_code` in `lib.rs`; it holds
//! no Rust code.

// Sizes of the stacks. The boot stack runs all Rust code (the executor and every task);
// the interrupt stacks run trap handlers only. Each stack has an unmapped 4 KiB guard page
// below it (see `paging`), so an overflow is a page fault, reported, never silent corruption.
core::arch::global_asm!(
    r#"
    .set BOOT_STACK_SIZE, 262144
    .set IST_STACK_SIZE, 32768

    /* XEN_ELFNOTE_PHYS32_ENTRY (18): 32-bit physical entry address for PVH. */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long fata_pvh_start
    .balign 4
    .popsection

    .pushsection .fata_stacks, "aw", @nobits
    .balign 4096
    .global __fata_guard_boot
    __fata_guard_boot: .skip 4096
    .global __fata_stack_boot_bottom
    __fata_stack_boot_bottom: .skip BOOT_STACK_SIZE
    .global __fata_stack_boot_top
    __fata_stack_boot_top:
    .global __fata_guard_ist1
    __fata_guard_ist1: .skip 4096
    .global __fata_stack_ist1_bottom
    __fata_stack_ist1_bottom: .skip IST_STACK_SIZE
    .global __fata_stack_ist1_top
    __fata_stack_ist1_top:
    .global __fata_guard_ist2
    __fata_guard_ist2: .skip 4096
    .global __fata_stack_ist2_bottom
    __fata_stack_ist2_bottom: .skip IST_STACK_SIZE
    .global __fata_stack_ist2_top
    __fata_stack_ist2_top:
    .global __fata_guard_ist3
    __fata_guard_ist3: .skip 4096
    .global __fata_stack_ist3_bottom
    __fata_stack_ist3_bottom: .skip IST_STACK_SIZE
    .global __fata_stack_ist3_top
    __fata_stack_ist3_top:
    /* Boot page tables: PML4, PDPT, PD identity-mapping the first 1 GiB with 2 MiB pages.
       Filled by the code below; replaced by `paging::init`. */
    .balign 4096
    fata_boot_pml4: .skip 4096
    fata_boot_pdpt: .skip 4096
    fata_boot_pd: .skip 4096
    .popsection

    .pushsection .rodata.fata_boot, "a"
    .balign 16
    fata_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff   /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff   /* 0x10: data */
    fata_boot_gdt_end:
    .balign 16
    fata_boot_gdt_ptr:
    .word fata_boot_gdt_end - fata_boot_gdt - 1
    .quad fata_boot_gdt
    .popsection

    .pushsection .text.fata_boot, "ax"
    .code32
    .global fata_pvh_start
    fata_pvh_start:
    cli
    cld
    /* %ebx holds the start info address for the whole 32-bit part. */

    /* Clear the three boot page tables (3 * 1024 dwords). */
    mov $fata_boot_pml4, %edi
    mov $3072, %ecx
    xor %eax, %eax
    rep stosl

    mov $fata_boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, fata_boot_pml4
    mov $fata_boot_pd, %eax
    or $0x3, %eax
    mov %eax, fata_boot_pdpt

    /* 512 large pages: present, writable, 2 MiB. */
    mov $fata_boot_pd, %edi
    mov $0x83, %eax
    mov $512, %ecx
1:
    mov %eax, (%edi)
    movl $0, 4(%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b

    /* CR4: PAE | OSFXSR | OSXMMEXCPT. */
    mov %cr4, %eax
    or $0x620, %eax
    mov %eax, %cr4

    mov $fata_boot_pml4, %eax
    mov %eax, %cr3

    /* EFER: LME | NXE. */
    mov $0xC0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr

    /* CR0: PG | WP | NE | ET | MP | PE, with EM, TS, CD, NW clear. */
    mov $0x80010033, %eax
    mov %eax, %cr0

    lgdt fata_boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs

    mov $__fata_stack_boot_top, %rsp
    xor %ebp, %ebp

    /* Zero .bss. */
    mov $__bss_start, %rdi
    mov $__bss_end, %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb

    fninit
    mov %ebx, %edi
    jmp fata_enter_rust

    /* The outermost frame of every backtrace. Its call frame information says that the
       return address is undefined, so a debugger's `bt` ends here instead of unwinding into
       whatever lies above the boot stack; %rbp = 0 ends frame-pointer walks too. (The CFI
       lands in `.eh_frame`, which ordinary images discard and `--gdb` images keep.) */
    .global fata_enter_rust
    .type fata_enter_rust, @function
    fata_enter_rust:
    .cfi_startproc
    .cfi_undefined %rip
    xor %ebp, %ebp
    call fata_platform_entry
3:
    cli
    hlt
    jmp 3b
    .cfi_endproc
    .size fata_enter_rust, . - fata_enter_rust
    .popsection
    "#,
    options(att_syntax)
);

// Interrupt and exception stubs. Stub `n` starts at `fata_trap_stubs + 16 * n`, pushes a zero
// error code where the CPU pushes none, pushes `n`, and jumps to the common path, which saves
// the general registers and the FPU/SSE state (the precompiled `core` uses SSE and the red
// zone, so nothing may be clobbered) before calling `trap::fata_trap`.
core::arch::global_asm!(
    r#"
    .pushsection .text.fata_traps, "ax"
    .code64
    .balign 16
    .global fata_trap_stubs
    fata_trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp fata_trap_common
    .set vec, vec + 1
    .endr

    fata_trap_common:
    /* Call frame information (in .eh_frame: kept by --gdb images, discarded otherwise): this
       frame is the interrupted code's signal frame. On entry the stack holds the vector, the
       error code and the CPU's frame (rip, cs, rflags, rsp, ss), so the CFA is %rsp + 56 and
       the interrupted rip and rsp are saved at CFA-40 and CFA-16; each general register is
       described where it is pushed. A debugger's `bt` in `fata_trap` thus continues into the
       code that faulted. */
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa %rsp, 56
    .cfi_offset %rip, -40
    .cfi_offset %rsp, -16
    push %rax
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rax, -64
    push %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rbx, -72
    push %rcx
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rcx, -80
    push %rdx
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rdx, -88
    push %rsi
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rsi, -96
    push %rdi
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rdi, -104
    push %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rbp, -112
    push %r8
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r8, -120
    push %r9
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r9, -128
    push %r10
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r10, -136
    push %r11
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r11, -144
    push %r12
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r12, -152
    push %r13
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r13, -160
    push %r14
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r14, -168
    push %r15
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r15, -176
    mov %rsp, %rbx
    .cfi_def_cfa_register %rbx
    sub $512, %rsp
    and $-16, %rsp
    fxsave64 (%rsp)
    mov %rbx, %rdi
    cld
    call fata_trap
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    .cfi_def_cfa_register %rsp
    pop %r15
    .cfi_adjust_cfa_offset -8
    pop %r14
    .cfi_adjust_cfa_offset -8
    pop %r13
    .cfi_adjust_cfa_offset -8
    pop %r12
    .cfi_adjust_cfa_offset -8
    pop %r11
    .cfi_adjust_cfa_offset -8
    pop %r10
    .cfi_adjust_cfa_offset -8
    pop %r9
    .cfi_adjust_cfa_offset -8
    pop %r8
    .cfi_adjust_cfa_offset -8
    pop %rbp
    .cfi_adjust_cfa_offset -8
    pop %rdi
    .cfi_adjust_cfa_offset -8
    pop %rsi
    .cfi_adjust_cfa_offset -8
    pop %rdx
    .cfi_adjust_cfa_offset -8
    pop %rcx
    .cfi_adjust_cfa_offset -8
    pop %rbx
    .cfi_adjust_cfa_offset -8
    pop %rax
    .cfi_adjust_cfa_offset -8
    add $16, %rsp
    .cfi_adjust_cfa_offset -16
    iretq
    .cfi_endproc
    .popsection
    "#,
    options(att_syntax)
);
