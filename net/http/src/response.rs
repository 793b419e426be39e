//! Responses: the static-file policy ([`respond_static`]), error answers
//! ([`error_response`]) and the bytes of a response head ([`Response::write_head`]).
//!
//! Everything here works on already-checked values (a [`Request`] from
//! [`parse_request`], files from a [`Site`]), so nothing can fail: a
//! response is a plain struct, and writing it only appends to a `Vec`. [`serve`] ties parsing
//! and responding together for one request in a receive buffer, which is all a connection loop
//! needs besides its socket.

use alloc::vec::Vec;

use crate::request::{Limits, Method, ParseError, Request, parse_request};
use crate::site::Site;

/// The `Content-Type` of the small bodies of error responses.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The methods a static site allows, for the `Allow` header of a 405.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// A response, ready to be written. Borrows its body and header values (normally from a
/// `'static` [`File`](crate::File)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// Status code (200, 304, 404, ...).
    pub status: u16,
    /// Reason phrase for the status line.
    pub reason: &'static str,
    /// `Content-Type`; an empty string omits the header (as for 304).
    pub content_type: &'a str,
    /// `ETag` header value, quotes included.
    pub etag: Option<&'a str>,
    /// The body. Its length is the `Content-Length`, also when `head_only`.
    pub body: &'a [u8],
    /// Answer to `HEAD`: send the head only (with the `Content-Length` of `body`).
    pub head_only: bool,
    /// `Connection: keep-alive` (the caller keeps reading) or `close` (the caller closes after
    /// sending).
    pub keep_alive: bool,
    /// `Allow` header value (sent with 405).
    pub allow: Option<&'static str>,
}

impl Response<'_> {
    /// Appends the status line and headers, through the blank line, to `out`:
    ///
    /// ```text
    /// HTTP/1.1 200 OK\r\n
    /// Content-Type: text/html; charset=utf-8\r\n
    /// Content-Length: 612\r\n
    /// ETag: "0123456789abcdef"\r\n
    /// Connection: keep-alive\r\n
    /// Server: fata\r\n
    /// \r\n
    /// ```
    ///
    /// `Content-Type` is left out when empty, `Content-Length` for statuses that never have a
    /// body (1xx, 204, 304), `ETag` and `Allow` when `None`.
    pub fn write_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        write_decimal(out, usize::from(self.status));
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        if !self.content_type.is_empty() {
            header(out, "Content-Type", self.content_type);
        }
        if has_body(self.status) {
            out.extend_from_slice(b"Content-Length: ");
            write_decimal(out, self.body.len());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(etag) = self.etag {
            header(out, "ETag", etag);
        }
        if let Some(allow) = self.allow {
            header(out, "Allow", allow);
        }
        let connection = if self.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        header(out, "Connection", connection);
        header(out, "Server", "fata");
        out.extend_from_slice(b"\r\n");
    }

    /// The bytes to send after the head: the body, or nothing for `HEAD` and bodiless statuses.
    pub fn body_to_send(&self) -> &[u8] {
        if self.head_only || !has_body(self.status) {
            &[]
        } else {
            self.body
        }
    }

    /// Appends the whole response (head, then [`body_to_send`](Self::body_to_send)) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_head(out);
        out.extend_from_slice(self.body_to_send());
    }
}

/// Whether a response with `status` carries a body (and so a `Content-Length`).
fn has_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal, without `core::fmt`.
fn write_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            // `n % 10` is below 10, so this cannot truncate.
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The reason phrase of the statuses this crate sends (RFC 9110), `""` for others.
pub const fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or a list containing it. The
/// comparison is weak (RFC 9110 §13.1.2): a `W/` prefix on either side is ignored.
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    !etag.is_empty()
        && header.split(',').any(|candidate| {
            let candidate = candidate.trim();
            candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
}

/// The static-file policy for a checked request:
///
/// - `GET` of a file in `site`: 200 with the file's body, type and ETag; `HEAD`: the same
///   head, no body.
/// - `GET`/`HEAD` whose `If-None-Match` matches the file's ETag: 304, ETag, no body.
/// - `GET`/`HEAD` of anything else: 404 with a short `text/plain` body.
/// - any other method: 405 with `Allow: GET, HEAD`.
///
/// The connection stays open if the request asked for it (`req.keep_alive`).
pub fn respond_static<'a>(site: &'a Site, req: &Request<'_>) -> Response<'a> {
    let head_only = req.method == Method::Head;
    let keep_alive = req.keep_alive;
    if !matches!(req.method, Method::Get | Method::Head) {
        return Response {
            allow: Some(ALLOWED_METHODS),
            keep_alive,
            ..text_response(405, b"405 Method Not Allowed\n")
        };
    }
    let Some(file) = site.lookup(req.path) else {
        return Response {
            head_only,
            keep_alive,
            ..text_response(404, b"404 Not Found\n")
        };
    };
    let etag = (!file.etag.is_empty()).then_some(file.etag);
    if let (Some(etag), Some(wanted)) = (etag, req.if_none_match)
        && if_none_match_matches(wanted, etag)
    {
        return Response {
            status: 304,
            reason: reason_phrase(304),
            content_type: "",
            etag: Some(etag),
            body: &[],
            head_only,
            keep_alive,
            allow: None,
        };
    }
    Response {
        status: 200,
        reason: reason_phrase(200),
        content_type: file.content_type,
        etag,
        body: file.body,
        head_only,
        keep_alive,
        allow: None,
    }
}

/// A closing `text/plain` response with `status` and `body`.
fn text_response(status: u16, body: &'static [u8]) -> Response<'static> {
    Response {
        status,
        reason: reason_phrase(status),
        content_type: TEXT_PLAIN,
        etag: None,
        body,
        head_only: false,
        keep_alive: false,
        allow: None,
    }
}

/// The response to a request that could not be parsed: 400, 411, 413, 431 or 505 (see
/// [`ParseError::status`]) with a short `text/plain` body and `Connection: close`.
pub fn error_response(e: ParseError) -> Response<'static> {
    let body: &'static [u8] = match e {
        ParseError::TooLarge => b"431 Request Header Fields Too Large\n",
        ParseError::Malformed => b"400 Bad Request\n",
        ParseError::BadVersion => b"505 HTTP Version Not Supported\n",
        ParseError::BodyTooLarge => b"413 Content Too Large\n",
        ParseError::LengthRequired => b"411 Length Required\n",
    };
    text_response(e.status(), body)
}

/// The response to a request that did not arrive in time: 408 with `Connection: close`.
pub fn timeout_response() -> Response<'static> {
    text_response(408, b"408 Request Timeout\n")
}

/// What a connection does after [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The buffer holds no complete request head yet: read more, call again. Nothing was
    /// written.
    Incomplete,
    /// A response was appended to `out`.
    Responded {
        /// Bytes of the buffer used up (the request head; all of it after an error).
        consumed: usize,
        /// Request body bytes that follow and must be read and discarded before the next
        /// request (they may not have arrived yet).
        skip_body: usize,
        /// Close the connection once `out` is sent.
        close: bool,
    },
    /// The request could not be parsed. The error response (see [`error_response`]) was
    /// appended to `out`: send it, then close; the rest of the buffer is not a request.
    Refused(ParseError),
}

/// Handles the request at the start of `buf`: parses it, applies [`respond_static`] (or
/// [`error_response`]) and appends the response to `out`.
pub fn serve(site: &Site, buf: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Served {
    match parse_request(buf, limits) {
        Ok(None) => Served::Incomplete,
        Ok(Some((req, head_len))) => {
            let response = respond_static(site, &req);
            response.write_to(out);
            Served::Responded {
                consumed: head_len,
                skip_body: req.content_length,
                close: !response.keep_alive,
            }
        }
        Err(e) => {
            error_response(e).write_to(out);
            Served::Refused(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::tests::SITE;
    use alloc::string::String;

    fn get(path: &str) -> Request<'_> {
        Request {
            method: Method::Get,
            path,
            query: "",
            keep_alive: true,
            if_none_match: None,
            host: None,
            content_length: 0,
        }
    }

    fn text(response: &Response<'_>) -> String {
        let mut out = Vec::new();
        response.write_to(&mut out);
        String::from_utf8(out).expect("test responses are UTF-8")
    }

    #[test]
    fn get_of_existing_file_is_200_with_its_headers_and_body() {
        let response = respond_static(&SITE, &get("/hello.txt"));
        assert_eq!(
            text(&response),
            "HTTP/1.1 200 OK\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 6\r\n\
             ETag: \"3333333333333333\"\r\n\
             Connection: keep-alive\r\n\
             Server: fata\r\n\
             \r\n\
             hello\n"
        );
    }

    #[test]
    fn head_has_the_get_headers_but_no_body() {
        let head = Request {
            method: Method::Head,
            ..get("/hello.txt")
        };
        let response = respond_static(&SITE, &head);
        let mut get_head = Vec::new();
        respond_static(&SITE, &get("/hello.txt")).write_head(&mut get_head);
        let mut out = Vec::new();
        response.write_to(&mut out);
        assert_eq!(out, get_head);
        assert!(text(&response).contains("Content-Length: 6\r\n"));
        assert_eq!(response.body_to_send(), b"");
    }

    #[test]
    fn root_serves_index_html() {
        let response = respond_static(&SITE, &get("/"));
        assert_eq!(
            (response.status, response.body),
            (200, &b"<h1>fata</h1>\n"[..])
        );
    }

    #[test]
    fn matching_if_none_match_is_304_without_body() {
        for header in [
            "\"3333333333333333\"",
            "W/\"3333333333333333\"",
            "\"x\", \"3333333333333333\"",
            "*",
        ] {
            let req = Request {
                if_none_match: Some(header),
                ..get("/hello.txt")
            };
            let response = respond_static(&SITE, &req);
            assert_eq!(response.status, 304, "{header}");
            assert_eq!(
                text(&response),
                "HTTP/1.1 304 Not Modified\r\n\
                 ETag: \"3333333333333333\"\r\n\
                 Connection: keep-alive\r\n\
                 Server: fata\r\n\
                 \r\n"
            );
        }
    }

    #[test]
    fn non_matching_if_none_match_is_200() {
        for header in ["\"3333333333333334\"", "3333333333333333", "", "\"\""] {
            let req = Request {
                if_none_match: Some(header),
                ..get("/hello.txt")
            };
            assert_eq!(respond_static(&SITE, &req).status, 200, "{header:?}");
        }
    }

    #[test]
    fn missing_file_is_404_text_and_keeps_connection() {
        let response = respond_static(&SITE, &get("/nope"));
        assert_eq!(
            text(&response),
            "HTTP/1.1 404 Not Found\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 14\r\n\
             Connection: keep-alive\r\n\
             Server: fata\r\n\
             \r\n\
             404 Not Found\n"
        );
        let head = Request {
            method: Method::Head,
            ..get("/nope")
        };
        assert_eq!(respond_static(&SITE, &head).body_to_send(), b"");
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let post = Request {
            method: Method::Other,
            keep_alive: false,
            ..get("/hello.txt")
        };
        let response = respond_static(&SITE, &post);
        assert_eq!(
            text(&response),
            "HTTP/1.1 405 Method Not Allowed\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 23\r\n\
             Allow: GET, HEAD\r\n\
             Connection: close\r\n\
             Server: fata\r\n\
             \r\n\
             405 Method Not Allowed\n"
        );
    }

    #[test]
    fn traversal_paths_are_404() {
        assert_eq!(
            respond_static(&SITE, &get("/docs/../hello.txt")).status,
            404
        );
        assert_eq!(respond_static(&SITE, &get("/%2e%2e/hello.txt")).status, 404);
    }

    #[test]
    fn error_responses_close_with_the_status_of_the_error() {
        for (e, status, reason) in [
            (ParseError::Malformed, 400, "Bad Request"),
            (ParseError::LengthRequired, 411, "Length Required"),
            (ParseError::BodyTooLarge, 413, "Content Too Large"),
            (ParseError::TooLarge, 431, "Request Header Fields Too Large"),
            (ParseError::BadVersion, 505, "HTTP Version Not Supported"),
        ] {
            let response = error_response(e);
            assert_eq!((response.status, response.reason), (status, reason));
            assert!(!response.keep_alive);
            let written = text(&response);
            assert!(written.starts_with(&alloc::format!("HTTP/1.1 {status} {reason}\r\n")));
            assert!(written.contains("\r\nConnection: close\r\n"));
            assert!(written.ends_with(&alloc::format!("\r\n\r\n{status} {reason}\n")));
        }
    }

    #[test]
    fn decimal_writer_handles_zero_and_extremes() {
        for n in [0, 7, 10, 612, 1 << 20, usize::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, alloc::format!("{n}").into_bytes());
        }
    }

    #[test]
    fn serve_answers_pipelined_requests_and_reports_the_body_to_skip() {
        let raw = b"GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n\
                    POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\
                    GET / HTTP/1.0\r\n\r\n";
        let limits = Limits::default();
        let mut out = Vec::new();
        let Served::Responded {
            consumed,
            skip_body: 0,
            close: false,
        } = serve(&SITE, raw, &limits, &mut out)
        else {
            panic!("first request");
        };
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(b"\r\n\r\nhello\n"));
        let rest = &raw[consumed..];
        out.clear();
        let Served::Responded {
            consumed,
            skip_body: 3,
            close: false,
        } = serve(&SITE, rest, &limits, &mut out)
        else {
            panic!("second request");
        };
        assert!(out.starts_with(b"HTTP/1.1 405 "));
        let rest = &rest[consumed + 3..];
        out.clear();
        assert_eq!(
            serve(&SITE, rest, &limits, &mut out),
            Served::Responded {
                consumed: rest.len(),
                skip_body: 0,
                close: true
            }
        );
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn serve_waits_for_more_and_refuses_garbage() {
        let mut out = Vec::new();
        assert_eq!(
            serve(&SITE, b"GET / HT", &Limits::default(), &mut out),
            Served::Incomplete
        );
        assert!(out.is_empty());
        assert_eq!(
            serve(&SITE, b"BLAH\r\n\r\n", &Limits::default(), &mut out),
            Served::Refused(ParseError::Malformed)
        );
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }
}

/// The `Location` for sending a request to the same host over HTTPS on `port`:
/// `https://HOST[:PORT]PATH[?QUERY]`, the host taken from the request's `Host` header without
/// its port. `None` when there is no host or it holds anything but a DNS name, an IPv4
/// address or a bracketed IPv6 address (a redirect must not echo arbitrary bytes).
pub fn https_location(req: &crate::Request<'_>, port: u16) -> Option<alloc::string::String> {
    use core::fmt::Write as _;
    let host = req.host?;
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !ok || !req.path.starts_with('/') {
        return None;
    }
    let mut loc = alloc::string::String::from("https://");
    loc.push_str(name);
    if port != 443 {
        let _ = write!(loc, ":{port}");
    }
    loc.push_str(req.path);
    if !req.query.is_empty() {
        loc.push('?');
        loc.push_str(req.query);
    }
    Some(loc)
}

/// Appends a `301 Moved Permanently` to `location` (with an empty body) to `out`.
pub fn write_redirect(out: &mut Vec<u8>, location: &str, keep_alive: bool) {
    out.extend_from_slice(b"HTTP/1.1 301 Moved Permanently\r\n");
    header(out, "Location", location);
    out.extend_from_slice(b"Content-Length: 0\r\n");
    header(
        out,
        "Connection",
        if keep_alive { "keep-alive" } else { "close" },
    );
    header(out, "Server", "fata");
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod redirect_tests {
    use super::*;
    use crate::{Limits, parse_request};

    fn loc(raw: &[u8], port: u16) -> Option<alloc::string::String> {
        let (req, _) = parse_request(raw, &Limits::DEFAULT).unwrap().unwrap();
        https_location(&req, port)
    }

    #[test]
    fn https_location_keeps_host_path_and_query_and_refuses_odd_hosts() {
        assert_eq!(
            loc(
                b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.org:8080\r\n\r\n",
                443
            )
            .as_deref(),
            Some("https://example.org/a/b?x=1")
        );
        assert_eq!(
            loc(b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n", 8443).as_deref(),
            Some("https://10.0.0.2:8443/")
        );
        assert_eq!(
            loc(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 443).as_deref(),
            Some("https://[::1]/")
        );
        assert_eq!(loc(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 443), None);
        assert_eq!(
            loc(b"GET / HTTP/1.1\r\nHost: evil.org/x\r\n\r\n", 443),
            None
        );
        assert_eq!(loc(b"GET / HTTP/1.0\r\n\r\n", 443), None);
        let mut out = Vec::new();
        write_redirect(&mut out, "https://x/", false);
        assert!(out.starts_with(b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://x/\r\n"));
    }
}
