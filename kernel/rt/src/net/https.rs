//! An HTTPS client for outbound requests (cargo feature `tls`): one request per connection,
//! the server verified against a [`TlsConnector`]'s roots, the whole exchange bounded by a
//! deadline and the response by size limits. For webhooks, error reports, ACME.
//!
//! ```ignore
//! let tls = TlsConnector::from_pem(CA_PEM)?;
//! let r = fata::net::https::request(&net, &tls, "POST", "https://hooks.example/x",
//!                                   &[("Content-Type", "application/json")], body).await?;
//! ```

use super::Stack;
use super::Stream;
use super::tls::{TlsConnector, TlsError};
use crate::time::{Duration, timeout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use fata_http::client::{self, ClientError, Framing};

/// The longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest response body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a whole request may take, connection and handshake included.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpsError {
    /// The URL is not `https://HOST[:PORT][/PATH]`.
    BadUrl(String),
    /// Connecting, the handshake (certificate verification included) or the transfer failed.
    Tls(TlsError),
    /// The response could not be read.
    Response(ClientError),
    /// The request did not complete within [`DEADLINE`].
    Timeout,
}

impl fmt::Display for HttpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpsError::BadUrl(u) => write!(f, "not an https:// URL: {u}"),
            HttpsError::Tls(e) => write!(f, "{e}"),
            HttpsError::Response(e) => write!(f, "{e}"),
            HttpsError::Timeout => write!(f, "no response within {} s", DEADLINE.as_secs()),
        }
    }
}

/// The parts of an `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    /// The host: a DNS name or an IP address (IPv6 without brackets).
    pub host: &'a str,
    /// The port (443 unless given).
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: &'a str,
}

/// Splits an `https://` URL; userinfo, fragments and other schemes are refused.
pub fn parse_url(url: &str) -> Result<Url<'_>, HttpsError> {
    let bad = || HttpsError::BadUrl(String::from(url));
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains('#') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().map_err(|_| bad())?),
            None if after.is_empty() => (h, 443),
            None => return Err(bad()),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 443),
        }
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad());
    }
    Ok(Url { host, port, path })
}

/// Makes one request: `method` to `url` with `headers` and `body`, the server checked
/// against `tls`'s roots; the whole exchange within [`DEADLINE`].
pub async fn request(
    net: &Stack,
    tls: &TlsConnector,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpsError> {
    let u = parse_url(url)?;
    timeout(DEADLINE, exchange(net, tls, method, &u, headers, body))
        .await
        .map_err(|_| HttpsError::Timeout)?
}

async fn exchange(
    net: &Stack,
    tls: &TlsConnector,
    method: &str,
    u: &Url<'_>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpsError> {
    let mut s = tls
        .connect(net, u.host, u.port)
        .await
        .map_err(HttpsError::Tls)?;
    let host = match (u.port, u.host.contains(':')) {
        (443, false) => String::from(u.host),
        (443, true) => format!("[{}]", u.host),
        (p, false) => format!("{}:{p}", u.host),
        (p, true) => format!("[{}]:{p}", u.host),
    };
    let mut out = Vec::new();
    client::write_request_head(&mut out, method, &host, u.path, headers, body.len());
    out.extend_from_slice(body);
    s.write_all(&out).await.map_err(HttpsError::Tls)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    loop {
        if let Some((head, n)) =
            client::parse_response_head(&buf, MAX_HEAD).map_err(HttpsError::Response)?
        {
            if head.status >= 100 && head.status < 200 {
                buf.drain(..n); // an interim response: the real one follows
                continue;
            }
            let framing: Framing = client::framing(&head, method).map_err(HttpsError::Response)?;
            if let Some(body) = client::decode_body(&buf[n..], framing, MAX_BODY, closed)
                .map_err(HttpsError::Response)?
            {
                s.shutdown();
                return Ok(Response {
                    status: head.status,
                    headers: head.headers,
                    body,
                });
            }
        } else if closed {
            return Err(HttpsError::Response(ClientError::Truncated));
        }
        let n = s.read(&mut chunk).await.map_err(HttpsError::Tls)?;
        closed = n == 0;
        if buf.len() + n > MAX_HEAD + MAX_BODY + 64 * 1024 {
            return Err(HttpsError::Response(ClientError::BodyTooLarge));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Posts `error` (what `main` returned) to the `report_url` boot key as JSON
/// (`{"platform":…,"uptime_ms":…,"error":…}`), verified against `report_ca` or the web PKI
/// roots; logs the outcome. Called by the runtime before it exits.
pub(crate) async fn report_error(error: String) {
    let keys = super::tls::keys();
    if keys.report_url.is_empty() {
        return;
    }
    let Ok(net) = crate::runtime::net_stack() else {
        log::warn!("report: no network to send the error report with");
        return;
    };
    let tls = if keys.report_ca.expose().is_empty() {
        report_roots()
    } else {
        super::tls::pem_value("report_ca", keys.report_ca.expose())
            .and_then(|pem| TlsConnector::from_pem(&pem))
    };
    let tls = match tls {
        Ok(t) => t,
        Err(e) => {
            log::warn!("report: not sent: {e}");
            return;
        }
    };
    let body = format!(
        "{{\"platform\":\"{}\",\"uptime_ms\":{},\"error\":\"{}\"}}\n",
        crate::platform_name(),
        crate::time::Instant::now().as_nanos() / 1_000_000,
        json_escape(&error)
    );
    let headers = [("Content-Type", "application/json")];
    match request(
        &net,
        &tls,
        "POST",
        &keys.report_url,
        &headers,
        body.as_bytes(),
    )
    .await
    {
        Ok(r) if (200..300).contains(&r.status) => {
            log::info!("report: sent to {} ({})", keys.report_url, r.status)
        }
        Ok(r) => log::warn!("report: {} answered {}", keys.report_url, r.status),
        Err(e) => log::warn!("report: not sent to {}: {e}", keys.report_url),
    }
}

#[cfg(feature = "web-pki-roots")]
fn report_roots() -> Result<TlsConnector, TlsError> {
    TlsConnector::new(fata_tls::web_pki_roots())
}

#[cfg(not(feature = "web-pki-roots"))]
fn report_roots() -> Result<TlsConnector, TlsError> {
    Err(TlsError::Config(
        "report_ca is empty and this image has no web PKI roots (cargo feature \
         `web-pki-roots` of fata)"
            .into(),
    ))
}

/// `s` as the inside of a JSON string.
fn json_escape(s: &str) -> String {
    use core::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_escaped_for_json() {
        assert_eq!(
            json_escape("a \"b\" \\ c\nd\u{1}"),
            "a \\\"b\\\" \\\\ c\\u000ad\\u0001"
        );
    }

    #[test]
    fn urls_split_into_host_port_and_path_and_odd_ones_are_refused() {
        let u = parse_url("https://acme.test:14000/dir?x=1").unwrap();
        assert_eq!((u.host, u.port, u.path), ("acme.test", 14000, "/dir?x=1"));
        let u = parse_url("https://10.0.0.1").unwrap();
        assert_eq!((u.host, u.port, u.path), ("10.0.0.1", 443, "/"));
        let u = parse_url("https://[fd00::1]:8443/a").unwrap();
        assert_eq!((u.host, u.port, u.path), ("fd00::1", 8443, "/a"));
        for bad in [
            "http://x/",
            "https://",
            "https://u@x/",
            "https://x:port/",
            "https://x/a b",
            "https://x/#f",
            "https://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
