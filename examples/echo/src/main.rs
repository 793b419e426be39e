//! TCP echo server: every connection gets back what it sends, many clients at once.
//! `cargo xtask run --example echo -p 7007:7` then `nc localhost 7007`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::format;
use alloc::string::String;

fata::config! {
    pub struct Config {
        /// TCP port to listen on.
        port: u16 = 7,
    }
}

#[fata::main]
async fn main(rt: fata::Runtime<Config>) -> Result<(), String> {
    let net = rt.net().map_err(|e| format!("no network: {e}"))?;
    let listener = net
        .listen(rt.config().port)
        .map_err(|e| format!("listen: {e}"))?;
    loop {
        let (mut conn, peer) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        fata::log::debug!("echo: connection from {peer}");
        fata::spawn(async move {
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
            conn.shutdown();
            let _ = conn.flush().await;
        });
    }
}
