//! Content types: the `Content-Type` a static file is served with, chosen by its extension.
//!
//! This module depends on nothing but `core` on purpose: a build script includes it with
//! `#[path = ".../net/http/src/mime.rs"] mod mime;` so that the types it embeds at build time
//! follow exactly these rules. Keep it free of `crate::`, `alloc` and `std` paths.

/// The type of a file with no known extension.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The `Content-Type` for `path`, from the extension of its last segment (case-insensitive).
///
/// Text types carry `; charset=utf-8`. Unknown or missing extensions give
/// [`OCTET_STREAM`], so a browser downloads rather than guesses.
pub fn content_type_for(path: &str) -> &'static str {
    let name = match path.rfind('/') {
        Some(slash) => path.get(slash + 1..).unwrap_or(""),
        None => path,
    };
    let ext = match name.rfind('.') {
        // A leading dot (".profile") names a hidden file, not an extension.
        Some(0) | None => return OCTET_STREAM,
        Some(dot) => name.get(dot + 1..).unwrap_or(""),
    };
    const TYPES: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("ico", "image/x-icon"),
        ("wasm", "application/wasm"),
        ("woff2", "font/woff2"),
        ("xml", "application/xml"),
        ("pdf", "application/pdf"),
    ];
    let mut i = 0;
    while i < TYPES.len() {
        let (known, content_type) = TYPES[i];
        if ext.eq_ignore_ascii_case(known) {
            return content_type;
        }
        i += 1;
    }
    OCTET_STREAM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_carry_utf8_charset() {
        assert_eq!(content_type_for("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("/a/b.htm"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("/style.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type_for("/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type_for("/hello.txt"), "text/plain; charset=utf-8");
    }

    #[test]
    fn every_listed_extension_maps_to_its_type() {
        for (path, expected) in [
            ("/data/info.json", "application/json"),
            ("/logo.svg", "image/svg+xml"),
            ("/a.png", "image/png"),
            ("/a.jpg", "image/jpeg"),
            ("/a.jpeg", "image/jpeg"),
            ("/a.gif", "image/gif"),
            ("/favicon.ico", "image/x-icon"),
            ("/app.wasm", "application/wasm"),
            ("/font.woff2", "font/woff2"),
            ("/feed.xml", "application/xml"),
            ("/paper.pdf", "application/pdf"),
        ] {
            assert_eq!(content_type_for(path), expected, "{path}");
        }
    }

    #[test]
    fn extension_match_ignores_case() {
        assert_eq!(content_type_for("/PHOTO.JPG"), "image/jpeg");
        assert_eq!(content_type_for("/Index.Html"), "text/html; charset=utf-8");
    }

    #[test]
    fn unknown_or_missing_extension_is_octet_stream() {
        for path in [
            "",
            "/",
            "/README",
            "/archive.tar.zst",
            "/dir.d/file",
            "/.hidden",
            "/trailing.",
            "x",
        ] {
            assert_eq!(content_type_for(path), OCTET_STREAM, "{path:?}");
        }
    }

    #[test]
    fn only_the_last_extension_counts() {
        assert_eq!(content_type_for("/notes.txt.gz"), OCTET_STREAM);
        assert_eq!(
            content_type_for("/archive.gz.txt"),
            "text/plain; charset=utf-8"
        );
    }
}
