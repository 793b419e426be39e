//! Host-side network clients for the tests and benchmarks: a minimal HTTP/1.1 client
//! (keep-alive aware), an echo check, and bulk transfers. Also used by the `netclient` binary
//! (in `tests/`), which TAP tests and benchmarks run inside a network namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name lower-cased, value).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 connection; requests are sent one after another on it.
pub struct HttpConn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(HttpConn { s, buf: Vec::new() })
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    /// Sends `method path` with extra header lines and reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[&str],
    ) -> std::io::Result<HttpResponse> {
        self.request_with_body(method, path, extra, None)
    }

    /// Sends `method path` with extra header lines and, if given, a body (with its
    /// `Content-Length`), and reads the response.
    pub fn request_with_body(
        &mut self,
        method: &str,
        path: &str,
        extra: &[&str],
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpResponse> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: fata\r\n");
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.s.write_all(&bytes)?;
        self.read_response(method == "HEAD")
    }

    /// Reads one response (`head_only`: the response to a HEAD has no body).
    pub fn read_response(&mut self, head_only: bool) -> std::io::Result<HttpResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.buf.drain(..head_end);
        let len: usize = if head_only || status == 304 {
            0
        } else {
            headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        while self.buf.len() < len {
            self.fill()?;
        }
        let body = self.buf.drain(..len).collect();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut b = [0u8; 16384];
        let n = self.s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(())
    }

    /// Whether the server closed the connection (reads EOF within a second).
    pub fn closed_by_peer(&mut self) -> bool {
        let _ = self.s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

/// One GET on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    HttpConn::connect(addr)?.request("GET", path, &[])
}

/// Every file of the site directory with its URL path.
pub fn site_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((format!("/{rel}"), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v
}

/// The checks every HTTP deployment must pass, in order; `Err` names the first failure.
/// Files must come back byte-exact with the right type and an ETag; 304 on If-None-Match;
/// 404; HEAD; `requests` sequential keep-alive requests on one connection; `concurrent`
/// connections open and answered at once (`burst`: also connected at once).
pub fn check_http(
    addr: SocketAddr,
    site: &Path,
    requests: usize,
    concurrent: usize,
    burst: bool,
) -> Result<(), String> {
    let files = site_files(site);
    if files.is_empty() {
        return Err(format!("no files under {}", site.display()));
    }
    let mut c = HttpConn::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    for (path, bytes) in &files {
        let r = c
            .request("GET", path, &[])
            .map_err(|e| format!("GET {path}: {e}"))?;
        if r.status != 200 || &r.body != bytes {
            return Err(format!(
                "GET {path}: status {} and {} bytes, expected 200 and {} bytes",
                r.status,
                r.body.len(),
                bytes.len()
            ));
        }
        let ct = r.header("content-type").unwrap_or("");
        let want = if path.ends_with(".html") {
            "text/html"
        } else if path.ends_with(".css") {
            "text/css"
        } else if path.ends_with(".json") {
            "application/json"
        } else if path.ends_with(".ico") {
            "image/x-icon"
        } else {
            ""
        };
        if !ct.starts_with(want) {
            return Err(format!("GET {path}: content-type {ct:?}, expected {want}"));
        }
        let etag = r
            .header("etag")
            .ok_or_else(|| format!("GET {path}: no ETag"))?
            .to_string();
        let r = c
            .request("GET", path, &[&format!("If-None-Match: {etag}")])
            .map_err(|e| format!("conditional GET {path}: {e}"))?;
        if r.status != 304 || !r.body.is_empty() {
            return Err(format!(
                "GET {path} with If-None-Match: status {}, expected 304",
                r.status
            ));
        }
        let r = c
            .request("HEAD", path, &[])
            .map_err(|e| format!("HEAD {path}: {e}"))?;
        if r.status != 200 || r.header("content-length") != Some(&bytes.len().to_string()) {
            return Err(format!(
                "HEAD {path}: status {} length {:?}",
                r.status,
                r.header("content-length")
            ));
        }
    }
    let r = c
        .request("GET", "/no/such/file", &[])
        .map_err(|e| format!("GET 404: {e}"))?;
    if r.status != 404 {
        return Err(format!(
            "GET /no/such/file: status {}, expected 404",
            r.status
        ));
    }
    let r = c
        .request("GET", "/", &[])
        .map_err(|e| format!("GET /: {e}"))?;
    let index = files
        .iter()
        .find(|(p, _)| p == "/index.html")
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    if r.status != 200 || r.body != index {
        return Err(format!("GET /: status {}, expected index.html", r.status));
    }
    for i in 0..requests {
        let (path, bytes) = &files[i % files.len()];
        let r = c
            .request("GET", path, &[])
            .map_err(|e| format!("keep-alive request {i}: {e}"))?;
        if r.status != 200 || &r.body != bytes {
            return Err(format!(
                "keep-alive request {i} ({path}): status {}",
                r.status
            ));
        }
    }
    // `concurrent` connections open at the same time, each answered. With `burst`, every
    // thread also connects at the same instant; without it the connects are made one after
    // another first (QEMU user networking listens with a backlog of 1, so a connect burst
    // is dropped by the host kernel before it reaches the guest), then all requests go out
    // at once.
    let index = std::sync::Arc::new(index);
    let mut conns = Vec::new();
    if !burst {
        for i in 0..concurrent {
            let mut c = HttpConn::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
            // One request proves the connection reached the guest (through QEMU user
            // networking, a connect can complete on the host long before).
            c.request("HEAD", "/index.html", &[])
                .map_err(|e| format!("first request on {i}: {e}"))?;
            conns.push(Some(c));
        }
    }
    let handles: Vec<_> = (0..concurrent)
        .map(|i| {
            let index = index.clone();
            let pre = conns.get_mut(i).and_then(Option::take);
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = match pre {
                    Some(c) => c,
                    None => HttpConn::connect(addr)
                        .map_err(|e| format!("concurrent {i}: connect: {e}"))?,
                };
                let r = c
                    .request("GET", "/index.html", &[])
                    .map_err(|e| format!("concurrent {i}: {e}"))?;
                if r.status == 200 && r.body == *index {
                    Ok(())
                } else {
                    Err(format!("concurrent {i}: status {}", r.status))
                }
            })
        })
        .collect();
    let mut failed = Vec::new();
    for h in handles {
        if let Err(e) = h.join().unwrap_or_else(|_| Err("thread panicked".into())) {
            failed.push(e);
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "{} of {concurrent} concurrent connections failed: {}",
            failed.len(),
            failed.join("; ")
        ));
    }
    Ok(())
}

/// Sends `len` pseudo-random bytes to an echo server while reading them back; checks they
/// are identical. Returns the time taken.
pub fn check_echo(addr: SocketAddr, len: usize) -> Result<Duration, String> {
    let t = std::time::Instant::now();
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    echo_on(s, len)?;
    Ok(t.elapsed())
}

/// Connects to an echo server and proves the connection reaches it with a one-byte round
/// trip (through QEMU user networking a connect can succeed on the host long before the guest
/// sees it).
pub fn echo_connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.write_all(b"!").map_err(|e| format!("write: {e}"))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)
        .map_err(|e| format!("first echo: {e}"))?;
    Ok(s)
}

/// Like [`check_echo`] on an open connection.
pub fn echo_on(s: TcpStream, len: usize) -> Result<Duration, String> {
    let t = std::time::Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let data2 = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&data2));
    let mut got = Vec::with_capacity(len);
    let mut r = s;
    let mut b = vec![0u8; 65536];
    while got.len() < len {
        match r.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", got.len())),
        }
    }
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    if got != data {
        let at = got
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len());
        return Err(format!(
            "echo differs at byte {at} (got {} of {len} bytes)",
            got.len()
        ));
    }
    Ok(t.elapsed())
}

/// Sends `len` bytes to a sink (the echo example with `mode=sink`, which replies with the count
/// it received, checked here; or any sink that just closes), closes the sending side and waits
/// for the sink to close; returns the time from connect to the sink's close.
pub fn bulk_send(addr: SocketAddr, len: usize) -> Result<Duration, String> {
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let chunk = vec![0x5au8; 65536];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n])
            .map_err(|e| format!("write: {e}"))?;
        left -= n;
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    // fata's sink reports its count; a plain sink (`nc > /dev/null`) just closes.
    if !reply.trim().is_empty() && reply.trim() != len.to_string() {
        return Err(format!("the sink counted {reply:?} bytes, {len} were sent"));
    }
    Ok(t.elapsed())
}

/// Reads everything a source (the echo example with `mode=source`) sends; returns the byte
/// count and the time from connect to end of stream.
pub fn bulk_recv(addr: SocketAddr) -> Result<(usize, Duration), String> {
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut b = vec![0u8; 65536];
    let mut total = 0;
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => return Err(format!("read after {total} bytes: {e}")),
        }
    }
    Ok((total, t.elapsed()))
}
