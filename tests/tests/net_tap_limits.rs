//! Availability under load, met from outside over a TAP device in a network namespace (root,
//! iproute2): a burst of a thousand connects, the connection limit and how the stack makes
//! room at it, slow clients, a small guest, and memory that returns after a peak.
#![forbid(unsafe_code)]

use fata_tests::{Netns, boot_in, field, netclient, site_dir, status};
use std::time::Duration;

const GUEST: &str = "10.77.0.2";
const STATIC: [&str; 2] = ["ipv4=10.77.0.2/24", "gateway=10.77.0.1"];

#[test]
fn a_burst_of_a_thousand_connects_is_served_in_full_with_the_defaults() {
    let ns = Netns::new("burst", 1500);
    let _vm = boot_in(&ns, "http", 80, &STATIC);
    // A thousand clients connect at the same instant and each GETs a page.
    let out = netclient(&ns, &["burst", GUEST, "80", "1000"]);
    assert!(out.contains("ok=1000 failed=0"), "{out}");
    let s = status(&ns, GUEST);
    assert_eq!(field(&s, "pending_dropped"), 0, "{s}");
}

#[test]
fn at_the_connection_limit_idle_clients_make_room_for_new_ones() {
    let ns = Netns::new("reclaim", 1500);
    let _vm = boot_in(
        &ns,
        "http",
        80,
        &["ipv4=10.77.0.2/24", "max_connections=12"],
    );
    // Sixty clients connect and say nothing; a normal client still gets its page.
    let out = netclient(&ns, &["idle-then-get", GUEST, "80", "60"]);
    assert!(out.contains("status=200"), "{out}");
    assert!(out.contains("reset_by_server=0"), "{out}");
    let s = status(&ns, GUEST);
    assert!(field(&s, "reclaimed") > 0, "nothing was reclaimed: {s}");
    assert!(field(&s, "tcp_sockets") <= 12, "{s}");
}

/// Starts `count` clients in the background that each send the start of a request and hold
/// their connections for `hold_s` seconds (a request under way is not idle: the stack may not
/// reclaim it), then count the 408 answers they got. Returns the process and how many
/// connected.
fn hold_partial_requests(
    ns: &Netns,
    count: u32,
    hold_s: u32,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    u32,
) {
    use std::io::BufRead;
    let script = format!(
        "import socket,sys,time\n\
         s=[]\n\
         for i in range({count}):\n\
         \x20   try:\n\
         \x20       c=socket.socket(); c.settimeout(0.2); c.connect(('{GUEST}',80)); c.sendall(b'GET /612.html HTTP/1.1\\r\\n'); s.append(c)\n\
         \x20   except Exception: pass\n\
         print('held', len(s)); sys.stdout.flush()\n\
         time.sleep({hold_s})\n\
         n=0\n\
         for c in s:\n\
         \x20   try:\n\
         \x20       c.settimeout(1); n+=c.recv(100).startswith(b'HTTP/1.1 408')\n\
         \x20   except Exception: pass\n\
         print('answered_408', n)\n"
    );
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let held = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("holders said {line:?}"));
    (child, out, held)
}

#[test]
fn busy_connections_at_the_limit_are_kept_newcomers_wait_and_the_deadline_frees_them() {
    let ns = Netns::new("busy", 1500);
    let _vm = boot_in(
        &ns,
        "http",
        80,
        &[
            "ipv4=10.77.0.2/24",
            "max_connections=12",
            "request_timeout=4s",
        ],
    );
    // Twenty clients start requests and never finish them: twelve sockets fill (the
    // listening one becomes the twelfth connection), the rest are not answered (and give
    // up after 0.2 s, well before the request deadline).
    let (mut holders, mut said, held) = hold_partial_requests(&ns, 20, 6);
    assert!((11..=12).contains(&held), "{held} connections held");
    // Their requests time out (408 after 4 s) and the site serves everyone again.
    netclient(&ns, &["wait", GUEST, "80", "20"]);
    let site = site_dir();
    netclient(
        &ns,
        &["http", GUEST, "80", site.to_str().unwrap(), "10", "4"],
    );
    let s = status(&ns, GUEST);
    assert!(field(&s, "slow_requests") >= 11, "{s}");
    assert!(field(&s, "syn_dropped") > 0, "{s}");
    // Every busy connection was answered at its deadline, none reset to make room.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    let _ = holders.wait();
    assert_eq!(line.trim(), format!("answered_408 {held}"), "{s}");
}

#[test]
fn a_client_trickling_its_request_is_cut_off_at_the_request_deadline() {
    let ns = Netns::new("slowloris", 1500);
    let _vm = boot_in(
        &ns,
        "http",
        80,
        &["ipv4=10.77.0.2/24", "idle_timeout=3s", "request_timeout=2s"],
    );
    // One byte every 250 ms: each read is well inside the idle timeout, but the request as a
    // whole is not.
    let out = netclient(&ns, &["trickle", GUEST, "80", "250"]);
    assert!(out.contains("status Some(408)"), "{out}");
    let secs: f64 = out
        .split("after ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(secs < 10.0, "cut off only after {secs} s: {out}");
    let s = status(&ns, GUEST);
    assert_eq!(field(&s, "slow_requests"), 1, "{s}");
}

#[test]
fn a_client_that_does_not_read_its_responses_is_closed_at_the_deadline() {
    let ns = Netns::new("slowreader", 1500);
    let _vm = boot_in(
        &ns,
        "http",
        80,
        &["ipv4=10.77.0.2/24", "request_timeout=2s", "tcp_buffer=2048"],
    );
    // Three hundred pipelined requests, a tiny receive buffer, and no reading at all: the
    // server's writes stall once its buffer and the client's window are full.
    let script = format!(
        "import socket,time\n\
         c=socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)\n\
         c.connect(('{GUEST}',80)); c.settimeout(1)\n\
         try:\n\
         \x20   c.sendall(b'GET /index.html HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'*300)\n\
         except Exception: pass\n\
         time.sleep(4)\n\
         print('done')\n"
    );
    let (ok, out) = ns.run("python3", &["-c", &script]);
    assert!(ok && out.contains("done"), "{out}");
    let s = status(&ns, GUEST);
    assert_eq!(field(&s, "slow_readers"), 1, "{s}");
}

/// `image` in a guest of `mib` MiB serves 64 keep-alive clients (twice) and a newcomer past
/// 200 idle connections, reclaiming idle ones, without a panic.
fn serves_in(ns: &Netns, img: &fata_tests::Image, mib: u32) {
    let vm =
        xtask::netns::boot_ready_mem(ns, img, 80, &STATIC, Duration::from_secs(30), mib).unwrap();
    let out = netclient(ns, &["keepalive", GUEST, "80", "64", "20"]);
    assert!(out.contains("ok=1280 failed=0"), "{out}");
    let out = netclient(ns, &["idle-then-get", GUEST, "80", "200"]);
    assert!(
        out.contains("held=200") && out.contains("status=200"),
        "{out}"
    );
    let out = netclient(ns, &["keepalive", GUEST, "80", "64", "20"]);
    assert!(out.contains("ok=1280 failed=0"), "{out}");
    let s = status(ns, GUEST);
    assert!(field(&s, "reclaimed") > 0, "{s}");
    let console = vm.wait(Duration::from_millis(100)).unwrap();
    assert!(!console.has_line("panic"), "{}", console.console());
}

#[test]
fn a_three_mebibyte_guest_serves_64_keep_alive_clients_and_a_newcomer_past_200_idle_ones() {
    // The smallest memory the README promises for the plain-HTTP site (`--no-default-features`).
    let ns = Netns::new("small", 1500);
    let img = xtask::build::build_minimal(&xtask::build::BuildOpts {
        target: fata_tests::Target::Virtio,
        example: "http".into(),
        release: true,
    })
    .unwrap();
    serves_in(&ns, &img, 3);
}

#[test]
fn with_https_and_acme_built_in_a_four_mebibyte_guest_serves_the_same() {
    // The default build carries TLS and ACME (about 1 MiB more, all resident): the README
    // promises 4 MiB for it.
    let ns = Netns::new("small4", 1500);
    let img = fata_tests::image(fata_tests::Target::Virtio, "http");
    serves_in(&ns, &img, 4);
}

#[test]
fn heap_in_use_returns_after_a_thousand_connections() {
    let ns = Netns::new("heap", 1500);
    let _vm = boot_in(&ns, "http", 80, &STATIC);
    // Warm up: the first requests allocate what every later one reuses.
    netclient(&ns, &["keepalive", GUEST, "80", "4", "5"]);
    let before = field(&status(&ns, GUEST), "heap_in_use");
    for _ in 0..2 {
        let out = netclient(&ns, &["burst", GUEST, "80", "500"]);
        assert!(out.contains("failed=0"), "{out}");
    }
    let s = xtask::load::settled_status(|| status(&ns, GUEST));
    let after = field(&s, "heap_in_use");
    assert!(
        after <= before + 8 * 1024,
        "heap in use {before} before 1000 connections, {after} after: {s}"
    );
}
