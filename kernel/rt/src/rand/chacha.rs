//! The ChaCha20 block function (RFC 8439 §2.3) and a generator on top of it with fast key
//! erasure: each refill computes [`BLOCKS`] blocks under the current key, takes the first 32
//! bytes as the next key and hands out the rest, erasing every byte as it is handed out. A
//! copy of the state taken later therefore reveals nothing about output already given out.
//! Pure code, no platform: tested against the RFC's vectors.

/// Blocks computed per refill (the first 32 bytes of them become the next key).
const BLOCKS: usize = 4;
/// Bytes per refill.
const BUF: usize = 64 * BLOCKS;

/// "expand 32-byte k".
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// One 64-byte block of the ChaCha20 keystream for `key`, block `counter` and `nonce`.
pub(crate) fn block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; 64] {
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&SIGMA);
    for i in 0..8 {
        init[4 + i] = word(&key[4 * i..]);
    }
    init[12] = counter;
    for i in 0..3 {
        init[13 + i] = word(&nonce[4 * i..]);
    }
    let mut s = init;
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12);
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15);
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, (w, x)) in s.iter().zip(init).enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.wrapping_add(x).to_le_bytes());
    }
    out
}

/// A ChaCha20 generator with fast key erasure.
pub(crate) struct ChaCha {
    key: [u8; 32],
    buf: [u8; BUF],
    /// The next unused byte of `buf` (`BUF`: empty).
    pos: usize,
}

impl ChaCha {
    /// A generator keyed with `key`.
    pub(crate) fn new(key: [u8; 32]) -> ChaCha {
        ChaCha {
            key,
            buf: [0; BUF],
            pos: BUF,
        }
    }

    /// Replaces the key and drops buffered output (a reseed).
    pub(crate) fn rekey(&mut self, key: [u8; 32]) {
        self.key = key;
        self.buf.fill(0);
        self.pos = BUF;
    }

    /// The current key (to chain it into the next seed).
    pub(crate) fn key(&self) -> &[u8; 32] {
        &self.key
    }

    fn refill(&mut self) {
        for i in 0..BLOCKS {
            self.buf[64 * i..64 * (i + 1)].copy_from_slice(&block(&self.key, i as u32, &[0; 12]));
        }
        self.key.copy_from_slice(&self.buf[..32]);
        self.buf[..32].fill(0);
        self.pos = 32;
    }

    /// Fills `out` with keystream, erasing what it hands out.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            if self.pos == BUF {
                self.refill();
            }
            let n = (BUF - self.pos).min(out.len() - done);
            let src = &mut self.buf[self.pos..self.pos + n];
            out[done..done + n].copy_from_slice(src);
            src.fill(0);
            self.pos += n;
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> std::vec::Vec<u8> {
        let s: std::string::String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_quarter_round_matches_rfc_8439_section_2_1_1() {
        let mut s = [0u32; 16];
        s[..4].copy_from_slice(&[0x1111_1111, 0x0102_0304, 0x9b8d_6f43, 0x0123_4567]);
        // a, b, c, d at 0, 1, 2, 3.
        quarter_round(&mut s, 0, 1, 2, 3);
        assert_eq!(s[..4], [0xea2a_92f4, 0xcb1c_f8ce, 0x4581_472e, 0x5881_c4bb]);
    }

    #[test]
    fn the_block_function_matches_rfc_8439_section_2_3_2() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let want = hex(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e
             d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
        );
        assert_eq!(block(&key, 1, &nonce)[..], want[..]);
    }

    #[test]
    fn the_block_function_matches_rfc_8439_appendix_a_1_vectors_1_and_2() {
        let v1 = hex(
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7
             da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
        );
        let v2 = hex(
            "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed
             29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f",
        );
        assert_eq!(block(&[0; 32], 0, &[0; 12])[..], v1[..]);
        assert_eq!(block(&[0; 32], 1, &[0; 12])[..], v2[..]);
    }

    #[test]
    fn output_is_the_keystream_after_the_next_key_and_the_key_is_erased_forward() {
        let key = [7u8; 32];
        let mut g = ChaCha::new(key);
        let mut out = [0u8; 100];
        g.fill(&mut out);
        let first = block(&key, 0, &[0; 12]);
        assert_eq!(out[..32], first[32..], "the first 32 bytes became the key");
        assert_eq!(out[32..96], block(&key, 1, &[0; 12])[..]);
        assert_eq!(g.key()[..], first[..32], "the old key is gone");
        assert!(
            g.buf[..g.pos].iter().all(|&b| b == 0),
            "handed-out bytes erased"
        );
        // Odd sizes across refills give the same stream as one large fill.
        let (mut a, mut b) = (ChaCha::new(key), ChaCha::new(key));
        let mut big = [0u8; 1000];
        a.fill(&mut big);
        let mut pieces = std::vec::Vec::new();
        for n in [1, 223, 7, 300, 469] {
            let mut p = std::vec![0u8; n];
            b.fill(&mut p);
            pieces.extend(p);
        }
        assert_eq!(pieces[..], big[..]);
    }
}
