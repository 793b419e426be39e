//! Deadlines of a keep-alive connection: how long the next read may wait.
//!
//! Between requests a connection may stay silent for the idle timeout. From the first byte of
//! a request until its head and body have arrived, one deadline runs for the whole request, so
//! a client that trickles a byte at a time (slowloris) is cut off when the request deadline
//! passes rather than each time it pauses. Pure arithmetic on milliseconds, tested here; the
//! application supplies the clock.

/// Which limit the next read is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No request in progress: the idle timeout.
    Idle,
    /// A request has started and must complete by its deadline.
    Request,
}

/// The deadlines of one connection.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimer {
    idle_ms: u64,
    request_ms: u64,
    started_ms: Option<u64>,
}

impl RequestTimer {
    /// A connection that waits at most `idle_ms` between requests and gives each request
    /// `request_ms` from its first byte to its last.
    pub const fn new(idle_ms: u64, request_ms: u64) -> RequestTimer {
        RequestTimer {
            idle_ms,
            request_ms,
            started_ms: None,
        }
    }

    /// Part of a request (or a body still to come) is pending at `now_ms`: its deadline runs
    /// from the first call until [`RequestTimer::end`].
    pub fn begin(&mut self, now_ms: u64) {
        self.started_ms.get_or_insert(now_ms);
    }

    /// The request is complete: back to the idle timeout.
    pub fn end(&mut self) {
        self.started_ms = None;
    }

    /// How long the next read may wait at `now_ms` (0: the deadline has passed) and under
    /// which limit.
    pub fn next_wait(&self, now_ms: u64) -> (u64, Limit) {
        match self.started_ms {
            None => (self.idle_ms, Limit::Idle),
            Some(t) => (
                t.saturating_add(self.request_ms).saturating_sub(now_ms),
                Limit::Request,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickling_request_is_cut_off_at_its_deadline_not_per_byte() {
        let mut t = RequestTimer::new(3_000, 10_000);
        assert_eq!(t.next_wait(0), (3_000, Limit::Idle));
        // One byte a second: every read is short, but the deadline does not move.
        let mut now = 500;
        t.begin(now);
        let mut reads = 0;
        loop {
            let (wait, limit) = t.next_wait(now);
            assert_eq!(limit, Limit::Request);
            if wait == 0 {
                break;
            }
            now += wait.min(1_000);
            t.begin(now);
            reads += 1;
        }
        assert_eq!(now, 10_500);
        assert_eq!(reads, 10);
        t.end();
        assert_eq!(t.next_wait(now), (3_000, Limit::Idle));
    }

    #[test]
    fn huge_values_saturate() {
        let mut t = RequestTimer::new(u64::MAX, u64::MAX);
        t.begin(u64::MAX - 1);
        assert_eq!(t.next_wait(u64::MAX).1, Limit::Request);
        assert_eq!(RequestTimer::new(1, 1).next_wait(u64::MAX).0, 1);
    }
}
