//! The smallest useful fata application: greets someone a few times, sleeping between
//! greetings, and exits 0. `cargo xtask run --example hello -- name=you count=5`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use fata::time::{Duration, Instant, sleep};

fata::config! {
    pub struct Config {
        /// Who to greet.
        name: String = "world",
        /// How many greetings.
        count: u32 = 3,
        /// Pause between greetings.
        interval: Duration = Duration::from_millis(100),
    }
}

extern crate alloc;
use alloc::string::String;

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), &'static str> {
    let cfg = rt.config();
    let start = Instant::now();
    for i in 1..=cfg.count {
        fata::println!("Hello, {}! ({i}/{})", cfg.name, cfg.count);
        if i < cfg.count {
            sleep(cfg.interval).await;
        }
    }
    fata::log::info!("said hello {} times in {:?}", cfg.count, start.elapsed());
    Ok(())
}
