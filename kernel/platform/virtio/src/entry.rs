//! The symbol the boot code calls, `fata_platform_entry`: it brings the machine up
//! (`startup`) and hands over to the application (`fata_boot::app::start`).
//!
//! Exporting a symbol by name is `unsafe` by nature (`no_mangle`), so this module is allowed
//! `unsafe` code; it holds nothing else.

/// Called by the boot code in long mode on the boot stack, with the start info address.
#[unsafe(no_mangle)]
extern "C" fn fata_platform_entry(start_info_paddr: u32) -> ! {
    fata_boot::app::start(crate::startup::start(start_info_paddr))
}
