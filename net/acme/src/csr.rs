//! PKCS#10 certificate signing requests (RFC 2986) in DER, built by hand: subject CN = the first
//! domain (when it fits the 64-character X.520 limit), a subjectAltName extension listing every
//! DNS name, an EC P-256 public key, signed ecdsa-with-SHA256.

use crate::der::{self, tag};
use crate::key::KeyPair;
use alloc::string::String;
use alloc::vec::Vec;

const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const OID_PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const OID_EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 14];
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];

/// The X.520 upper bound for a common name.
const MAX_CN: usize = 64;

/// Why a domain cannot go into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDomain(pub String);

impl core::fmt::Display for InvalidDomain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "invalid DNS name {:?} (ASCII letters, digits, '-', '.', labels of 1..=63, at most 253)",
            self.0
        )
    }
}

/// Checks a DNS name as ACME identifiers and IA5String SANs need it: ASCII (A-labels for IDNs),
/// labels of 1..=63 letters/digits/hyphens, total at most 253, an optional leading `*.`.
pub fn check_domain(name: &str) -> Result<(), InvalidDomain> {
    let bad = || InvalidDomain(String::from(name));
    let host = name.strip_prefix("*.").unwrap_or(name);
    if host.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in host.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// Builds a DER CSR for `domains` (at least one, each checked with [`check_domain`]).
pub fn build(key: &KeyPair, domains: &[&str]) -> Result<Vec<u8>, InvalidDomain> {
    let Some(first) = domains.first() else {
        return Err(InvalidDomain(String::new()));
    };
    for d in domains {
        check_domain(d)?;
    }
    let subject = if first.len() <= MAX_CN {
        let atv = der::seq(&[
            &der::oid(OID_COMMON_NAME),
            &der::tlv(tag::UTF8_STRING, first.as_bytes()),
        ]);
        der::seq(&[&der::cons(tag::SET, &[&atv])])
    } else {
        der::seq(&[]) // empty subject; the names are in the SAN (RFC 5280 §4.2.1.6)
    };
    let spki = der::seq(&[
        &der::seq(&[&der::oid(OID_EC_PUBLIC_KEY), &der::oid(OID_PRIME256V1)]),
        &der::bit_string(&key.public_point()),
    ]);
    let names: Vec<Vec<u8>> = domains
        .iter()
        .map(|d| der::tlv(0x82, d.as_bytes()))
        .collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let san = der::seq(&[
        &der::oid(OID_SUBJECT_ALT_NAME),
        &der::tlv(tag::OCTET_STRING, &der::seq(&names)),
    ]);
    let extensions = der::seq(&[&san]);
    let attribute = der::seq(&[
        &der::oid(OID_EXTENSION_REQUEST),
        &der::cons(tag::SET, &[&extensions]),
    ]);
    let attributes = der::cons(0xA0, &[&attribute]);
    let info = der::seq(&[&der::uint(&[0]), &subject, &spki, &attributes]);
    let sig = key.sign(&info);
    Ok(der::seq(&[
        &info,
        &der::seq(&[&der::oid(OID_ECDSA_SHA256)]),
        &der::bit_string(sig.to_der().as_bytes()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der::Reader;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};

    /// What a CA reads out of a CSR, parsed independently of the builder's helpers' structure.
    struct Parsed {
        cn: Option<Vec<u8>>,
        sans: Vec<Vec<u8>>,
    }

    /// Parses a CSR and verifies its self-signature; panics (fails the test) on any deviation.
    fn parse_and_verify(csr: &[u8]) -> Parsed {
        let mut outer = Reader::new(csr);
        let mut req = outer.sequence().unwrap();
        assert!(outer.is_empty());
        let (t, info_content) = req.read_any().unwrap();
        assert_eq!(t, tag::SEQUENCE);
        // Re-encode the exact TLV bytes of certificationRequestInfo for verification.
        let info_tlv = der::tlv(tag::SEQUENCE, info_content);
        assert!(
            csr.windows(info_tlv.len())
                .any(|w| w == info_tlv.as_slice())
        );
        let mut alg = req.sequence().unwrap();
        assert_eq!(
            alg.read(tag::OID).unwrap(),
            &der::oid(OID_ECDSA_SHA256)[2..]
        );
        assert!(alg.is_empty(), "ecdsa-with-SHA256 has absent parameters");
        let sig_bits = req.read(tag::BIT_STRING).unwrap();
        assert_eq!(sig_bits[0], 0);
        assert!(req.is_empty());

        let mut info = Reader::new(info_content);
        assert_eq!(info.read(tag::INTEGER).unwrap(), [0]);
        let mut subject = info.sequence().unwrap();
        let cn = if subject.is_empty() {
            None
        } else {
            let mut set = Reader::new(subject.read(tag::SET).unwrap());
            let mut atv = set.sequence().unwrap();
            assert_eq!(atv.read(tag::OID).unwrap(), &der::oid(OID_COMMON_NAME)[2..]);
            Some(atv.read(tag::UTF8_STRING).unwrap().to_vec())
        };
        let mut spki = info.sequence().unwrap();
        let mut alg = spki.sequence().unwrap();
        assert_eq!(
            alg.read(tag::OID).unwrap(),
            &der::oid(OID_EC_PUBLIC_KEY)[2..]
        );
        assert_eq!(alg.read(tag::OID).unwrap(), &der::oid(OID_PRIME256V1)[2..]);
        let point = spki.read(tag::BIT_STRING).unwrap();
        assert_eq!(point[0], 0);
        let vk = VerifyingKey::from_sec1_bytes(&point[1..]).unwrap();
        let sig = Signature::from_der(&sig_bits[1..]).unwrap();
        vk.verify(&info_tlv, &sig)
            .expect("CSR self-signature verifies");

        let mut attrs = Reader::new(info.read(0xA0).unwrap());
        assert!(info.is_empty());
        let mut attr = attrs.sequence().unwrap();
        assert_eq!(
            attr.read(tag::OID).unwrap(),
            &der::oid(OID_EXTENSION_REQUEST)[2..]
        );
        let mut set = Reader::new(attr.read(tag::SET).unwrap());
        let mut exts = set.sequence().unwrap();
        let mut ext = exts.sequence().unwrap();
        assert_eq!(
            ext.read(tag::OID).unwrap(),
            &der::oid(OID_SUBJECT_ALT_NAME)[2..]
        );
        let mut names = Reader::new(ext.read(tag::OCTET_STRING).unwrap())
            .sequence()
            .unwrap();
        let mut sans = Vec::new();
        while !names.is_empty() {
            sans.push(names.read(0x82).unwrap().to_vec());
        }
        Parsed { cn, sans }
    }

    fn key() -> KeyPair {
        KeyPair::from_bytes(&[0x42; 32]).unwrap()
    }

    #[test]
    fn csr_names_every_domain_and_its_signature_verifies() {
        let csr = build(
            &key(),
            &["example.org", "www.example.org", "*.api.example.org"],
        )
        .unwrap();
        let p = parse_and_verify(&csr);
        assert_eq!(p.cn.as_deref(), Some(&b"example.org"[..]));
        assert_eq!(
            p.sans,
            [
                &b"example.org"[..],
                b"www.example.org",
                b"*.api.example.org"
            ]
        );
    }

    #[test]
    fn a_tampered_csr_fails_verification() {
        let mut csr = build(&key(), &["example.org"]).unwrap();
        let pos = csr.windows(11).position(|w| w == b"example.org").unwrap();
        csr[pos] = b'E';
        let r = std::panic::catch_unwind(|| parse_and_verify(&csr));
        assert!(r.is_err(), "a changed CN must break the signature");
    }

    #[test]
    fn a_long_first_domain_leaves_the_subject_empty() {
        let long = alloc::format!("{}.{}.example.org", "a".repeat(40), "b".repeat(30));
        let csr = build(&key(), &[&long]).unwrap();
        let p = parse_and_verify(&csr);
        assert_eq!(p.cn, None);
        assert_eq!(p.sans, [long.as_bytes()]);
    }

    #[test]
    fn bad_domains_are_refused() {
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "exa mple.org",
            "é.org",
            "a/b",
            "*.",
            "a.*.b",
        ] {
            assert!(build(&key(), &[bad]).is_err(), "{bad:?}");
        }
        assert!(build(&key(), &[]).is_err());
        assert!(check_domain(&"a.".repeat(130)).is_err());
        assert!(check_domain(&alloc::format!("{}.org", "a".repeat(64))).is_err());
        assert!(check_domain("xn--bcher-kva.example").is_ok());
    }

    #[test]
    fn openssl_accepts_the_csr_when_installed() {
        let Ok(out) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            std::eprintln!("openssl not installed: skipped");
            return;
        };
        assert!(out.status.success());
        let dir = std::env::temp_dir().join(alloc::format!("fata-acme-csr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("req.der");
        std::fs::write(
            &path,
            build(&key(), &["example.org", "www.example.org"]).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new("openssl")
            .args(["req", "-inform", "DER", "-verify", "-noout", "-text", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        std::fs::remove_dir_all(&dir).ok();
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("verify OK")
                || text.contains("Certificate request self-signature verify OK"),
            "{text}"
        );
        assert!(
            text.contains("DNS:example.org, DNS:www.example.org"),
            "{text}"
        );
        assert!(
            text.contains("CN = example.org") || text.contains("CN=example.org"),
            "{text}"
        );
    }
}
