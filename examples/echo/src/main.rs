//! TCP and UDP echo server: every connection (and datagram) gets back what it sends, many
//! clients at once; `mode=sink|source` turn it into a throughput target, `lookup=NAME`
//! resolves a name at start-up, `connect=HOST:PORT` checks an echo server elsewhere (IPv4 or
//! IPv6: `[fec0::2]:7`) with a round trip.
//! `cargo xtask run --example echo -p 7007:7` then `nc localhost 7007`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use fata::net::{NetError, SocketAddr, Stack, TcpStream};
use fata::time::{Duration, sleep, timeout};

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 7,
        /// echo: send back what arrives; sink: read and discard, then reply with the byte
        /// count; source: send `bytes` bytes, then close (for throughput measurements).
        mode: String = "echo",
        /// Bytes a `source` connection sends.
        bytes: u64 = 64 << 20,
        /// A name to resolve with DNS at start-up (the result is printed); empty: none.
        lookup: String = "",
        /// An echo server to check at start-up with one round trip, HOST:PORT (IPv6 in
        /// brackets); empty: none.
        connect: String = "",
    }
}

async fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn sink(mut conn: TcpStream) {
    let mut buf = [0u8; 16384];
    let mut total: u64 = 0;
    while let Ok(n) = conn.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let _ = conn.write_all(format!("{total}\n").as_bytes()).await;
}

async fn source(mut conn: TcpStream, mut left: u64) {
    let buf = [0x5au8; 16384];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        match conn.write(&buf[..n]).await {
            Ok(w) => left -= w as u64,
            Err(_) => return,
        }
    }
}

/// Connects to `target` (waiting for an address of its family first), sends a line and checks
/// that it comes back.
async fn round_trip(net: &Stack, target: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = target
        .parse()
        .map_err(|_| format!("`{target}` is not IP:PORT or [IPv6]:PORT"))?;
    let mut conn = loop {
        match net.connect(addr).await {
            Err(NetError::NoAddress) => sleep(Duration::from_millis(10)).await,
            r => break r.map_err(|e| format!("connect: {e}"))?,
        }
    };
    let line = b"fata round trip\n";
    conn.write_all(line)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = [0u8; 16];
    let mut n = 0;
    while n < line.len() {
        match conn.read(&mut got[n..]).await {
            Ok(0) => return Err("closed before the echo".into()),
            Ok(k) => n += k,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if &got[..n] != line {
        return Err("the echo differs".into());
    }
    Ok(addr)
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let mode = rt.config().mode.as_str();
    if !matches!(mode, "echo" | "sink" | "source") {
        return Err(format!("mode must be echo, sink or source, not `{mode}`"));
    }
    // UDP echo on the same port number.
    let udp = net
        .bind_udp(rt.config().port)
        .map_err(|e| format!("udp: {e}"))?;
    fata::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&buf[..n], from).await;
        }
    });
    let name = rt.config().lookup.as_str();
    if !name.is_empty() {
        let net = net.clone();
        fata::spawn(async move {
            let lookup = async {
                loop {
                    match net.resolve(name).await {
                        // No address yet (DHCP, SLAAC): ask again shortly.
                        Err(fata::net::NetError::NoAddress) => {
                            fata::time::sleep(fata::time::Duration::from_millis(10)).await
                        }
                        r => return r,
                    }
                }
            };
            match fata::time::timeout(fata::time::Duration::from_secs(10), lookup).await {
                Ok(Ok(addrs)) => fata::println!("echo: {name} resolves to {addrs:?}"),
                Ok(Err(e)) => fata::println!("echo: cannot resolve {name}: {e}"),
                Err(_) => fata::println!("echo: resolving {name} timed out"),
            }
        });
    }
    let target = rt.config().connect.as_str();
    if !target.is_empty() {
        let net = net.clone();
        fata::spawn(async move {
            match timeout(Duration::from_secs(10), round_trip(&net, target)).await {
                Ok(Ok(a)) => fata::println!("echo: round trip to {a} ok"),
                Ok(Err(e)) => fata::println!("echo: round trip to {target} failed: {e}"),
                Err(_) => fata::println!("echo: round trip to {target} timed out"),
            }
        });
    }
    let listener = net
        .listen(rt.config().port)
        .map_err(|e| format!("listen: {e}"))?;
    loop {
        let (conn, peer) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        fata::log::debug!("echo: connection from {peer}");
        let bytes = rt.config().bytes;
        let mode = rt.config().mode.as_str();
        fata::spawn(async move {
            match mode {
                "sink" => sink(conn).await,
                "source" => source(conn, bytes).await,
                _ => echo(conn).await,
            }
        });
    }
}
