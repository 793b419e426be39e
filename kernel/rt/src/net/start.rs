//! Starting the network at boot: fata's stack on the platform's device (and the task that
//! drives it), or the host's sockets.

use super::keys::{NetKeys, NetSelect, sizing};
use super::{Backend, Stack, Unavailable};
use crate::executor::current;
use crate::platform::Plat;
use crate::time::{Instant, sleep_until};
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;
use fata_hal::sockets::HostSockets;
use fata_hal::{Events, Platform};
use fata_net::Runner;

pub(super) type HostImpl = <Plat as Platform>::Sockets;

pub(super) fn announce(port: u16) {
    let ms = Instant::now().as_nanos() as f64 / 1e6;
    crate::logger::status(format_args!("fata: ready tcp/{port} after {ms:.1} ms"));
}

fn now_ms() -> u64 {
    Instant::now().as_nanos() / 1_000_000
}

fn heap_free() -> usize {
    crate::heap::stats().map_or(usize::MAX, |h| h.total.saturating_sub(h.in_use))
}

/// Starts the network selected by the `net` key.
pub(crate) fn start(keys: &NetKeys) -> Result<Stack, Unavailable> {
    let name = match &keys.net {
        NetSelect::Socket if HostImpl::AVAILABLE => return Ok(host_stack()),
        NetSelect::Socket => {
            return Err(Unavailable(
                "net=socket: this platform has no host sockets".into(),
            ));
        }
        NetSelect::Auto | NetSelect::Device => "service0",
        NetSelect::Tap(n) => n.as_str(),
    };
    let (dev, events) = match Plat::open_net(name) {
        Ok(d) => d,
        Err(fata_hal::net::OpenError::NotFound(_))
            if keys.net == NetSelect::Auto && HostImpl::AVAILABLE =>
        {
            return Ok(host_stack());
        }
        Err(e) => return Err(Unavailable(alloc::format!("{e}"))),
    };
    let heap = crate::heap::stats().map(|h| (h.total, h.in_use));
    let cfg = sizing(keys, heap, heap_free);
    log::info!(
        "net: TCP buffers {} bytes, at most {} connections",
        cfg.tcp_rx_buffer,
        cfg.max_tcp
    );
    // smoltcp draws TCP initial sequence numbers, the first ephemeral port and IPv4 ids from
    // one PCG32 seeded with this (docs/networking.md says what that does and does not give).
    let seed = crate::rand::u64();
    let (runner, stack) = Runner::new(dev, cfg, now_ms(), seed, announce);
    current().add_event_source();
    crate::spawn(run(runner, events));
    Ok(Stack(Backend::Own(stack)))
}

fn host_stack() -> Stack {
    log::info!("net: using the host's sockets (net=socket)");
    // Host sockets wake tasks from `wait`: waiting with no timer armed is not a deadlock.
    current().add_event_source();
    Stack(Backend::Host)
}

/// The task that drives the stack: service the device, poll, sleep until the stack's next
/// deadline, a device interrupt, or a socket operation that needs the stack.
async fn run<D: fata_hal::net::NetDevice + 'static>(mut runner: Runner<D>, events: Events) {
    loop {
        runner.service_device();
        let now = now_ms();
        let next = runner.poll(now);
        if next.is_some_and(|t| t <= now) {
            // Due again at once (more frames waiting, a retransmission): every other task gets
            // its turn first. Looping here without yielding starved the application: a client
            // was acknowledged but never accepted.
            crate::executor::yield_now().await;
            continue;
        }
        let stack = runner.stack().clone();
        let mut timer =
            next.map(|ms| sleep_until(Instant::from_nanos(ms.saturating_mul(1_000_000))));
        let mut armed = false;
        poll_fn(|cx| {
            if armed {
                return Poll::Ready(());
            }
            if let Some(t) = timer.as_mut()
                && Pin::new(t).poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            current().on_events(events.0, cx.waker().clone());
            stack.set_runner_waker(cx.waker());
            armed = true;
            Poll::Pending
        })
        .await;
    }
}
