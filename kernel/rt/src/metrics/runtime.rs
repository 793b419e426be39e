//! The runtime's own metrics (all named `fata_*`), read from the counters each part already
//! keeps when `/metrics` is rendered: nothing here runs on the request path.

use super::{Encoder, Value};

pub(super) fn encode(enc: &mut Encoder<'_>) {
    let up = crate::time::Instant::now().as_nanos() as f64 / 1e9;
    enc.gauge("fata_uptime_seconds", "Seconds since boot.", Value::F64(up));
    enc.gauge(
        "fata_ready",
        "1 when the application is ready for traffic (what /readyz answers), else 0.",
        crate::health::is_ready(),
    );
    executor(enc);
    heap(enc);
    #[cfg(feature = "net")]
    net(enc);
    #[cfg(feature = "tls")]
    tls(enc);
    #[cfg(feature = "kv")]
    kv(enc);
}

fn executor(enc: &mut Encoder<'_>) {
    let s = crate::executor::stats();
    enc.gauge(
        "fata_executor_tasks",
        "Tasks alive (spawned and not finished).",
        s.live,
    );
    enc.counter(
        "fata_executor_tasks_spawned_total",
        "Tasks spawned since boot.",
        s.spawned,
    );
    enc.counter(
        "fata_executor_polls_total",
        "Task polls since boot.",
        s.polls,
    );
    enc.counter(
        "fata_executor_waits_total",
        "Times the executor idled in the platform's wait (nothing ready).",
        s.waits,
    );
    enc.gauge(
        "fata_timers_armed",
        "Timers armed now (sleeps and timeouts).",
        s.timers,
    );
    enc.counter(
        "fata_timers_fired_total",
        "Timers that reached their deadline since boot.",
        s.timers_fired,
    );
}

fn heap(enc: &mut Encoder<'_>) {
    // Hosted platforms use the host's allocator and have no figures.
    let Some(h) = crate::heap::stats() else {
        return;
    };
    enc.gauge(
        "fata_heap_size_bytes",
        "Bytes of RAM given to the heap.",
        h.total,
    );
    enc.gauge(
        "fata_heap_in_use_bytes",
        "Bytes in live heap allocations.",
        h.in_use,
    );
    enc.gauge(
        "fata_heap_peak_bytes",
        "Most bytes in live heap allocations at any time since boot.",
        h.peak_in_use,
    );
    enc.gauge(
        "fata_heap_allocations",
        "Live heap allocations.",
        h.allocations,
    );
}

#[cfg(feature = "net")]
fn net(enc: &mut Encoder<'_>) {
    let Ok(stack) = crate::runtime::net_stack() else {
        return;
    };
    let c = stack.counters();
    let d = &c.device;
    enc.gauge(
        "fata_net_reachable",
        "1 once the interface has the address it waits for (DHCP, static or SLAAC), else 0.",
        stack.is_reachable(),
    );
    enc.counter(
        "fata_net_rx_frames_total",
        "Frames received and handed to the stack.",
        d.rx_frames,
    );
    enc.counter(
        "fata_net_rx_bytes_total",
        "Bytes in received frames.",
        d.rx_bytes,
    );
    enc.counter(
        "fata_net_tx_frames_total",
        "Frames transmitted.",
        d.tx_frames,
    );
    enc.counter(
        "fata_net_tx_bytes_total",
        "Bytes in transmitted frames.",
        d.tx_bytes,
    );
    let name = "fata_net_dropped_frames_total";
    enc.family(
        name,
        "Frames dropped by the device driver, by reason.",
        super::Kind::Counter,
    );
    for (reason, v) in [
        ("rx_oversize", d.rx_oversize),
        ("rx_runt", d.rx_runt),
        ("bad_descriptor", d.bad_descriptor),
        ("tx_dropped", d.tx_dropped),
    ] {
        enc.sample(name, "", &[("reason", reason)], None, Value::U64(v));
    }
    enc.counter(
        "fata_net_tx_ring_full_total",
        "Transmit requests refused because the device's ring was full.",
        d.tx_ring_full,
    );
    enc.counter(
        "fata_net_interrupts_total",
        "Network device interrupts handled.",
        d.interrupts,
    );
    enc.counter(
        "fata_net_icmp_limited_total",
        "ICMP replies not sent because of the rate limit.",
        c.icmp_limited,
    );
    enc.counter(
        "fata_tcp_accepted_total",
        "TCP connections handed to accept.",
        c.accepted,
    );
    enc.gauge(
        "fata_tcp_sockets",
        "TCP sockets in use now (listening ones included).",
        c.tcp_sockets,
    );
    enc.gauge(
        "fata_tcp_sockets_limit",
        "The TCP connection limit in force (max_connections).",
        c.tcp_limit,
    );
    enc.counter(
        "fata_tcp_limit_hits_total",
        "Times a TCP socket was needed and none could be had (limit or memory).",
        c.tcp_limit_hits,
    );
    enc.counter(
        "fata_tcp_syn_dropped_total",
        "Connection requests dropped unanswered: their listener had no free socket.",
        c.syn_dropped,
    );
    enc.counter(
        "fata_tcp_pending_dropped_total",
        "Half-open or unaccepted connections reset (full backlog, or room made at the limit).",
        c.pending_dropped,
    );
    enc.counter(
        "fata_tcp_handshake_timeouts_total",
        "Half-open connections reset because the handshake did not complete in time.",
        c.handshake_timeouts,
    );
    enc.counter(
        "fata_tcp_close_timeouts_total",
        "Dropped connections reset because they did not close in time.",
        c.close_timeouts,
    );
    enc.counter(
        "fata_tcp_reclaimed_total",
        "Idle or closing connections reset to admit a new one at the connection limit.",
        c.reclaimed,
    );
    enc.counter(
        "fata_tcp_rst_limited_total",
        "Resets for unwanted segments not sent because of the rate limit.",
        c.rst_limited,
    );
}

#[cfg(feature = "tls")]
fn tls(enc: &mut Encoder<'_>) {
    let t = crate::net::tls::counters();
    enc.counter(
        "fata_tls_handshakes_total",
        "TLS server handshakes completed.",
        t.handshakes,
    );
    enc.counter(
        "fata_tls_handshake_failures_total",
        "TLS server handshakes that failed (bad records, no common parameters, alerts, resets).",
        t.failed,
    );
    enc.counter(
        "fata_tls_handshake_timeouts_total",
        "TLS server handshakes closed for not completing within tls_handshake_timeout.",
        t.timeouts,
    );
}

#[cfg(feature = "kv")]
fn kv(enc: &mut Encoder<'_>) {
    use super::Kind::{Counter, Gauge};
    let stores = crate::kv::open_stats();
    if stores.is_empty() {
        return;
    }
    type Get = fn(&crate::kv::Stats) -> u64;
    let families: [(&str, &str, super::Kind, Get); 12] = [
        ("fata_kv_keys", "Keys stored.", Gauge, |s| s.keys),
        (
            "fata_kv_live_bytes",
            "Bytes of the live operations (keys, values, framing).",
            Gauge,
            |s| s.live_bytes,
        ),
        (
            "fata_kv_log_bytes",
            "Bytes of the log in use (live and dead).",
            Gauge,
            |s| s.log_bytes,
        ),
        (
            "fata_kv_region_bytes",
            "Bytes of one log region: the most the log can hold.",
            Gauge,
            |s| s.region_bytes,
        ),
        (
            "fata_kv_generation",
            "Compactions since the format, plus one.",
            Gauge,
            |s| s.generation,
        ),
        (
            "fata_kv_poisoned",
            "1 when writes are refused after a failed write or flush.",
            Gauge,
            |s| u64::from(s.poisoned),
        ),
        (
            "fata_kv_commits_total",
            "Commits written (each one write and one flush).",
            Counter,
            |s| s.commits,
        ),
        (
            "fata_kv_batches_total",
            "Batches acknowledged (several can share a commit).",
            Counter,
            |s| s.batches,
        ),
        (
            "fata_kv_flushes_total",
            "Flushes sent to the disk.",
            Counter,
            |s| s.flushes,
        ),
        (
            "fata_kv_compactions_total",
            "Compactions completed.",
            Counter,
            |s| s.compactions,
        ),
        (
            "fata_kv_written_bytes_total",
            "Bytes written to the disk.",
            Counter,
            |s| s.bytes_written,
        ),
        (
            "fata_kv_corrupt_reads_total",
            "Values read back that failed their checksum.",
            Counter,
            |s| s.corrupt_reads,
        ),
    ];
    for (name, help, kind, get) in families {
        enc.family(name, help, kind);
        for (disk, s) in &stores {
            enc.sample(name, "", &[("disk", disk)], None, super::Value::U64(get(s)));
        }
    }
}
