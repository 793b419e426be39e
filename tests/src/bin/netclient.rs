//! `netclient http IP PORT SITE_DIR REQUESTS CONCURRENT` (concurrent connects in a burst) / `netclient echo IP PORT BYTES`
//! / `netclient burst IP PORT CLIENTS` / ...: the host-side checks of `fata_tests::client`
//! and the load scenarios of `xtask::load`, as a program the TAP tests and benchmarks run
//! inside a network namespace. IP may be IPv4 or IPv6. Exit 0 and `ok` when every check
//! passes.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let addr = |ip: &str, port: &str| -> SocketAddr {
        SocketAddr::new(ip.parse().expect("IP"), port.parse().expect("PORT"))
    };
    let r = match a.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["http", ip, port, site, n, c] => fata_tests::client::check_http(
            addr(ip, port),
            Path::new(site),
            n.parse().expect("REQUESTS"),
            c.parse().expect("CONCURRENT"),
            true,
        ),
        ["echo", ip, port, len] => fata_tests::client::check_echo(addr(ip, port), len.parse().expect("BYTES")).map(|_| ()),
        ["send", ip, port, len] => {
            let len: usize = len.parse().expect("BYTES");
            fata_tests::client::bulk_send(addr(ip, port), len)
                .map(|d| println!("sent {len} bytes in {:.3} s: {:.1} MB/s", d.as_secs_f64(), len as f64 / d.as_secs_f64() / 1e6))
        }
        ["recv", ip, port] => fata_tests::client::bulk_recv(addr(ip, port))
            .map(|(n, d)| println!("received {n} bytes in {:.3} s: {:.1} MB/s", d.as_secs_f64(), n as f64 / d.as_secs_f64() / 1e6)),
        ["wait", ip, port, secs] => {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(secs.parse().expect("SECONDS"));
            loop {
                match fata_tests::client::get(addr(ip, port), "/") {
                    Ok(_) => break Ok(()),
                    Err(e) if std::time::Instant::now() >= end => break Err(format!("no HTTP answer: {e}")),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
        ["udp", ip, port, count] => udp_echo(addr(ip, port), count.parse().expect("COUNT")),
        ["burst", ip, port, clients] => {
            let o = xtask::load::burst(addr(ip, port), clients.parse().expect("CLIENTS"), "/612.html");
            report("burst", &o)
        }
        ["keepalive", ip, port, clients, requests] => {
            let o = xtask::load::keep_alive(
                addr(ip, port),
                clients.parse().expect("CLIENTS"),
                requests.parse().expect("REQUESTS"),
                "/612.html",
            );
            report("keepalive", &o)
        }
        ["hold-status", ip, port, idle] => {
            let held = xtask::load::hold_idle(addr(ip, port), idle.parse().expect("IDLE"));
            std::thread::sleep(std::time::Duration::from_millis(300));
            let r = fata_tests::client::get(addr(ip, port), "/status")
                .map(|r| println!("held={}\n{}", held.len(), String::from_utf8_lossy(&r.body)))
                .map_err(|e| e.to_string());
            drop(held);
            r
        }
        ["idle-then-get", ip, port, idle] => idle_then_get(addr(ip, port), idle.parse().expect("IDLE")),
        ["trickle", ip, port, ms] => xtask::load::trickle(addr(ip, port), std::time::Duration::from_millis(ms.parse().expect("MS")))
            .map(|(d, status)| println!("trickle: cut off after {:.2} s, status {status:?}", d.as_secs_f64())),
        ["status", ip, port] => fata_tests::client::get(addr(ip, port), "/status")
            .map(|r| println!("{}", String::from_utf8_lossy(&r.body)))
            .map_err(|e| e.to_string()),
        _ => Err("usage: netclient http IP PORT SITE REQUESTS CONCURRENT | echo IP PORT BYTES | send IP PORT BYTES | recv IP PORT | udp IP PORT COUNT | wait IP PORT SECONDS | status IP PORT | burst IP PORT CLIENTS | keepalive IP PORT CLIENTS REQUESTS | idle-then-get IP PORT IDLE | hold-status IP PORT IDLE | trickle IP PORT MS".into()),
    };
    match r {
        Ok(()) => println!("ok"),
        Err(e) => {
            println!("FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// Prints what a scenario saw; fails unless every request was answered with 200.
fn report(what: &str, o: &xtask::load::Outcome) -> Result<(), String> {
    println!(
        "{what}: ok={} failed={} in {:.2} s{}",
        o.ok,
        o.failed,
        o.elapsed.as_secs_f64(),
        o.first_error
            .as_ref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    if o.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} of the clients failed", o.failed))
    }
}

/// Holds `idle` silent connections, then a normal client asks for a page: it must be
/// answered. Reports how many of the idle connections the server closed to make room.
fn idle_then_get(addr: SocketAddr, idle: usize) -> Result<(), String> {
    let mut held = xtask::load::hold_idle(addr, idle);
    let start = std::time::Instant::now();
    let r = fata_tests::client::get(addr, "/612.html")
        .map_err(|e| format!("the normal client: {e}"))?;
    let took = start.elapsed();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (closed, reset) = xtask::load::closed_by_server(&mut held);
    println!(
        "idle-then-get: held={} closed_by_server={closed} reset_by_server={reset} status={} in {:.3} s",
        held.len(),
        r.status,
        took.as_secs_f64()
    );
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("status {}", r.status))
    }
}

/// Sends `count` datagrams of different sizes to a UDP echo and checks each reply.
fn udp_echo(addr: SocketAddr, count: usize) -> Result<(), String> {
    let any: SocketAddr = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .unwrap();
    let s = std::net::UdpSocket::bind(any).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let msg: Vec<u8> = (0..(i * 37) % 1400 + 1).map(|j| (i + j) as u8).collect();
        s.send_to(&msg, addr)
            .map_err(|e| format!("send {i}: {e}"))?;
        let (n, from) = s
            .recv_from(&mut buf)
            .map_err(|e| format!("reply {i}: {e}"))?;
        if from != addr || buf[..n] != msg[..] {
            return Err(format!("datagram {i}: wrong reply ({n} bytes from {from})"));
        }
    }
    Ok(())
}
