//! The `log` facade on the console: `[   1.234567] INFO  target: message`, with the guest's
//! monotonic clock. The level comes from the `log=` boot key.

use crate::console::Console;
use crate::time::Instant;
use core::fmt::Write;

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let ns = Instant::now().as_nanos();
        let mut c = Console::new();
        let _ = writeln!(
            c,
            "[{:5}.{:06}] {:<5} {}: {}",
            ns / 1_000_000_000,
            ns / 1_000 % 1_000_000,
            r.level(),
            r.target(),
            r.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the console logger at `level` (once; later calls only change the level).
pub(crate) fn init(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
