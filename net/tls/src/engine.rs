//! The TLS engine: rustls's unbuffered (no_std) connection driven over plain byte buffers,
//! with no I/O of its own.
//!
//! The async stream (`stream.rs`) appends what the network delivers to [`Engine::incoming`],
//! calls [`Engine::process`], sends [`Engine::outgoing`] and hands [`Engine::take_plain`] to
//! the application. Keeping the protocol here, free of I/O and time, lets the host tests run
//! a client engine against a server engine byte for byte.
//!
//! Memory per connection is bounded: at most [`MAX_INCOMING`] bytes of undecoded records are
//! held (a TLS record is at most 16 KiB + 2 KiB), and outgoing data is encrypted one record
//! at a time by the caller's chunking.

use alloc::vec::Vec;
use rustls::Error;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus,
};

/// The most undecoded bytes held: one maximal TLS ciphertext record (5 + 2^14 + 2048) and a
/// little more. A peer that sends a longer record is refused by rustls before this fills.
pub const MAX_INCOMING: usize = 5 + 16384 + 2048 + 512;

/// The largest plaintext one [`Engine::process`] call encrypts into one record.
pub const MAX_RECORD: usize = 16384;

/// Server or client side of an unbuffered rustls connection.
pub trait Side {
    /// rustls's per-side connection data.
    type Data;
    /// The common part of the connection.
    fn common(&mut self) -> &mut UnbufferedConnectionCommon<Self::Data>;
    /// One step of rustls's state machine over `incoming`.
    fn step<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn common(&mut self) -> &mut UnbufferedConnectionCommon<ServerConnectionData> {
        self
    }
    fn step<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn common(&mut self) -> &mut UnbufferedConnectionCommon<ClientConnectionData> {
        self
    }
    fn step<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// Where the engine stands after [`Engine::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The handshake needs more bytes from the peer.
    Handshaking,
    /// Application data may flow (plaintext may also be waiting in [`Engine::take_plain`]).
    Open,
    /// Both sides sent close_notify: nothing more will flow.
    Closed,
}

/// One TLS connection's state, without I/O.
pub struct Engine<C> {
    conn: C,
    /// Bytes received from the peer and not yet decoded.
    pub incoming: Vec<u8>,
    /// Bytes to send to the peer, in order.
    pub outgoing: Vec<u8>,
    plain: Vec<u8>,
    plain_pos: usize,
    peer_closed: bool,
    close_queued: bool,
    open: bool,
    failed: Option<Error>,
}

impl<C: Side> Engine<C> {
    /// An engine around a fresh rustls connection.
    pub fn new(conn: C) -> Engine<C> {
        Engine {
            conn,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plain: Vec::new(),
            plain_pos: 0,
            peer_closed: false,
            close_queued: false,
            open: false,
            failed: None,
        }
    }

    /// The rustls connection (SNI, negotiated version and suite, ...).
    pub fn connection(&mut self) -> &mut C {
        &mut self.conn
    }

    /// Whether the handshake has completed.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the peer sent close_notify and every byte before it has been taken.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed && self.plain_pos == self.plain.len()
    }

    /// Room left in [`Engine::incoming`] before it holds [`MAX_INCOMING`] bytes.
    pub fn incoming_room(&self) -> usize {
        MAX_INCOMING.saturating_sub(self.incoming.len())
    }

    /// Decrypted bytes not yet taken by the application.
    pub fn plain_available(&self) -> usize {
        self.plain.len() - self.plain_pos
    }

    /// Copies up to `buf.len()` decrypted bytes into `buf`.
    pub fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plain_available());
        buf[..n].copy_from_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
        self.plain_pos += n;
        if self.plain_pos == self.plain.len() {
            self.plain.clear();
            self.plain_pos = 0;
        }
        n
    }

    /// Runs rustls over the bytes received so far: decodes records, queues handshake
    /// messages and alerts into [`Engine::outgoing`], then — once the connection is open —
    /// encrypts up to [`MAX_RECORD`] bytes from the front of `send` (advancing it) and, if
    /// `close`, queues close_notify. An error is final: every later call returns it again.
    pub fn process(&mut self, send: &mut &[u8], close: bool) -> Result<Progress, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.run(send, close);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.collect_alert();
        }
        r
    }

    /// After a failure rustls holds the alert that tells the peer why (bad record, no common
    /// cipher suite, ...) at the front of its send queue, which one more step hands out
    /// before it looks at any input. Only that one step is taken: decoding more input could
    /// raise a second alert, which rustls does not expect.
    fn collect_alert(&mut self) {
        let UnbufferedStatus { discard, state } = self.conn.step(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = state {
            let _ = encode(&mut self.outgoing, 64, |b| {
                e.encode(b).map_err(|err| match err {
                    EncodeError::InsufficientSize(s) => Some(s.required_size),
                    _ => None,
                })
            });
        }
        self.incoming.drain(..discard.min(self.incoming.len()));
    }

    fn run(&mut self, send: &mut &[u8], close: bool) -> Result<Progress, Error> {
        // A bound on rustls steps per call, so a logic slip can never spin forever; a real
        // call takes a few steps per record received.
        for _ in 0..10_000 {
            let UnbufferedStatus { discard, state } = self.conn.step(&mut self.incoming);
            let state = state?;
            let mut done = None;
            match state {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        self.plain.extend_from_slice(rec?.payload);
                    }
                }
                // Early data is never enabled (max_early_data_size stays 0).
                ConnectionState::ReadEarlyData(_) => {
                    return Err(Error::General("unexpected 0-RTT data".into()));
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    encode(&mut self.outgoing, 4096, |b| {
                        e.encode(b).map_err(|err| match err {
                            EncodeError::InsufficientSize(s) => Some(s.required_size),
                            _ => None,
                        })
                    })
                    .map_err(|()| Error::General("TLS record encoding failed".into()))?;
                }
                // Our outgoing buffer is sent in order by the caller, so a record queued here
                // counts as transmitted.
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::BlockedHandshake => done = Some(Progress::Handshaking),
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    done = Some(Progress::Closed);
                }
                ConnectionState::WriteTraffic(mut w) => {
                    self.open = true;
                    if !send.is_empty() {
                        let n = send.len().min(MAX_RECORD);
                        encode(&mut self.outgoing, n + 128, |b| {
                            w.encrypt(&send[..n], b).map_err(|err| match err {
                                EncryptError::InsufficientSize(s) => Some(s.required_size),
                                _ => None,
                            })
                        })
                        .map_err(|()| Error::General("TLS encryption failed".into()))?;
                        *send = &send[n..];
                    }
                    if close && !self.close_queued && send.is_empty() {
                        encode(&mut self.outgoing, 64, |b| {
                            w.queue_close_notify(b).map_err(|err| match err {
                                EncryptError::InsufficientSize(s) => Some(s.required_size),
                                _ => None,
                            })
                        })
                        .map_err(|()| Error::General("TLS close_notify failed".into()))?;
                        self.close_queued = true;
                    }
                    done = Some(Progress::Open);
                }
                _ => return Err(Error::General("unexpected TLS connection state".into())),
            }
            self.incoming.drain(..discard);
            if let Some(p) = done {
                return Ok(p);
            }
        }
        Err(Error::General("TLS engine made no progress".into()))
    }
}

/// Appends what `f` writes to `out`, growing the room when `f` says how much it needs
/// (`Err(Some(size))`); `Err(None)` is a failure.
fn encode(
    out: &mut Vec<u8>,
    mut room: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), ()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n.min(room));
                return Ok(());
            }
            Err(Some(need)) if need > room => room = need,
            Err(_) => {
                out.truncate(start);
                return Err(());
            }
        }
    }
}
