//! Host tests of the stack's own logic (listeners, limits, reclaiming, timeouts, addressing,
//! rate limits), with two stacks wired back to back on in-memory devices — smoltcp's own
//! interface tests are the model. No QEMU: these run in milliseconds under `cargo test`.

mod addr;
mod harness;
mod replies;
mod tcp;
