//! IPv6 over a TAP device in a network namespace (root, iproute2): the IPv4 checks again with
//! a static IPv6 address, an address from router advertisements (SLAAC), UDP, and names
//! resolved to AAAA records. The host side of `tap0` is fd77::1/64.
#![forbid(unsafe_code)]

use fata_tests::{Netns, boot_in, netclient, site_dir};
use std::time::Duration;

const GUEST6: &str = "fd77::2";
/// The guest's SLAAC address in fd77::/64: EUI-64 of its MAC 52:54:00:12:34:56.
const GUEST_SLAAC: &str = "fd77::5054:ff:fe12:3456";

#[test]
fn a_static_ipv6_address_serves_the_site_with_a_connect_burst() {
    let ns = Netns::new("v6site", 1500);
    let vm = boot_in(
        &ns,
        "http",
        80,
        &[
            "dhcp=false",
            "ipv6=fd77::2/64",
            "gateway6=fd77::1",
            "slaac=false",
        ],
    );
    vm.wait_for_line(
        "net: static IPv6 address fd77::2/64",
        Duration::from_secs(1),
    )
    .unwrap();
    let site = site_dir();
    netclient(
        &ns,
        &["http", GUEST6, "80", site.to_str().unwrap(), "200", "50"],
    );
    let out = netclient(&ns, &["burst", GUEST6, "80", "300"]);
    assert!(out.contains("failed=0"), "{out}");
}

#[test]
fn ipv6_echo_and_udp_over_a_static_address() {
    let ns = Netns::new("v6echo", 1500);
    let _vm = boot_in(&ns, "echo", 7, &["ipv4=10.77.0.2/24", "ipv6=fd77::2/64"]);
    netclient(&ns, &["echo", GUEST6, "7", &(1 << 20).to_string()]);
    netclient(&ns, &["udp", GUEST6, "7", "200"]);
    // The same listener answers on IPv4.
    netclient(&ns, &["echo", "10.77.0.2", "7", "10000"]);
}

#[test]
fn slaac_takes_an_address_from_router_advertisements_and_serves_on_it() {
    let ns = Netns::new("slaac", 1500);
    let ra = xtask::root().join("tests/scripts/ra.py");
    let mut router = ns.spawn("python3", &[ra.to_str().unwrap(), "tap0", "fd77::", "30"]);
    // IPv6 only: the readiness line waits for the SLAAC address.
    let vm = boot_in(&ns, "http", 80, &["dhcp=false"]);
    let r = vm.wait_for_line(
        &format!("net: IPv6 address {GUEST_SLAAC}/64"),
        Duration::from_secs(1),
    );
    let site = site_dir();
    let checked = std::panic::catch_unwind(|| {
        netclient(
            &ns,
            &[
                "http",
                GUEST_SLAAC,
                "80",
                site.to_str().unwrap(),
                "20",
                "10",
            ],
        )
    });
    let _ = router.kill();
    let _ = router.wait();
    r.unwrap();
    checked.unwrap();
}

#[test]
fn names_resolve_to_aaaa_records_through_an_ipv6_dns_server() {
    let ns = Netns::new("aaaa", 1500);
    fata_tests::lookup_through_test_dns(
        &ns,
        "fd77::1",
        &["fd77::42", "10.77.0.42"],
        &["ipv4=10.77.0.2/24", "ipv6=fd77::2/64", "dns=fd77::1"],
        "echo: fata.test resolves to [fd77::42, 10.77.0.42]",
    );
}
