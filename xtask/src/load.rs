//! Load scenarios run from outside a guest, as users and attackers meet it: a burst of
//! clients connecting at once, many keep-alive clients, idle connections held open, a client
//! that trickles its request. Used by the TAP tests and the benchmark (through the `netclient`
//! program, inside a network namespace). Every scenario reports what it saw; the callers
//! decide what passes.

use crate::client::HttpConn;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What a group of clients saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Requests answered with 200.
    pub ok: usize,
    /// Connects refused or reset, requests unanswered or answered with another status.
    pub failed: usize,
    /// The first failure, in words.
    pub first_error: Option<String>,
    /// Wall time of the whole scenario.
    pub elapsed: Duration,
}

impl Outcome {
    fn add(&mut self, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

fn get_ok(c: &mut HttpConn, path: &str, close: bool) -> Result<(), String> {
    let extra: &[&str] = if close { &["Connection: close"] } else { &[] };
    let r = c
        .request("GET", path, extra)
        .map_err(|e| format!("GET {path}: {e}"))?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("GET {path}: status {}", r.status))
    }
}

/// `clients` threads that start together; each runs `f` and reports its result.
fn together(
    clients: usize,
    f: impl Fn(usize) -> Result<(), String> + Send + Sync + 'static,
) -> Outcome {
    let start = Instant::now();
    let barrier = Arc::new(Barrier::new(clients));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    barrier.wait();
                    f(i)
                })
                .expect("spawning a client thread")
        })
        .collect();
    let mut out = Outcome::default();
    for h in handles {
        out.add(
            h.join()
                .unwrap_or_else(|_| Err("client thread panicked".into())),
        );
    }
    out.elapsed = start.elapsed();
    out
}

/// `clients` clients connect at the same instant and each GETs `path` once
/// (`Connection: close`). A client whose SYN goes unanswered retries as the kernel does.
pub fn burst(addr: SocketAddr, clients: usize, path: &str) -> Outcome {
    let path = path.to_string();
    together(clients, move |_| {
        let mut c = HttpConn::connect(addr).map_err(|e| format!("connect: {e}"))?;
        get_ok(&mut c, &path, true)
    })
}

/// `clients` keep-alive clients at once, each sending `requests` requests one after another
/// on its one connection.
pub fn keep_alive(addr: SocketAddr, clients: usize, requests: usize, path: &str) -> Outcome {
    let path = path.to_string();
    let mut out = together(clients, move |_| {
        let mut c = HttpConn::connect(addr).map_err(|e| format!("connect: {e}"))?;
        for _ in 0..requests {
            get_ok(&mut c, &path, false)?;
        }
        Ok(())
    });
    // Count requests, not clients.
    out.ok *= requests;
    out
}

/// Opens `count` connections one after another and sends nothing on them.
pub fn hold_idle(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        .collect()
}

/// How many of `held` the server has closed (end of stream or reset).
pub fn closed_by_server(held: &mut [TcpStream]) -> usize {
    held.iter_mut()
        .map(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 1];
            !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .filter(|closed| *closed)
        .count()
}

/// A client that sends a request head one byte every `every`, until the server answers or
/// closes. Returns how long that took and the status the server answered with, if any.
pub fn trickle(addr: SocketAddr, every: Duration) -> Result<(Duration, Option<u16>), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(every)).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let head = b"GET /index.html HTTP/1.1\r\nHost: fata\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut got = Vec::new();
    for byte in head.iter().cycle().take(10_000) {
        if s.write_all(&[*byte]).is_err() {
            break;
        }
        let mut b = [0u8; 512];
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&b[..n]);
                // Read the rest until the server closes.
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                }
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let status = String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok());
    Ok((start.elapsed(), status))
}
