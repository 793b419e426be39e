//! Networking on the `unix` platform, in both modes: the host's sockets (`net=socket`,
//! rootless, the default) and fata's own stack on a TAP device (`net=tap:NAME`, in a network
//! namespace the test creates). Same applications, same checks as on a hypervisor.
#![forbid(unsafe_code)]

use fata_tests::client::{check_echo, check_http};
use fata_tests::{
    BootOpts, Exit, Netns, Target, expect, free_port, image, netclient, run, site_dir,
};
use std::net::SocketAddr;
use std::time::Duration;

fn boot_socket(example: &str, port: u16, extra: &[&str]) -> (xtask::runner::Running, SocketAddr) {
    let img = image(Target::Unix, example);
    let mut args = vec![format!("port={port}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let vm = xtask::runner::boot(
        &img,
        &BootOpts {
            args,
            ..Default::default()
        },
    )
    .unwrap();
    vm.wait_for_line(&format!("fata: ready tcp/{port}"), Duration::from_secs(30))
        .unwrap();
    (vm, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn socket_mode_is_the_default_and_serves_the_site() {
    let port = free_port();
    let (vm, addr) = boot_socket("http", port, &[]);
    vm.wait_for_line("net: using the host's sockets", Duration::from_secs(1))
        .unwrap();
    check_http(addr, &site_dir(), 200, 50, true).unwrap();
}

#[test]
fn socket_mode_echoes_tcp_and_udp() {
    let port = free_port();
    let (_vm, addr) = boot_socket("echo", port, &["net=socket"]);
    check_echo(addr, 1 << 20).unwrap();
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..20u8 {
        let msg = vec![i; 100 + usize::from(i)];
        u.send_to(&msg, addr).unwrap();
        let mut b = [0u8; 512];
        let (n, _) = u.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], &msg[..]);
    }
}

#[test]
fn socket_mode_listens_on_both_families() {
    let port = free_port();
    let (_vm, addr) = boot_socket("echo", port, &["net=socket"]);
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    check_echo(v6, 100_000).unwrap();
    check_echo(addr, 100_000).unwrap();
    for (local, to) in [("[::1]:0", v6), ("127.0.0.1:0", addr)] {
        let u = std::net::UdpSocket::bind(local).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"both families", to).unwrap();
        let mut b = [0u8; 64];
        let (n, from) = u.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], from), (&b"both families"[..], to));
    }
}

#[test]
fn a_port_already_in_use_is_reported_and_exits_non_zero() {
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = run(
        Target::Unix,
        "http",
        &[&format!("port={port}"), "net=socket"],
    );
    expect(
        &out,
        Exit::Code(1),
        &[
            &format!("listen: port {port} is already in use"),
            "fata: exit 1",
        ],
    );
}

#[test]
fn a_missing_tap_device_says_how_to_create_it() {
    let out = run(Target::Unix, "echo", &["net=tap:fatanosuch0"]);
    expect(
        &out,
        Exit::Code(1),
        &[
            "TAP device `fatanosuch0` does not exist",
            "sudo ip tuntap add dev fatanosuch0 mode tap user $USER",
            "net=socket",
        ],
    );
}

fn boot_tap(ns: &Netns, example: &str, port: u16, args: &[&str]) -> xtask::runner::Running {
    let img = image(Target::Unix, example);
    let mut all = vec!["net=tap:tap0"];
    all.extend_from_slice(args);
    xtask::netns::boot_ready(ns, &img, port, &all, Duration::from_secs(30)).unwrap()
}

#[test]
fn direct_mode_on_a_tap_device_serves_the_site_with_static_addressing() {
    let ns = Netns::new("uhttp", 1500);
    let vm = boot_tap(&ns, "http", 80, &["ipv4=10.77.0.2/24", "gateway=10.77.0.1"]);
    vm.wait_for_line("net: static address 10.77.0.2/24", Duration::from_secs(1))
        .unwrap();
    let site = site_dir();
    netclient(
        &ns,
        &[
            "http",
            "10.77.0.2",
            "80",
            site.to_str().unwrap(),
            "200",
            "50",
        ],
    );
}

#[test]
fn direct_mode_echoes_tcp_and_udp() {
    let ns = Netns::new("uecho", 1500);
    let _vm = boot_tap(&ns, "echo", 7, &["ipv4=10.77.0.2/24"]);
    netclient(&ns, &["echo", "10.77.0.2", "7", &(1 << 20).to_string()]);
    netclient(&ns, &["udp", "10.77.0.2", "7", "100"]);
}

#[test]
fn direct_mode_gets_its_address_by_dhcp() {
    let ns = Netns::new("udhcp", 1500);
    let script = xtask::root().join("tests/scripts/dhcp.py");
    let mut server = ns.spawn(
        "python3",
        &[script.to_str().unwrap(), "tap0", "10.77.0.1", "10.77.0.50"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let vm = boot_tap(&ns, "echo", 7, &["dhcp=true"]);
    let lease = vm.wait_for_line(
        "net: DHCP lease 10.77.0.50/24 from 10.77.0.1",
        Duration::from_secs(5),
    );
    let ok = lease.is_ok();
    if ok {
        netclient(&ns, &["echo", "10.77.0.50", "7", "10000"]);
    }
    let _ = server.kill();
    let _ = server.wait();
    lease.unwrap();
}
