//! Base64: the URL-safe alphabet without padding (RFC 4648 §5, as JWS and ACME use it) and the
//! standard alphabet with padding (PEM bodies). Pure functions over bytes; decoding untrusted text
//! returns `None` on any bad character, bad length or non-zero trailing bits, never panics.

use alloc::string::String;
use alloc::vec::Vec;

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(alphabet[idx]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8, url: bool) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' if url => 62,
        b'_' if url => 63,
        b'+' if !url => 62,
        b'/' if !url => 63,
        _ => return None,
    } as u32)
}

/// Decodes unpadded symbols (any padding already removed).
fn decode_symbols(text: &[u8], url: bool) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c, url)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = chunk.len() - 1; // 4 symbols -> 3 bytes, 3 -> 2, 2 -> 1
        // Bits below the last whole byte must be zero (canonical encoding).
        let unused = match keep {
            1 => n & 0xFFFF,
            2 => n & 0xFF,
            _ => 0,
        };
        if unused != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

/// base64url without padding, as used in JWS (RFC 7515 §2).
pub fn encode_url(data: &[u8]) -> String {
    encode_with(data, URL, false)
}

/// Decodes base64url without padding; `None` for padding, whitespace or any other bad input.
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    decode_symbols(text.as_bytes(), true)
}

/// Standard base64 with `=` padding (PEM bodies).
pub fn encode_std(data: &[u8]) -> String {
    encode_with(data, STD, true)
}

/// Decodes standard base64, ignoring ASCII whitespace; padding is optional but must be at the end.
pub fn decode_std(text: &str) -> Option<Vec<u8>> {
    let mut symbols: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut pads = 0;
    while symbols.last() == Some(&b'=') {
        symbols.pop();
        pads += 1;
    }
    if pads > 2 || (pads > 0 && !(symbols.len() + pads).is_multiple_of(4)) {
        return None;
    }
    decode_symbols(&symbols, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_round_trip_in_both_alphabets() {
        let vectors: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, std) in vectors {
            assert_eq!(encode_std(plain.as_bytes()), std);
            assert_eq!(decode_std(std).unwrap(), plain.as_bytes());
            let url = std.trim_end_matches('=');
            assert_eq!(encode_url(plain.as_bytes()), url);
            assert_eq!(decode_url(url).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn url_alphabet_uses_dash_and_underscore() {
        assert_eq!(encode_url(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(encode_std(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(decode_url("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
        assert!(decode_url("+/+/").is_none());
    }

    #[test]
    fn rfc7515_example_header_decodes() {
        // RFC 7515 appendix A.1 protected header.
        let h = decode_url("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9").unwrap();
        assert_eq!(h, b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(
            decode_url("Zg==").is_none(),
            "padding is not base64url-nopad"
        );
        assert!(decode_url("Z").is_none(), "one symbol cannot be a byte");
        assert!(decode_url("Zh").is_none(), "non-zero trailing bits");
        assert!(decode_url("Zm 9v").is_none());
        assert!(decode_std("Zg=").is_none());
        assert!(decode_std("Z===").is_none());
        assert!(decode_std("Zg==Zg==").is_none());
        assert_eq!(decode_std("Zm9v\nYmFy\r\n").unwrap(), b"foobar");
    }

    #[test]
    fn random_bytes_round_trip_and_garbage_never_panics() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert_eq!(decode_url(&encode_url(&data)).unwrap(), data);
            assert_eq!(decode_std(&encode_std(&data)).unwrap(), data);
            let garbage = String::from_utf8_lossy(&data);
            let _ = decode_url(&garbage);
            let _ = decode_std(&garbage);
        }
    }
}
