//! A key-value service over HTTP on fata's store: every write is answered only once it is
//! durable on the disk.
//!
//! - `PUT /kv/<key>` with the value as body: 201 (new) or 204 (replaced);
//! - `GET /kv/<key>`: 200 with the value, 404; `HEAD` likewise without the body;
//! - `DELETE /kv/<key>`: 204, or 404 if there was no such key;
//! - `GET /kv?prefix=&after=&limit=`: the keys in order, as JSON
//!   `{"keys":[{"key":"a","size":3}],"next":"a"}` (`next` is the `after` of the next page, or
//!   null on the last one);
//! - `POST /kv` with a JSON array `[{"op":"put","key":"a","value":"1"},{"op":"delete","key":"b"}]`:
//!   applied atomically, 204;
//! - `GET /status`: the store's and the disk's figures as JSON;
//! - `GET /metrics`: the runtime's figures, the store's (`fata_kv_*`) among them, in the
//!   Prometheus text format; `GET /livez`, `GET /readyz`: health checks.
//!
//! Keys are percent-encoded in the URL and must be UTF-8 (1 to 1,024 bytes). Errors: 400
//! (malformed request, key or batch), 413 (value or batch over the limit), 403 (read-only disk),
//! 507 (store full), 503 (writes refused after a failed write), 500 (disk error, corrupt value).
//!
//! `cargo xtask run --example kv --disk /tmp/kv.img:64M -p 8080:80 -- format=true`
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use fata::kv::{Error, Store, Write};
use fata::net::TcpStream;
use fata::time::{Duration, Instant, timeout};
use fata_http::{
    Limit, Limits, Method, Request, RequestTimer, Response, error_response, parse_request,
    percent_decode, timeout_response,
};
use serde_json::Value;

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 80,
        /// Close a keep-alive connection after this long without a request.
        idle_timeout: Duration = Duration::from_secs(30),
        /// A request's head and body must arrive within this long of its first byte.
        request_timeout: Duration = Duration::from_secs(10),
    }
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// Largest request body: a value of the store's limit, or a batch in JSON.
const MAX_BODY: usize = 2 << 20;
/// Most keys one listing returns.
const MAX_LIST: usize = 1000;

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let store = fata::kv::open().await.map_err(|e| e.to_string())?;
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let listener = net
        .listen(rt.config().port)
        .map_err(|e| format!("listen: {e}"))?;
    fata::health::set_ready(true);
    let timer = RequestTimer::new(
        rt.config().idle_timeout.as_millis() as u64,
        rt.config().request_timeout.as_millis() as u64,
    );
    loop {
        let (conn, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        fata::spawn(serve_connection(conn, store.clone(), timer));
    }
}

/// An answer: status, content type and body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(status: u16, msg: &str) -> Answer {
        let mut body = Vec::from(msg.as_bytes());
        body.push(b'\n');
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
    fn json(body: String) -> Answer {
        Answer {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }
    fn empty(status: u16) -> Answer {
        Answer {
            status,
            content_type: "",
            body: Vec::new(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

fn store_error(e: &Error) -> Answer {
    let status = match e {
        Error::BadKey { .. } => 400,
        Error::ValueTooLarge { .. } | Error::BatchTooLarge { .. } => 413,
        Error::ReadOnly => 403,
        Error::Full { .. } => 507,
        Error::Poisoned | Error::Closed => 503,
        _ => 500,
    };
    if status >= 500 {
        ERRORS.fetch_add(1, Ordering::Relaxed);
        fata::log::warn!("kv: {e}");
    }
    Answer::text(status, &e.to_string())
}

/// The key of `/kv/<key>`, percent-decoded; it must be UTF-8.
fn key_of(path: &str) -> Result<Vec<u8>, Answer> {
    let raw = path.strip_prefix("/kv/").unwrap_or_default();
    match percent_decode(raw) {
        Some(k) if core::str::from_utf8(&k).is_ok() => Ok(k),
        _ => Err(Answer::text(400, "a key is percent-encoded UTF-8")),
    }
}

/// The value of `name` in a query string, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Result<Option<String>, Answer> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            let v = v.replace('+', " ");
            return percent_decode(&v)
                .and_then(|b| String::from_utf8(b).ok())
                .map(Some)
                .ok_or_else(|| Answer::text(400, "a query value is percent-encoded UTF-8"));
        }
    }
    Ok(None)
}

async fn handle(store: &Store, req: &Request<'_>, body: &[u8]) -> Answer {
    if matches!(req.method, Method::Get | Method::Head)
        && let Some(h) = fata::health::answer(req.path)
    {
        return Answer {
            status: h.status,
            content_type: fata::health::CONTENT_TYPE,
            body: Vec::from(h.body.as_bytes()),
        };
    }
    match (req.method, req.path) {
        (Method::Get | Method::Head, "/status") => Answer::json(status_json(store)),
        (Method::Get | Method::Head, "/metrics") => Answer {
            status: 200,
            content_type: fata::metrics::CONTENT_TYPE,
            body: fata::metrics::render().into_bytes(),
        },
        (Method::Get | Method::Head, "/kv") => list(store, req.query),
        (Method::Post, "/kv") => match parse_batch(body) {
            Ok(writes) => match store.batch(&writes).await {
                Ok(()) => {
                    WRITES.fetch_add(1, Ordering::Relaxed);
                    Answer::empty(204)
                }
                Err(e) => store_error(&e),
            },
            Err(why) => Answer::text(400, &why),
        },
        (m, p) if p.starts_with("/kv/") => {
            let key = match key_of(p) {
                Ok(k) => k,
                Err(a) => return a,
            };
            match m {
                Method::Get | Method::Head => match store.get(&key).await {
                    Ok(Some(v)) => Answer {
                        status: 200,
                        content_type: "application/octet-stream",
                        body: v,
                    },
                    Ok(None) => Answer::text(404, "no such key"),
                    Err(e) => store_error(&e),
                },
                Method::Put => {
                    let existed = store.contains(&key);
                    match store.put(&key, body).await {
                        Ok(()) => {
                            WRITES.fetch_add(1, Ordering::Relaxed);
                            Answer::empty(if existed { 204 } else { 201 })
                        }
                        Err(e) => store_error(&e),
                    }
                }
                Method::Delete => {
                    if !store.contains(&key) {
                        return Answer::text(404, "no such key");
                    }
                    match store.delete(&key).await {
                        Ok(()) => {
                            WRITES.fetch_add(1, Ordering::Relaxed);
                            Answer::empty(204)
                        }
                        Err(e) => store_error(&e),
                    }
                }
                _ => Answer::text(405, "use GET, HEAD, PUT or DELETE"),
            }
        }
        _ => Answer::text(404, "not found: the API is under /kv and /status"),
    }
}

fn list(store: &Store, query: &str) -> Answer {
    let params = (|| {
        let prefix = query_param(query, "prefix")?.unwrap_or_default();
        let after = query_param(query, "after")?;
        let limit = match query_param(query, "limit")? {
            None => 100,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIST).contains(&n) => n,
                _ => return Err(Answer::text(400, "limit is a number from 1 to 1000")),
            },
        };
        Ok((prefix, after, limit))
    })();
    let (prefix, after, limit) = match params {
        Ok(p) => p,
        Err(a) => return a,
    };
    let page = store.list(
        prefix.as_bytes(),
        after.as_deref().map(str::as_bytes),
        limit,
    );
    let keys: Vec<Value> = page
        .iter()
        .map(|e| {
            serde_json::json!({
                "key": String::from_utf8_lossy(&e.key),
                "size": e.value_len,
            })
        })
        .collect();
    let next = if page.len() == limit {
        page.last()
            .map(|e| Value::String(String::from_utf8_lossy(&e.key).into_owned()))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let mut s = serde_json::json!({ "keys": keys, "next": next }).to_string();
    s.push('\n');
    Answer::json(s)
}

/// `[{"op":"put","key":"a","value":"1"},{"op":"delete","key":"b"}]`.
fn parse_batch(body: &[u8]) -> Result<Vec<Write>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let ops = v
        .as_array()
        .ok_or("a batch is a JSON array of operations")?;
    if ops.is_empty() {
        return Err("a batch has at least one operation".into());
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let key = op
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {i}: \"key\" must be a string"))?;
            match op.get("op").and_then(Value::as_str) {
                Some("put") => {
                    let value = op
                        .get("value")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("operation {i}: \"value\" must be a string"))?;
                    Ok(Write::Put(
                        key.as_bytes().to_vec(),
                        value.as_bytes().to_vec(),
                    ))
                }
                Some("delete") => Ok(Write::Delete(key.as_bytes().to_vec())),
                _ => Err(format!(
                    "operation {i}: \"op\" must be \"put\" or \"delete\""
                )),
            }
        })
        .collect()
}

fn status_json(store: &Store) -> String {
    let s = store.stats();
    let d = store.disk().stats();
    let heap = fata::heap::stats();
    let mut out = serde_json::json!({
        "requests": REQUESTS.load(Ordering::Relaxed),
        "writes": WRITES.load(Ordering::Relaxed),
        "errors": ERRORS.load(Ordering::Relaxed),
        "uptime_ms": Instant::now().as_nanos() / 1_000_000,
        "keys": s.keys,
        "live_bytes": s.live_bytes,
        "log_bytes": s.log_bytes,
        "region_bytes": s.region_bytes,
        "generation": s.generation,
        "recovered_records": s.recovered_records,
        "commits": s.commits,
        "batches": s.batches,
        "flushes": s.flushes,
        "compactions": s.compactions,
        "store_bytes_written": s.bytes_written,
        "corrupt_reads": s.corrupt_reads,
        "max_value": s.max_value,
        "poisoned": s.poisoned,
        "read_only": s.read_only,
        "cache": s.cache.map(|c| c.name()),
        "disk_reads": d.reads,
        "disk_writes": d.writes,
        "disk_flushes": d.flushes,
        "disk_refused": d.refused,
        "disk_failed": d.failed,
        "disk_bad_completions": d.bad_completions,
        "heap_in_use": heap.map(|h| h.in_use),
    })
    .to_string();
    out.push('\n');
    out
}

fn now_ms() -> u64 {
    Instant::now().as_nanos() / 1_000_000
}

async fn serve_connection(mut conn: TcpStream, store: Store, mut timer: RequestTimer) {
    let limits = Limits {
        max_body: MAX_BODY,
        ..Limits::DEFAULT
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Serve every complete request (head and body) already buffered.
        loop {
            out.clear();
            let (consumed, keep_alive) = match parse_request(&buf, &limits) {
                Ok(None) => break,
                Ok(Some((req, head))) => {
                    let end = head + req.content_length;
                    if buf.len() < end {
                        break;
                    }
                    REQUESTS.fetch_add(1, Ordering::Relaxed);
                    let a = handle(&store, &req, &buf[head..end]).await;
                    Response {
                        status: a.status,
                        reason: reason(a.status),
                        content_type: a.content_type,
                        etag: None,
                        body: &a.body,
                        head_only: req.method == Method::Head,
                        keep_alive: req.keep_alive,
                        allow: None,
                    }
                    .write_to(&mut out);
                    (end, req.keep_alive)
                }
                Err(e) => {
                    error_response(e).write_to(&mut out);
                    (buf.len(), false)
                }
            };
            if conn.write_all(&out).await.is_err() {
                return;
            }
            buf.drain(..consumed);
            timer.end();
            if !keep_alive {
                conn.shutdown();
                let _ = timeout(Duration::from_secs(5), conn.flush()).await;
                return;
            }
        }
        let in_progress = !buf.is_empty();
        if in_progress {
            timer.begin(now_ms());
        } else {
            timer.end();
            if buf.capacity() > 64 * 1024 {
                buf = Vec::new();
            }
        }
        conn.set_idle(!in_progress);
        let (wait, limit) = timer.next_wait(now_ms());
        let read = if wait == 0 {
            Err(fata::time::Elapsed)
        } else {
            timeout(Duration::from_millis(wait), conn.read(&mut chunk)).await
        };
        match read {
            Err(_) if limit == Limit::Request => {
                out.clear();
                timeout_response().write_to(&mut out);
                let _ = timeout(Duration::from_secs(1), conn.write_all(&out)).await;
                conn.shutdown();
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                conn.shutdown();
                return;
            }
            Ok(Ok(n)) => {
                conn.set_idle(false);
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
