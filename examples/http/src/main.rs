//! A website as a unikernel: serves the files under `examples/http/site/`, embedded into the
//! image at build time, with correct content types, ETags (304 on If-None-Match), 404, HEAD,
//! keep-alive and request-size limits (431/413/400), a deadline for each whole request (408
//! for a client that trickles its request), plus `/status`, a JSON document with counters:
//! requests, bytes, connections, the stack's drops and limits, heap in use.
//!
//! Between requests a connection is marked idle, so when the guest is at its connection limit
//! the stack closes the connection idle longest to admit a new client instead of refusing it.
//! HTTPS: with a certificate — from the boot keys `tls_cert=`/`tls_key=` (base64 of the PEM
//! files) or embedded at build time (`HTTP_TLS_CERT=fullchain.pem HTTP_TLS_KEY=key.pem cargo
//! xtask build ...`) — the same site is also served over TLS 1.3/1.2 on `https_port`, and
//! `redirect_https=true` turns plain HTTP into redirects to it. With `acme_directory=` and
//! `acme_domain=` the image obtains its certificate from an ACME CA itself (answering the
//! http-01 challenge on `port`), serves HTTPS as soon as it arrives, renews it, and keeps it
//! in the key-value store when a disk is attached (`disk=`, `format=true` for a blank one).
//!
//! `cargo xtask run --example http -p 8080:80`, then open http://localhost:8080/.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use fata::net::acme::Acme;

use fata::net::tls::{CertStore, Identity, Stream, TlsAcceptor};
use fata::net::{IpAddr, Stack, TcpListener};
use fata::time::{Duration, Instant, timeout};
use fata_http::{
    Limit, Limits, Method, RequestTimer, Response, Site, error_response, parse_request,
    respond_static, timeout_response,
};

include!(concat!(env!("OUT_DIR"), "/site.rs"));
include!(concat!(env!("OUT_DIR"), "/tls.rs"));
static SITE: Site = Site::new(FILES);

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 80,
        /// TCP port for HTTPS, served when there is a certificate (boot keys tls_cert and
        /// tls_key, or one embedded at build time).
        https_port: u16 = 443,
        /// Answer plain HTTP with a redirect to HTTPS (when HTTPS is served).
        redirect_https: bool = false,
        /// Close a keep-alive connection after this long without a request.
        idle_timeout: Duration = Duration::from_secs(30),
        /// A request's head and body must arrive within this long of its first byte, and a
        /// response must be taken by the client within this long (else 408 / close).
        request_timeout: Duration = Duration::from_secs(10),
    }
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static SLOW_REQUESTS: AtomicU64 = AtomicU64::new(0);
static SLOW_READERS: AtomicU64 = AtomicU64::new(0);

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let cfg = rt.config();
    let timer = RequestTimer::new(
        cfg.idle_timeout.as_millis() as u64,
        cfg.request_timeout.as_millis() as u64,
    );
    let certs = CertStore::new();
    let source = load_certificate(&certs)?;
    let acme = if source.is_none() && Acme::configured() {
        let store = open_store().await;
        Acme::start(net.clone(), certs.clone(), store).map_err(|e| format!("acme: {e}"))?
    } else {
        None
    };
    if source.is_some() || acme.is_some() {
        let tls = TlsAcceptor::new(certs.clone()).map_err(|e| format!("https: {e}"))?;
        let (net, certs, port) = (net.clone(), certs.clone(), cfg.https_port);
        let limit = cfg.request_timeout;
        fata::spawn(async move {
            // Listen only once there is a certificate (ACME may take a while), so the
            // readiness line means HTTPS works.
            while certs.is_empty() {
                fata::time::sleep(Duration::from_millis(200)).await;
            }
            match net.listen(port) {
                Ok(l) => {
                    fata::log::info!(
                        "https: serving on port {port} with the certificate from {}",
                        source.unwrap_or("ACME")
                    );
                    let _ = serve(l, Some(tls), None, None, net, timer, limit).await;
                }
                Err(e) => fata::log::error!("https: listen on {port}: {e}"),
            }
        });
    }
    // Redirects start once a certificate is in (ACME's may come later).
    let redirect = cfg
        .redirect_https
        .then(|| Redirect(cfg.https_port, certs.clone()));
    let listener = net
        .listen(cfg.port)
        .map_err(|e| format!("listen on {}: {e}", cfg.port))?;
    fata::log::info!("http: serving {} files", FILES.len());
    serve(
        listener,
        None,
        redirect,
        acme,
        net,
        timer,
        cfg.request_timeout,
    )
    .await
}

/// The key-value store on the attached disk, for ACME's account and certificate; `None`
/// (with a note) when there is no usable disk.
async fn open_store() -> Option<fata::kv::Store> {
    match fata::kv::open().await {
        Ok(s) => Some(s),
        Err(e) => {
            fata::log::info!("acme: no store ({e}): the certificate is not kept across boots");
            None
        }
    }
}

/// Plain HTTP is redirected to this HTTPS port while the store holds a certificate.
#[derive(Clone)]
struct Redirect(u16, alloc::sync::Arc<CertStore>);

/// Puts the configured certificate into `certs`: the boot keys' first, else the one
/// embedded at build time. Returns where it came from, `None` when there is none.
fn load_certificate(certs: &CertStore) -> Result<Option<&'static str>, String> {
    let (id, source) = match fata::net::tls::boot_identity().map_err(|e| e.to_string())? {
        Some(id) => (id, "the boot keys"),
        None => match EMBEDDED_TLS {
            Some((cert, key)) => (
                Identity::from_pem(cert, key).map_err(|e| format!("embedded certificate: {e}"))?,
                "the image (embedded at build time)",
            ),
            None => return Ok(None),
        },
    };
    certs
        .insert(&id)
        .map_err(|e| format!("certificate from {source}: {e}"))?;
    Ok(Some(source))
}

/// Accepts connections on `listener` and serves each in its own task, over TLS when `tls`
/// is given (the handshake, bounded by `tls_handshake_timeout`, runs in that task too).
async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    redirect: Option<Redirect>,
    acme: Option<Acme>,
    net: Stack,
    timer: RequestTimer,
    write_limit: Duration,
) -> Result<(), String> {
    loop {
        let (conn, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let net = net.clone();
        match &tls {
            None => {
                let (acme, redirect) = (acme.clone(), redirect.clone());
                fata::spawn(serve_connection(
                    conn,
                    net,
                    timer,
                    write_limit,
                    redirect,
                    acme,
                ));
            }
            Some(tls) => {
                let tls = tls.clone();
                fata::spawn(async move {
                    if let Ok(conn) = tls.accept(conn).await {
                        serve_connection(conn, net, timer, write_limit, None, None).await;
                    }
                });
            }
        }
    }
}

fn status_json(net: &Stack) -> String {
    let c = net.counters();
    let heap = fata::heap::stats();
    let tls = fata::net::tls::counters();
    let ipv6: Vec<String> = net
        .addresses()
        .iter()
        .filter(|(a, _)| matches!(a, IpAddr::V6(_)))
        .map(|(a, l)| format!("\"{a}/{l}\""))
        .collect();
    format!(
        "{{\"requests\":{},\"bytes_sent\":{},\"connections\":{},\"uptime_ms\":{},\
\"address\":{},\"ipv6\":[{}],\"rx_frames\":{},\"tx_frames\":{},\"dropped_frames\":{},\
\"rx_oversize\":{},\"rx_runt\":{},\"bad_descriptors\":{},\"pending_dropped\":{},\
\"handshake_timeouts\":{},\"tcp_limit_hits\":{},\"syn_dropped\":{},\"reclaimed\":{},\
\"icmp_limited\":{},\"rst_limited\":{},\"slow_requests\":{},\"slow_readers\":{},\
\"tcp_sockets\":{},\"tcp_limit\":{},\"tls_handshakes\":{},\"tls_failed\":{},\"tls_timeouts\":{},\
\"heap_in_use\":{},\"heap_total\":{}}}\n",
        REQUESTS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
        CONNECTIONS.load(Ordering::Relaxed),
        Instant::now().as_nanos() / 1_000_000,
        net.ipv4()
            .map_or(String::from("null"), |(a, l)| format!("\"{a}/{l}\"")),
        ipv6.join(","),
        c.device.rx_frames,
        c.device.tx_frames,
        c.device.dropped(),
        c.device.rx_oversize,
        c.device.rx_runt,
        c.device.bad_descriptor,
        c.pending_dropped,
        c.handshake_timeouts,
        c.tcp_limit_hits,
        c.syn_dropped,
        c.reclaimed,
        c.icmp_limited,
        c.rst_limited,
        SLOW_REQUESTS.load(Ordering::Relaxed),
        SLOW_READERS.load(Ordering::Relaxed),
        c.tcp_sockets,
        c.tcp_limit,
        tls.handshakes,
        tls.failed,
        tls.timeouts,
        heap.map_or(String::from("null"), |h| format!("{}", h.in_use)),
        heap.map_or(String::from("null"), |h| format!("{}", h.total)),
    )
}

fn now_ms() -> u64 {
    Instant::now().as_nanos() / 1_000_000
}

/// Sends `out` unless the client does not take it within the request deadline.
async fn send(conn: &mut impl Stream, out: &[u8], limit: Duration) -> bool {
    match timeout(limit, conn.write_all(out)).await {
        Ok(Ok(())) => {
            BYTES.fetch_add(out.len() as u64, Ordering::Relaxed);
            true
        }
        Ok(Err(_)) => false,
        Err(_) => {
            SLOW_READERS.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

async fn serve_connection(
    mut conn: impl Stream,
    net: Stack,
    mut timer: RequestTimer,
    write_limit: Duration,
    redirect: Option<Redirect>,
    acme: Option<Acme>,
) {
    let limits = Limits::DEFAULT;
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
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
                    let challenge = acme.as_ref().and_then(|a| a.answer(req.path));
                    let to_https = redirect
                        .as_ref()
                        .filter(|r| challenge.is_none() && !r.1.is_empty())
                        .and_then(|r| fata_http::https_location(&req, r.0));
                    let resp = if let Some(answer) = &challenge {
                        Response {
                            status: 200,
                            reason: "OK",
                            content_type: "application/octet-stream",
                            etag: None,
                            body: answer.as_bytes(),
                            head_only: req.method == Method::Head,
                            keep_alive: req.keep_alive,
                            allow: None,
                        }
                    } else if req.path == "/status"
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
                    match &to_https {
                        Some(location) => {
                            fata_http::write_redirect(&mut out, location, req.keep_alive)
                        }
                        None => resp.write_to(&mut out),
                    }
                    (consumed, req.content_length, resp.keep_alive, true)
                }
                Err(e) => {
                    out.clear();
                    error_response(e).write_to(&mut out);
                    (buf.len(), 0, false, false)
                }
            };
            REQUESTS.fetch_add(u64::from(ok), Ordering::Relaxed);
            if !send(&mut conn, &out, write_limit).await {
                return;
            }
            buf.drain(..consumed);
            skip = body;
            timer.end();
            if !keep_alive {
                let _ = timeout(Duration::from_secs(5), conn.close()).await;
                return;
            }
        }
        // A request (or its body) is under way: its deadline runs. Otherwise the connection
        // is idle, and the stack may close it to admit a new client at its limit.
        let in_progress = !buf.is_empty() || skip > 0;
        if in_progress {
            timer.begin(now_ms());
        } else {
            timer.end();
        }
        conn.set_idle(!in_progress);
        if buf.capacity() > 4096 && buf.is_empty() {
            buf = Vec::new();
        }
        let (wait, limit) = timer.next_wait(now_ms());
        let read = if wait == 0 {
            Err(fata::time::Elapsed)
        } else {
            timeout(Duration::from_millis(wait), conn.read(&mut chunk)).await
        };
        match read {
            Err(_) if limit == Limit::Request => {
                SLOW_REQUESTS.fetch_add(1, Ordering::Relaxed);
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
