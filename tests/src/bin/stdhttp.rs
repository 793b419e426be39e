//! The hosted comparison's baseline: a small std Rust HTTP/1.1 server (a thread per
//! connection, keep-alive) serving one page for every GET.
//! usage: stdhttp ADDR:PORT FILE
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn serve(s: TcpStream, page: &[u8]) {
    let _ = s.set_nodelay(true);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        page.len()
    );
    let mut line = String::new();
    loop {
        // Read one request head (the body is ignored: GET only).
        let mut got = false;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            got = true;
        }
        if !got {
            continue;
        }
        let mut resp = head.clone().into_bytes();
        resp.extend_from_slice(page);
        if w.write_all(&resp).is_err() {
            return;
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (addr, file) = (a.first().expect("ADDR:PORT"), a.get(1).expect("FILE"));
    let page: &'static [u8] = Box::leak(std::fs::read(file).expect("page").into_boxed_slice());
    let l = TcpListener::bind(addr).expect("bind");
    println!("stdhttp: ready");
    for s in l.incoming().flatten() {
        std::thread::spawn(move || serve(s, page));
    }
}
