//! Cells for state that only the executor's thread touches.
//!
//! fata runs one thread on one core: images have no other threads, interrupt handlers never
//! touch runtime state (they only set pending bits in the boot layer), and on `unix` the
//! runtime creates no threads. A global holding such state still has to be `Sync` to be a
//! `static`; [`Local`] asserts it. In unit tests (which run on many threads) the runtime's
//! globals are thread-locals instead, so this type is not used there.

/// A value reached only from the executor's thread.
#[cfg_attr(test, allow(dead_code))]
pub(crate) struct Local<T>(pub(crate) T);

// SAFETY: see the module documentation: in an image or a fata process there is exactly one
// thread that ever reaches a `Local`, so no data is shared between threads.
unsafe impl<T> Sync for Local<T> {}
