//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then
//! one line per sample, `name{label="value",...} value`.
//!
//! Pure string building, no state: what the registry and the runtime's collector write
//! through, and what the unit tests check. Escaping follows the format's rules: in help text
//! a backslash and a line feed become `\\` and `\n`; in label values a double quote becomes
//! `\"` as well. Floats are written as Go's parser reads them (`+Inf`, `-Inf`, `NaN`).

use alloc::string::String;
use core::fmt::Write;

/// What a metric family is, as its `# TYPE` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at zero with the image).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted in cumulative buckets, with their sum and count.
    Histogram,
}

impl Kind {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An unsigned integer (counters, sizes).
    U64(u64),
    /// A signed integer (gauges).
    I64(i64),
    /// A float (sums, seconds).
    F64(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::U64(v as u64)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::I64(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::U64(u64::from(v))
    }
}

/// Writes `v` as the format's float: shortest decimal that reads back the same, `+Inf`,
/// `-Inf`, `NaN`.
pub(crate) fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn write_value(out: &mut String, v: Value) {
    let _ = match v {
        Value::U64(n) => write!(out, "{n}"),
        Value::I64(n) => write!(out, "{n}"),
        Value::F64(f) => {
            write_f64(out, f);
            Ok(())
        }
    };
}

/// Appends help text: `\` → `\\`, line feed → `\n`.
pub(crate) fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a label value: `\` → `\\`, `"` → `\"`, line feed → `\n`.
pub(crate) fn escape_label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Whether `s` is a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub const fn valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphabetic() || c == b'_' || c == b':' || (i > 0 && c.is_ascii_digit());
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `s` is a label name an application may use: `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__` (reserved by Prometheus).
pub const fn valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || (b.len() >= 2 && b[0] == b'_' && b[1] == b'_') {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphabetic() || c == b'_' || (i > 0 && c.is_ascii_digit());
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Writes the exposition text into a `String`: a family's header, then its samples.
pub struct Encoder<'a> {
    out: &'a mut String,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut String) -> Encoder<'a> {
        Encoder { out }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Every sample of the family must
    /// follow before the next family starts.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One sample line: `name` + `suffix` (`_bucket`, `_sum`, `_count` or nothing), the
    /// labels, then `extra` (a histogram's `le`), and the value.
    pub fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: Value,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        let mut all = labels.iter().copied().chain(extra);
        if let Some((k, v)) = all.next() {
            self.out.push('{');
            self.label(k, v);
            for (k, v) in all {
                self.out.push(',');
                self.label(k, v);
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }

    fn label(&mut self, k: &str, v: &str) {
        self.out.push_str(k);
        self.out.push_str("=\"");
        escape_label_value(self.out, v);
        self.out.push('"');
    }

    /// A whole counter family of one sample without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Counter);
        self.sample(name, "", &[], None, Value::U64(value));
    }

    /// A whole gauge family of one sample without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Into<Value>) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, "", &[], None, value.into());
    }

    /// The histogram samples of one label set: `bounds` are the buckets' upper bounds in
    /// increasing order and `counts[i]` the observations in bucket `i` alone (not
    /// cumulative), with one more entry at the end for those above the last bound. Writes
    /// the cumulative `_bucket` lines, `+Inf` included, then `_sum` and `_count` (which is
    /// the `+Inf` bucket's, so the two always agree).
    pub fn histogram_samples(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0u64;
        let mut le = String::new();
        // One line per bound and one for `+Inf`, whatever `counts` holds.
        for i in 0..=bounds.len() {
            let c = counts.get(i).copied().unwrap_or(0);
            cumulative = cumulative.saturating_add(c);
            le.clear();
            write_f64(&mut le, bounds.get(i).copied().unwrap_or(f64::INFINITY));
            self.sample(
                name,
                "_bucket",
                labels,
                Some(("le", &le)),
                Value::U64(cumulative),
            );
        }
        self.sample(name, "_sum", labels, None, Value::F64(sum));
        self.sample(name, "_count", labels, None, Value::U64(cumulative));
    }
}
