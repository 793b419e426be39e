//! TCP and UDP echo server: every connection (and datagram) gets back what it sends, many
//! clients at once; `mode=sink|source` turn it into a throughput target, `lookup=NAME`
//! resolves a name at start-up.
//! `cargo xtask run --example echo -p 7007:7` then `nc localhost 7007`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;
use fata::net::TcpStream;

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
