//! A website as a unikernel: serves the files under `examples/http/site/`, embedded into the
//! image at build time, with correct content types, ETags (304 on If-None-Match), 404, HEAD,
//! keep-alive and request-size limits (431/413/400), plus `/status`, a JSON document with
//! counters: requests, bytes, dropped frames, heap in use.
//! `cargo xtask run --example http -p 8080:80`, then open http://localhost:8080/.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use fata::net::{Stack, TcpStream};
use fata::time::{Duration, Instant, timeout};
use fata_http::{Limits, Method, Response, Site, error_response, parse_request, respond_static};

include!(concat!(env!("OUT_DIR"), "/site.rs"));
static SITE: Site = Site::new(FILES);

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 80,
        /// Close a keep-alive connection after this long without a request.
        idle_timeout: Duration = Duration::from_secs(30),
    }
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let listener = net
        .listen(rt.config().port)
        .map_err(|e| format!("listen: {e}"))?;
    fata::log::info!("http: serving {} files", FILES.len());
    let idle = rt.config().idle_timeout;
    loop {
        let (conn, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let net = net.clone();
        fata::spawn(serve_connection(conn, net, idle));
    }
}

fn status_json(net: &Stack) -> String {
    let (addr, c) = fata::net::summary(net);
    let heap = fata::heap::stats();
    format!(
        "{{\"requests\":{},\"bytes_sent\":{},\"connections\":{},\"uptime_ms\":{},\
\"address\":{},\"rx_frames\":{},\"tx_frames\":{},\"dropped_frames\":{},\"rx_oversize\":{},\
\"rx_runt\":{},\"bad_descriptors\":{},\"pending_dropped\":{},\"tcp_limit_hits\":{},\"heap_in_use\":{},\"heap_total\":{}}}\n",
        REQUESTS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
        CONNECTIONS.load(Ordering::Relaxed),
        Instant::now().as_nanos() / 1_000_000,
        addr.map_or(String::from("null"), |(a, l)| format!("\"{a}/{l}\"")),
        c.device.rx_frames,
        c.device.tx_frames,
        c.device.dropped(),
        c.device.rx_oversize,
        c.device.rx_runt,
        c.device.bad_descriptor,
        c.pending_dropped,
        c.tcp_limit_hits,
        heap.map_or(String::from("null"), |h| format!("{}", h.in_use)),
        heap.map_or(String::from("null"), |h| format!("{}", h.total)),
    )
}

async fn serve_connection(mut conn: TcpStream, net: Stack, idle: Duration) {
    let limits = Limits::DEFAULT;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    let mut skip = 0usize;
    let mut chunk = [0u8; 2048];
    loop {
        // Serve every complete request already buffered (pipelining).
        loop {
            if skip > 0 {
                let n = skip.min(buf.len());
                buf.drain(..n);
                skip -= n;
                if skip > 0 {
                    break;
                }
            }
            let (consumed, body, keep_alive, ok) = match parse_request(&buf, &limits) {
                Ok(None) => break,
                Ok(Some((req, consumed))) => {
                    out.clear();
                    let json;
                    let resp = if req.path == "/status"
                        && matches!(req.method, Method::Get | Method::Head)
                    {
                        json = status_json(&net);
                        Response {
                            status: 200,
                            reason: "OK",
                            content_type: "application/json",
                            etag: None,
                            body: json.as_bytes(),
                            head_only: req.method == Method::Head,
                            keep_alive: req.keep_alive,
                            allow: None,
                        }
                    } else {
                        respond_static(&SITE, &req)
                    };
                    resp.write_to(&mut out);
                    (consumed, req.content_length, resp.keep_alive, true)
                }
                Err(e) => {
                    out.clear();
                    error_response(e).write_to(&mut out);
                    (buf.len(), 0, false, false)
                }
            };
            REQUESTS.fetch_add(u64::from(ok), Ordering::Relaxed);
            if conn.write_all(&out).await.is_err() {
                return;
            }
            BYTES.fetch_add(out.len() as u64, Ordering::Relaxed);
            buf.drain(..consumed);
            skip = body;
            if !keep_alive {
                conn.shutdown();
                let _ = timeout(Duration::from_secs(5), conn.flush()).await;
                return;
            }
        }
        match timeout(idle, conn.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                conn.shutdown();
                return;
            }
            Ok(Ok(n)) => {
                let n = if skip > 0 {
                    let s = skip.min(n);
                    skip -= s;
                    chunk.copy_within(s..n, 0);
                    n - s
                } else {
                    n
                };
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
