//! Timer check used by the test suite: many tasks sleep for different durations; each records
//! when it woke by the guest clock. Prints `timers ok` and exits 0 only if they woke in
//! deadline order and none woke before its deadline; otherwise exits 1 saying which.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use fata::time::{Duration, Instant, sleep, timeout};

fata::config! {
    pub struct Config {
        /// Number of sleeping tasks.
        tasks: u32 = 20,
    }
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), alloc::string::String> {
    let n = rt.config().tasks;
    let woke: Rc<RefCell<Vec<(u64, u64, u64)>>> = Rc::default();
    let mut handles = Vec::new();
    for i in 0..n {
        // Deadlines 0..=95 ms, shuffled, with repeats.
        let ms = u64::from((i * 37) % 20) * 5;
        let woke = woke.clone();
        handles.push(fata::spawn(async move {
            let start = Instant::now();
            sleep(Duration::from_millis(ms)).await;
            let now = Instant::now();
            woke.borrow_mut()
                .push((ms, start.as_nanos() + ms * 1_000_000, now.as_nanos()));
        }));
    }
    for h in handles {
        h.await;
    }
    let woke: Vec<(u64, u64, u64)> = woke.borrow().clone();
    for w in woke.windows(2) {
        if w[1].1 < w[0].1 {
            return Err(alloc::format!(
                "timer for {} ms woke after the one for {} ms",
                w[0].0,
                w[1].0
            ));
        }
    }
    let mut late_max = 0;
    for &(ms, deadline, at) in woke.iter() {
        if at < deadline {
            return Err(alloc::format!(
                "{ms} ms timer woke {} ns early",
                deadline - at
            ));
        }
        late_max = late_max.max(at - deadline);
    }
    let t = timeout(Duration::from_millis(20), sleep(Duration::from_secs(60))).await;
    if t.is_ok() {
        return Err("a 20 ms timeout did not fire before a 60 s sleep".into());
    }
    fata::println!(
        "timers ok: {} tasks woke in order, none early, latest {} us late",
        woke.len(),
        late_max / 1000
    );
    Ok(())
}
