//! The network protocol's messages (`io/netif.h`): transmit and receive requests and responses,
//! one page-sized buffer per frame (no scatter-gather, no offloads, no extra info).
//!
//! Decoding trusts nothing: a receive response is turned into a frame only if its status is a
//! length that fits the buffer from its offset and it carries no flag this driver did not ask
//! for; anything else is a [`RxDrop`] with the reason, for the driver to count.

/// Bytes of a transmit ring entry (request `{u32 gref, u16 offset, u16 flags, u16 id, u16 size}`).
pub const TX_ENTRY: usize = 12;
/// Bytes of a receive ring entry (request `{u16 id, u16 pad, u32 gref}`).
pub const RX_ENTRY: usize = 8;
/// A buffer is one page.
pub const PAGE: usize = 4096;

/// Receive response flag: the frame continues in the next response (scatter-gather).
pub const RXF_MORE_DATA: u16 = 1 << 2;
/// Receive response flag: extra-info segments follow.
pub const RXF_EXTRA_INFO: u16 = 1 << 3;
/// Transmit request flag: more fragments follow (never set by this driver).
pub const TXF_MORE_DATA: u16 = 1 << 2;

/// A transmit request: send `size` bytes at `offset` of the page granted as `gref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// The grant of the page (read-only for the back end).
    pub gref: u32,
    /// Where the frame starts in the page.
    pub offset: u16,
    /// Our id, echoed in the response.
    pub id: u16,
    /// Frame length.
    pub size: u16,
}

impl TxRequest {
    /// The entry, or `None` if the frame would cross the page (netback disables the interface
    /// for that).
    pub fn encode(&self) -> Option<[u8; TX_ENTRY]> {
        if usize::from(self.offset) + usize::from(self.size) > PAGE || self.size == 0 {
            return None;
        }
        let mut b = [0u8; TX_ENTRY];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        // flags 0: no checksum offload, no more data.
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        Some(b)
    }
}

/// A transmit response `{u16 id, i16 status}`: the id (untrusted) and whether it was sent.
pub fn decode_tx_response(b: &[u8]) -> Option<(u16, i16)> {
    let b = b.get(..4)?;
    Some((
        u16::from_le_bytes([b[0], b[1]]),
        i16::from_le_bytes([b[2], b[3]]),
    ))
}

/// A receive request: fill the page granted as `gref` (writable), answer with `id`.
pub fn encode_rx_request(id: u16, gref: u32) -> [u8; RX_ENTRY] {
    let mut b = [0u8; RX_ENTRY];
    b[0..2].copy_from_slice(&id.to_le_bytes());
    b[4..8].copy_from_slice(&gref.to_le_bytes());
    b
}

/// A received frame: `len` bytes at `offset` of the buffer posted as `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// The buffer's id (untrusted: look it up).
    pub id: u16,
    /// Where the frame starts in the page.
    pub offset: u16,
    /// Its length.
    pub len: u16,
}

/// Why a receive response gives no frame (the buffer named by `id` still comes back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// The back end reported an error (negative status).
    Error {
        /// The buffer.
        id: u16,
        /// The status.
        status: i16,
    },
    /// Length and offset reach past the page, or the length is zero.
    BadLength {
        /// The buffer.
        id: u16,
    },
    /// A flag for a feature this driver did not ask for (scatter-gather, extra info).
    Unrequested {
        /// The buffer.
        id: u16,
    },
}

/// Decodes a receive response `{u16 id, u16 offset, u16 flags, i16 status}`; `None` if `b`
/// is shorter than one.
pub fn decode_rx_response(b: &[u8]) -> Option<Result<RxFrame, RxDrop>> {
    let b = b.get(..8)?;
    let word = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    let (id, offset, flags) = (word(0), word(1), word(2));
    let status = word(3) as i16;
    Some(if status < 0 {
        Err(RxDrop::Error { id, status })
    } else if flags & (RXF_MORE_DATA | RXF_EXTRA_INFO) != 0 {
        Err(RxDrop::Unrequested { id })
    } else if status == 0 || usize::from(offset) + status as usize > PAGE {
        Err(RxDrop::BadLength { id })
    } else {
        Ok(RxFrame {
            id,
            offset,
            len: status as u16,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::ring_size;

    #[test]
    fn layouts_and_ring_sizes_follow_netif_h() {
        assert_eq!((ring_size(TX_ENTRY), ring_size(RX_ENTRY)), (256, 256));
        let t = TxRequest {
            gref: 0x0102_0304,
            offset: 2,
            id: 9,
            size: 1514,
        }
        .encode()
        .unwrap();
        assert_eq!(t, [4, 3, 2, 1, 2, 0, 0, 0, 9, 0, 0xea, 5]);
        assert_eq!(encode_rx_request(7, 0xaabb), [7, 0, 0, 0, 0xbb, 0xaa, 0, 0]);
        assert_eq!(decode_tx_response(&[9, 0, 0xff, 0xff]), Some((9, -1)));
        assert_eq!(decode_tx_response(&[9, 0, 0]), None);
    }

    #[test]
    fn a_frame_crossing_the_page_is_never_sent() {
        let over = TxRequest {
            gref: 1,
            offset: 4000,
            id: 1,
            size: 200,
        };
        assert_eq!(over.encode(), None);
        assert_eq!(TxRequest { size: 0, ..over }.encode(), None);
        assert!(TxRequest { offset: 0, ..over }.encode().is_some());
    }

    #[test]
    fn hostile_receive_responses_are_drops_with_a_reason() {
        let rsp = |id: u16, off: u16, flags: u16, status: i16| {
            let mut b = [0u8; 8];
            b[0..2].copy_from_slice(&id.to_le_bytes());
            b[2..4].copy_from_slice(&off.to_le_bytes());
            b[4..6].copy_from_slice(&flags.to_le_bytes());
            b[6..8].copy_from_slice(&status.to_le_bytes());
            decode_rx_response(&b).unwrap()
        };
        assert_eq!(
            rsp(3, 0, 0, 60),
            Ok(RxFrame {
                id: 3,
                offset: 0,
                len: 60
            })
        );
        assert_eq!(rsp(3, 0, 0, -1), Err(RxDrop::Error { id: 3, status: -1 }));
        assert_eq!(rsp(3, 4000, 0, 200), Err(RxDrop::BadLength { id: 3 }));
        assert_eq!(rsp(3, 0, 0, 0), Err(RxDrop::BadLength { id: 3 }));
        assert_eq!(rsp(3, 0, 0, i16::MAX), Err(RxDrop::BadLength { id: 3 }));
        assert_eq!(
            rsp(3, 0, RXF_MORE_DATA, 60),
            Err(RxDrop::Unrequested { id: 3 })
        );
        assert_eq!(
            rsp(3, 0, RXF_EXTRA_INFO, 60),
            Err(RxDrop::Unrequested { id: 3 })
        );
        assert_eq!(decode_rx_response(&[0; 7]), None);
    }
}
