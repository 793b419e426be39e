//! Time: [`Instant`] on the platform's monotonic clock, [`sleep`], [`sleep_until`] and
//! [`timeout`]. A sleep never completes before its deadline by the guest clock.

use crate::executor::current;
use crate::platform::Plat;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
pub use core::time::Duration;
use fata_hal::Platform;

/// A point on the monotonic clock (nanoseconds since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        Instant(Plat::monotonic_ns())
    }

    /// The instant `ns` nanoseconds after boot.
    pub fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    /// Nanoseconds since boot.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since `earlier` (zero if `earlier` is later).
    pub fn duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time since this instant.
    pub fn elapsed(self) -> Duration {
        Instant::now().duration_since(self)
    }

    /// This instant plus `d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch, if the platform knows it.
pub fn wall_ns() -> Option<u64> {
    Plat::wall_ns()
}

/// A future that completes at a deadline.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    timer: Option<crate::executor::TimerKey>,
}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.timer.take() {
                current().cancel_timer(key);
            }
            return Poll::Ready(());
        }
        match self.timer {
            None => self.timer = Some(current().add_timer(self.deadline.0, cx.waker().clone())),
            Some(key) => current().update_timer(key, cx.waker()),
        }
        Poll::Pending
    }
}

impl Unpin for Sleep {}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            current().cancel_timer(key);
        }
    }
}

/// Completes once `d` has passed.
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(Instant::now() + d)
}

/// Completes once the clock reaches `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

/// Runs `fut` for at most `d`.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = core::pin::pin!(fut);
    let mut timer = sleep(d);
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::fresh;
    use fata_hal::mock::MockPlatform;

    #[test]
    fn timeout_returns_the_value_when_fast_and_elapsed_when_slow() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(async {
            let fast = timeout(Duration::from_millis(10), sleep(Duration::from_millis(1))).await;
            let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(5))).await;
            (fast, slow, Instant::now().as_nanos())
        });
        let (fast, slow, now) = r.unwrap();
        assert_eq!(fast, Ok(()));
        assert_eq!(slow, Err(Elapsed));
        assert_eq!(now, 11_000_000, "timed out at 1 ms + 10 ms, not at 5 s");
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let i = Instant(u64::MAX - 1);
        assert_eq!((i + Duration::from_secs(1)).as_nanos(), u64::MAX);
        assert_eq!(Instant(5).duration_since(Instant(10)), Duration::ZERO);
    }
}
