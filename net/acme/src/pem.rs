//! PEM (RFC 7468): encoding DER as `-----BEGIN LABEL-----` blocks with 64-column base64, and
//! parsing every block out of a text such as a certificate chain. Untrusted text: malformed
//! blocks are errors, never panics.

use crate::b64;
use alloc::string::String;
use alloc::vec::Vec;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The label, e.g. `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded DER.
    pub der: Vec<u8>,
}

/// Why a PEM text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemError {
    /// A BEGIN line without a matching END line.
    Unterminated,
    /// END label differs from BEGIN label, or a label is malformed.
    BadLabel,
    /// The body is not valid base64.
    BadBase64,
}

impl core::fmt::Display for PemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PemError::Unterminated => "PEM block without an END line",
            PemError::BadLabel => "PEM END label does not match its BEGIN label",
            PemError::BadBase64 => "PEM body is not valid base64",
        })
    }
}

/// Encodes `der` as one PEM block, lines of 64 characters, ending in a newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = b64::encode_std(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, after) = rest.split_at(rest.len().min(64)); // base64 is ASCII
        out.push_str(line);
        out.push('\n');
        rest = after;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Parses every PEM block in `text`, in order; text between blocks is ignored (RFC 7468 §2).
pub fn parse_all(text: &str) -> Result<Vec<Block>, PemError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin.find(DASHES).ok_or(PemError::BadLabel)?;
        let label = &after_begin[..label_end];
        if label.contains(['\n', '\r']) {
            return Err(PemError::BadLabel);
        }
        let body_start = &after_begin[label_end + DASHES.len()..];
        let end_marker_pos = body_start.find("-----END ").ok_or(PemError::Unterminated)?;
        let body = &body_start[..end_marker_pos];
        let after_end = &body_start[end_marker_pos + "-----END ".len()..];
        let end_label_len = after_end.find(DASHES).ok_or(PemError::Unterminated)?;
        if &after_end[..end_label_len] != label {
            return Err(PemError::BadLabel);
        }
        let der = b64::decode_std(body).ok_or(PemError::BadBase64)?;
        blocks.push(Block {
            label: String::from(label),
            der,
        });
        rest = &after_end[end_label_len + DASHES.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn encode_wraps_at_64_and_parses_back() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("CERTIFICATE", &der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let blocks = parse_all(&pem).unwrap();
        assert_eq!(
            blocks,
            [Block {
                label: "CERTIFICATE".into(),
                der
            }]
        );
    }

    #[test]
    fn a_chain_with_text_between_blocks_and_crlf_parses_in_order() {
        let a = encode("CERTIFICATE", b"leaf");
        let b = encode("CERTIFICATE", b"issuer").replace('\n', "\r\n");
        let text = format!("subject=foo\n{a}\nissuer=bar\n{b}");
        let blocks = parse_all(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, b"leaf");
        assert_eq!(blocks[1].der, b"issuer");
        assert!(parse_all("no pem here").unwrap().is_empty());
    }

    #[test]
    fn broken_blocks_are_errors() {
        let good = encode("CERTIFICATE", b"hello world");
        assert_eq!(
            parse_all(&good.replace("END CERTIFICATE", "END KEY")),
            Err(PemError::BadLabel)
        );
        assert_eq!(
            parse_all(&good.replace("aGVs", "a*Vs")),
            Err(PemError::BadBase64)
        );
        assert_eq!(
            parse_all("-----BEGIN X-----\nAAAA\n"),
            Err(PemError::Unterminated)
        );
        for cut in 0..good.len() - 1 {
            // (only the final newline may go)
            let r = parse_all(&good[..cut]);
            assert!(
                r.is_err() || r.as_ref().unwrap().is_empty(),
                "cut {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn random_text_never_panics() {
        let mut x = 0xdead_beef_cafe_f00du64;
        let alphabet = b"-----BEGIN END CERT\nAZaz09+/=\r ";
        for _ in 0..5000 {
            let len = (x % 120) as usize;
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(alphabet[(x as usize) % alphabet.len()])
                })
                .collect();
            let _ = parse_all(&s);
        }
    }
}
