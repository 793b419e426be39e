//! The client against a simulated xenstored that answers in small pieces (so messages wrap and
//! split), interleaves watch events, and can be made hostile.

use super::*;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

#[derive(Clone)]
pub(crate) struct Page(Rc<RefCell<[u8; 4096]>>);

impl Page {
    fn new() -> Page {
        Page(Rc::new(RefCell::new([0; 4096])))
    }
    fn u32_at(&self, off: usize) -> u32 {
        let p = self.0.borrow();
        u32::from_le_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]])
    }
    fn set_u32(&self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
}

impl SharedPage for Page {
    fn load_u32(&self, off: usize) -> u32 {
        self.u32_at(off)
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.set_u32(off, v)
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
}

#[derive(Clone, Default)]
pub(crate) struct Kicks(Rc<Cell<u32>>);

impl Notify for Kicks {
    fn notify(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// What a simulated back end writes when a path is written (path, value).
pub(crate) type Script = alloc::boxed::Box<dyn FnMut(&str, &str) -> Vec<(String, String)>>;

/// A small xenstored: a flat map of paths, watches on exact paths and their children.
pub(crate) struct Daemon {
    page: Page,
    pub(crate) store: BTreeMap<String, String>,
    /// Other writes that follow a write (a back end reacting).
    pub(crate) script: Option<Script>,
    watches: Vec<(String, String)>,
    /// Bytes received, not yet a whole request.
    inbuf: Vec<u8>,
    /// Bytes to send, written into the response ring at most `chunk` at a time.
    out: VecDeque<u8>,
    chunk: usize,
    /// How many TRANSACTION_END commits still get EAGAIN.
    conflicts: u32,
    next_tx: u32,
    /// Answer nothing at all.
    mute: bool,
}

impl Daemon {
    fn new(page: &Page, chunk: usize) -> Daemon {
        Daemon {
            page: page.clone(),
            store: BTreeMap::new(),
            watches: Vec::new(),
            inbuf: Vec::new(),
            out: VecDeque::new(),
            chunk,
            conflicts: 0,
            next_tx: 1,
            mute: false,
            script: None,
        }
    }

    fn send(&mut self, kind: u32, req_id: u32, tx: u32, payload: &[u8]) {
        for w in [kind, req_id, tx, payload.len() as u32] {
            self.out.extend(w.to_le_bytes());
        }
        self.out.extend(payload.iter().copied());
    }

    fn fire(&mut self, path: &str) {
        let hits: Vec<String> = self
            .watches
            .iter()
            .filter(|(w, _)| path == w || path.starts_with(&format!("{w}/")))
            .map(|(_, t)| t.clone())
            .collect();
        for token in hits {
            let p = format!("{path}\0{token}\0");
            self.send(ty::WATCH_EVENT, 0, 0, p.as_bytes());
        }
    }

    fn handle(&mut self, kind: u32, id: u32, tx: u32, p: &[u8]) {
        let parts: Vec<String> = p
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        match kind {
            ty::READ => match self.store.get(&parts[0]).cloned() {
                Some(v) => self.send(ty::READ, id, tx, v.as_bytes()),
                None => self.send(ty::ERROR, id, tx, b"ENOENT\0"),
            },
            ty::WRITE => {
                let at = p.iter().position(|&b| b == 0).unwrap();
                let (path, value) = (parts[0].clone(), &p[at + 1..]);
                let value = String::from_utf8_lossy(value).into_owned();
                self.store.insert(path.clone(), value.clone());
                self.send(ty::WRITE, id, tx, b"OK\0");
                self.fire(&path);
                let follow = self
                    .script
                    .as_mut()
                    .map(|f| f(&path, &value))
                    .unwrap_or_default();
                for (p, v) in follow {
                    self.store.insert(p.clone(), v);
                    self.fire(&p);
                }
            }
            ty::DIRECTORY => {
                let prefix = format!("{}/", parts[0]);
                let mut names: Vec<String> = self
                    .store
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|rest| rest.split('/').next().unwrap().to_string())
                    .collect();
                names.dedup();
                let mut body = Vec::new();
                for n in names {
                    body.extend_from_slice(n.as_bytes());
                    body.push(0);
                }
                self.send(ty::DIRECTORY, id, tx, &body);
            }
            ty::WATCH => {
                self.watches.push((parts[0].clone(), parts[1].clone()));
                // xenstored fires a new watch at once, here before the reply.
                let p = format!("{}\0{}\0", parts[0], parts[1]);
                self.send(ty::WATCH_EVENT, 0, 0, p.as_bytes());
                self.send(ty::WATCH, id, 0, b"OK\0");
            }
            ty::TRANSACTION_START => {
                let t = self.next_tx;
                self.next_tx += 1;
                self.send(ty::TRANSACTION_START, id, 0, format!("{t}\0").as_bytes());
            }
            ty::TRANSACTION_END => {
                if parts[0] == "T" && self.conflicts > 0 {
                    self.conflicts -= 1;
                    self.send(ty::ERROR, id, tx, b"EAGAIN\0");
                } else {
                    self.send(ty::TRANSACTION_END, id, tx, b"OK\0");
                }
            }
            _ => self.send(ty::ERROR, id, tx, b"EINVAL\0"),
        }
    }

    /// One turn: take the requests in the ring, answer, move up to `chunk` bytes out.
    pub(crate) fn step(&mut self) {
        let cons = self.page.u32_at(REQ_CONS);
        let prod = self.page.u32_at(REQ_PROD);
        for i in 0..prod.wrapping_sub(cons) {
            let at = (cons.wrapping_add(i) % RING) as usize;
            self.inbuf.push(self.page.0.borrow()[REQ + at]);
        }
        self.page.set_u32(REQ_CONS, prod);
        while self.inbuf.len() >= HEADER {
            let w = |i: usize| u32::from_le_bytes(self.inbuf[4 * i..4 * i + 4].try_into().unwrap());
            let (kind, id, tx, len) = (w(0), w(1), w(2), w(3) as usize);
            if self.inbuf.len() < HEADER + len {
                break;
            }
            let p: Vec<u8> = self.inbuf[HEADER..HEADER + len].to_vec();
            self.inbuf.drain(..HEADER + len);
            if !self.mute {
                self.handle(kind, id, tx, &p);
            }
        }
        let cons = self.page.u32_at(RSP_CONS);
        let mut prod = self.page.u32_at(RSP_PROD);
        let mut n = 0;
        while n < self.chunk && prod.wrapping_sub(cons) < RING {
            let Some(b) = self.out.pop_front() else { break };
            self.page.0.borrow_mut()[RSP + (prod % RING) as usize] = b;
            prod = prod.wrapping_add(1);
            n += 1;
        }
        self.page.set_u32(RSP_PROD, prod);
    }
}

pub(crate) fn setup(chunk: usize) -> (XenStore<Page, Kicks>, Rc<RefCell<Daemon>>) {
    let page = Page::new();
    // Start the indices near the top of the u32 range: they must wrap correctly.
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        page.set_u32(off, u32::MAX - 100);
    }
    let d = Rc::new(RefCell::new(Daemon::new(&page, chunk)));
    (XenStore::new(page, Kicks::default()), d)
}

fn waiter(d: &Rc<RefCell<Daemon>>) -> impl FnMut() + '_ {
    move || d.borrow_mut().step()
}

#[test]
fn reads_writes_and_directories_round_trip_through_split_and_wrapping_messages() {
    for chunk in [1, 7, 300, 4096] {
        let (mut xs, d) = setup(chunk);
        let mut w = waiter(&d);
        // Values long enough that requests and replies wrap the 1 KiB rings many times.
        for i in 0..60 {
            let v = format!("{i}:").repeat(40 + i);
            xs.write(Tx::NONE, &format!("device/vif/{i}/mac"), &v, &mut w)
                .unwrap();
            assert_eq!(
                xs.read(Tx::NONE, &format!("device/vif/{i}/mac"), &mut w),
                Ok(v)
            );
        }
        let names = xs.directory(Tx::NONE, "device/vif", &mut w).unwrap();
        assert_eq!(names.len(), 60, "chunk {chunk}");
        assert_eq!(
            xs.read(Tx::NONE, "nothing/here", &mut w),
            Err(Error::Xs("ENOENT".into()))
        );
        assert_eq!(xs.stats().protocol_errors, 0);
        assert_eq!(xs.stats().unexpected, 0);
    }
}

#[test]
fn watch_events_interleave_with_replies_and_are_queued() {
    let (mut xs, d) = setup(5);
    let mut w = waiter(&d);
    xs.watch("backend/vif/1/0/state", "be", &mut w).unwrap();
    // The immediate event arrived before the reply and waits in the queue.
    assert_eq!(
        xs.next_event(),
        Ok(Some(WatchEvent {
            path: "backend/vif/1/0/state".into(),
            token: "be".into()
        }))
    );
    xs.write(Tx::NONE, "backend/vif/1/0/state", "2", &mut w)
        .unwrap();
    xs.write(Tx::NONE, "backend/vif/1/0/state", "4", &mut w)
        .unwrap();
    // The last event follows the last reply: it arrives when the daemon gets its turns.
    for _ in 0..100 {
        d.borrow_mut().step();
    }
    let mut seen = 0;
    while let Some(e) = xs.next_event().unwrap() {
        assert_eq!(e.token, "be");
        seen += 1;
    }
    assert_eq!(seen, 2);
    assert_eq!(xs.stats().events, 3);
}

#[test]
fn transactions_are_retried_on_eagain_and_give_up_after_the_tries() {
    let (mut xs, d) = setup(64);
    d.borrow_mut().conflicts = 2;
    let runs = Cell::new(0);
    let r = {
        let mut w = waiter(&d);
        xs.transaction(5, &mut w, |xs, tx, w| {
            runs.set(runs.get() + 1);
            xs.write(tx, "device/vif/0/state", "4", w)?;
            Ok(7)
        })
    };
    assert_eq!((r, runs.get()), (Ok(7), 3));
    d.borrow_mut().conflicts = 10;
    let mut w = waiter(&d);
    let r = xs.transaction(3, &mut w, |xs, tx, w| xs.write(tx, "x", "y", w));
    assert_eq!(r, Err(Error::Xs("EAGAIN".into())));
    // A failing body aborts and returns its own error.
    let r: Result<(), _> =
        xs.transaction(3, &mut w, |xs, tx, w| xs.read(tx, "missing", w).map(drop));
    assert_eq!(r, Err(Error::Xs("ENOENT".into())));
}

#[test]
fn a_daemon_that_never_answers_is_a_timeout_not_a_hang() {
    let (mut xs, d) = setup(64);
    d.borrow_mut().mute = true;
    xs.set_patience(50);
    let mut w = waiter(&d);
    assert_eq!(xs.read(Tx::NONE, "a", &mut w), Err(Error::Timeout));
    let big = "v".repeat(MAX_PAYLOAD);
    assert_eq!(xs.write(Tx::NONE, "a", &big, &mut w), Err(Error::TooLarge));
}

/// Writes raw bytes into the response ring as a hostile daemon would.
fn inject(page: &Page, bytes: &[u8]) {
    let mut prod = page.u32_at(RSP_PROD);
    for &b in bytes {
        page.0.borrow_mut()[RSP + (prod % RING) as usize] = b;
        prod = prod.wrapping_add(1);
    }
    page.set_u32(RSP_PROD, prod);
}

fn header(kind: u32, id: u32, len: u32) -> Vec<u8> {
    [kind, id, 0, len]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

#[test]
fn hostile_indices_lengths_and_types_are_protocol_errors_never_panics() {
    // A producer index claiming more than the ring holds.
    let (mut xs, d) = setup(64);
    let page = d.borrow().page.clone();
    page.set_u32(RSP_PROD, page.u32_at(RSP_CONS).wrapping_add(5000));
    assert!(matches!(xs.next_event(), Err(Error::Protocol(_))));
    // And the connection stays refused.
    let mut w = waiter(&d);
    assert!(matches!(
        xs.read(Tx::NONE, "a", &mut w),
        Err(Error::Protocol(_))
    ));
    assert_eq!(xs.stats().protocol_errors, 1);

    // A length over 4096.
    let (mut xs, d) = setup(64);
    inject(&d.borrow().page, &header(ty::WATCH_EVENT, 0, 100_000));
    assert!(matches!(xs.next_event(), Err(Error::Protocol(_))));

    // An unknown type.
    let (mut xs, d) = setup(64);
    inject(&d.borrow().page, &header(99, 0, 0));
    assert!(matches!(xs.next_event(), Err(Error::Protocol(_))));

    // The request ring's consumer past its producer.
    let (mut xs, d) = setup(64);
    let page = d.borrow().page.clone();
    page.set_u32(REQ_CONS, page.u32_at(REQ_PROD).wrapping_add(10));
    let mut w = waiter(&d);
    assert!(matches!(
        xs.read(Tx::NONE, "a", &mut w),
        Err(Error::Protocol(_))
    ));
}

#[test]
fn replies_nobody_asked_for_are_counted_and_dropped() {
    let (mut xs, d) = setup(64);
    // Replies to request ids never sent, and to id 0.
    inject(&d.borrow().page, &header(ty::READ, 77, 0));
    inject(&d.borrow().page, &header(ty::READ, 0, 0));
    assert_eq!(xs.next_event(), Ok(None));
    assert_eq!(xs.stats().unexpected, 2);
    d.borrow_mut().store.insert("k".into(), "v".into());
    let mut w = waiter(&d);
    assert_eq!(xs.read(Tx::NONE, "k", &mut w), Ok("v".into()));
    // A reply of another type than the request breaks the protocol.
    let (mut xs, d) = setup(64);
    let page = d.borrow().page.clone();
    let mut sent = false;
    let mut w = || {
        if !sent {
            sent = true;
            inject(&page, &header(ty::DIRECTORY, 1, 0));
        }
    };
    assert!(matches!(
        xs.read(Tx::NONE, "k", &mut w),
        Err(Error::Protocol(_))
    ));
    drop(d);
}
