//! Console output: [`print!`](crate::print!) and [`println!`](crate::println!) on the
//! platform console. Writes go through a small stack buffer (no heap, so printing works when
//! the heap is exhausted) and reach the console a line or a buffer-full at a time.

use crate::platform::Plat;
use core::fmt::{self, Write};
use fata_hal::Platform;

/// A `fmt::Write` that buffers up to 256 bytes and flushes on newline, when full and on drop.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    /// An empty buffer.
    pub const fn new() -> Console {
        Console {
            buf: [0; 256],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            Plat::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = Console::new().write_fmt(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use fata_hal::mock::MockPlatform;

    #[test]
    fn lines_longer_than_the_buffer_arrive_whole_and_in_order() {
        MockPlatform::take_console();
        let long = "x".repeat(1000);
        crate::println!("a {long} b");
        crate::print!("no newline");
        assert_eq!(
            MockPlatform::take_console(),
            alloc::format!("a {long} b\nno newline")
        );
    }
}
