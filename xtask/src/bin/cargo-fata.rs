//! `cargo fata`: fata's build driver for an app in its own repository. Installed with
//! `cargo install --path xtask --bin cargo-fata` from a fata checkout; run inside the app's
//! directory (cargo passes `fata` as the first argument). Same commands and flags as
//! `cargo xtask`, one implementation (`xtask::cli`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    // `cargo fata build` runs `cargo-fata fata build`; `cargo-fata build` works too.
    if args.peek().map(String::as_str) == Some("fata") {
        args.next();
    }
    xtask::cli::main(xtask::cli::Mode::App, args)
}
