//! Metrics in the Prometheus text format: one registry of counters, gauges and histograms
//! that the runtime fills and applications add their own to, rendered by [`render`] for an
//! HTTP server's `/metrics`.
//!
//! ```ignore
//! use fata::metrics::{Counter, Histogram, LATENCY_SECONDS};
//! static REQUESTS: Counter = Counter::new("http_requests_total", "HTTP requests answered.");
//! static LATENCY: Histogram<16> = Histogram::new(
//!     "http_request_duration_seconds", "Time from a request's arrival to its answer sent.",
//!     LATENCY_SECONDS);
//! fata::metrics::register(&REQUESTS)?;      // once, at start
//! fata::metrics::register(&LATENCY)?;
//! REQUESTS.inc();                            // on the request path: one relaxed atomic add
//! LATENCY.observe_since(started);
//! let text = fata::metrics::render();        // serve with CONTENT_TYPE
//! ```
//!
//! A metric is a `static` of relaxed atomics: nothing is allocated and nothing runs until it
//! is updated, and an unregistered metric costs its few bytes. Names and label names are
//! checked when the `static` is compiled (a bad one is a compile error). Metrics of one name
//! with different fixed label sets form one family (`Counter::with_labels`). Names starting
//! with `fata_` are the runtime's (see `runtime.rs` for the list): network frames and drops,
//! TCP connections and limits, heap in use and peak, executor tasks, polls and timers, TLS
//! handshakes, readiness. They are read when rendered, so they cost the request path nothing.
//!
//! Layer: the runtime (`fata`); the text format in `text.rs` is pure and host-tested.

mod runtime;
mod text;

#[cfg(test)]
mod tests;

pub use text::{Encoder, Kind, Value, valid_label_name, valid_metric_name};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds in seconds for request latency: 100 µs to 10 s (a unikernel answers
/// most requests well under Prometheus's default first bucket of 5 ms).
pub const LATENCY_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A fixed label set: `&[("method", "GET")]`.
pub type Labels = &'static [(&'static str, &'static str)];

/// A metric the registry can render. Implemented by [`Counter`], [`Gauge`] and
/// [`Histogram`]; an application may implement it for values it computes when scraped.
pub trait Metric: Sync {
    /// The family's name.
    fn name(&self) -> &str;
    /// The family's help text.
    fn help(&self) -> &str;
    /// The family's type.
    fn kind(&self) -> Kind;
    /// This metric's fixed labels (empty for none).
    fn labels(&self) -> &[(&'static str, &'static str)];
    /// Writes this metric's sample lines (not the family's header).
    fn encode(&self, enc: &mut Encoder<'_>);
}

const fn check_names(name: &str, labels: Labels, histogram: bool) {
    assert!(
        valid_metric_name(name),
        "metric names are [a-zA-Z_:][a-zA-Z0-9_:]*"
    );
    let mut i = 0;
    while i < labels.len() {
        let l = labels[i].0;
        assert!(
            valid_label_name(l),
            "label names are [a-zA-Z_][a-zA-Z0-9_]*, not starting with __"
        );
        let b = l.as_bytes();
        assert!(
            !(histogram && b.len() == 2 && b[0] == b'l' && b[1] == b'e'),
            "`le` is a histogram's own label"
        );
        i += 1;
    }
}

/// A value that only goes up.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: Labels,
    value: AtomicU64,
}

impl Counter {
    /// A counter without labels. Panics (at compile time for a `static`) on a bad name.
    pub const fn new(name: &'static str, help: &'static str) -> Counter {
        Counter::with_labels(name, help, &[])
    }

    /// A counter with a fixed label set; several with one name and different label sets
    /// make one family.
    pub const fn with_labels(name: &'static str, help: &'static str, labels: Labels) -> Counter {
        check_names(name, labels, false);
        Counter {
            name,
            help,
            labels,
            value: AtomicU64::new(0),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Metric for Counter {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> Kind {
        Kind::Counter
    }
    fn labels(&self) -> &[(&'static str, &'static str)] {
        self.labels
    }
    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.sample(self.name, "", self.labels, None, Value::U64(self.get()));
    }
}

/// A value that goes up and down.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    labels: Labels,
    value: AtomicI64,
}

impl Gauge {
    /// A gauge without labels. Panics (at compile time for a `static`) on a bad name.
    pub const fn new(name: &'static str, help: &'static str) -> Gauge {
        Gauge::with_labels(name, help, &[])
    }

    /// A gauge with a fixed label set.
    pub const fn with_labels(name: &'static str, help: &'static str, labels: Labels) -> Gauge {
        check_names(name, labels, false);
        Gauge {
            name,
            help,
            labels,
            value: AtomicI64::new(0),
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Adds `n` (negative to subtract).
    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Metric for Gauge {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> Kind {
        Kind::Gauge
    }
    fn labels(&self) -> &[(&'static str, &'static str)] {
        self.labels
    }
    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.sample(self.name, "", self.labels, None, Value::I64(self.get()));
    }
}

/// Observations (latencies, sizes) counted in `N` buckets with fixed upper bounds, plus
/// their sum. Rendered with cumulative `_bucket{le="..."}` lines, `+Inf` included.
pub struct Histogram<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: Labels,
    bounds: [f64; N],
    /// `counts[i]`: observations in bucket `i` alone; `counts[N]` those above every bound.
    counts: [AtomicU64; N],
    over: AtomicU64,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// A histogram without labels over `bounds` (strictly increasing, finite). Panics (at
    /// compile time for a `static`) on bad names or bounds.
    pub const fn new(name: &'static str, help: &'static str, bounds: [f64; N]) -> Histogram<N> {
        Histogram::with_labels(name, help, &[], bounds)
    }

    /// A histogram with a fixed label set (not `le`).
    pub const fn with_labels(
        name: &'static str,
        help: &'static str,
        labels: Labels,
        bounds: [f64; N],
    ) -> Histogram<N> {
        check_names(name, labels, true);
        let mut i = 0;
        while i < N {
            assert!(bounds[i].is_finite(), "histogram bounds must be finite");
            assert!(
                i == 0 || bounds[i - 1] < bounds[i],
                "histogram bounds must increase"
            );
            i += 1;
        }
        Histogram {
            name,
            help,
            labels,
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `v` (NaN is ignored).
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        match self.bounds.iter().position(|&b| v <= b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        // One core: the loop never retries unless an interrupt handler observes too.
        let mut old = self.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }

    /// Observes a duration in seconds.
    pub fn observe_duration(&self, d: core::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Observes the time since `start` in seconds.
    pub fn observe_since(&self, start: crate::time::Instant) {
        self.observe_duration(start.elapsed());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .chain(core::iter::once(&self.over))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

impl<const N: usize> Metric for Histogram<N> {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> Kind {
        Kind::Histogram
    }
    fn labels(&self) -> &[(&'static str, &'static str)] {
        self.labels
    }
    fn encode(&self, enc: &mut Encoder<'_>) {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .chain(core::iter::once(&self.over))
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        enc.histogram_samples(self.name, self.labels, &self.bounds, &counts, self.sum());
    }
}

/// Why [`register`] refused a metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Names starting with `fata_` are the runtime's.
    Reserved(String),
    /// A metric of this name and label set is registered already.
    Duplicate(String),
    /// A metric of this name but another type is registered already.
    KindMismatch(String),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Reserved(n) => write!(f, "metric {n}: names fata_* are the runtime's"),
            RegisterError::Duplicate(n) => {
                write!(f, "metric {n}: registered twice with the same labels")
            }
            RegisterError::KindMismatch(n) => {
                write!(f, "metric {n}: registered before with another type")
            }
        }
    }
}

/// The application's metrics, in registration order.
static REGISTRY: spin::Mutex<Vec<&'static dyn Metric>> = spin::Mutex::new(Vec::new());

/// Checks `m` against `list` and appends it.
fn add_to(
    list: &mut Vec<&'static dyn Metric>,
    m: &'static dyn Metric,
) -> Result<(), RegisterError> {
    let name = m.name();
    if name.starts_with("fata_") {
        return Err(RegisterError::Reserved(name.into()));
    }
    for old in list.iter().filter(|o| o.name() == name) {
        if old.kind() != m.kind() {
            return Err(RegisterError::KindMismatch(name.into()));
        }
        if old.labels() == m.labels() {
            return Err(RegisterError::Duplicate(name.into()));
        }
    }
    list.push(m);
    Ok(())
}

/// Adds an application metric to what [`render`] writes. Metrics of one name must have one
/// type and different label sets.
pub fn register(m: &'static dyn Metric) -> Result<(), RegisterError> {
    add_to(&mut REGISTRY.lock(), m)
}

/// Writes `list` grouped into families: each family where its first metric was registered,
/// with every metric of that name (each label set) under one header.
fn encode_families(enc: &mut Encoder<'_>, list: &[&'static dyn Metric]) {
    for (i, m) in list.iter().enumerate() {
        if list[..i].iter().any(|p| p.name() == m.name()) {
            continue;
        }
        enc.family(m.name(), m.help(), m.kind());
        for same in list[i..].iter().filter(|p| p.name() == m.name()) {
            same.encode(enc);
        }
    }
}

/// Every metric, the runtime's first, as Prometheus text format 0.0.4 (serve it with
/// [`CONTENT_TYPE`]).
pub fn render() -> String {
    let mut out = String::with_capacity(8192);
    let mut enc = Encoder::new(&mut out);
    runtime::encode(&mut enc);
    let list: Vec<&'static dyn Metric> = REGISTRY.lock().clone();
    encode_families(&mut enc, &list);
    out
}
