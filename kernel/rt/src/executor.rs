//! The single-core, run-to-completion async executor and its timer queue.
//!
//! Tasks are boxed futures in a table keyed by an id that is never reused, so a waker that
//! outlives its task can never wake (or be mistaken for) a newer one, and the table gives its
//! memory back after a peak of tasks. A task's waker holds only its id and the shared ready
//! queue (so wakers are `Send + Sync` without any `unsafe`); waking pushes the id once. The loop: poll every ready task; fire due timers; if nothing is ready, ask the
//! platform to [`wait`](fata_hal::Platform::wait) until the earliest timer deadline. That wait
//! is the only place the CPU idles, and the only place interrupts are taken on bare metal.
//!
//! A timer never fires early: a sleeping future completes only once the monotonic clock has
//! reached its deadline, whatever woke it.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use fata_hal::{Nanos, Platform};

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

// Figures for `fata::metrics`: relaxed adds, one per spawn, poll, wait and fired timer.
static SPAWNED: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicU64 = AtomicU64::new(0);
static POLLS: AtomicU64 = AtomicU64::new(0);
static WAITS: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);

/// The executor's figures since boot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ExecStats {
    /// Tasks spawned and not finished.
    pub live: u64,
    pub spawned: u64,
    pub polls: u64,
    /// Times the executor idled in the platform's `wait`.
    pub waits: u64,
    /// Timers armed now (0 outside the runtime).
    pub timers: usize,
    pub timers_fired: u64,
}

pub(crate) fn stats() -> ExecStats {
    let spawned = SPAWNED.load(Ordering::Relaxed);
    ExecStats {
        live: spawned.saturating_sub(FINISHED.load(Ordering::Relaxed)),
        spawned,
        polls: POLLS.load(Ordering::Relaxed),
        waits: WAITS.load(Ordering::Relaxed),
        timers: cur::get().map_or(0, |e| e.timers.borrow().len()),
        timers_fired: FIRED.load(Ordering::Relaxed),
    }
}

#[derive(Default)]
struct ReadyQueue {
    ids: spin::Mutex<VecDeque<usize>>,
}

struct TaskWaker {
    id: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.ids.lock().push_back(self.id);
        }
    }
}

struct Task {
    future: BoxFuture,
    handle: Arc<TaskWaker>,
    waker: Waker,
}

/// A timer's key: its deadline, then a sequence number (so equal deadlines keep their order).
pub(crate) type TimerKey = (Nanos, u64);

/// Why [`Executor::block_on`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stall {
    /// Every task waits, no timer is armed and no device can wake anything.
    NothingCanWake,
}

/// The executor. One per program, reached through [`current`].
pub(crate) struct Executor {
    /// Live tasks by id; a task being polled is out of the table.
    tasks: RefCell<BTreeMap<usize, Task>>,
    /// The next task id.
    next_id: Cell<usize>,
    ready: Arc<ReadyQueue>,
    timers: RefCell<BTreeMap<TimerKey, Waker>>,
    seq: Cell<u64>,
    event_sources: Cell<usize>,
    event_waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Executor {
    pub(crate) fn new() -> Executor {
        Executor {
            tasks: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(0),
            ready: Arc::new(ReadyQueue::default()),
            timers: RefCell::new(BTreeMap::new()),
            seq: Cell::new(0),
            event_sources: Cell::new(0),
            event_waiters: RefCell::new(Vec::new()),
        }
    }

    /// Adds a task and queues it to be polled.
    fn spawn_boxed(&self, future: BoxFuture) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        SPAWNED.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        let waker = Waker::from(handle.clone());
        self.tasks.borrow_mut().insert(
            id,
            Task {
                future,
                handle,
                waker: waker.clone(),
            },
        );
        waker.wake();
    }

    /// Arms a timer that wakes `waker` once the clock reaches `deadline`; returns its key for
    /// [`Executor::update_timer`] and [`Executor::cancel_timer`].
    pub(crate) fn add_timer(&self, deadline: Nanos, waker: Waker) -> TimerKey {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let key = (deadline, seq);
        self.timers.borrow_mut().insert(key, waker);
        key
    }

    /// Replaces the waker of an armed timer (a future polled by another task).
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.timers.borrow_mut().get_mut(&key)
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    /// Disarms a timer (its future was dropped before the deadline): timers of abandoned
    /// sleeps and timeouts must not pile up.
    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        self.timers.borrow_mut().remove(&key);
    }

    /// Armed timers (for tests).
    #[allow(dead_code)]
    pub(crate) fn armed_timers(&self) -> usize {
        self.timers.borrow().len()
    }

    /// Declares that a device can wake tasks from `wait` (so waiting with no timer armed is
    /// not a deadlock).
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pub(crate) fn add_event_source(&self) {
        self.event_sources.set(self.event_sources.get() + 1);
    }

    /// Wakes `waker` the next time `wait` reports any of the event bits in `mask`.
    #[allow(dead_code)]
    pub(crate) fn on_events(&self, mask: u64, waker: Waker) {
        let mut w = self.event_waiters.borrow_mut();
        if !w.iter().any(|(m, old)| *m == mask && old.will_wake(&waker)) {
            w.push((mask, waker));
        }
    }

    fn dispatch_events(&self, events: fata_hal::Events) {
        if events.is_empty() {
            return;
        }
        let woken: Vec<Waker> = {
            let mut w = self.event_waiters.borrow_mut();
            let mut out = Vec::new();
            w.retain(|(m, waker)| {
                if m & events.0 != 0 {
                    out.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            out
        };
        for w in woken {
            w.wake();
        }
    }

    fn next_ready(&self) -> Option<usize> {
        self.ready.ids.lock().pop_front()
    }

    /// Polls every queued task once (and tasks woken meanwhile).
    fn run_ready(&self) {
        while let Some(id) = self.next_ready() {
            let task = self.tasks.borrow_mut().remove(&id);
            let Some(mut task) = task else { continue };
            task.handle.queued.store(false, Ordering::Release);
            let mut cx = Context::from_waker(&task.waker);
            POLLS.fetch_add(1, Ordering::Relaxed);
            match task.future.as_mut().poll(&mut cx) {
                Poll::Ready(()) => {
                    FINISHED.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Pending => {
                    self.tasks.borrow_mut().insert(id, task);
                }
            }
        }
    }

    /// Before idling: gives back the capacity a peak of tasks (a connection burst) left in the
    /// ready queue and the event waiters (the task table, a B-tree, shrinks by itself).
    fn tidy(&self) {
        let mut ready = self.ready.ids.lock();
        if ready.is_empty() && ready.capacity() > 16 {
            ready.shrink_to_fit();
        }
        let mut waiters = self.event_waiters.borrow_mut();
        if waiters.capacity() > 16 && waiters.len() * 2 < waiters.capacity() {
            waiters.shrink_to_fit();
        }
    }

    /// Wakes every timer whose deadline is at or before `now`.
    fn fire_due(&self, now: Nanos) {
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_key_value() {
                    Some((&(deadline, _), _)) if deadline <= now => timers.pop_first(),
                    _ => None,
                }
            };
            match due {
                Some((_, waker)) => {
                    FIRED.fetch_add(1, Ordering::Relaxed);
                    waker.wake()
                }
                None => break,
            }
        }
    }

    fn next_deadline(&self) -> Option<Nanos> {
        self.timers
            .borrow()
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    }

    /// Runs `main` (and every task it spawns) until `main` completes.
    pub(crate) fn block_on<P: Platform, F: Future + 'static>(
        &self,
        main: F,
    ) -> Result<F::Output, Stall> {
        let out: Rc<RefCell<Option<F::Output>>> = Rc::new(RefCell::new(None));
        let slot = out.clone();
        self.spawn_boxed(Box::pin(async move {
            let v = main.await;
            *slot.borrow_mut() = Some(v);
        }));
        loop {
            self.run_ready();
            if let Some(v) = out.borrow_mut().take() {
                return Ok(v);
            }
            self.fire_due(P::monotonic_ns());
            if !self.ready.ids.lock().is_empty() {
                continue;
            }
            let deadline = self.next_deadline();
            if deadline.is_none() && self.event_sources.get() == 0 {
                return Err(Stall::NothingCanWake);
            }
            self.tidy();
            WAITS.fetch_add(1, Ordering::Relaxed);
            let events = P::wait(deadline);
            self.dispatch_events(events);
        }
    }
}

#[cfg(not(test))]
mod cur {
    use super::Executor;
    use crate::single::Local;
    use core::cell::Cell;

    static CURRENT: Local<Cell<Option<&'static Executor>>> = Local(Cell::new(None));

    pub(crate) fn set(e: &'static Executor) {
        CURRENT.0.set(Some(e));
    }

    pub(crate) fn get() -> Option<&'static Executor> {
        CURRENT.0.get()
    }
}

#[cfg(test)]
mod cur {
    use super::Executor;
    use core::cell::Cell;

    std::thread_local! {
        static CURRENT: Cell<Option<&'static Executor>> = const { Cell::new(None) };
    }

    pub(crate) fn set(e: &'static Executor) {
        CURRENT.with(|c| c.set(Some(e)));
    }

    pub(crate) fn get() -> Option<&'static Executor> {
        CURRENT.with(|c| c.get())
    }
}

pub(crate) use cur::set as set_current;

/// The running executor. Panics (with a clear message) outside the runtime.
pub(crate) fn current() -> &'static Executor {
    cur::get().expect("fata: no runtime is running (spawn and timers need #[fata::main])")
}

/// Lets every other ready task run before the caller continues.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// The result of a spawned task, to be awaited.
pub struct JoinHandle<T> {
    out: Rc<RefCell<(Option<T>, Option<Waker>)>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.out.borrow().0.is_some()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut o = self.out.borrow_mut();
        match o.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                o.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Starts `future` as a new task; it runs concurrently with the caller (on the same core,
/// interleaved at `.await` points). Await the handle for its result, or drop the handle to
/// let it run detached.
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let out = Rc::new(RefCell::new((None, None::<Waker>)));
    let slot = out.clone();
    current().spawn_boxed(Box::pin(async move {
        let v = future.await;
        let waker = {
            let mut s = slot.borrow_mut();
            s.0 = Some(v);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }));
    JoinHandle { out }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::time::{Duration, Instant, sleep};
    use fata_hal::mock::MockPlatform;

    /// A fresh executor installed as this thread's current one, with the mock clock at 0.
    pub(crate) fn fresh() -> &'static Executor {
        MockPlatform::set_now(0);
        MockPlatform::take_waits();
        let e: &'static Executor = Box::leak(Box::new(Executor::new()));
        set_current(e);
        e
    }

    #[test]
    fn main_result_is_returned() {
        let e = fresh();
        assert_eq!(e.block_on::<MockPlatform, _>(async { 41 + 1 }), Ok(42));
    }

    #[test]
    fn timers_fire_in_deadline_order_and_never_early() {
        let e = fresh();
        let log: Rc<RefCell<Vec<(u64, u64)>>> = Rc::default();
        let r = e.block_on::<MockPlatform, _>({
            let log = log.clone();
            async move {
                let mut handles = Vec::new();
                for ms in [30u64, 10, 20, 10, 0] {
                    let log = log.clone();
                    handles.push(spawn(async move {
                        let start = Instant::now();
                        sleep(Duration::from_millis(ms)).await;
                        let waited = start.elapsed().as_nanos() as u64;
                        log.borrow_mut().push((ms, waited));
                    }));
                }
                for h in handles {
                    h.await;
                }
            }
        });
        assert_eq!(r, Ok(()));
        let log = log.borrow();
        let order: Vec<u64> = log.iter().map(|&(ms, _)| ms).collect();
        assert_eq!(order, [0, 10, 10, 20, 30]);
        for &(ms, waited) in log.iter() {
            assert!(
                waited >= ms * 1_000_000,
                "{ms} ms timer fired after {waited} ns"
            );
        }
        // The executor idled until each distinct deadline instead of spinning.
        let waits = MockPlatform::take_waits();
        assert_eq!(
            waits,
            [Some(10_000_000), Some(20_000_000), Some(30_000_000)]
        );
    }

    #[test]
    fn spurious_wakeups_do_not_end_a_sleep_early() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(async {
            let s = spawn(sleep(Duration::from_millis(5)));
            // Wake the sleeper over and over before its deadline.
            for _ in 0..3 {
                sleep(Duration::from_millis(1)).await;
            }
            assert!(!s.is_finished());
            s.await;
            Instant::now().as_nanos()
        });
        assert!(r.unwrap() >= 5_000_000);
    }

    #[test]
    fn waiting_forever_with_nothing_to_wake_is_reported_as_a_stall() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(core::future::pending::<()>());
        assert_eq!(r, Err(Stall::NothingCanWake));
    }

    #[test]
    fn abandoned_timeouts_do_not_leave_timers_behind() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(async {
            for _ in 0..1000 {
                // Completes at once; its 30 s timer must go away with it.
                let _ = crate::time::timeout(Duration::from_secs(30), async { 1 }).await;
                let _ =
                    crate::time::timeout(Duration::from_secs(30), sleep(Duration::from_millis(1)))
                        .await;
            }
            current().armed_timers()
        });
        assert_eq!(r, Ok(0));
    }

    #[test]
    fn a_peak_of_tasks_leaves_nothing_behind() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(async {
            let handles: Vec<_> = (0..1000u64)
                .map(|i| spawn(async move { sleep(Duration::from_millis(i % 7)).await }))
                .collect();
            let peak = current().tasks.borrow().len();
            for h in handles {
                h.await;
            }
            // Idle once, so the executor tidies up.
            sleep(Duration::from_millis(1)).await;
            (
                peak,
                current().tasks.borrow().len(),
                current().ready.ids.lock().capacity(),
            )
        });
        let (peak, after, ready_capacity) = r.unwrap();
        assert!(peak >= 1000, "{peak}");
        assert!(after <= 2, "{after} tasks left");
        assert!(
            ready_capacity <= 64,
            "ready queue capacity {ready_capacity} kept"
        );
    }

    #[test]
    fn spawns_polls_waits_and_fired_timers_are_counted() {
        let e = fresh();
        // The counters are shared by every test thread: compare with at-least.
        let before = stats();
        let r = e.block_on::<MockPlatform, _>(async {
            let hs: Vec<_> = (0..3)
                .map(|_| spawn(sleep(Duration::from_millis(1))))
                .collect();
            // Let them run once, so each arms its timer.
            yield_now().await;
            let during = stats();
            for h in hs {
                h.await;
            }
            during
        });
        let during = r.unwrap();
        let after = stats();
        assert!(after.spawned >= before.spawned + 4, "main and three tasks");
        assert!(during.live >= 4, "{during:?}");
        assert!(during.timers >= 3, "{during:?}");
        assert!(
            after.polls >= before.polls + 7,
            "each task twice, main at least once"
        );
        assert!(after.timers_fired >= before.timers_fired + 3);
        assert!(
            after.waits > before.waits,
            "the executor idled until the timers"
        );
    }

    #[test]
    fn a_task_that_yields_lets_the_others_run_first() {
        let e = fresh();
        let order: Rc<RefCell<Vec<&str>>> = Rc::default();
        let r = e.block_on::<MockPlatform, _>({
            let order = order.clone();
            async move {
                let o = order.clone();
                let other = spawn(async move { o.borrow_mut().push("other") });
                yield_now().await;
                order.borrow_mut().push("yielder");
                other.await;
            }
        });
        assert_eq!(r, Ok(()));
        assert_eq!(*order.borrow(), ["other", "yielder"]);
    }

    #[test]
    fn many_short_tasks_leave_nothing_behind() {
        let e = fresh();
        let r = e.block_on::<MockPlatform, _>(async {
            let mut sum = 0;
            for i in 0..1000u64 {
                sum += spawn(async move { i }).await;
            }
            sum
        });
        assert_eq!(r, Ok(499_500));
        assert!(
            e.tasks.borrow().len() <= 1,
            "{} tasks left",
            e.tasks.borrow().len()
        );
    }

    #[test]
    fn a_waker_that_outlives_its_task_does_not_poll_a_newer_one() {
        let e = fresh();
        let polls = Rc::new(Cell::new(0));
        let stale: Rc<RefCell<Option<Waker>>> = Rc::default();
        let r = e.block_on::<MockPlatform, _>({
            let (polls, stale) = (polls.clone(), stale.clone());
            async move {
                let keep = stale.clone();
                spawn(core::future::poll_fn(move |cx| {
                    *keep.borrow_mut() = Some(cx.waker().clone());
                    Poll::Ready(())
                }))
                .await;
                let counted = polls.clone();
                let waiter = spawn(core::future::poll_fn(move |_| {
                    counted.set(counted.get() + 1);
                    Poll::<()>::Pending
                }));
                sleep(Duration::from_millis(1)).await;
                let before = polls.get();
                stale.borrow_mut().take().unwrap().wake();
                sleep(Duration::from_millis(1)).await;
                drop(waiter);
                (before, polls.get())
            }
        });
        let (before, after) = r.unwrap();
        assert_eq!(before, after, "the stale waker polled another task");
    }
}
