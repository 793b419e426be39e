//! Request heads: turning the bytes a client sent into a checked [`Request`].
//!
//! This is the only layer that reads untrusted bytes. [`parse_request`] hands the buffer to
//! `httparse` (which validates the request line and header syntax), then checks what a static
//! file server relies on: the version, an origin-form target, `Host`, `Connection`,
//! `Content-Length` and `Transfer-Encoding`. Every failure is a [`ParseError`] value that maps to
//! one status code; nothing here panics or indexes out of bounds, whatever the input. The module
//! allocates one header table per call and keeps no state between calls.

use alloc::vec;
use core::fmt;

/// How much of a request the server is willing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers + blank line) in bytes. Default 8192.
    pub max_head: usize,
    /// Most header fields in one request. Default 32.
    pub max_headers: usize,
    /// Largest `Content-Length` accepted; the caller must read and discard that many bytes
    /// after the head. Default 1 MiB.
    pub max_body: usize,
}

impl Limits {
    /// The defaults: 8 KiB of head, 32 headers, 1 MiB of (discarded) body.
    pub const DEFAULT: Limits = Limits {
        max_head: 8192,
        max_headers: 32,
        max_body: 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The request method, as far as a static file server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the headers of a `GET`, without the body.
    Head,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `POST`.
    Post,
    /// Any other syntactically valid method (`OPTIONS`, `PATCH`, ...).
    Other,
}

/// A complete, checked request head. Borrows from the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path of the target, without query string or fragment. Starts with `/`, except the
    /// asterisk-form `*` of `OPTIONS *`. Absolute-form targets (`http://host/x`) are reduced to
    /// their path. Still percent-encoded: [`Site::lookup`](crate::Site::lookup) decodes it.
    pub path: &'a str,
    /// The query string after `?` (without the fragment), still percent-encoded; empty if
    /// there is none.
    pub query: &'a str,
    /// Whether the connection stays open after the response: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The first `If-None-Match` header, trimmed, if it is valid UTF-8.
    pub if_none_match: Option<&'a str>,
    /// The `Host` header, trimmed, if it is valid UTF-8 (at most one is accepted).
    pub host: Option<&'a str>,
    /// The body length from `Content-Length` (0 without one). The body follows the head and
    /// must be read and discarded by the caller before the next request.
    pub content_length: usize,
}

/// Why a request head was refused. Each variant maps to one status code ([`ParseError::status`]);
/// after any of them the connection must be closed, since the request boundary is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The head is longer than [`Limits::max_head`] or has more than [`Limits::max_headers`]
    /// fields: 431 Request Header Fields Too Large.
    TooLarge,
    /// Not an HTTP/1.x request head: bad request line, header syntax, target, `Host`,
    /// `Connection` or `Content-Length`: 400 Bad Request.
    Malformed,
    /// A well-formed request line with a version other than HTTP/1.0 or HTTP/1.1
    /// (`HTTP/2.0`, `HTTP/3`, `HTTP/1.2`): 505 HTTP Version Not Supported.
    BadVersion,
    /// `Content-Length` is above [`Limits::max_body`]: 413 Content Too Large.
    BodyTooLarge,
    /// The request has a `Transfer-Encoding` (a chunked body), whose length this server does
    /// not compute: 411 Length Required.
    LengthRequired,
}

impl ParseError {
    /// The status code of the response to this error.
    pub const fn status(self) -> u16 {
        match self {
            ParseError::TooLarge => 431,
            ParseError::Malformed => 400,
            ParseError::BadVersion => 505,
            ParseError::BodyTooLarge => 413,
            ParseError::LengthRequired => 411,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::TooLarge => "request head too large or too many header fields",
            ParseError::Malformed => "malformed request head",
            ParseError::BadVersion => "unsupported HTTP version (only HTTP/1.0 and HTTP/1.1)",
            ParseError::BodyTooLarge => "request body too large",
            ParseError::LengthRequired => "request body without Content-Length",
        })
    }
}

impl core::error::Error for ParseError {}

/// Parses the request head at the start of `buf`.
///
/// - `Ok(None)`: the head is incomplete (and still within [`Limits::max_head`]); read more and
///   call again with the longer buffer.
/// - `Ok(Some((request, head_len)))`: `buf[..head_len]` is a complete head. If
///   `request.content_length > 0`, that many body bytes follow and must be discarded by the
///   caller; the next request (pipelining) starts after them.
/// - `Err(e)`: answer with [`error_response(e)`](crate::error_response) and close.
///
/// Leading empty lines are skipped (RFC 9112 §2.2); bare `\n` line ends are accepted.
pub fn parse_request<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(Request<'a>, usize)>, ParseError> {
    // Never look past max_head: a head that does not end within it is too large, however the
    // rest of the buffer looks.
    let window = buf.get(..limits.max_head).unwrap_or(buf);
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(ParseError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooLarge),
        Err(httparse::Error::Version) => return Err(classify_version_error(window)),
        Err(_) => return Err(ParseError::Malformed),
    };
    let (Some(method_name), Some(target), Some(minor)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ParseError::Malformed);
    };
    let method = match method_name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let path = target_path(target, method_name == "OPTIONS").ok_or(ParseError::Malformed)?;
    let query = target
        .split_once('?')
        .map_or("", |(_, q)| q.split_once('#').map_or(q, |(q, _)| q));

    let mut close = false;
    let mut keep_alive_token = false;
    let mut hosts = 0usize;
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding = false;
    let mut if_none_match = None;
    let mut host = None;
    for header in parsed.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value).ok_or(ParseError::Malformed)?;
            // Repeated Content-Length fields must agree (RFC 9112 §6.3), or the body's end is
            // ambiguous: the classic request-smuggling vector.
            if content_length.is_some_and(|previous| previous != length) {
                return Err(ParseError::Malformed);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = core::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("if-none-match") && if_none_match.is_none() {
            if_none_match = core::str::from_utf8(value).ok();
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two, gets a 400.
    if hosts > 1 || (minor >= 1 && hosts == 0) {
        return Err(ParseError::Malformed);
    }
    if transfer_encoding {
        return Err(ParseError::LengthRequired);
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > limits.max_body {
        return Err(ParseError::BodyTooLarge);
    }
    let keep_alive = !close && (minor >= 1 || keep_alive_token);
    let request = Request {
        method,
        path,
        query,
        keep_alive,
        if_none_match,
        host,
        content_length,
    };
    Ok(Some((request, head_len)))
}

/// `Content-Length` as a number: one or more ASCII digits, nothing else. A value too large for
/// `usize` saturates (and is then refused as [`ParseError::BodyTooLarge`]).
fn parse_content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, &digit| {
        n.saturating_mul(10)
            .saturating_add(usize::from(digit - b'0'))
    }))
}

/// The path part of a request target: origin-form (`/a/b?q`) or absolute-form
/// (`http://host/a/b?q`) without query and fragment, or `*` for `OPTIONS *`. `None` for
/// anything else (authority-form, relative paths).
fn target_path(target: &str, is_options: bool) -> Option<&str> {
    if target == "*" {
        return is_options.then_some(target);
    }
    let path = if target.starts_with('/') {
        target
    } else if let Some(rest) = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
    {
        // The authority ends at the first '/', '?' or '#'; no '/' there means the root.
        match rest.find(['/', '?', '#']) {
            Some(end) if rest.get(end..)?.starts_with('/') => rest.get(end..)?,
            _ => "/",
        }
    } else {
        return None;
    };
    match path.find(['?', '#']) {
        Some(end) => path.get(..end),
        None => Some(path),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// httparse reports any unexpected byte in the version position as a version error. Tell a
/// real but unsupported version (`HTTP/2.0`, `HTTP/3`: 505) from garbage (400).
fn classify_version_error(buf: &[u8]) -> ParseError {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let line = rest.get(..end).unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.nth(2).unwrap_or_default();
    match version.strip_prefix(b"HTTP/") {
        Some(number) if number.first().is_some_and(u8::is_ascii_digit) => ParseError::BadVersion,
        _ => ParseError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(Request<'_>, usize)>, ParseError> {
        parse_request(bytes, &Limits::default())
    }

    fn complete(bytes: &[u8]) -> (Request<'_>, usize) {
        match parse(bytes) {
            Ok(Some(done)) => done,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn complete_get_is_parsed_with_its_head_length() {
        let raw = b"GET /index.html HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n";
        let (req, len) = complete(raw);
        assert_eq!(len, raw.len());
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/index.html");
        assert!(req.keep_alive);
        assert_eq!(req.if_none_match, None);
        assert_eq!(req.content_length, 0);
    }

    #[test]
    fn every_strict_prefix_of_a_request_is_incomplete() {
        let raw = b"HEAD /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n";
        for end in 0..raw.len() {
            assert_eq!(parse(&raw[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(matches!(parse(raw), Ok(Some((_, n))) if n == raw.len()));
    }

    #[test]
    fn pipelined_requests_are_parsed_one_after_another() {
        let raw = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HT";
        let (first, n1) = complete(raw);
        assert_eq!((first.method, first.path), (Method::Get, "/a"));
        let rest = &raw[n1..];
        let (second, n2) = complete(rest);
        assert_eq!((second.method, second.path), (Method::Head, "/b"));
        assert_eq!(parse(&rest[n2..]), Ok(None));
    }

    #[test]
    fn body_follows_head_and_is_reported_by_content_length() {
        let raw = b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (req, n) = complete(raw);
        assert_eq!((req.method, req.content_length), (Method::Post, 5));
        assert_eq!(&raw[n..n + 5], b"hello");
        let (next, _) = complete(&raw[n + 5..]);
        assert_eq!(next.path, "/");
    }

    #[test]
    fn http11_keeps_alive_unless_connection_close() {
        assert!(complete(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0.keep_alive);
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !complete(b"GET / HTTP/1.1\r\nHost: h\r\nconnection: Upgrade, CLOSE\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn http10_closes_unless_connection_keep_alive() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !complete(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn query_string_and_fragment_are_stripped_from_path() {
        assert_eq!(
            complete(b"GET /a/b.html?x=1&y=/2 HTTP/1.1\r\nHost: h\r\n\r\n")
                .0
                .path,
            "/a/b.html"
        );
        assert_eq!(complete(b"GET /?q HTTP/1.1\r\nHost: h\r\n\r\n").0.path, "/");
        let r = complete(b"GET /kv?prefix=a&limit=2#f HTTP/1.1\r\nHost: h\r\n\r\n").0;
        assert_eq!((r.path, r.query), ("/kv", "prefix=a&limit=2"));
        assert_eq!(complete(b"GET /kv HTTP/1.1\r\nHost: h\r\n\r\n").0.query, "");
        assert_eq!(
            complete(b"GET /p#frag HTTP/1.1\r\nHost: h\r\n\r\n").0.path,
            "/p"
        );
    }

    #[test]
    fn absolute_form_target_is_reduced_to_its_path() {
        let raw = b"GET http://example.com:8080/docs/?x HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(complete(raw).0.path, "/docs/");
        let raw = b"GET HTTPS://example.com?x=/y HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(complete(raw).0.path, "/");
    }

    #[test]
    fn asterisk_target_is_accepted_only_for_options() {
        assert_eq!(
            complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").0.path,
            "*"
        );
        assert_eq!(
            parse(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn relative_or_authority_targets_are_malformed() {
        assert_eq!(
            parse(b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            parse(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn if_none_match_is_captured_trimmed() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match:   \"abc\", W/\"def\"  \r\n\r\n";
        assert_eq!(complete(raw).0.if_none_match, Some("\"abc\", W/\"def\""));
    }

    #[test]
    fn methods_are_told_apart_and_unknown_ones_are_other() {
        for (name, method) in [
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Other),
            ("get", Method::Other),
            ("PATCH", Method::Other),
        ] {
            let raw = alloc::format!("{name} / HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(complete(raw.as_bytes()).0.method, method, "{name}");
        }
    }

    #[test]
    fn head_longer_than_max_head_is_too_large() {
        let limits = Limits {
            max_head: 64,
            ..Limits::default()
        };
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ".to_vec();
        raw.resize(200, b'a');
        raw.extend_from_slice(b"\r\n\r\n");
        // Incomplete while shorter than the limit, too large once it reaches it.
        assert_eq!(parse_request(&raw[..63], &limits), Ok(None));
        assert_eq!(
            parse_request(&raw[..64], &limits),
            Err(ParseError::TooLarge)
        );
        assert_eq!(parse_request(&raw, &limits), Err(ParseError::TooLarge));
    }

    #[test]
    fn head_exactly_max_head_long_is_accepted() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let limits = Limits {
            max_head: raw.len(),
            ..Limits::default()
        };
        assert!(matches!(parse_request(raw, &limits), Ok(Some((_, n))) if n == raw.len()));
    }

    #[test]
    fn too_many_header_fields_is_too_large() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let ok = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse_request(ok, &limits).is_ok_and(|r| r.is_some()));
        let too_many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_request(too_many, &limits), Err(ParseError::TooLarge));
    }

    #[test]
    fn garbage_is_malformed() {
        for raw in [
            &b"\x00\x01\x02\x03\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\n: no-name\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / http/1.1\r\nHost: h\r\n\r\n",
            b"GET / FOO/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n",
            b"G\xffT / HTTP/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw),
                Err(ParseError::Malformed),
                "{:?}",
                raw.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn http11_without_host_or_with_two_hosts_is_malformed() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(ParseError::Malformed));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn other_http_versions_are_bad_version() {
        for raw in [
            &b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/3\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            // Decided before the line is even complete.
            b"GET / HTTP/2",
        ] {
            assert_eq!(
                parse(raw),
                Err(ParseError::BadVersion),
                "{:?}",
                raw.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn content_length_above_max_body_is_body_too_large() {
        let at_limit = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n";
        assert_eq!(complete(at_limit).0.content_length, 1 << 20);
        let over = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n";
        assert_eq!(parse(over), Err(ParseError::BodyTooLarge));
        let huge =
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(parse(huge), Err(ParseError::BodyTooLarge));
    }

    #[test]
    fn invalid_or_conflicting_content_length_is_malformed() {
        for value in ["", "-1", "+5", "0x10", "5, 6", "1 2", "five"] {
            let raw =
                alloc::format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                parse(raw.as_bytes()),
                Err(ParseError::Malformed),
                "{value:?}"
            );
        }
        let conflict =
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(parse(conflict), Err(ParseError::Malformed));
        let agree = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(complete(agree).0.content_length, 5);
    }

    #[test]
    fn transfer_encoding_needs_length_required() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(raw), Err(ParseError::LengthRequired));
        let both = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(both), Err(ParseError::LengthRequired));
    }

    #[test]
    fn leading_empty_lines_and_bare_newlines_are_tolerated() {
        let raw = b"\r\n\nGET /x HTTP/1.1\nHost: h\n\n";
        let (req, n) = complete(raw);
        assert_eq!((req.path, n), ("/x", raw.len()));
    }

    #[test]
    fn every_error_maps_to_its_status() {
        assert_eq!(ParseError::TooLarge.status(), 431);
        assert_eq!(ParseError::Malformed.status(), 400);
        assert_eq!(ParseError::BadVersion.status(), 505);
        assert_eq!(ParseError::BodyTooLarge.status(), 413);
        assert_eq!(ParseError::LengthRequired.status(), 411);
    }
}
