//! `netclient http IP PORT SITE_DIR REQUESTS CONCURRENT` (concurrent connects in a burst) / `netclient echo IP PORT BYTES`:
//! the host-side checks of `fata_tests::client`, as a program the TAP tests run inside a
//! network namespace. Exit 0 and `ok` when every check passes.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let addr =
        |ip: &str, port: &str| -> SocketAddr { format!("{ip}:{port}").parse().expect("IP PORT") };
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
        ["status", ip, port] => fata_tests::client::get(addr(ip, port), "/status")
            .map(|r| println!("{}", String::from_utf8_lossy(&r.body)))
            .map_err(|e| e.to_string()),
        _ => Err("usage: netclient http IP PORT SITE REQUESTS CONCURRENT | echo IP PORT BYTES | send IP PORT BYTES | recv IP PORT | udp IP PORT COUNT | wait IP PORT SECONDS | status IP PORT".into()),
    };
    match r {
        Ok(()) => println!("ok"),
        Err(e) => {
            println!("FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// Sends `count` datagrams of different sizes to a UDP echo and checks each reply.
fn udp_echo(addr: SocketAddr, count: usize) -> Result<(), String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
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
