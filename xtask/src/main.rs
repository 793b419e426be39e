//! `cargo xtask`: fata's build driver, for developing fata itself. Run `cargo xtask help`.
//! The same commands, for an app in its own repository, are `cargo fata` (`src/bin/cargo-fata.rs`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    xtask::cli::main(xtask::cli::Mode::Repo, std::env::args().skip(1))
}
