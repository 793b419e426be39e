/* fata's BIOS disk loader: boots a fata image from a raw disk with the same PVH entry that
 * QEMU -kernel, Firecracker and Xen use.
 *
 * Disk layout (512-byte sectors; written by `cargo xtask image`, xtask/src/image.rs):
 *   LBA 0        this boot sector (MBR signature 0x55aa)
 *   LBA 1..15    the second stage (the rest of this file)
 *   LBA 16..23   the parameter block: "FATADISK", version, load address, PVH entry,
 *                image LBA, image sectors, then at byte 64 the boot arguments (NUL-terminated)
 *   LBA 24..     the image: its loadable segments, flat, from the load address on
 *
 * The boot sector reads the second stage with INT 13h extended reads. The second stage reads
 * the parameter block and the image (64 sectors at a time into 0x20000, copied above 1 MiB with
 * INT 15h AH=87h), enables A20, collects the E820 memory map, writes a PVH `hvm_start_info`
 * (version 1: command line, memory map) at 0x4000, enters 32-bit protected mode with flat
 * segments and jumps to the PVH entry with %ebx = 0x4000 — what a PVH loader does.
 *
 * Errors are printed on COM1 (fata's console) and the CPU halts.
 */
    .code16
    .section .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    mov %dl, boot_drive
    /* The second stage: LBA 1, 15 sectors, to 0x7e00. */
    mov $1, %eax
    mov $15, %cx
    mov $0x07e0, %bx
    call read_sectors
    jc disk_error
    jmp stage2

/* Reads %cx sectors from LBA %eax to %bx:0000. CF set on error. */
read_sectors:
    mov %eax, dap_lba
    movl $0, dap_lba + 4
    mov %cx, dap_count
    movw $0, dap_off
    mov %bx, dap_seg
    mov $dap, %si
    mov $0x42, %ah
    mov boot_drive, %dl
    int $0x13
    ret

disk_error:
    mov $msg_disk, %si
fail:
    call print
1:  cli
    hlt
    jmp 1b

/* Prints the NUL-terminated string at %ds:%si on COM1, fata's console (the BIOS's own
 * teletype would also go to the serial port when there is no screen: twice). */
print:
    lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    jmp print
2:  ret

    .balign 4
dap:
    .byte 16, 0
dap_count: .word 0
dap_off:   .word 0
dap_seg:   .word 0
dap_lba:   .quad 0
boot_drive: .byte 0
msg_disk:  .asciz "fata loader: cannot read the disk\r\n"

    .org 510
    .word 0xaa55

/* ---- second stage, at 0x7e00 ---- */
stage2:
    /* The parameter block: LBA 16, 8 sectors, to 0x1000. */
    mov $16, %eax
    mov $8, %cx
    mov $0x0100, %bx
    call read_sectors
    jc disk_error
    cmpl $0x41544146, 0x1000      /* "FATA" */
    jne bad_params
    cmpl $0x4b534944, 0x1004      /* "DISK" */
    jne bad_params

    mov 0x1010, %eax              /* image LBA */
    mov %eax, cur_lba
    mov 0x1014, %eax              /* image sectors */
    mov %eax, remaining
    mov 0x1008, %eax              /* load address */
    mov %eax, dest

load_loop:
    mov remaining, %eax
    test %eax, %eax
    jz loaded
    cmp $64, %eax
    jbe 3f
    mov $64, %eax
3:  mov %ax, chunk
    mov cur_lba, %eax
    mov chunk, %cx
    mov $0x2000, %bx
    call read_sectors
    jc disk_error
    /* Copy chunk * 512 bytes from 0x20000 to dest (INT 15h AH=87h). */
    mov dest, %eax
    mov %ax, gdt_dst + 2
    shr $16, %eax
    mov %al, gdt_dst + 4
    mov %ah, gdt_dst + 7
    movzwl chunk, %ecx
    shl $8, %cx                   /* words */
    push %ds
    pop %es
    mov $move_gdt, %si
    mov $0x87, %ah
    int $0x15
    jc move_error
    movzwl chunk, %eax
    add %eax, cur_lba
    sub %eax, remaining
    shl $9, %eax
    add %eax, dest
    jmp load_loop

loaded:
    /* A20: the BIOS call, then the fast gate. */
    mov $0x2401, %ax
    int $0x15
    in $0x92, %al
    or $2, %al
    and $0xfe, %al
    out %al, $0x92

    /* E820 into 0x5000, up to 64 entries of 24 bytes. */
    xor %ax, %ax
    mov %ax, %es
    xor %ebx, %ebx
    mov $0x5000, %di
    movw $0, e820_count
e820_loop:
    movl $1, %es:20(%di)
    mov $0xe820, %eax
    mov $24, %ecx
    mov $0x534d4150, %edx         /* "SMAP" */
    int $0x15
    jc e820_done
    cmp $0x534d4150, %eax
    jne e820_done
    test %ecx, %ecx
    jz 4f
    incw e820_count
    add $24, %di
    cmpw $64, e820_count
    jae e820_done
4:  test %ebx, %ebx
    jnz e820_loop
e820_done:
    cmpw $0, e820_count
    je no_memory_map

    /* hvm_start_info (version 1) at 0x4000. */
    mov $0x4000, %di
    xor %eax, %eax
    mov $14, %cx
5:  mov %eax, (%di)
    add $4, %di
    loop 5b
    movl $0x336ec578, 0x4000      /* magic */
    movl $1, 0x4004               /* version */
    movl $0x1040, 0x4018          /* cmdline_paddr */
    movl $0x5000, 0x4028          /* memmap_paddr */
    movzwl e820_count, %eax
    mov %eax, 0x4030              /* memmap_entries */

    /* 32-bit protected mode, flat segments, then the PVH entry. */
    cli
    lgdt pm_gdt_desc
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmp $0x08, $pm32

bad_params:
    mov $msg_params, %si
    jmp fail
move_error:
    mov $msg_move, %si
    jmp fail
no_memory_map:
    mov $msg_e820, %si
    jmp fail

    .code32
pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $0x7c00, %esp
    mov 0x100c, %eax              /* PVH entry */
    mov $0x4000, %ebx
    xor %esi, %esi
    jmp *%eax

    .code16
    .balign 8
/* INT 15h AH=87h descriptor table: dummy, BIOS data, source, destination, BIOS CS, BIOS SS. */
move_gdt:
    .quad 0
    .quad 0
gdt_src:
    .word 0xffff
    .word 0x0000                  /* source 0x20000 */
    .byte 0x02
    .byte 0x93
    .byte 0x00
    .byte 0x00
gdt_dst:
    .word 0xffff
    .word 0
    .byte 0
    .byte 0x93
    .byte 0x00
    .byte 0
    .quad 0
    .quad 0

    .balign 8
pm_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff      /* 0x08: 32-bit code, flat */
    .quad 0x00cf92000000ffff      /* 0x10: data, flat */
pm_gdt_desc:
    .word pm_gdt_desc - pm_gdt - 1
    .long pm_gdt

cur_lba:    .long 0
remaining:  .long 0
dest:       .long 0
chunk:      .word 0
e820_count: .word 0
msg_params: .asciz "fata loader: no fata parameter block at LBA 16 (write the disk with cargo xtask image)\r\n"
msg_move:   .asciz "fata loader: the BIOS cannot copy above 1 MiB (INT 15h AH=87h)\r\n"
msg_e820:   .asciz "fata loader: the BIOS gives no E820 memory map\r\n"
end_of_loader:
    .org 8 * 1024 - 1
    .byte 0
