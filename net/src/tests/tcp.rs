//! Listeners, the connection limit, reclaiming, timeouts and memory, between two stacks.

use super::harness::*;
use crate::NetError;
use crate::stack::Stack;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::net::SocketAddr;
use smoltcp::wire::TcpControl;

/// Serves "ping" → "pong" on port 80 of `stack`: each connection is read until 4 bytes have
/// arrived (marked idle until then if `idle`), answered and closed.
fn serve_pings(stack: &Stack, idle: bool, served: Rc<Cell<usize>>) {
    let l = stack.listen(80).unwrap();
    spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            let served = served.clone();
            spawn(async move {
                c.set_idle(idle);
                let mut buf = [0u8; 4];
                let mut got = 0;
                while got < 4 {
                    match c.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                c.set_idle(false);
                if c.write_all(b"pong").await.is_ok() {
                    served.set(served.get() + 1);
                }
                c.shutdown();
                let _ = c.flush().await;
            });
        }
    });
}

/// A client task: connect, "ping", read to the end; counts a "pong" in `ok`, anything else in
/// `failed`.
fn ping(stack: &Stack, to: SocketAddr, ok: Rc<Cell<usize>>, failed: Rc<Cell<usize>>) {
    let stack = stack.clone();
    spawn(async move {
        let r = async {
            let mut c = stack.connect(to).await?;
            c.write_all(b"ping").await?;
            let mut got = Vec::new();
            let mut b = [0u8; 16];
            loop {
                let n = c.read(&mut b).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
            Ok::<_, NetError>(got)
        }
        .await;
        match r {
            Ok(g) if g == b"pong" => ok.set(ok.get() + 1),
            _ => failed.set(failed.get() + 1),
        }
    });
}

/// A client that connects and then holds the connection open without sending anything.
fn hold(stack: &Stack, to: SocketAddr, connected: Rc<Cell<usize>>, ended: Rc<Cell<usize>>) {
    let stack = stack.clone();
    spawn(async move {
        let Ok(mut c) = stack.connect(to).await else {
            ended.set(ended.get() + 1);
            return;
        };
        connected.set(connected.get() + 1);
        let mut b = [0u8; 8];
        let _ = c.read(&mut b).await;
        ended.set(ended.get() + 1);
    });
}

fn server() -> SocketAddr {
    SocketAddr::from((IP_A, 80))
}

#[test]
fn a_burst_of_a_thousand_connects_is_served_in_full() {
    let mut w = World::pair(|c| c.max_tcp = 2048);
    let served = counter();
    serve_pings(&w.a.stack, false, served.clone());
    let (ok, failed) = (counter(), counter());
    // Every connect starts before either stack runs: one burst of 1000 SYNs.
    for _ in 0..1000 {
        ping(&w.b.stack, server(), ok.clone(), failed.clone());
    }
    assert!(w.run_until(60_000, |_| ok.get() + failed.get() == 1000));
    assert_eq!((ok.get(), failed.get()), (1000, 0));
    let c = w.a.stack.counters();
    assert_eq!(c.pending_dropped, 0, "{c:?}");
    assert_eq!(c.syn_dropped, 0, "{c:?}");
    assert_eq!(c.accepted, 1000);
}

/// A server limited to nine sockets serving pings (marking connections idle while they wait
/// if `idle`), and `holders` clients connected to it that send nothing. Returns the world and
/// the holders' counters: connected, ended.
fn nine_sockets_with_holders(
    idle: bool,
    holders: usize,
) -> (World, Rc<Cell<usize>>, Rc<Cell<usize>>) {
    let mut w = World::pair(|c| c.max_tcp = 9);
    serve_pings(&w.a.stack, idle, counter());
    let (held, ended) = (counter(), counter());
    for _ in 0..holders {
        hold(&w.b.stack, server(), held.clone(), ended.clone());
    }
    assert!(w.run_until(5_000, |_| held.get() == holders));
    (w, held, ended)
}

/// Two clients ping at once; both must be answered.
fn two_pings_served(w: &mut World) {
    let (ok, failed) = (counter(), counter());
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    assert!(w.run_until(10_000, |_| ok.get() + failed.get() == 2));
    assert_eq!((ok.get(), failed.get()), (2, 0));
}

#[test]
fn at_the_limit_idle_connections_are_reclaimed_before_anyone_is_refused() {
    // Nine sockets: the listening one and eight connections.
    let (mut w, _, ended) = nine_sockets_with_holders(true, 8);
    // Idle for over a second: a connection younger than that is not reclaimed (its first
    // request may be in flight).
    w.run_for(1_100);
    // A ninth and a tenth client, sending a request: each is served by closing the
    // connection that has been idle longest.
    two_pings_served(&mut w);
    // The two oldest idle clients saw their connections closed (end of stream).
    assert!(w.run_until(1_000, |_| ended.get() == 2));
    let c = w.a.stack.counters();
    assert_eq!(c.reclaimed, 2, "{c:?}");
    assert_eq!(c.syn_dropped, 0, "nobody was refused: {c:?}");
    assert!(c.tcp_sockets <= 9 + crate::closing_allowance(9), "{c:?}");
}

#[test]
fn fresh_connections_are_not_reclaimed_the_newcomer_waits_instead() {
    let (mut w, _, _) = nine_sockets_with_holders(true, 8);
    two_pings_served(&mut w);
    let c = w.a.stack.counters();
    // The second newcomer waited (its SYN dropped and retried) until the idle connections
    // were a second old.
    assert!(c.syn_dropped >= 1, "{c:?}");
}

#[test]
fn at_the_limit_busy_connections_are_kept_and_newcomers_retry_until_there_is_room() {
    // Not marked idle: the server is busy with each of them. The ninth takes the last
    // socket, the listening one: the listener has none left.
    let (mut w, _, ended) = nine_sockets_with_holders(false, 9);
    let (ok, failed) = (counter(), counter());
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    w.run_for(2_500);
    assert_eq!(ok.get() + failed.get(), 0, "refused or served at the limit");
    let c = w.a.stack.counters();
    assert!(
        c.syn_dropped >= 1,
        "the SYN was not dropped silently: {c:?}"
    );
    assert_eq!(c.reclaimed, 0);
    assert_eq!(ended.get(), 0, "a busy connection was reset");
    // One held connection ends: the waiting client's next SYN gets in.
    w.b.stack.with(|i| {
        let id = i.conns.iter().next().map(|(id, _)| id).unwrap();
        i.tcp(id).unwrap().close();
    });
    assert!(w.run_until(20_000, |_| ok.get() == 1));
}

#[test]
fn a_full_backlog_resets_the_oldest_waiting_connection() {
    let mut w = World::pair(|c| c.backlog = 4);
    // Listening, never accepting.
    let _l = w.a.stack.listen(80).unwrap();
    let (held, ended) = (counter(), counter());
    for _ in 0..6 {
        hold(&w.b.stack, server(), held.clone(), ended.clone());
    }
    w.run_for(3_000);
    let c = w.a.stack.counters();
    assert_eq!(c.pending_dropped, 2, "{c:?}");
    assert_eq!(ended.get(), 2, "the two oldest were reset");
}

#[test]
fn a_syn_flood_costs_bounded_sockets_and_a_real_client_still_gets_in() {
    let mut w = World::pair(|c| c.max_tcp = 64);
    let served = counter();
    serve_pings(&w.a.stack, false, served.clone());
    w.inject(arp_reply_for_fake());
    for n in 0..500u16 {
        w.inject(tcp_from_fake(10_000 + n, 80, TcpControl::Syn, 7, None));
    }
    let mut peak = 0;
    let (ok, failed) = (counter(), counter());
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    assert!(w.run_until(30_000, |w| {
        peak = peak.max(w.a.stack.counters().tcp_sockets);
        ok.get() + failed.get() == 1
    }));
    assert_eq!(ok.get(), 1, "the real client was not served");
    assert!(peak <= 64, "{peak} sockets");
    let c = w.a.stack.counters();
    assert!(c.pending_dropped > 0 || c.syn_dropped > 0, "{c:?}");
    // The rest of the flood times out.
    w.run_for(15_000);
    let c = w.a.stack.counters();
    assert!(c.handshake_timeouts > 0, "{c:?}");
    assert_eq!(c.tcp_sockets, 1, "only the listening socket is left: {c:?}");
}

#[test]
fn a_dropped_connection_whose_peer_vanished_is_reset_after_the_close_timeout() {
    let mut w = World::pair(|c| c.close_timeout_ms = 2_000);
    let l = w.a.stack.listen(80).unwrap();
    let accepted = cell(None);
    {
        let accepted = accepted.clone();
        spawn(async move {
            let (c, _) = l.accept().await.unwrap();
            *accepted.borrow_mut() = Some(c);
            core::future::pending::<()>().await;
        });
    }
    let (held, ended) = (counter(), counter());
    hold(&w.b.stack, server(), held.clone(), ended.clone());
    assert!(w.run_until(5_000, |_| accepted.borrow().is_some()));
    // The peer vanishes; the application drops the connection.
    w.cut = true;
    drop(accepted.borrow_mut().take());
    w.run_for(1_000);
    assert_eq!(w.a.stack.counters().close_timeouts, 0);
    w.run_for(2_000);
    let c = w.a.stack.counters();
    assert_eq!(c.close_timeouts, 1, "{c:?}");
    assert_eq!(c.tcp_sockets, 1, "{c:?}");
}

#[test]
fn a_peak_of_a_thousand_connections_gives_its_memory_back() {
    let mut w = World::pair(|c| c.max_tcp = 2048);
    let served = counter();
    serve_pings(&w.a.stack, false, served.clone());
    let baseline = w.a.stack.with(|i| i.set_slots_for_test());
    let (held, ended) = (counter(), counter());
    for _ in 0..1000 {
        hold(&w.b.stack, server(), held.clone(), ended.clone());
    }
    assert!(w.run_until(60_000, |_| held.get() == 1000));
    let peak = w.a.stack.with(|i| i.set_slots_for_test());
    assert!(peak > 1000, "{peak:?}");
    // Every client closes.
    w.b.stack.with(|i| {
        let ids: Vec<_> = i.conns.iter().map(|(id, _)| id).collect();
        for id in ids {
            i.tcp(id).unwrap().close();
        }
    });
    assert!(w.run_until(30_000, |w| w.a.stack.counters().tcp_sockets == 1));
    w.run_for(100);
    let after = w.a.stack.with(|i| i.set_slots_for_test());
    assert!(
        after <= baseline + 4,
        "socket slots {baseline} -> {peak} -> {after}"
    );
    let queues = w.a.stack.with(|i| i.queue_capacity_for_test());
    assert!(queues <= 256, "listener queues keep {queues} entries");
}

#[test]
fn ephemeral_ports_wrap_around_and_skip_ports_in_use() {
    let mut w = World::pair(|_| {});
    let l = w.a.stack.listen(80).unwrap();
    spawn(async move {
        let mut keep = Vec::new();
        loop {
            let Ok(c) = l.accept().await else { return };
            keep.push(c);
        }
    });
    w.b.stack.with(|i| i.next_port = 65534);
    let streams = cell(Vec::new());
    for k in 1..=3 {
        let stack = w.b.stack.clone();
        let out = streams.clone();
        spawn(async move {
            let c = stack.connect(server()).await.unwrap();
            out.borrow_mut().push(c.local_addr().unwrap().port());
            core::mem::forget(c);
        });
        assert!(w.run_until(5_000, |_| streams.borrow().len() == k));
    }
    let mut ports = streams.borrow().clone();
    ports.sort_unstable();
    assert_eq!(ports, [49152, 65534, 65535]);
    // 49152 is taken: wrapping onto it again skips it.
    w.b.stack.with(|i| i.next_port = 49152);
    assert_eq!(w.b.stack.with(|i| i.ephemeral_port()), Some(49153));
}

#[test]
fn ipv6_clients_are_served_on_the_same_listener() {
    let mut w = World::pair(|_| {});
    let served = counter();
    serve_pings(&w.a.stack, false, served.clone());
    let (ok, failed) = (counter(), counter());
    ping(
        &w.b.stack,
        SocketAddr::from((IP6_A, 80)),
        ok.clone(),
        failed.clone(),
    );
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    assert!(w.run_until(10_000, |_| ok.get() + failed.get() == 2));
    assert_eq!(ok.get(), 2);
}

#[test]
fn sixty_idle_clients_one_after_another_then_a_request_at_a_limit_of_twelve() {
    let mut w = World::pair(|c| c.max_tcp = 12);
    serve_pings(&w.a.stack, true, counter());
    let (held, ended) = (counter(), counter());
    for k in 1..=60 {
        hold(&w.b.stack, server(), held.clone(), ended.clone());
        assert!(
            w.run_until(30_000, |_| held.get() + ended.get() >= k),
            "holder {k} never connected"
        );
    }
    let (ok, failed) = (counter(), counter());
    ping(&w.b.stack, server(), ok.clone(), failed.clone());
    assert!(w.run_until(30_000, |_| ok.get() + failed.get() == 1));
    assert_eq!(ok.get(), 1, "{:?}", w.a.stack.counters());
}
