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

/// How many of `held` the server has closed: with a FIN (end of stream), and with a reset.
pub fn closed_by_server(held: &mut [TcpStream]) -> (usize, usize) {
    let (mut eof, mut reset) = (0, 0);
    for s in held.iter_mut() {
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => eof += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(_) | Err(_) => reset += 1,
        }
    }
    (eof, reset)
}

/// A whole-number field of the http example's `/status` document, found in `text` on the
/// line that holds the JSON object (as `netclient status` prints it).
pub fn status_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.trim_start().starts_with('{'))?;
    crate::json::parse(line.trim()).ok()?.get(name)?.as_u64()
}

/// Asks for `/status` (through `status`) until the guest has settled after a load: only the
/// listener and the asking connection left, and the heap in use the same three times in a
/// row, 200 ms apart (20 s at most; closing connections may wait seconds for their last
/// acknowledgement). Returns the last document.
pub fn settled_status(mut status: impl FnMut() -> String) -> String {
    let mut s = status();
    let (mut steady, mut last) = (0, None);
    for _ in 0..100 {
        let heap = status_field(&s, "heap_in_use");
        let quiet = status_field(&s, "tcp_sockets").is_some_and(|n| n <= 2);
        steady = if quiet && heap.is_some() && heap == last {
            steady + 1
        } else {
            0
        };
        if steady == 3 {
            break;
        }
        last = heap;
        std::thread::sleep(Duration::from_millis(200));
        s = status();
    }
    s
}

/// A client that sends a request head one byte every `every`, until the server answers or
/// closes, or a minute has passed. Returns how long that took and the status the server
/// answered with, if any.
pub fn trickle(addr: SocketAddr, every: Duration) -> Result<(Duration, Option<u16>), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(every)).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let head = b"GET /index.html HTTP/1.1\r\nHost: fata\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut got = Vec::new();
    for byte in head.iter().cycle() {
        if start.elapsed() > Duration::from_secs(60) || s.write_all(&[*byte]).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_from_the_json_line() {
        let text =
            "held=200\n{\"requests\":7,\"heap_in_use\":809014,\"address\":\"10.0.0.2/24\"}\nok\n";
        assert_eq!(status_field(text, "heap_in_use"), Some(809_014));
        assert_eq!(status_field(text, "requests"), Some(7));
        assert_eq!(status_field(text, "address"), None);
        assert_eq!(status_field(text, "missing"), None);
        assert_eq!(status_field("no json here", "requests"), None);
        assert_eq!(status_field("{\"requests\":", "requests"), None);
    }

    #[test]
    fn settled_status_waits_for_a_steady_heap_and_the_last_sockets() {
        let mut docs = [
            "{\"tcp_sockets\":9,\"heap_in_use\":900}",
            "{\"tcp_sockets\":2,\"heap_in_use\":820}",
            "{\"tcp_sockets\":2,\"heap_in_use\":800}",
            "{\"tcp_sockets\":2,\"heap_in_use\":800}",
            "{\"tcp_sockets\":2,\"heap_in_use\":800}",
            "{\"tcp_sockets\":2,\"heap_in_use\":800}",
        ]
        .into_iter();
        let mut asked = 0;
        let s = settled_status(|| {
            asked += 1;
            docs.next().unwrap_or("{}").to_string()
        });
        assert_eq!(status_field(&s, "heap_in_use"), Some(800));
        assert_eq!(asked, 6);
    }
}
