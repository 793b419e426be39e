//! Just enough DER (X.690) for ACME: a writer for the CSR, and a checked reader that walks a
//! certificate to its `notAfter` (UTCTime or GeneralizedTime). The reader takes untrusted bytes:
//! every length is checked against the input before use, and anything odd is `None`.

use alloc::vec::Vec;

/// Universal tags used here.
pub mod tag {
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// UTF8String
    pub const UTF8_STRING: u8 = 0x0C;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
}

/// Encodes one TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed TLV from already-encoded parts.
pub fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(tag::SEQUENCE, parts)
}

/// An OBJECT IDENTIFIER from its arcs (first two arcs per X.690 §8.19).
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = (v & 0x7F) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        body.extend_from_slice(&tmp[i..]);
    };
    if let [a, b, rest @ ..] = arcs {
        push(a * 40 + b);
        for &r in rest {
            push(r);
        }
    }
    tlv(tag::OID, &body)
}

/// A non-negative INTEGER from big-endian magnitude bytes (minimal encoding).
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed = match magnitude.iter().position(|&b| b != 0) {
        Some(i) => &magnitude[i..],
        None => &[][..],
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &body)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 1);
    body.push(0);
    body.extend_from_slice(bytes);
    tlv(tag::BIT_STRING, &body)
}

/// A checked reader over DER bytes.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }
    /// True when everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
    /// The next element's tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }
    /// Reads one TLV: (tag, content). Only definite, minimal-length lengths up to 4 bytes.
    pub fn read_any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1F == 0x1F {
            return None; // multi-byte tags never appear in what we read
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 {
                return None; // indefinite or absurd length
            }
            let (bytes, after) = rest.split_at_checked(n)?;
            rest = after;
            let mut len = 0usize;
            for &b in bytes {
                len = (len << 8) | usize::from(b);
            }
            if len < 0x80 || bytes[0] == 0 {
                return None; // not minimal: DER forbids it
            }
            len
        };
        let (content, after) = rest.split_at_checked(len)?;
        self.rest = after;
        Some((tag, content))
    }
    /// Reads one TLV that must carry `tag`.
    pub fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.read_any()? {
            (t, content) if t == tag => Some(content),
            _ => None,
        }
    }
    /// Reads a SEQUENCE and returns a reader over its content.
    pub fn sequence(&mut self) -> Option<Reader<'a>> {
        self.read(tag::SEQUENCE).map(Reader::new)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// Parses a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) into Unix seconds.
/// RFC 5280 §4.1.2.5 requires seconds and `Z`; fractions and offsets are refused.
pub fn parse_time(tag_: u8, text: &[u8]) -> Option<i64> {
    let (year, rest) = match tag_ {
        tag::UTC_TIME if text.len() == 13 => {
            let yy = two_digits(text.get(0..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        tag::GENERALIZED_TIME if text.len() == 15 => {
            let hi = two_digits(text.get(0..2)?)?;
            let lo = two_digits(text.get(2..4)?)?;
            (hi * 100 + lo, text.get(4..)?)
        }
        _ => return None,
    };
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let month = two_digits(rest.get(0..2)?)?;
    let day = two_digits(rest.get(2..4)?)?;
    let hour = two_digits(rest.get(4..6)?)?;
    let min = two_digits(rest.get(6..8)?)?;
    let sec = two_digits(rest.get(8..10)?)?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if day == 0 || day > max_day || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec))
}

/// The validity of an X.509 certificate (DER): (notBefore, notAfter) in Unix seconds.
pub fn cert_validity(cert: &[u8]) -> Option<(i64, i64)> {
    let mut outer = Reader::new(cert);
    let mut certificate = outer.sequence()?;
    let mut tbs = certificate.sequence()?;
    if tbs.peek_tag() == Some(0xA0) {
        tbs.read_any()?; // [0] EXPLICIT version
    }
    tbs.read(tag::INTEGER)?; // serialNumber
    tbs.sequence()?; // signature AlgorithmIdentifier
    tbs.sequence()?; // issuer
    let mut validity = tbs.sequence()?;
    let (t, nb) = validity.read_any()?;
    let not_before = parse_time(t, nb)?;
    let (t, na) = validity.read_any()?;
    Some((not_before, parse_time(t, na)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_encoded_minimally_and_read_back() {
        for n in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let content = alloc::vec![7u8; n];
            let enc = tlv(tag::OCTET_STRING, &content);
            let mut r = Reader::new(&enc);
            assert_eq!(r.read(tag::OCTET_STRING).unwrap().len(), n);
            assert!(r.is_empty());
        }
        assert_eq!(tlv(4, &[0; 128])[..3], [4, 0x81, 0x80]);
        assert_eq!(tlv(4, &[0; 256])[..4], [4, 0x82, 1, 0]);
    }

    #[test]
    fn oids_and_integers_match_known_encodings() {
        assert_eq!(
            oid(&[1, 2, 840, 10045, 4, 3, 2]),
            [6, 8, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 4, 3, 2]
        );
        assert_eq!(oid(&[2, 5, 29, 17]), [6, 3, 0x55, 0x1D, 0x11]);
        assert_eq!(uint(&[0]), [2, 1, 0]);
        assert_eq!(uint(&[]), [2, 1, 0]);
        assert_eq!(uint(&[0, 0, 0x7F]), [2, 1, 0x7F]);
        assert_eq!(uint(&[0x80]), [2, 2, 0, 0x80]);
    }

    #[test]
    fn non_minimal_indefinite_and_overlong_lengths_are_refused() {
        assert!(Reader::new(&[0x30, 0x80, 0, 0]).read_any().is_none());
        assert!(
            Reader::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5])
                .read_any()
                .is_none()
        );
        assert!(Reader::new(&[0x04, 0x82, 0x00, 0x80]).read_any().is_none());
        assert!(
            Reader::new(&[0x04, 0x85, 1, 1, 1, 1, 1])
                .read_any()
                .is_none()
        );
        assert!(
            Reader::new(&[0x04, 0x84, 0xFF, 0xFF, 0xFF, 0xFF])
                .read_any()
                .is_none()
        );
        assert!(Reader::new(&[0x04, 3, 1, 2]).read_any().is_none());
        assert!(Reader::new(&[0x1F, 1, 0]).read_any().is_none());
    }

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(parse_time(tag::UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(
            parse_time(tag::UTC_TIME, b"491231235959Z"),
            Some(2_524_607_999)
        );
        assert_eq!(
            parse_time(tag::UTC_TIME, b"500101000000Z"),
            Some(-631_152_000)
        );
        assert_eq!(
            parse_time(tag::GENERALIZED_TIME, b"20380119031408Z"),
            Some(2_147_483_648)
        );
        assert_eq!(
            parse_time(tag::GENERALIZED_TIME, b"20240229120000Z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_time(tag::GENERALIZED_TIME, b"99991231235959Z"),
            Some(253_402_300_799)
        );
        for bad in [
            &b"230229000000Z"[..],
            b"231301000000Z",
            b"230100000000Z",
            b"231231240000Z",
            b"23123123595Z",
            b"231231235959+",
            b"2312312359a9Z",
            b"",
        ] {
            assert!(
                parse_time(tag::UTC_TIME, bad).is_none(),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        assert!(parse_time(tag::GENERALIZED_TIME, b"20231231235959.5Z").is_none());
        assert!(parse_time(tag::OCTET_STRING, b"700101000000Z").is_none());
    }

    #[test]
    fn days_from_civil_agrees_with_a_day_by_day_count() {
        let mut days = 0i64;
        for y in 1970..2110i64 {
            for m in 1..=12u32 {
                let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                let n = [
                    31,
                    if leap { 29 } else { 28 },
                    31,
                    30,
                    31,
                    30,
                    31,
                    31,
                    30,
                    31,
                    30,
                    31,
                ][m as usize - 1];
                for d in 1..=n {
                    assert_eq!(days_from_civil(y, m, d), days);
                    days += 1;
                }
            }
        }
    }
}
