//! A client of `examples/kv` for the storage tests: puts, gets, listings, and a stream of puts
//! that records which ones were acknowledged (for the kill and power-cut tests).

use crate::client::{HttpConn, HttpResponse};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The value the tests store under `key`: derived from the key, 20 to ~3,000 bytes, so that
/// records of different sizes cross sector boundaries and a read-back proves the exact bytes.
pub fn value_for(key: &str) -> Vec<u8> {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let len = 20 + (h % 3000) as usize;
    format!("{key}:").bytes().cycle().take(len).collect()
}

/// One keep-alive connection to the service.
pub struct Kv(HttpConn);

impl Kv {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Kv> {
        HttpConn::connect(addr).map(Kv)
    }

    /// `PUT /kv/<key>`: the status.
    pub fn put(&mut self, key: &str, value: &[u8]) -> std::io::Result<u16> {
        let r = self
            .0
            .request_with_body("PUT", &format!("/kv/{key}"), &[], Some(value))?;
        Ok(r.status)
    }

    /// `GET /kv/<key>`.
    pub fn get(&mut self, key: &str) -> std::io::Result<HttpResponse> {
        self.0.request("GET", &format!("/kv/{key}"), &[])
    }

    /// Any request with an optional body.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<HttpResponse> {
        self.0.request_with_body(method, path, &[], body)
    }

    /// Every key with `prefix` (following the pages), with its value size.
    pub fn list_all(&mut self, prefix: &str) -> std::io::Result<Vec<(String, usize)>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/kv?prefix={prefix}&limit=1000");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let r = self.0.request("GET", &path, &[])?;
            let body = String::from_utf8_lossy(&r.body).into_owned();
            if r.status != 200 {
                return Err(std::io::Error::other(format!(
                    "{path}: {} {body}",
                    r.status
                )));
            }
            // {"keys":[{"key":"k","size":3},...],"next":"k"|null}; the tests' keys need no
            // escaping.
            for item in body.split("{\"key\":\"").skip(1) {
                let (key, rest) = item.split_once('"').unwrap_or_default();
                let size = rest
                    .split_once("\"size\":")
                    .and_then(|(_, s)| s.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(usize::MAX);
                out.push((key.to_string(), size));
            }
            match body.split_once("\"next\":\"") {
                Some((_, n)) => after = Some(n.split('"').next().unwrap_or_default().to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// Puts `prefix-0`, `prefix-1`, ... (values from [`value_for`]) one after another on one
/// connection until a request fails, on a thread. `acked` holds the keys whose PUT was answered
/// 201/204 (durable). The stream ends at a broken connection or a 500/503 (the disk failed
/// under the server); any other answer is an error.
pub struct PutStream {
    /// Acknowledged keys, in order.
    pub acked: Arc<Mutex<Vec<String>>>,
    handle: std::thread::JoinHandle<Result<(), String>>,
}

impl PutStream {
    /// Starts the stream.
    pub fn start(addr: SocketAddr, prefix: &str) -> PutStream {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let a = acked.clone();
        let prefix = prefix.to_string();
        let handle = std::thread::spawn(move || {
            let mut kv = Kv::connect(addr).map_err(|e| format!("connect: {e}"))?;
            for i in 0.. {
                let key = format!("{prefix}-{i}");
                match kv.put(&key, &value_for(&key)) {
                    Ok(201 | 204) => a.lock().unwrap().push(key),
                    // The disk died under the server (a power cut): the write was refused,
                    // not acknowledged, and the stream ends like a dropped connection. 507:
                    // the store is full (a long run of fast rounds fills a 64 MiB disk with
                    // unique keys): refused too, not acknowledged.
                    Ok(500 | 503 | 507) => return Ok(()),
                    Ok(s) => return Err(format!("PUT {key}: status {s}")),
                    Err(_) => return Ok(()),
                }
            }
            Ok(())
        });
        PutStream { acked, handle }
    }

    /// Waits for the stream to end (the server died); the acknowledged keys, or the error if
    /// the server answered something other than success.
    pub fn finish(self) -> Result<Vec<String>, String> {
        self.handle
            .join()
            .map_err(|_| "put thread panicked".to_string())??;
        Ok(std::mem::take(&mut *self.acked.lock().unwrap()))
    }

    /// How many were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// Checks that every key of `keys` reads back exactly; the first failure.
pub fn check_keys(addr: SocketAddr, keys: &[String]) -> Result<(), String> {
    let mut kv = Kv::connect(addr).map_err(|e| format!("connect: {e}"))?;
    for k in keys {
        let r = kv.get(k).map_err(|e| format!("GET {k}: {e}"))?;
        if r.status != 200 {
            return Err(format!("acknowledged key {k} reads back as {}", r.status));
        }
        if r.body != value_for(k) {
            return Err(format!("acknowledged key {k} reads back with other bytes"));
        }
    }
    Ok(())
}
