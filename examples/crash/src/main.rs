//! Failure modes, for the test suite: `what=` picks how this application dies, so tests can
//! check that each one is reported (message, location or crash report) and exits non-zero.
#![no_std]
#![no_main]
// Applications need no `unsafe`; this one breaks the rules on purpose, in `faults` only.
#![deny(unsafe_code)]

extern crate alloc;
use alloc::string::String;
use alloc::vec::Vec;

fata::config! {
    pub struct Config {
        /// How to fail: ok, error, panic, null, page-fault, stack-overflow,
        /// invalid-opcode, write-text, exec-data, oom.
        what: String = "ok",
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A large frame, kept alive across the call so the recursion cannot be turned into a loop.
    let frame = core::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[(depth % 64) as usize]
}

/// The deliberate faults. Each one is a memory or CPU rule broken on purpose, which takes
/// `unsafe`: allowed here, and nowhere else in the application. None of them returns normally
/// on a working platform (each must end in a crash report); if one does, it says what survived.
#[allow(unsafe_code)]
mod faults {
    use alloc::string::String;

    static DATA_BYTES: [u8; 4] = [0xc3; 4];

    /// Reads through a pointer into page 0.
    pub fn null() -> String {
        let p = core::hint::black_box(8usize) as *const u64;
        // SAFETY: none, on purpose: page 0 is unmapped and this must fault.
        let v = unsafe { core::ptr::read_volatile(p) };
        alloc::format!("read {v} through a null pointer and survived")
    }

    /// Reads an address where nothing is mapped.
    pub fn page_fault() -> String {
        let p = core::hint::black_box(0x7_0000_0000usize) as *const u64;
        // SAFETY: none, on purpose: nothing is mapped at 28 GiB and this must fault.
        let v = unsafe { core::ptr::read_volatile(p) };
        alloc::format!("read {v} from unmapped memory and survived")
    }

    /// Writes into the code of `code`.
    pub fn write_text(code: fn(u64) -> u64) -> String {
        let p = core::hint::black_box(code as *const () as usize) as *mut u8;
        // SAFETY: none, on purpose: code is mapped read-only and this must fault.
        unsafe { core::ptr::write_volatile(p, 0xcc) };
        "wrote to the code and survived".into()
    }

    /// Calls into data (a `ret` instruction in a static).
    pub fn exec_data() -> String {
        let f: extern "C" fn() =
            // SAFETY: none, on purpose: data is mapped no-execute and the call must fault.
            unsafe { core::mem::transmute(core::hint::black_box(&DATA_BYTES as *const u8)) };
        f();
        "executed data and survived".into()
    }

    /// Executes an undefined instruction.
    pub fn invalid_opcode() -> String {
        // SAFETY: `ud2` only raises #UD, which must end in a crash report.
        unsafe { core::arch::asm!("ud2") };
        "executed ud2 and survived".into()
    }
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let what = rt.config().what.as_str();
    fata::println!("crash: about to fail with `{what}`");
    match what {
        "ok" => Ok(()),
        "error" => Err(String::from("the application gave up")),
        "panic" => panic!("deliberate panic for the test suite"),
        "null" => Err(faults::null()),
        "page-fault" => Err(faults::page_fault()),
        "write-text" => Err(faults::write_text(recurse)),
        "exec-data" => Err(faults::exec_data()),
        "invalid-opcode" => Err(faults::invalid_opcode()),
        "stack-overflow" => Err(alloc::format!("recursion returned {}", recurse(0))),
        "oom" => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(Vec::with_capacity(1 << 20));
                core::hint::black_box(&hog);
            }
        }
        other => Err(alloc::format!("unknown failure mode `{other}`")),
    }
}
