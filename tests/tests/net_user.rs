//! Networking over QEMU user networking (no root): DHCP, the HTTP site, echo.
#![forbid(unsafe_code)]

use fata_tests::client::{HttpConn, check_echo, check_http, echo_connect, echo_on, get};
use fata_tests::{Machine, boot_user_net, site_dir};

#[test]
fn dhcp_lease_is_obtained_and_logged() {
    let vm = boot_user_net("echo", Machine::Microvm, 7, &[], &[]);
    vm.vm
        .wait_for_line(
            "net: DHCP lease 10.0.2.15/24 from 10.0.2.2",
            std::time::Duration::from_secs(5),
        )
        .unwrap();
}

#[test]
fn http_serves_every_file_byte_exact_with_404_head_304_keepalive_and_concurrency() {
    let vm = boot_user_net("http", Machine::Microvm, 80, &[], &[]);
    check_http(vm.addr, &site_dir(), 200, 50, false).unwrap();
}

#[test]
fn http_status_endpoint_reports_counters_as_json() {
    let vm = boot_user_net("http", Machine::Microvm, 80, &[], &[]);
    get(vm.addr, "/index.html").unwrap();
    let r = get(vm.addr, "/status").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = String::from_utf8(r.body).unwrap();
    for key in [
        "\"requests\":",
        "\"bytes_sent\":",
        "\"dropped_frames\":0",
        "\"heap_in_use\":",
        "\"address\":\"10.0.2.15/24\"",
    ] {
        assert!(body.contains(key), "{key} missing in {body}");
    }
    assert!(
        !body.contains("\"heap_in_use\":null"),
        "the virtio image has a heap: {body}"
    );
}

#[test]
fn malformed_and_oversized_requests_get_400_and_431_and_the_server_goes_on() {
    let vm = boot_user_net("http", Machine::Microvm, 80, &[], &[]);
    let mut c = HttpConn::connect(vm.addr).unwrap();
    c.send_raw(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 400);
    assert!(c.closed_by_peer());
    let mut c = HttpConn::connect(vm.addr).unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    c.send_raw(huge.as_bytes()).unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 431);
    let mut c = HttpConn::connect(vm.addr).unwrap();
    c.send_raw(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 413);
    assert_eq!(get(vm.addr, "/hello.txt").unwrap().status, 200);
}

#[test]
fn echo_returns_one_mebibyte_intact_in_both_directions() {
    let vm = boot_user_net("echo", Machine::Microvm, 7, &[], &[]);
    check_echo(vm.addr, 1 << 20).unwrap();
}

#[test]
fn echo_serves_fifty_clients_at_once() {
    let vm = boot_user_net("echo", Machine::Microvm, 7, &[], &[]);
    // Connected one after another (QEMU user networking's host listener has a backlog of 1,
    // see client::check_http; the TAP tests connect in a true burst), then all fifty transfer
    // at once.
    let conns: Vec<_> = (0..50)
        .map(|i| echo_connect(vm.addr).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    let hs: Vec<_> = conns
        .into_iter()
        .map(|c| std::thread::spawn(move || echo_on(c, 20_000)))
        .collect();
    for h in hs {
        h.join().unwrap().unwrap();
    }
}

/// A TCP echo server on the host at `addr` for one connection (QEMU's user networking takes
/// the guest's connections to 10.0.2.2 and fec0::2 to the host's loopback addresses).
fn host_echo_once(addr: &str) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut b = [0u8; 64];
            if let Ok(n) = c.read(&mut b) {
                let _ = c.write_all(&b[..n]);
            }
        }
    });
    (port, t)
}

#[test]
fn slaac_from_user_networking_and_round_trips_to_the_host_over_both_families() {
    let (p6, t6) = host_echo_once("[::1]:0");
    let (p4, t4) = host_echo_once("127.0.0.1:0");
    let connect6 = format!("connect=[fec0::2]:{p6}");
    let vm = boot_user_net("echo", Machine::Microvm, 7, &[&connect6], &[]);
    vm.vm
        .wait_for_line(
            "net: IPv6 address fec0::5054:ff:fe12:3456/64",
            std::time::Duration::from_secs(5),
        )
        .unwrap();
    vm.vm
        .wait_for_line(
            &format!("echo: round trip to [fec0::2]:{p6} ok"),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    let connect4 = format!("connect=10.0.2.2:{p4}");
    let vm4 = boot_user_net("echo", Machine::Microvm, 7, &[&connect4], &[]);
    vm4.vm
        .wait_for_line(
            &format!("echo: round trip to 10.0.2.2:{p4} ok"),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    t6.join().unwrap();
    t4.join().unwrap();
}
