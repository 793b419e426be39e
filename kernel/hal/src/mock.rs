//! Test doubles: a platform with a virtual clock that [`Platform::wait`] advances to the
//! deadline, and a console that records what was written. Per-thread state, so unit tests
//! running in parallel do not see each other.
extern crate std;

use crate::{Events, ExitCode, Nanos, Platform};
use std::cell::{Cell, RefCell};
use std::string::String;
use std::vec::Vec;

std::thread_local! {
    static NOW: Cell<Nanos> = const { Cell::new(0) };
    static CONSOLE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static WAITS: RefCell<Vec<Option<Nanos>>> = const { RefCell::new(Vec::new()) };
}

/// A platform whose clock only moves when the code under test waits.
pub struct MockPlatform;

impl MockPlatform {
    /// Sets the virtual clock.
    pub fn set_now(ns: Nanos) {
        NOW.with(|n| n.set(ns));
    }

    /// Everything written to the console so far (lossy UTF-8), and clears it.
    pub fn take_console() -> String {
        CONSOLE
            .with(|c| String::from_utf8_lossy(&core::mem::take(&mut *c.borrow_mut())).into_owned())
    }

    /// The deadlines passed to `wait`, in order, and clears them.
    pub fn take_waits() -> Vec<Option<Nanos>> {
        WAITS.with(|w| core::mem::take(&mut *w.borrow_mut()))
    }
}

impl Platform for MockPlatform {
    const NAME: &'static str = "mock";

    fn console_write(bytes: &[u8]) {
        CONSOLE.with(|c| c.borrow_mut().extend_from_slice(bytes));
    }

    fn monotonic_ns() -> Nanos {
        NOW.with(|n| n.get())
    }

    fn wall_ns() -> Option<Nanos> {
        None
    }

    fn wait(deadline: Option<Nanos>) -> Events {
        WAITS.with(|w| w.borrow_mut().push(deadline));
        match deadline {
            Some(d) => NOW.with(|n| n.set(n.get().max(d))),
            None => panic!("mock platform: wait without deadline would sleep forever"),
        }
        Events::NONE
    }

    fn exit(code: ExitCode) -> ! {
        panic!("mock platform: exit({code:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_wait_advances_clock_to_deadline_and_never_back() {
        MockPlatform::set_now(100);
        MockPlatform::wait(Some(50));
        assert_eq!(MockPlatform::monotonic_ns(), 100);
        MockPlatform::wait(Some(500));
        assert_eq!(MockPlatform::monotonic_ns(), 500);
        assert_eq!(MockPlatform::take_waits(), [Some(50), Some(500)]);
    }
}
