//! What the client needs from the runtime, as traits: one HTTPS request at a time
//! ([`Transport`]), a timer ([`Sleep`]) and somewhere to publish http-01 answers
//! ([`Http01Responder`]). The runtime implements them over its TLS client, timers and HTTP
//! server; tests implement them with a simulated CA. Futures need not be `Send`: the executor is
//! single-threaded.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

/// The HTTP methods ACME uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The directory (and newNonce, if HEAD is not used).
    Get,
    /// newNonce.
    Head,
    /// Every JWS request, including POST-as-GET.
    Post,
}

/// One request. `content_type` is `application/jose+json` for POSTs.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Method.
    pub method: Method,
    /// Absolute `https://` URL from the directory or a `Location`.
    pub url: &'a str,
    /// `Content-Type` to send, if any.
    pub content_type: Option<&'a str>,
    /// The body (empty for GET/HEAD).
    pub body: &'a [u8],
}

/// One response. Header names in any case; the client compares them case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// The request never produced a response (DNS, TCP, TLS, timeout...), in the transport's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(pub String);

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An HTTPS client. It should bound each request with a timeout and cap body sizes.
#[allow(async_fn_in_trait)] // single-threaded executor: no Send bound wanted
pub trait Transport {
    /// Performs one request.
    async fn request(&mut self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError>;
}

/// A timer.
#[allow(async_fn_in_trait)]
pub trait Sleep {
    /// Completes after `d`.
    async fn sleep(&mut self, d: Duration);
}

/// Where the client publishes http-01 answers so the app's HTTP server on port 80 can serve
/// `GET /.well-known/acme-challenge/<token>` with the key authorization as body.
pub trait Http01Responder {
    /// Start answering for `token`.
    fn publish(&mut self, token: &str, key_authorization: &str);
    /// Stop answering for `token` (called once the challenge is finished, either way).
    fn withdraw(&mut self, token: &str);
}

/// The path prefix of http-01 requests (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// A shared token → key authorization map: give one clone to the client, keep one in the HTTP
/// server and call [`Http01Tokens::answer`] for each request path.
#[derive(Debug, Clone, Default)]
pub struct Http01Tokens(Rc<RefCell<BTreeMap<String, String>>>);

impl Http01Tokens {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// The body to send for request `path`, if it is a challenge this client published.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.0.borrow().get(token).cloned()
    }
    /// How many tokens are published.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    /// True when nothing is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Http01Responder for Http01Tokens {
    fn publish(&mut self, token: &str, key_authorization: &str) {
        self.0
            .borrow_mut()
            .insert(String::from(token), String::from(key_authorization));
    }
    fn withdraw(&mut self, token: &str) {
        self.0.borrow_mut().remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_answer_only_published_challenge_paths() {
        let server_side = Http01Tokens::new();
        let mut client_side = server_side.clone();
        client_side.publish("abc", "abc.thumb");
        assert_eq!(
            server_side
                .answer("/.well-known/acme-challenge/abc")
                .as_deref(),
            Some("abc.thumb")
        );
        assert_eq!(server_side.answer("/.well-known/acme-challenge/abd"), None);
        assert_eq!(server_side.answer("/abc"), None);
        client_side.withdraw("abc");
        assert!(server_side.is_empty());
    }

    #[test]
    fn header_lookup_ignores_case_and_trims() {
        let r = HttpResponse {
            status: 200,
            headers: alloc::vec![("replay-NONCE".into(), " xyz ".into())],
            body: Vec::new(),
        };
        assert_eq!(r.header("Replay-Nonce"), Some("xyz"));
        assert_eq!(r.header("Location"), None);
    }
}
