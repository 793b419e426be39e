//! Deterministic fuzz-style tests: random, mutated and truncated input through the whole crate.
//!
//! A fixed-seed xorshift generator makes every run feed the same inputs, so a failure
//! reproduces. Each input goes through [`parse_request`], [`respond_static`],
//! [`Response::write_to`], [`serve`], [`Site::lookup`] and [`content_type_for`]; the tests
//! assert that nothing panics and that every result is consistent with the input.

use alloc::vec::Vec;

use crate::site::tests::SITE;
use crate::{
    Limits, ParseError, Served, content_type_for, error_response, parse_request, respond_static,
    serve,
};

/// xorshift64: tiny, deterministic, good enough to pick bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }
}

const VALID: &[u8] = b"GET /docs/?q=1 HTTP/1.1\r\nHost: fata\r\nConnection: keep-alive\r\n\
If-None-Match: \"2222222222222222\"\r\nContent-Length: 0\r\n\r\n";

/// Slots of a request head, each with valid and broken choices. A request is assembled by
/// picking one choice per slot, mostly valid ones, so that many inputs get past the request
/// line and reach every response and every error.
type Slot = (&'static [&'static [u8]], &'static [&'static [u8]]);

const METHOD: Slot = (
    &[b"GET", b"HEAD", b"POST", b"OPTIONS"],
    &[b"G T", b"", b"\xff", b"get"],
);
const SPACE: Slot = (&[b" "], &[b"  ", b"\t", b""]);
const TARGET: Slot = (
    &[
        b"/",
        b"/index.html",
        b"/docs/",
        b"/hello.txt?x=1",
        b"/nope",
        b"http://h:1/docs/",
        b"*",
    ],
    &[
        b"/../hello.txt",
        b"/%2e%2e/",
        b"/%",
        b"/%00",
        b"http://h",
        b"h:1",
        b"/\x7f",
        b"/#f",
        b"",
    ],
);
const VERSION: Slot = (
    &[b"HTTP/1.1", b"HTTP/1.0"],
    &[b"HTTP/2.0", b"HTTP/3", b"HTTP/", b"http/1.1", b""],
);
const NEWLINE: Slot = (&[b"\r\n", b"\n"], &[b"\r", b""]);
const HEADER: Slot = (
    &[
        b"Host: fata",
        b"Connection: close",
        b"Connection: keep-alive",
        b"Content-Length: 12",
        b"If-None-Match: \"2222222222222222\"",
        b"If-None-Match: *",
        b"Accept: */*",
        b"X: \xc3\xa9",
    ],
    &[
        b"Host:",
        b"Content-Length: 18446744073709551616",
        b"Content-Length: -1",
        b"Content-Length: 99999999",
        b"Transfer-Encoding: chunked",
        b"Bad Header",
        b": x",
        b"X:\0",
        b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ],
);

fn assemble(rng: &mut XorShift) -> Vec<u8> {
    let mut input = Vec::new();
    let mut fill = |rng: &mut XorShift, (good, bad): Slot| {
        let choices = if rng.below(12) == 0 { bad } else { good };
        input.extend_from_slice(rng.pick(choices));
    };
    for slot in [METHOD, SPACE, TARGET, SPACE, VERSION, NEWLINE] {
        fill(rng, slot);
    }
    for _ in 0..rng.below(5) {
        fill(rng, HEADER);
        fill(rng, NEWLINE);
    }
    fill(rng, NEWLINE);
    // Sometimes cut it short, sometimes pipeline a second one behind it.
    match rng.below(4) {
        0 => input.truncate(rng.below(input.len() + 1)),
        1 => input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        _ => {}
    }
    input
}

/// Runs `input` through everything and checks the results against it.
fn check(input: &[u8], limits: &Limits) {
    let mut out = Vec::new();
    match parse_request(input, limits) {
        Ok(None) => {
            assert!(
                input.len() < limits.max_head,
                "incomplete at or past max_head"
            );
        }
        Ok(Some((req, head_len))) => {
            assert!(head_len > 0 && head_len <= input.len() && head_len <= limits.max_head);
            assert!(
                req.path.starts_with('/') || req.path == "*",
                "path {:?}",
                req.path
            );
            assert!(
                !req.path.contains(['?', '#']),
                "query left in {:?}",
                req.path
            );
            assert!(req.content_length <= limits.max_body);
            let response = respond_static(&SITE, &req);
            assert!(matches!(response.status, 200 | 304 | 404 | 405));
            if response.status == 200 {
                assert!(SITE.files.iter().any(|f| f.body == response.body));
            }
            response.write_to(&mut out);
            assert!(out.starts_with(b"HTTP/1.1 "));
        }
        Err(e) => {
            error_response(e).write_to(&mut out);
            assert!(out.starts_with(b"HTTP/1.1 4") || out.starts_with(b"HTTP/1.1 5"));
        }
    }
    out.clear();
    match serve(&SITE, input, limits, &mut out) {
        Served::Incomplete => assert!(out.is_empty()),
        Served::Responded { consumed, .. } => {
            assert!(consumed <= input.len());
            assert!(out.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        Served::Refused(_) => assert!(out.ends_with(b"\n")),
    }
    if let Ok(text) = core::str::from_utf8(input) {
        let _ = SITE.lookup(text);
        let _ = content_type_for(text);
    }
}

#[test]
fn random_bytes_never_panic_and_give_consistent_results() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limits = Limits::default();
    for _ in 0..4000 {
        let len = rng.below(300);
        let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&input, &limits);
    }
}

#[test]
fn assembled_http_like_garbage_never_panics() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let small = Limits {
        max_head: 96,
        max_headers: 4,
        max_body: 16,
    };
    let mut errors = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..20_000 {
        let input = assemble(&mut rng);
        let limits = if i % 4 == 0 { &small } else { &Limits::DEFAULT };
        check(&input, limits);
        match parse_request(&input, limits) {
            Ok(None) => statuses.push(0),
            Ok(Some((req, _))) => statuses.push(respond_static(&SITE, &req).status),
            Err(e) => errors.push(e),
        }
    }
    // The generator must reach every outcome, or the test proves less than it claims.
    for status in [0, 200, 304, 404, 405] {
        assert!(statuses.contains(&status), "never got {status}");
    }
    for e in [
        ParseError::TooLarge,
        ParseError::Malformed,
        ParseError::BadVersion,
        ParseError::BodyTooLarge,
        ParseError::LengthRequired,
    ] {
        assert!(errors.contains(&e), "never got {e:?}");
    }
}

#[test]
fn mutated_valid_requests_never_panic() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    let limits = Limits::default();
    for _ in 0..10_000 {
        let mut input = VALID.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(3) {
                0 if at < input.len() => input[at] = rng.next() as u8,
                1 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.insert(at, rng.next() as u8),
            }
        }
        check(&input, &limits);
    }
}

#[test]
fn every_prefix_of_a_valid_request_is_incomplete_and_the_whole_is_served() {
    let limits = Limits::default();
    for end in 0..VALID.len() {
        let prefix = &VALID[..end];
        check(prefix, &limits);
        assert_eq!(
            parse_request(prefix, &limits),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    let (req, len) = parse_request(VALID, &limits)
        .expect("valid request")
        .expect("complete");
    assert_eq!((req.path, len), ("/docs/", VALID.len()));
    // The If-None-Match names /docs/index.html's ETag.
    assert_eq!(respond_static(&SITE, &req).status, 304);
}

#[test]
fn every_prefix_under_a_tight_head_limit_is_incomplete_or_too_large() {
    let limits = Limits {
        max_head: 40,
        ..Limits::DEFAULT
    };
    for end in 0..=VALID.len() {
        let result = parse_request(&VALID[..end], &limits);
        if end < 40 {
            assert_eq!(result, Ok(None), "prefix of {end} bytes");
        } else {
            assert_eq!(result, Err(ParseError::TooLarge), "prefix of {end} bytes");
        }
    }
}

#[test]
fn random_paths_never_escape_the_site() {
    let mut rng = XorShift(0x1357_9bdf_2468_ace0);
    let parts: &[&[u8]] = &[
        b"/",
        b"/",
        b"..",
        b".",
        b"%2e",
        b"%2E",
        b"%2f",
        b"%5c",
        b"%00",
        b"docs",
        b"index.html",
        b"hello.txt",
        b"%",
        b"a",
    ];
    let mut found = 0;
    for _ in 0..20_000 {
        let mut path = Vec::new();
        for _ in 0..rng.below(8) {
            path.extend_from_slice(rng.pick(parts));
        }
        let Ok(path) = core::str::from_utf8(&path) else {
            continue;
        };
        // An independent oracle for this alphabet: decode the escapes it can contain, then look
        // for dot segments, NUL, backslashes and stray '%'.
        let plain = path
            .replace("%2e", ".")
            .replace("%2E", ".")
            .replace("%2f", "/")
            .replace("%5c", "\\");
        let refused = plain.contains("%")
            || plain.contains('\\')
            || plain
                .split('/')
                .any(|segment| segment == "." || segment == "..");
        if let Some(file) = SITE.lookup(path) {
            assert!(!refused, "{path:?} reached {}", file.path);
            found += 1;
        }
    }
    assert!(found > 100, "only {found} lookups succeeded");
}
