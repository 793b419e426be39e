//! The xenstore client: the ring protocol of `io/xs_wire.h` and the messages of
//! `docs/misc/xenstore.txt`.
//!
//! Page layout: the request ring `req[1024]` at 0, the response ring `rsp[1024]` at 1024, then
//! `req_cons`, `req_prod`, `rsp_cons`, `rsp_prod` (`u32`) from 2048. Indices run freely
//! (modulo 2^32); a ring holds `prod - cons` bytes, never more than 1024. A message is a
//! 16-byte header `{type, req_id, tx_id, len}` and `len` (at most 4096) bytes of payload;
//! messages wrap around the ring and arrive in pieces. Watch events (`req_id` 0) interleave
//! with replies and are queued.
//!
//! Nothing the daemon writes is trusted: an index that claims more than a ring holds, a length
//! over 4096, or a message of an unknown type is a protocol error (counted; the connection is
//! then unusable, as it would be for xenstored); a reply nobody asked for is counted and
//! dropped. The client never waits on its own: a call that must wait for the daemon calls the
//! `wait` it was given (the platform blocks on the event channel there), a bounded number of
//! times.

use crate::{Notify, SharedPage};
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Bytes of each ring.
pub const RING: u32 = 1024;
/// Largest payload xenstored accepts or sends.
pub const MAX_PAYLOAD: usize = 4096;
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
const HEADER: usize = 16;

/// Message types (`enum xsd_sockmsg_type`).
pub mod ty {
    /// List a directory.
    pub const DIRECTORY: u32 = 1;
    /// Read a value.
    pub const READ: u32 = 2;
    /// Watch a path.
    pub const WATCH: u32 = 4;
    /// Stop watching.
    pub const UNWATCH: u32 = 5;
    /// Start a transaction.
    pub const TRANSACTION_START: u32 = 6;
    /// End a transaction (`T` commit, `F` abort).
    pub const TRANSACTION_END: u32 = 7;
    /// Write a value.
    pub const WRITE: u32 = 11;
    /// Remove a path.
    pub const RM: u32 = 13;
    /// A watch fired.
    pub const WATCH_EVENT: u32 = 15;
    /// An error reply: the payload is an errno name.
    pub const ERROR: u32 = 16;
}

/// Why a xenstore call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// xenstored answered with an error (`ENOENT`, `EACCES`, `EAGAIN`, ...).
    Xs(String),
    /// The daemon broke the protocol (the message says how); the connection is unusable.
    Protocol(&'static str),
    /// A path, value or message too large for the protocol.
    TooLarge,
    /// No answer after waiting as long as allowed.
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xs(e) => write!(f, "xenstore: {e}"),
            Error::Protocol(why) => write!(f, "xenstore protocol error: {why}"),
            Error::TooLarge => f.write_str("xenstore: message larger than 4096 bytes"),
            Error::Timeout => f.write_str("xenstore: no answer"),
        }
    }
}

/// A watch that fired: the path that changed and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed.
    pub path: String,
    /// The token given to [`XenStore::watch`].
    pub token: String,
}

/// Counters of what the daemon did wrong or oddly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Replies received.
    pub replies: u64,
    /// Watch events received.
    pub events: u64,
    /// Replies to no request in flight, dropped.
    pub unexpected: u64,
    /// Protocol errors (the connection is then unusable).
    pub protocol_errors: u64,
}

/// A transaction id (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tx(pub u32);

impl Tx {
    /// Outside any transaction.
    pub const NONE: Tx = Tx(0);
}

/// The client. `wait` arguments are called when the client cannot go on without the daemon;
/// each call may block until the event channel fires (or return at once: the client bounds
/// the number of calls).
pub struct XenStore<P: SharedPage, N: Notify> {
    page: P,
    notify: N,
    next_id: u32,
    /// Bytes read from the response ring, not yet a whole message.
    inbuf: Vec<u8>,
    events: VecDeque<WatchEvent>,
    /// A reply that arrived (req_id, type, payload).
    reply: Option<(u32, u32, Vec<u8>)>,
    broken: Option<&'static str>,
    stats: Stats,
    /// How many times a call may wait for the daemon before it gives up.
    patience: u32,
}

impl<P: SharedPage, N: Notify> XenStore<P, N> {
    /// A client on the ring page `page`, kicking the daemon through `notify`.
    pub fn new(page: P, notify: N) -> Self {
        XenStore {
            page,
            notify,
            next_id: 1,
            inbuf: Vec::new(),
            events: VecDeque::new(),
            reply: None,
            broken: None,
            stats: Stats::default(),
            patience: 10_000,
        }
    }

    /// Sets how many times a call may wait for the daemon before it fails with
    /// [`Error::Timeout`].
    pub fn set_patience(&mut self, waits: u32) {
        self.patience = waits.max(1);
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A watch event that has arrived, if any (reads the ring first).
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, Error> {
        self.receive()?;
        Ok(self.events.pop_front())
    }

    fn fail(&mut self, why: &'static str) -> Error {
        if self.broken.is_none() {
            self.stats.protocol_errors += 1;
            self.broken = Some(why);
        }
        Error::Protocol(why)
    }

    /// Writes `bytes` into the request ring, waiting for room.
    fn send_bytes(&mut self, mut bytes: &[u8], wait: &mut dyn FnMut()) -> Result<(), Error> {
        let mut waits = 0;
        while !bytes.is_empty() {
            let cons = self.page.load_u32(REQ_CONS);
            let prod = self.page.load_u32(REQ_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING {
                return Err(self.fail("the request ring's consumer index is past its producer"));
            }
            let space = (RING - used) as usize;
            if space == 0 {
                self.notify.notify();
                waits += 1;
                if waits > self.patience {
                    return Err(Error::Timeout);
                }
                wait();
                continue;
            }
            let at = (prod % RING) as usize;
            let n = space.min(RING as usize - at).min(bytes.len());
            self.page.write(REQ + at, &bytes[..n]);
            self.page.store_u32(REQ_PROD, prod.wrapping_add(n as u32));
            bytes = &bytes[n..];
        }
        self.notify.notify();
        Ok(())
    }

    /// Reads what the response ring holds and sorts whole messages into the reply slot and
    /// the event queue.
    fn receive(&mut self) -> Result<(), Error> {
        if let Some(why) = self.broken {
            return Err(Error::Protocol(why));
        }
        let cons = self.page.load_u32(RSP_CONS);
        let prod = self.page.load_u32(RSP_PROD);
        let avail = prod.wrapping_sub(cons);
        if avail > RING {
            return Err(self.fail("the response ring's producer claims more than the ring holds"));
        }
        if avail > 0 {
            let mut left = avail as usize;
            let mut at = (cons % RING) as usize;
            while left > 0 {
                let n = left.min(RING as usize - at);
                let start = self.inbuf.len();
                self.inbuf.resize(start + n, 0);
                self.page.read(RSP + at, &mut self.inbuf[start..]);
                left -= n;
                at = (at + n) % RING as usize;
            }
            self.page.store_u32(RSP_CONS, prod);
            self.notify.notify();
        }
        while self.inbuf.len() >= HEADER {
            let word = |i: usize| {
                let b = &self.inbuf[4 * i..4 * i + 4];
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            };
            let (kind, req_id, len) = (word(0), word(1), word(3) as usize);
            if len > MAX_PAYLOAD {
                return Err(self.fail("a message longer than 4096 bytes"));
            }
            if self.inbuf.len() < HEADER + len {
                break;
            }
            let payload = self.inbuf[HEADER..HEADER + len].to_vec();
            self.inbuf.drain(..HEADER + len);
            match kind {
                ty::WATCH_EVENT => {
                    let mut parts = payload.split(|&b| b == 0);
                    let path = parts.next().unwrap_or_default();
                    let token = parts.next().unwrap_or_default();
                    self.stats.events += 1;
                    self.events.push_back(WatchEvent {
                        path: String::from_utf8_lossy(path).into_owned(),
                        token: String::from_utf8_lossy(token).into_owned(),
                    });
                }
                ty::DIRECTORY
                | ty::READ
                | ty::WATCH
                | ty::UNWATCH
                | ty::TRANSACTION_START
                | ty::TRANSACTION_END
                | ty::WRITE
                | ty::RM
                | ty::ERROR => {
                    if self.reply.is_some() || req_id == 0 || req_id >= self.next_id {
                        self.stats.unexpected += 1;
                    } else {
                        self.stats.replies += 1;
                        self.reply = Some((req_id, kind, payload));
                    }
                }
                _ => return Err(self.fail("a message of an unknown type")),
            }
        }
        Ok(())
    }

    /// Sends one request and waits for its reply; an `ERROR` reply becomes [`Error::Xs`].
    pub fn request(
        &mut self,
        kind: u32,
        tx: Tx,
        payload: &[u8],
        wait: &mut dyn FnMut(),
    ) -> Result<Vec<u8>, Error> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::TooLarge);
        }
        self.receive()?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut msg = Vec::with_capacity(HEADER + payload.len());
        for w in [kind, id, tx.0, payload.len() as u32] {
            msg.extend_from_slice(&w.to_le_bytes());
        }
        msg.extend_from_slice(payload);
        self.send_bytes(&msg, wait)?;
        let mut waits = 0;
        loop {
            self.receive()?;
            match self.reply.take() {
                Some((rid, k, p)) if rid == id => {
                    return if k == ty::ERROR {
                        let name = p.split(|&b| b == 0).next().unwrap_or_default();
                        Err(Error::Xs(String::from_utf8_lossy(name).into_owned()))
                    } else if k != kind {
                        Err(self.fail("a reply of another type than the request"))
                    } else {
                        Ok(p)
                    };
                }
                Some(_) => self.stats.unexpected += 1,
                None => {}
            }
            waits += 1;
            if waits > self.patience {
                return Err(Error::Timeout);
            }
            wait();
        }
    }

    /// The value at `path`.
    pub fn read(&mut self, tx: Tx, path: &str, wait: &mut dyn FnMut()) -> Result<String, Error> {
        let v = self.request(ty::READ, tx, &nul(path), wait)?;
        String::from_utf8(v).map_err(|_| self.fail("a value that is not UTF-8"))
    }

    /// Writes `value` at `path`.
    pub fn write(
        &mut self,
        tx: Tx,
        path: &str,
        value: &str,
        wait: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let mut p = nul(path);
        p.extend_from_slice(value.as_bytes());
        self.request(ty::WRITE, tx, &p, wait).map(drop)
    }

    /// The names under `path`.
    pub fn directory(
        &mut self,
        tx: Tx,
        path: &str,
        wait: &mut dyn FnMut(),
    ) -> Result<Vec<String>, Error> {
        let v = self.request(ty::DIRECTORY, tx, &nul(path), wait)?;
        Ok(v.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// Watches `path`: events carry `token`. xenstored fires the watch once at once.
    pub fn watch(&mut self, path: &str, token: &str, wait: &mut dyn FnMut()) -> Result<(), Error> {
        let mut p = nul(path);
        p.extend_from_slice(&nul(token));
        self.request(ty::WATCH, Tx::NONE, &p, wait).map(drop)
    }

    /// Runs `body` in a transaction and commits it, starting again (up to `tries` times) when
    /// xenstored answers `EAGAIN` (another writer came first). `body` gets the transaction and
    /// the client.
    pub fn transaction<T>(
        &mut self,
        tries: u32,
        wait: &mut dyn FnMut(),
        mut body: impl FnMut(&mut Self, Tx, &mut dyn FnMut()) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut last = Error::Xs("EAGAIN".to_string());
        for _ in 0..tries.max(1) {
            let id = self.request(ty::TRANSACTION_START, Tx::NONE, b"\0", wait)?;
            let text = core::str::from_utf8(id.split(|&b| b == 0).next().unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&n| n != 0);
            let Some(n) = text else {
                return Err(self.fail("a transaction id that is not a number"));
            };
            let tx = Tx(n);
            let out = match body(self, tx, wait) {
                Ok(v) => v,
                Err(e) => {
                    // Abort; the body's error is the one that matters.
                    let _ = self.request(ty::TRANSACTION_END, tx, b"F\0", wait);
                    return Err(e);
                }
            };
            match self.request(ty::TRANSACTION_END, tx, b"T\0", wait) {
                Ok(_) => return Ok(out),
                Err(Error::Xs(e)) if e == "EAGAIN" => last = Error::Xs(e),
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// `s` followed by a NUL.
fn nul(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

#[cfg(test)]
pub(crate) mod tests;
