//! The text format, on the host: escaping, histogram buckets, family grouping and order,
//! registration checks.

use super::text::{escape_help, escape_label_value, write_f64};
use super::*;
use alloc::string::String;
use alloc::vec;

fn encode(list: &[&'static dyn Metric]) -> String {
    let mut out = String::new();
    encode_families(&mut Encoder::new(&mut out), list);
    out
}

#[test]
fn help_text_escapes_backslash_and_newline_only() {
    let mut s = String::new();
    escape_help(&mut s, "a \\ b\nc \"quoted\"");
    assert_eq!(s, "a \\\\ b\\nc \"quoted\"");
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    let mut s = String::new();
    escape_label_value(&mut s, "C:\\x \"y\"\nz");
    assert_eq!(s, "C:\\\\x \\\"y\\\"\\nz");
}

#[test]
fn floats_are_written_as_prometheus_reads_them() {
    let f = |v: f64| {
        let mut s = String::new();
        write_f64(&mut s, v);
        s
    };
    assert_eq!(f(f64::INFINITY), "+Inf");
    assert_eq!(f(f64::NEG_INFINITY), "-Inf");
    assert_eq!(f(f64::NAN), "NaN");
    assert_eq!(f(0.00025), "0.00025");
    assert_eq!(f(2.5), "2.5");
    assert_eq!(f(1.0), "1");
}

#[test]
fn a_counter_renders_help_type_and_its_value_with_escaped_labels() {
    static C: Counter = Counter::with_labels(
        "app_jobs_total",
        "Jobs done.\nSecond line \\ here.",
        &[("queue", "a\"b"), ("path", "c:\\d")],
    );
    C.add(41);
    C.inc();
    assert_eq!(
        encode(&[&C]),
        "# HELP app_jobs_total Jobs done.\\nSecond line \\\\ here.\n\
         # TYPE app_jobs_total counter\n\
         app_jobs_total{queue=\"a\\\"b\",path=\"c:\\\\d\"} 42\n"
    );
}

#[test]
fn a_gauge_goes_up_and_down_and_below_zero() {
    static G: Gauge = Gauge::new("app_level", "Level.");
    G.set(3);
    G.dec();
    G.add(-5);
    assert_eq!(G.get(), -3);
    assert_eq!(
        encode(&[&G]),
        "# HELP app_level Level.\n# TYPE app_level gauge\napp_level -3\n"
    );
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    static H: Histogram<3> = Histogram::new("app_seconds", "Latency.", [0.25, 0.5, 1.0]);
    for v in [0.125, 0.25, 0.375, 0.75, 2.0, 3.0, f64::NAN] {
        H.observe(v);
    }
    assert_eq!(H.count(), 6, "NaN is not counted");
    assert_eq!(
        encode(&[&H]),
        "# HELP app_seconds Latency.\n\
         # TYPE app_seconds histogram\n\
         app_seconds_bucket{le=\"0.25\"} 2\n\
         app_seconds_bucket{le=\"0.5\"} 3\n\
         app_seconds_bucket{le=\"1\"} 4\n\
         app_seconds_bucket{le=\"+Inf\"} 6\n\
         app_seconds_sum 6.5\n\
         app_seconds_count 6\n"
    );
}

#[test]
fn a_labelled_histogram_puts_le_after_its_own_labels() {
    static H: Histogram<1> =
        Histogram::with_labels("app_size_bytes", "Size.", &[("kind", "x")], [10.0]);
    H.observe(10.0);
    let text = encode(&[&H]);
    assert!(
        text.contains("app_size_bytes_bucket{kind=\"x\",le=\"10\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("app_size_bytes_bucket{kind=\"x\",le=\"+Inf\"} 1\n"));
    assert!(text.contains("app_size_bytes_count{kind=\"x\"} 1\n"));
}

#[test]
fn label_sets_of_one_name_form_one_family_where_it_was_first_registered() {
    static GET: Counter = Counter::with_labels("app_req_total", "Requests.", &[("m", "GET")]);
    static UP: Gauge = Gauge::new("app_up", "Up.");
    static POST: Counter = Counter::with_labels("app_req_total", "Requests.", &[("m", "POST")]);
    let text = encode(&[&GET, &UP, &POST]);
    assert_eq!(
        text,
        "# HELP app_req_total Requests.\n# TYPE app_req_total counter\n\
         app_req_total{m=\"GET\"} 0\napp_req_total{m=\"POST\"} 0\n\
         # HELP app_up Up.\n# TYPE app_up gauge\napp_up 0\n"
    );
    assert_eq!(text.matches("# TYPE app_req_total").count(), 1);
}

#[test]
fn registration_refuses_runtime_names_duplicates_and_type_clashes() {
    static A: Counter = Counter::with_labels("app_x_total", "X.", &[("k", "1")]);
    static B: Counter = Counter::with_labels("app_x_total", "X.", &[("k", "2")]);
    static A2: Counter = Counter::with_labels("app_x_total", "X.", &[("k", "1")]);
    static G: Gauge = Gauge::new("app_x_total", "X.");
    static F: Counter = Counter::new("fata_mine_total", "Mine.");
    let mut list = vec![];
    assert_eq!(add_to(&mut list, &A), Ok(()));
    assert_eq!(add_to(&mut list, &B), Ok(()));
    assert_eq!(
        add_to(&mut list, &A2),
        Err(RegisterError::Duplicate("app_x_total".into()))
    );
    assert_eq!(
        add_to(&mut list, &G),
        Err(RegisterError::KindMismatch("app_x_total".into()))
    );
    assert_eq!(
        add_to(&mut list, &F),
        Err(RegisterError::Reserved("fata_mine_total".into()))
    );
    assert_eq!(list.len(), 2);
}

#[test]
fn names_are_checked_as_the_format_defines_them() {
    assert!(valid_metric_name("http_requests_total"));
    assert!(valid_metric_name("ns:sub_x1"));
    assert!(!valid_metric_name("1abc"));
    assert!(!valid_metric_name("a-b"));
    assert!(!valid_metric_name(""));
    assert!(valid_label_name("method"));
    assert!(!valid_label_name("__name"));
    assert!(!valid_label_name("a:b"));
    assert!(!valid_label_name("9x"));
}

#[test]
fn the_runtime_families_come_first_each_once_with_a_type() {
    crate::executor::tests::fresh();
    let text = render();
    assert!(text.starts_with("# HELP fata_uptime_seconds "), "{text}");
    let mut names = vec![];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!names.contains(&name), "{name} twice:\n{text}");
            names.push(name);
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                names.iter().any(|n| name.starts_with(n)),
                "{line} before its TYPE line"
            );
        }
    }
    assert!(names.contains(&"fata_executor_polls_total"), "{text}");
    assert!(names.contains(&"fata_ready"), "{text}");
}
