//! The memory functions the compiler emits calls to (`memcpy`, `memmove`, `memset`,
//! `memcmp`, `bcmp`) and the unwinding symbols the precompiled `core`/`alloc` reference.
//!
//! The host target's `compiler_builtins` is built without its `mem` feature, so an image has
//! to supply these. They are written with `rep movsb`/`rep stosb` (fast on every CPU with
//! ERMSB, and opaque to LLVM, which would otherwise turn a byte loop back into a call to the
//! very function it implements) and a plain loop for the comparisons, kept opaque with
//! `black_box`-free volatile-free code that LLVM does not pattern-match to `memcmp`.
//!
//! Wholly `unsafe` by nature (raw-pointer functions exported under fixed symbol names), hence
//! allowed `unsafe_code` in `lib.rs`; nothing else lives here.

use core::arch::asm;

/// # Safety
/// `dest` and `src` must be valid for `n` bytes and must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes; the direction flag
    // is clear (the ABI requires it on function entry).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `dest` and `src` must be valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // Copying forwards never overwrites a byte before reading it.
        // SAFETY: as for `memcpy`; the check above makes a forward copy correct.
        unsafe { memcpy(dest, src, n) }
    } else {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes; copying
        // backwards (direction flag set, restored after) handles `dest` above `src`.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _,
                 inout("rdi") dest.add(n).wrapping_sub(1) => _,
                 inout("rsi") src.add(n).wrapping_sub(1) => _,
                 options(nostack));
        }
        dest
    }
}

/// # Safety
/// `dest` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dest` is valid for `n` bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and the caller guarantees both are valid for `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// Images are built with `panic = "abort"`, so nothing unwinds; the precompiled `core` and
/// `alloc` still reference the personality routine.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Referenced by the precompiled `core`/`alloc`; unreachable with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
