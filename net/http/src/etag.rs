//! Entity tags: a 64-bit FNV-1a hash of a file's bytes, written as a strong ETag.
//!
//! This module depends on nothing but `core` on purpose: a build script includes it with
//! `#[path = ".../net/http/src/etag.rs"] mod etag;` so that the ETags it embeds at build time are
//! computed by exactly this code. Keep it free of `crate::`, `alloc` and `std` paths.

/// The 64-bit FNV-1a hash of `bytes` (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
///
/// Not a cryptographic hash: it only tells versions of a file apart for caching.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A strong entity tag: `"` + 16 lowercase hex digits + `"`, 18 ASCII bytes, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag([u8; 18]);

impl ETag {
    /// The tag as it appears in an `ETag` header, quotes included (`"0123456789abcdef"`).
    pub fn as_str(&self) -> &str {
        // The bytes are always ASCII (quotes and hex digits), so this never takes the fallback.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl core::fmt::Display for ETag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for ETag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ETag({})", self.as_str())
    }
}

/// The strong ETag of `body`: its [`fnv1a64`] hash as 16 lowercase hex digits in double quotes.
pub const fn etag_for(body: &[u8]) -> ETag {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a64(body);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    ETag(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_test_vectors() {
        // Vectors from the FNV reference (draft-eastlake-fnv, section 8).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn etag_is_quoted_lowercase_hex_of_the_hash() {
        let tag = etag_for(b"a");
        assert_eq!(tag.as_str(), "\"af63dc4c8601ec8c\"");
        assert_eq!(etag_for(b"").as_str(), "\"cbf29ce484222325\"");
    }

    #[test]
    fn etag_is_computable_in_a_const_context() {
        const TAG: ETag = etag_for(b"foobar");
        assert_eq!(TAG.as_str(), "\"85944171f73967e8\"");
    }

    #[test]
    fn different_bodies_get_different_etags() {
        assert_ne!(etag_for(b"hello"), etag_for(b"hellp"));
        assert_ne!(etag_for(b"\0"), etag_for(b""));
    }
}
