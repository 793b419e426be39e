//! The site: a fixed table of files compiled into the image, and the mapping from a request
//! path to one of them.
//!
//! Files are `'static` (normally `include_bytes!` tables written by a build script), so serving
//! one never copies or allocates its body. [`Site::lookup`] percent-decodes the path into a
//! small buffer, refuses anything that could mean "outside the site" (`..`, `.`, NUL, control
//! bytes, backslashes, bad `%` escapes) and compares the result with the table. There is no
//! file system behind it: a refused or unknown path is simply "not found".

use alloc::vec::Vec;

/// One file of the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    /// Absolute URL path, starting with `/` (`/index.html`, `/docs/index.html`).
    pub path: &'static str,
    /// The bytes served.
    pub body: &'static [u8],
    /// The `Content-Type` header value, normally from [`content_type_for`](crate::content_type_for).
    pub content_type: &'static str,
    /// The strong ETag, quotes included, normally from [`etag_for`](crate::etag_for).
    pub etag: &'static str,
}

/// A set of files served under their paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// The files. Order does not matter; paths should be unique (the first match wins).
    pub files: &'static [File],
}

/// Longest request path [`Site::lookup`] will decode; longer paths are not found.
pub const MAX_PATH: usize = 1024;

impl Site {
    /// A site serving `files`.
    pub const fn new(files: &'static [File]) -> Site {
        Site { files }
    }

    /// The file for request path `path` (as in [`Request::path`](crate::Request::path), still
    /// percent-encoded, without query).
    ///
    /// `/` serves `/index.html` and `/dir/` serves `/dir/index.html`. `None` for unknown
    /// paths and for any path that is refused: not starting with `/`, longer than
    /// [`MAX_PATH`], a malformed `%` escape, a `.` or `..` segment (also when encoded as
    /// `%2e`), or a decoded NUL, control byte or backslash.
    pub fn lookup(&self, path: &str) -> Option<&'static File> {
        let mut wanted = decode_path(path)?;
        if wanted.ends_with(b"/") {
            wanted.extend_from_slice(b"index.html");
        }
        self.files
            .iter()
            .find(|file| file.path.as_bytes() == wanted.as_slice())
    }
}

/// Percent-decodes `s` (`%41` is `A`; `+` stays `+`); `None` for a `%` not followed by two
/// hex digits.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(if b == b'%' {
            let high = hex_value(bytes.next()?)?;
            let low = hex_value(bytes.next()?)?;
            (high << 4) | low
        } else {
            b
        });
    }
    Some(out)
}

/// Percent-decodes `path` and checks it is a safe absolute path; `None` if refused.
fn decode_path(path: &str) -> Option<Vec<u8>> {
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') || raw.len() > MAX_PATH {
        return None;
    }
    let mut out = percent_decode(path)?;
    if out.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
        return None;
    }
    out.reserve("index.html".len());
    if out
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return None;
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) static FILES: &[File] = &[
        File {
            path: "/index.html",
            body: b"<h1>fata</h1>\n",
            content_type: "text/html; charset=utf-8",
            etag: "\"1111111111111111\"",
        },
        File {
            path: "/docs/index.html",
            body: b"<h1>docs</h1>\n",
            content_type: "text/html; charset=utf-8",
            etag: "\"2222222222222222\"",
        },
        File {
            path: "/hello.txt",
            body: b"hello\n",
            content_type: "text/plain; charset=utf-8",
            etag: "\"3333333333333333\"",
        },
        File {
            path: "/my file.txt",
            body: b"spaced\n",
            content_type: "text/plain; charset=utf-8",
            etag: "\"4444444444444444\"",
        },
    ];
    pub(crate) static SITE: Site = Site::new(FILES);

    fn found(path: &str) -> Option<&'static str> {
        SITE.lookup(path).map(|file| file.path)
    }

    #[test]
    fn exact_paths_are_found() {
        assert_eq!(found("/hello.txt"), Some("/hello.txt"));
        assert_eq!(found("/docs/index.html"), Some("/docs/index.html"));
    }

    #[test]
    fn root_and_directory_paths_map_to_index_html() {
        assert_eq!(found("/"), Some("/index.html"));
        assert_eq!(found("/docs/"), Some("/docs/index.html"));
        // Without the slash it is not the directory (no redirects here).
        assert_eq!(found("/docs"), None);
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/nope",
            "/hello.txt/",
            "/HELLO.TXT",
            "/index",
            "/data/",
            "//hello.txt",
        ] {
            assert_eq!(found(path), None, "{path}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(found("/hello%2etxt"), Some("/hello.txt"));
        assert_eq!(found("/my%20file.txt"), Some("/my file.txt"));
        assert_eq!(found("/%64ocs/"), Some("/docs/index.html"));
        assert_eq!(found("/docs%2F"), Some("/docs/index.html"));
    }

    #[test]
    fn path_traversal_is_rejected() {
        for path in [
            "/../index.html",
            "/docs/../index.html",
            "/docs/..",
            "/..",
            "/./index.html",
            "/docs/./",
            "/%2e%2e/index.html",
            "/docs/%2E%2E/hello.txt",
            "/docs/.%2e/hello.txt",
            "/%2e/hello.txt",
            "/docs%2f..%2fhello.txt",
            "/..%5chello.txt",
            "/docs\\..\\hello.txt",
        ] {
            assert_eq!(found(path), None, "{path}");
        }
    }

    #[test]
    fn dots_inside_names_are_not_traversal() {
        // "..." and "a..b" are ordinary names; they are just not in the table.
        assert!(decode_path("/.../a..b/.x").is_some());
    }

    #[test]
    fn nul_control_bytes_and_bad_escapes_are_rejected() {
        for path in [
            "/hello.txt%00",
            "/hello.txt\0",
            "/hello%0a.txt",
            "/hello%7f.txt",
            "/hello%2",
            "/hello%",
            "/hello%zz.txt",
            "/hello%+1.txt",
        ] {
            assert_eq!(found(path), None, "{path:?}");
        }
    }

    #[test]
    fn paths_not_starting_with_slash_or_too_long_are_rejected() {
        assert_eq!(found(""), None);
        assert_eq!(found("hello.txt"), None);
        assert_eq!(found("*"), None);
        let long = alloc::format!("/{}", "a".repeat(MAX_PATH));
        assert_eq!(decode_path(&long), None);
    }
}
