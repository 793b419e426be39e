//! TCP socket lifecycles: listeners and their queues, admission of new sockets against the
//! connection limit and free memory, reclaiming room at the limit, timeouts of half-open and
//! closing connections.
//!
//! Every TCP socket is a [`Conn`] in one slab, in one role:
//!
//! ```text
//! Listening --SYN--> HalfOpen --ACK--> Ready --accept--> Open --drop--> Orphan --closed--> gone
//!   (1 per listener,       (handshake_timeout)                (close_timeout, then reset)
//!    refilled after every frame)
//! ```
//! A new socket is admitted while fewer than `max_tcp` live connections exist (closing ones
//! may add a quarter more) and, with a [`MemoryGuard`](crate::MemoryGuard), enough heap stays
//! free. At the limit the stack makes room as mature servers do: it closes the connection idle
//! longest (one the application marked idle, for a second at least, with nothing queued
//! either way — an HTTP keep-alive connection between requests) gracefully, with a FIN, so a response the client
//! has not read yet is not destroyed by a reset; then it resets a half-open connection whose
//! handshake has been stalled for three seconds (a SYN flood's). When closing connections or
//! memory are what is short, the oldest closing connection goes first (silently if the peer
//! has acknowledged everything, else with a reset), and idle ones are reset. Only when
//! nothing can go is the new connection refused: the listener then has no socket, and the
//! device filter drops SYNs for it unanswered so clients retry rather than fail. Reset
//! sockets wait in `dying` until their reset has been sent.

use crate::slab::Id;
use crate::stack::Inner;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::Waker;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpListenEndpoint;

/// A connection must have been idle this long before it may be closed to make room: a new
/// connection is idle until its first request arrives, and in a burst that request is usually
/// in flight; refusing the newcomer instead (its SYN retried) fails no one.
const MIN_IDLE_MS: u64 = 1000;
/// A half-open connection stalled this long may be reset to make room at the limit. Long
/// enough that real handshakes in a big burst on a slow machine complete (under TCG, a burst
/// of 2000 had handshakes take over a second), short enough that a SYN flood's entries make
/// way for real clients, whose SYNs are retried after 1, 3 and 7 s.
const STALLED_HANDSHAKE_MS: u64 = 3000;

/// Closing connections allowed beyond a limit of `max_tcp` live ones: sizing the limit from
/// memory must leave room for them.
pub fn closing_allowance(max_tcp: usize) -> usize {
    max_tcp / 4 + 4
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Listening(Id),
    HalfOpen(Id),
    Ready(Id),
    Open,
    Orphan { deadline_ms: u64 },
}

pub(crate) struct Conn {
    pub(crate) handle: SocketHandle,
    pub(crate) role: Role,
    /// Marked idle by the application (see `TcpStream::set_idle`).
    pub(crate) idle: bool,
    /// When the role or the idle mark last changed.
    pub(crate) since_ms: u64,
}

pub(crate) struct Listener {
    pub(crate) port: u16,
    listen: Option<Id>,
    half_open: VecDeque<Id>,
    pub(crate) ready: VecDeque<Id>,
    pub(crate) waker: Option<Waker>,
    pub(crate) announced: bool,
}

impl Listener {
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.half_open.capacity() + self.ready.capacity()
    }
}

impl Inner {
    pub(crate) fn tcp(&mut self, id: Id) -> Option<&mut tcp::Socket<'static>> {
        let h = self.conns.get(id)?.handle;
        Some(self.sockets.get_mut::<tcp::Socket>(h))
    }

    /// A new TCP socket in `role`, unless the limit is reached and no room can be made.
    pub(crate) fn new_tcp(&mut self, role: Role) -> Option<Id> {
        while !self.admissible() {
            if !self.reclaim_one() {
                return None;
            }
        }
        let rx = tcp::SocketBuffer::new(alloc::vec![0; self.config.tcp_rx_buffer]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0; self.config.tcp_tx_buffer]);
        let mut s = tcp::Socket::new(rx, tx);
        s.set_nagle_enabled(false);
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(60)));
        let handle = self.add_socket(s);
        Some(self.conns.insert(Conn {
            handle,
            role,
            idle: false,
            since_ms: self.now_ms,
        }))
    }

    /// Closing connections (orphans) allowed beyond `max_tcp`: a reclaimed connection closes
    /// gracefully (its last response is still to be read by the client, which a reset would
    /// destroy), so it keeps its socket for a moment after it stops counting as live.
    fn closing_allowance(&self) -> usize {
        closing_allowance(self.config.max_tcp)
    }

    fn memory_ok(&self) -> bool {
        let Some(m) = self.config.memory else {
            return true;
        };
        let cost = self.config.tcp_rx_buffer + self.config.tcp_tx_buffer + 1024;
        (m.free)() >= m.reserve + cost
    }

    fn admissible(&self) -> bool {
        let live = self.conns.len() - self.orphans.len();
        live < self.config.max_tcp
            && self.conns.len() < self.config.max_tcp + self.closing_allowance()
            && self.memory_ok()
    }

    /// Makes room for one more socket (see the module doc for the order). Returns whether it
    /// did anything.
    fn reclaim_one(&mut self) -> bool {
        let short_of_memory = !self.memory_ok();
        let too_many_closing = self.conns.len() >= self.config.max_tcp + self.closing_allowance();
        // Closing connections go first when they are what is in the way; the oldest, and those
        // whose FIN the peer has acknowledged (nothing of ours left to deliver) before others.
        if (short_of_memory || too_many_closing) && !self.orphans.is_empty() {
            let fin_acked = |i: &Inner, id: Id| {
                i.conns.get(id).is_some_and(|c| {
                    i.sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::FinWait2
                })
            };
            let id = self
                .orphans
                .iter()
                .copied()
                .find(|id| fin_acked(self, *id))
                .unwrap_or(self.orphans[0]);
            if fin_acked(self, id) {
                self.orphans.retain(|x| *x != id);
                self.drop_quietly(id);
            } else {
                self.kill(id);
            }
            self.counters.reclaimed += 1;
            return true;
        }
        let now = self.now_ms;
        let idle = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.role == Role::Open && c.idle && now.saturating_sub(c.since_ms) >= MIN_IDLE_MS
            })
            .filter(|(_, c)| {
                let s = self.sockets.get::<tcp::Socket>(c.handle);
                s.state() == tcp::State::Established && s.recv_queue() == 0 && s.send_queue() == 0
            })
            .min_by_key(|(_, c)| c.since_ms)
            .map(|(id, _)| id);
        if let Some(id) = idle {
            if short_of_memory {
                // Closing gracefully frees nothing yet.
                self.kill(id);
            } else {
                self.close_for_room(id);
            }
            self.counters.reclaimed += 1;
            return true;
        }
        let stalled = self
            .listeners
            .iter()
            .filter_map(|(_, l)| l.half_open.front().copied())
            .filter_map(|id| Some((id, self.conns.get(id)?.since_ms)))
            .filter(|&(_, since)| now.saturating_sub(since) >= STALLED_HANDSHAKE_MS)
            .min_by_key(|&(_, since)| since)
            .map(|(id, _)| id);
        if let Some(id) = stalled {
            self.kill(id);
            self.counters.pending_dropped += 1;
            return true;
        }
        false
    }

    /// Closes an idle connection gracefully to make room: the stack takes it over as an orphan
    /// under a new id, so the application's stream no longer reaches it (its operations fail
    /// with `Reclaimed`, its drop does nothing).
    fn close_for_room(&mut self, id: Id) {
        let Some(c) = self.conns.remove(id) else {
            return;
        };
        log::debug!(
            "tcp: closing idle {id:?} to make room ({:?})",
            self.sockets.get::<tcp::Socket>(c.handle).remote_endpoint()
        );
        self.sockets.get_mut::<tcp::Socket>(c.handle).close();
        let now = self.now_ms;
        let orphan = self.conns.insert(Conn {
            handle: c.handle,
            role: Role::Orphan {
                deadline_ms: now + self.config.close_timeout_ms,
            },
            idle: false,
            since_ms: now,
        });
        self.orphans.push(orphan);
        self.wake_runner();
    }

    /// Resets a connection: it leaves every queue, its socket sends a reset at the next
    /// egress and is removed after it.
    fn kill(&mut self, id: Id) {
        let Some(c) = self.conns.remove(id) else {
            return;
        };
        log::debug!(
            "tcp: resetting {id:?} {:?} ({:?})",
            c.role,
            self.sockets.get::<tcp::Socket>(c.handle).remote_endpoint()
        );
        match c.role {
            Role::Listening(l) | Role::HalfOpen(l) | Role::Ready(l) => {
                if let Some(l) = self.listeners.get_mut(l) {
                    if l.listen == Some(id) {
                        l.listen = None;
                    }
                    l.half_open.retain(|x| *x != id);
                    l.ready.retain(|x| *x != id);
                }
            }
            Role::Orphan { .. } => self.orphans.retain(|x| *x != id),
            Role::Open => {}
        }
        self.sockets.get_mut::<tcp::Socket>(c.handle).abort();
        self.dying.push(c.handle);
    }

    /// Removes a socket that needs no reset (closed, or only listening).
    fn drop_quietly(&mut self, id: Id) {
        if let Some(c) = self.conns.remove(id) {
            log::debug!(
                "tcp: dropping {id:?} {:?} {:?} ({:?})",
                c.role,
                self.sockets.get::<tcp::Socket>(c.handle).state(),
                self.sockets.get::<tcp::Socket>(c.handle).remote_endpoint()
            );
            self.sockets.remove(c.handle);
        }
    }

    pub(crate) fn port_in_use(&self, port: u16) -> bool {
        self.listeners.iter().any(|(_, l)| l.port == port)
    }

    pub(crate) fn add_listener(&mut self, port: u16) -> Id {
        let id = self.listeners.insert(Listener {
            port,
            listen: None,
            half_open: VecDeque::new(),
            ready: VecDeque::new(),
            waker: None,
            announced: false,
        });
        self.refill_listeners(true);
        self.announce();
        id
    }

    pub(crate) fn remove_listener(&mut self, id: Id) {
        let Some(l) = self.listeners.remove(id) else {
            return;
        };
        if let Some(s) = l.listen {
            self.drop_quietly(s);
        }
        for c in l.half_open.into_iter().chain(l.ready) {
            self.kill(c);
        }
        self.full_ports.retain(|p| *p != l.port);
        self.wake_runner();
    }

    /// Takes the next established connection of listener `id` (moving handshakes that
    /// completed since the last poll first).
    pub(crate) fn accept(&mut self, id: Id) -> Option<Result<Id, ()>> {
        self.sort_half_open(id);
        let l = self.listeners.get_mut(id)?;
        let Some(c) = l.ready.pop_front() else {
            return Some(Err(()));
        };
        if let Some(conn) = self.conns.get_mut(c) {
            conn.role = Role::Open;
            conn.since_ms = self.now_ms;
        }
        log::debug!(
            "tcp: accepted {c:?} ({:?})",
            self.tcp(c).and_then(|s| s.remote_endpoint())
        );
        self.counters.accepted += 1;
        Some(Ok(c))
    }

    /// Gives every listener a listening socket again after a SYN took it. Runs after every
    /// frame (cheap when no SYN arrived); with `retry_full` (once per poll) also retries
    /// listeners that could not get one. Keeps `full_ports` (listener ports without a
    /// listening socket) up to date for the device filter.
    pub(crate) fn refill_listeners(&mut self, retry_full: bool) {
        let needs_work = |i: &Inner, l: &Listener| match l.listen {
            None => retry_full,
            Some(s) => i.conns.get(s).is_none_or(|c| {
                i.sockets.get::<tcp::Socket>(c.handle).state() != tcp::State::Listen
            }),
        };
        if !self.listeners.iter().any(|(_, l)| needs_work(self, l)) {
            return;
        }
        let ids: Vec<Id> = self.listeners.iter().map(|(id, _)| id).collect();
        for lid in ids {
            let Some(l) = self.listeners.get(lid) else {
                continue;
            };
            if !needs_work(self, l) {
                continue;
            }
            let port = l.port;
            if let Some(s) = l.listen {
                let state = self
                    .conns
                    .get(s)
                    .map(|c| self.sockets.get::<tcp::Socket>(c.handle).state());
                match state {
                    Some(tcp::State::SynReceived) => self.enqueue(lid, s, false),
                    Some(tcp::State::Established | tcp::State::CloseWait) => {
                        self.enqueue(lid, s, true)
                    }
                    _ => self.drop_quietly(s),
                }
                if let Some(l) = self.listeners.get_mut(lid) {
                    l.listen = None;
                }
            }
            let was_full = self.full_ports.contains(&port);
            let Some(s) = self.new_tcp(Role::Listening(lid)) else {
                if !was_full {
                    self.counters.tcp_limit_hits += 1;
                }
                continue;
            };
            let ok = self
                .tcp(s)
                .is_some_and(|t| t.listen(IpListenEndpoint { addr: None, port }).is_ok());
            match self.listeners.get_mut(lid) {
                Some(l) if ok => l.listen = Some(s),
                _ => self.drop_quietly(s),
            }
        }
        let full: Vec<u16> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.listen.is_none())
            .map(|(_, l)| l.port)
            .collect();
        self.full_ports = full;
    }

    fn enqueue(&mut self, lid: Id, c: Id, established: bool) {
        let now = self.now_ms;
        if let Some(conn) = self.conns.get_mut(c) {
            conn.role = if established {
                Role::Ready(lid)
            } else {
                Role::HalfOpen(lid)
            };
            conn.since_ms = now;
        }
        if let Some(l) = self.listeners.get_mut(lid) {
            if established {
                l.ready.push_back(c);
                if let Some(w) = l.waker.take() {
                    w.wake();
                }
            } else {
                l.half_open.push_back(c);
            }
        }
    }

    /// Moves completed handshakes of listener `lid` to its ready queue; drops dead ones.
    fn sort_half_open(&mut self, lid: Id) {
        let Some(l) = self.listeners.get_mut(lid) else {
            return;
        };
        let half_open = core::mem::take(&mut l.half_open);
        let mut still = VecDeque::with_capacity(half_open.len());
        let mut woke = false;
        for c in half_open {
            let Some(conn) = self.conns.get(c) else {
                continue;
            };
            match self.sockets.get::<tcp::Socket>(conn.handle).state() {
                tcp::State::SynReceived => still.push_back(c),
                tcp::State::Established | tcp::State::CloseWait => {
                    if let Some(conn) = self.conns.get_mut(c) {
                        conn.role = Role::Ready(lid);
                        conn.since_ms = self.now_ms;
                    }
                    if let Some(l) = self.listeners.get_mut(lid) {
                        l.ready.push_back(c);
                    }
                    woke = true;
                }
                // Reset during the handshake (back in LISTEN) or gone: nothing to tell anyone.
                _ => self.drop_quietly(c),
            }
        }
        if let Some(l) = self.listeners.get_mut(lid) {
            l.half_open = still;
            if woke && let Some(w) = l.waker.take() {
                w.wake();
            }
        }
    }

    /// Per-poll upkeep: completed handshakes to the ready queues, handshake timeouts, backlog
    /// caps, connections reset before they were accepted, orphans that closed or timed out.
    pub(crate) fn maintain_tcp(&mut self) {
        let now = self.now_ms;
        let ids: Vec<Id> = self.listeners.iter().map(|(id, _)| id).collect();
        for lid in ids {
            self.sort_half_open(lid);
            let Some(l) = self.listeners.get(lid) else {
                continue;
            };
            let timed_out: Vec<Id> = l
                .half_open
                .iter()
                .copied()
                .filter(|c| {
                    self.conns.get(*c).is_some_and(|c| {
                        now.saturating_sub(c.since_ms) >= self.config.handshake_timeout_ms
                    })
                })
                .collect();
            for c in timed_out {
                self.kill(c);
                self.counters.handshake_timeouts += 1;
            }
            let Some(l) = self.listeners.get(lid) else {
                continue;
            };
            let gone: Vec<Id> = l
                .ready
                .iter()
                .copied()
                .filter(|c| {
                    self.conns.get(*c).is_none_or(|c| {
                        self.sockets.get::<tcp::Socket>(c.handle).state() == tcp::State::Closed
                    })
                })
                .collect();
            for c in gone {
                if let Some(l) = self.listeners.get_mut(lid) {
                    l.ready.retain(|x| *x != c);
                }
                self.drop_quietly(c);
            }
            let backlog = self.config.backlog;
            while let Some(l) = self.listeners.get(lid)
                && backlog > 0
                && l.half_open.len() + l.ready.len() > backlog
            {
                let victim = l.half_open.front().or(l.ready.front()).copied();
                let Some(v) = victim else { break };
                self.kill(v);
                self.counters.pending_dropped += 1;
            }
            if let Some(l) = self.listeners.get_mut(lid) {
                if l.half_open.capacity() > 64 && l.half_open.len() * 4 < l.half_open.capacity() {
                    l.half_open.shrink_to_fit();
                }
                if l.ready.capacity() > 64 && l.ready.len() * 4 < l.ready.capacity() {
                    l.ready.shrink_to_fit();
                }
                // Connections are waiting: the accepting task must know, however they got
                // into the queue.
                if !l.ready.is_empty()
                    && let Some(w) = l.waker.take()
                {
                    w.wake();
                }
            }
        }
        self.reap_orphans();
    }

    /// Removes orphans that finished closing and resets those past their deadline. The list
    /// stays in the order orphans were made (oldest first), which reclaiming relies on.
    fn reap_orphans(&mut self) {
        let now = self.now_ms;
        let mut i = 0;
        while i < self.orphans.len() {
            let id = self.orphans[i];
            let Some(c) = self.conns.get(id) else {
                self.orphans.remove(i);
                continue;
            };
            let state = self.sockets.get::<tcp::Socket>(c.handle).state();
            let overdue = matches!(c.role, Role::Orphan { deadline_ms } if now >= deadline_ms);
            if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                self.orphans.remove(i);
                self.drop_quietly(id);
            } else if overdue {
                // `kill` takes it off the list.
                self.kill(id);
                self.counters.close_timeouts += 1;
            } else {
                i += 1;
            }
        }
        if self.orphans.capacity() > 64 && self.orphans.len() * 4 < self.orphans.capacity() {
            self.orphans.shrink_to_fit();
        }
    }

    /// The application dropped its stream: close gracefully in the background.
    pub(crate) fn orphan(&mut self, id: Id) {
        let now = self.now_ms;
        let deadline_ms = now + self.config.close_timeout_ms;
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        c.role = Role::Orphan { deadline_ms };
        c.since_ms = now;
        let h = c.handle;
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        s.close();
        if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            self.drop_quietly(id);
        } else {
            self.orphans.push(id);
        }
        self.wake_runner();
    }

    /// When the TCP upkeep next needs to run: the earliest handshake or close deadline.
    pub(crate) fn tcp_deadline(&self) -> Option<u64> {
        let handshake = self
            .listeners
            .iter()
            .filter_map(|(_, l)| l.half_open.front())
            .filter_map(|c| self.conns.get(*c))
            .map(|c| c.since_ms + self.config.handshake_timeout_ms)
            .min();
        let close = self
            .orphans
            .iter()
            .filter_map(|id| match self.conns.get(*id)?.role {
                Role::Orphan { deadline_ms } => Some(deadline_ms),
                _ => None,
            })
            .min();
        let dying = (!self.dying.is_empty()).then_some(self.now_ms);
        [handshake, close, dying].into_iter().flatten().min()
    }
}
