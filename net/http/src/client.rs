//! The client side of HTTP/1.1, as pure functions: writing a request head, and reading a
//! response — its head, then a body framed by `Content-Length`, by chunked transfer coding
//! or by the end of the connection. Untrusted input: every length is checked against limits
//! and nothing panics (the module's tests feed it every truncation and random bytes).
//!
//! The runtime's HTTPS client (`fata::net::https`) drives it over a TLS stream.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The head is not valid HTTP/1.x.
    Malformed(&'static str),
    /// The head is longer than the limit.
    HeadTooLarge,
    /// The body is longer than the limit.
    BodyTooLarge,
    /// The connection ended before the body did.
    Truncated,
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            ClientError::HeadTooLarge => f.write_str("HTTP response head too large"),
            ClientError::BodyTooLarge => f.write_str("HTTP response body too large"),
            ClientError::Truncated => f.write_str("the connection ended inside the response"),
        }
    }
}

/// A response head: status and headers (names as sent, values trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Appends a request head to `out`: `METHOD PATH HTTP/1.1`, `Host`, the `headers`, a
/// `Content-Length` for `body_len` when there is a body or the method is POST/PUT, and
/// `Connection: close` (one request per connection keeps the client simple).
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) {
    use core::fmt::Write as _;
    let mut s = String::new();
    let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    if body_len > 0 || matches!(method, "POST" | "PUT") {
        let _ = write!(s, "Content-Length: {body_len}\r\n");
    }
    s.push_str("Connection: close\r\nUser-Agent: fata\r\n\r\n");
    out.extend_from_slice(s.as_bytes());
}

/// Parses a response head from the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the head and its length. Interim 1xx responses are returned like others; the caller
/// skips them.
pub fn parse_response_head(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(ResponseHead, usize)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let status = r.code.ok_or(ClientError::Malformed("no status"))?;
            let headers = r
                .headers
                .iter()
                .map(|h| {
                    let v = core::str::from_utf8(h.value)
                        .map_err(|_| ClientError::Malformed("header value is not UTF-8"))?;
                    Ok((String::from(h.name), String::from(v.trim())))
                })
                .collect::<Result<Vec<_>, ClientError>>()?;
            Ok(Some((ResponseHead { status, headers }, n)))
        }
        Ok(httparse::Status::Partial) if buf.len() > max_head => Err(ClientError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ClientError::HeadTooLarge),
        Err(_) => Err(ClientError::Malformed("bad status line or header")),
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
    /// No body (HEAD, 1xx, 204, 304).
    None,
}

/// The framing of `head`'s body (for a request made with `method`).
pub fn framing(head: &ResponseHead, method: &str) -> Result<Framing, ClientError> {
    if method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Framing::None);
    }
    if let Some(te) = head.header("transfer-encoding") {
        return if te.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(ClientError::Malformed("unsupported transfer coding"))
        };
    }
    match head.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map(Framing::Length)
            .map_err(|_| ClientError::Malformed("bad Content-Length")),
        None => Ok(Framing::UntilClose),
    }
}

/// Decodes a body from `buf` (everything after the head): `Ok(Some(body))` when it is
/// complete, `Ok(None)` when more bytes are needed; `closed` says the connection has ended
/// (so an `UntilClose` body is complete and anything else is truncated).
pub fn decode_body(
    buf: &[u8],
    framing: Framing,
    max_body: usize,
    closed: bool,
) -> Result<Option<Vec<u8>>, ClientError> {
    let need_more = |closed: bool| {
        if closed {
            Err(ClientError::Truncated)
        } else {
            Ok(None)
        }
    };
    match framing {
        Framing::None => Ok(Some(Vec::new())),
        Framing::Length(n) if n > max_body => Err(ClientError::BodyTooLarge),
        Framing::Length(n) if buf.len() >= n => Ok(Some(buf[..n].to_vec())),
        Framing::Length(_) => need_more(closed),
        Framing::UntilClose if buf.len() > max_body => Err(ClientError::BodyTooLarge),
        Framing::UntilClose if closed => Ok(Some(buf.to_vec())),
        Framing::UntilClose => Ok(None),
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut at = 0;
            loop {
                let Some(eol) = find_crlf(&buf[at..]) else {
                    return need_more(closed);
                };
                let line = &buf[at..at + eol];
                let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size = core::str::from_utf8(size_text)
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .ok_or(ClientError::Malformed("bad chunk size"))?;
                at += eol + 2;
                if size == 0 {
                    // Trailers (ignored) end with an empty line.
                    loop {
                        let Some(eol) = find_crlf(&buf[at..]) else {
                            return need_more(closed);
                        };
                        at += eol + 2;
                        if eol == 0 {
                            return Ok(Some(body));
                        }
                    }
                }
                if size > max_body.saturating_sub(body.len()) {
                    return Err(ClientError::BodyTooLarge);
                }
                if buf.len() - at < size + 2 {
                    return need_more(closed);
                }
                body.extend_from_slice(&buf[at..at + size]);
                at += size;
                if &buf[at..at + 2] != b"\r\n" {
                    return Err(ClientError::Malformed("chunk not followed by CRLF"));
                }
                at += 2;
            }
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(raw: &[u8], method: &str) -> Result<(ResponseHead, Vec<u8>), ClientError> {
        let (head, n) = parse_response_head(raw, 16384)?.ok_or(ClientError::Truncated)?;
        let f = framing(&head, method)?;
        let body = decode_body(&raw[n..], f, 1 << 20, true)?.ok_or(ClientError::Truncated)?;
        Ok((head, body))
    }

    #[test]
    fn content_length_chunked_and_until_close_bodies_decode() {
        let (h, b) = whole(
            b"HTTP/1.1 201 Created\r\nLocation: /a\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            "POST",
        )
        .unwrap();
        assert_eq!(
            (h.status, h.header("location"), b.as_slice()),
            (201, Some("/a"), &b"hello"[..])
        );
        let (_, b) = whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n", "GET").unwrap();
        assert_eq!(b, b"hello world");
        let (_, b) = whole(b"HTTP/1.0 200 OK\r\n\r\nto the end", "GET").unwrap();
        assert_eq!(b, b"to the end");
        let (h, b) = whole(
            b"HTTP/1.1 200 OK\r\nReplay-Nonce: abc\r\nContent-Length: 9\r\n\r\n",
            "HEAD",
        )
        .unwrap();
        assert_eq!((h.header("replay-nonce"), b.len()), (Some("abc"), 0));
    }

    #[test]
    fn limits_and_damage_give_errors_never_panics() {
        assert_eq!(
            whole(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                "GET"
            )
            .unwrap_err(),
            ClientError::BodyTooLarge
        );
        assert_eq!(
            whole(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "GET").unwrap_err(),
            ClientError::Truncated
        );
        assert!(matches!(
            whole(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET"),
            Err(ClientError::Malformed(_))
        ));
        assert!(matches!(
            whole(b"SMTP ready\r\n\r\n", "GET"),
            Err(ClientError::Malformed(_))
        ));
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nX: y", 10),
            Err(ClientError::HeadTooLarge)
        );
        let full = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        for cut in 0..full.len() {
            // Every prefix: more needed (open connection) or truncated (closed), never a panic.
            if let Ok(Some((h, n))) = parse_response_head(&full[..cut], 1024) {
                let f = framing(&h, "GET").unwrap();
                assert_eq!(decode_body(&full[n..cut], f, 1024, false), Ok(None));
                assert_eq!(
                    decode_body(&full[n..cut], f, 1024, true),
                    Err(ClientError::Truncated)
                );
            }
        }
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..5000 {
            let mut b = full.to_vec();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % b.len();
            b[at] = (x >> 32) as u8;
            let _ = whole(&b, "GET");
        }
    }

    #[test]
    fn request_heads_carry_host_length_and_close() {
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            "POST",
            "example.org",
            "/acme/new",
            &[("Content-Type", "application/jose+json")],
            12,
        );
        assert_eq!(
            out,
            b"POST /acme/new HTTP/1.1\r\nHost: example.org\r\nContent-Type: application/jose+json\r\nContent-Length: 12\r\nConnection: close\r\nUser-Agent: fata\r\n\r\n"
        );
    }
}
