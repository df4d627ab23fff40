//! Ports of Go's select tests (go/src/runtime/chan_test.go's select cases);
//! each case names the Go test it follows. Go's nil channels (a case that
//! can never proceed) are expressed by leaving the case out of a dynamic
//! [`Select`].

mod common;
use common::wait_until;
use gort_sched::{go, gosched, JoinHandle};
use gort_std::*;
use std::sync::Arc;
use std::time::Duration;

/// Joins every goroutine in the order they finish, resuming the first panic
/// (a failed assertion) here, so it fails the test. Joining in a fixed order
/// would hang on a goroutine left blocked forever by its failed partner.
fn join_all<T>(mut hs: Vec<JoinHandle<T>>) {
    while !hs.is_empty() {
        match hs.iter().position(|h| h.is_finished()) {
            Some(i) => {
                if let Err(e) = hs.swap_remove(i).join() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// TestNonblockSelectRace / TestNonblockSelectRace2: a select with default
/// acts on one instant's state. c1 is ready when the goroutine starts; then
/// `make_c2_ready` runs and c1 is drained: c1 or c2 is always ready, so the
/// default must never be taken.
fn nonblock_select_race(c2_cap: usize, make_c2_ready: fn(&Sender<i32>)) {
    let (dtx, drx) = chan::<bool>(1);
    for _ in 0..10_000 {
        let (c1tx, c1rx) = chan::<i32>(1);
        let (c2tx, c2rx) = chan::<i32>(c2_cap);
        c1tx.send(1).unwrap();
        let (r1, r2, dtx2) = (c1rx.clone(), c2rx.clone(), dtx.clone());
        let h = go(move || {
            let ok = select! {
                recv(r1) -> _v => true,
                recv(r2) -> _v => true,
                default => false,
            };
            dtx2.send(ok).unwrap();
        });
        make_c2_ready(&c2tx);
        select! {
            recv(c1rx) -> _v => {},
            default => {},
        }
        // Its send never blocks (capacity 1, drained every round): joining
        // first surfaces its panic instead of hanging in the recv below.
        h.join().unwrap();
        assert!(drx.recv().unwrap(), "no chan is ready");
    }
}

/// TestNonblockSelectRace: c2 becomes ready by a send.
#[test]
fn test_nonblock_select_race() {
    nonblock_select_race(1, |c2| c2.send(1).unwrap());
}

/// TestNonblockSelectRace2: c2 (unbuffered) becomes ready by close.
#[test]
fn test_nonblock_select_race2() {
    nonblock_select_race(0, |c2| c2.close());
}

/// TestSelfSelect: send and receive on the same channel in one select
/// neither crashes nor deadlocks, and an unbuffered select never receives
/// its own value.
#[test]
fn test_self_select() {
    for cap in [0, 10] {
        let (tx, rx) = chan::<usize>(cap);
        let hs = (0..2usize)
            .map(|p| {
                let (tx, rx) = (tx.clone(), rx.clone());
                go(move || {
                    for i in 0..1000 {
                        if p == 0 || i % 2 == 0 {
                            select! {
                                send(tx, p) -> r => r.unwrap(),
                                recv(rx) -> v => assert!(!(cap == 0 && v == Ok(p)), "self receive"),
                            }
                        } else {
                            select! {
                                recv(rx) -> v => assert!(!(cap == 0 && v == Ok(p)), "self receive"),
                                send(tx, p) -> r => r.unwrap(),
                            }
                        }
                    }
                })
            })
            .collect();
        join_all(hs);
    }
}

/// TestSelectStress: 4 senders and 4 receivers per channel, plus one
/// goroutine sending N on each channel through a single select and one
/// receiving N from each through a single select (cases drop out when
/// their channel is done — Go sets them to nil). Must not deadlock.
#[test]
fn test_select_stress() {
    const N: usize = 10_000;
    let chans: Vec<(Sender<i32>, Receiver<i32>)> = [0, 0, 2, 3].iter().map(|&c| chan(c)).collect();
    let mut hs = Vec::new();
    for (tx, rx) in &chans {
        let tx = tx.clone();
        hs.push(go(move || {
            for _ in 0..N {
                tx.send(0).unwrap();
            }
        }));
        let rx = rx.clone();
        hs.push(go(move || {
            for _ in 0..N {
                rx.recv().unwrap();
            }
        }));
    }
    let txs: Vec<Sender<i32>> = chans.iter().map(|c| c.0.clone()).collect();
    hs.push(go(move || {
        let mut n = [0usize; 4];
        for _ in 0..4 * N {
            let mut sel = Select::new();
            // Go's source order for this select: c[3], c[2], c[0], c[1].
            let cases: Vec<(usize, SendCase<i32>)> = [3, 2, 0, 1]
                .into_iter()
                .filter(|&k| n[k] < N)
                .map(|k| (k, sel.send(&txs[k], 0)))
                .collect();
            let i = sel.select();
            let (k, case) = cases.into_iter().find(|(_, c)| c.index() == i).unwrap();
            case.finish(&mut sel).unwrap();
            n[k] += 1;
        }
    }));
    let rxs: Vec<Receiver<i32>> = chans.iter().map(|c| c.1.clone()).collect();
    hs.push(go(move || {
        let mut n = [0usize; 4];
        for _ in 0..4 * N {
            let mut sel = Select::new();
            let cases: Vec<(usize, RecvCase<i32>)> = (0..4)
                .filter(|&k| n[k] < N)
                .map(|k| (k, sel.recv(&rxs[k])))
                .collect();
            let i = sel.select();
            let (k, case) = cases.into_iter().find(|(_, c)| c.index() == i).unwrap();
            case.finish(&mut sel).unwrap();
            n[k] += 1;
        }
    }));
    join_all(hs);
}

/// TestSelectFairness: with two always-ready channels (and two never-ready
/// ones listed first), each is chosen about half the time: within 10 sigma.
#[test]
fn test_select_fairness() {
    const TRIALS: usize = 10_000;
    let (c1tx, c1rx) = chan::<u8>(TRIALS + 1);
    let (c2tx, c2rx) = chan::<u8>(TRIALS + 1);
    for _ in 0..TRIALS + 1 {
        c1tx.send(1).unwrap();
        c2tx.send(2).unwrap();
    }
    let (_c3tx, c3rx) = chan::<u8>(0);
    let (_c4tx, c4rx) = chan::<u8>(0);
    let (otx, orx) = chan::<u8>(0);
    let (done_tx, done_rx) = chan::<u8>(0);
    let h = go(move || loop {
        let b = select! {
            recv(c3rx) -> b => b.unwrap(),
            recv(c4rx) -> b => b.unwrap(),
            recv(c1rx) -> b => b.unwrap(),
            recv(c2rx) -> b => b.unwrap(),
        };
        select! {
            send(otx, b) -> r => r.unwrap(),
            recv(done_rx) -> _d => return,
        }
    });
    let (mut cnt1, mut cnt2) = (0f64, 0f64);
    for _ in 0..TRIALS {
        match orx.recv().unwrap() {
            1 => cnt1 += 1.0,
            2 => cnt2 += 1.0,
            b => panic!("unexpected value {b} on channel"),
        }
    }
    // Binomial: mean n/2, sigma sqrt(n)/2.
    let (n, sigma) = (TRIALS as f64, (TRIALS as f64).sqrt() / 2.0);
    assert!(
        (cnt1 - n / 2.0).abs() <= 10.0 * sigma && (cnt2 - n / 2.0).abs() <= 10.0 * sigma,
        "unfair select: {cnt1} vs {cnt2}"
    );
    done_tx.close();
    h.join().unwrap();
}

/// TestChanSendInterface: select sends with default on a full channel (the
/// unsent values are dropped, not leaked).
#[test]
fn test_chan_send_interface() {
    let m = Arc::new(());
    let (tx, _rx) = chan::<Arc<()>>(1);
    tx.send(m.clone()).unwrap();
    select! {
        send(tx, m.clone()) -> _r => panic!("sent to a full channel"),
        default => {},
    }
    select! {
        send(tx, m.clone()) -> _r => panic!("sent to a full channel"),
        send(tx, Arc::new(())) -> _r => panic!("sent to a full channel"),
        default => {},
    }
    assert_eq!(Arc::strong_count(&m), 2, "the unsent values were dropped");
}

/// TestPseudoRandomSend: a select over two sends of different values on
/// one channel picks both, for unbuffered and buffered channels.
#[test]
fn test_pseudo_random_send() {
    const N: usize = 100;
    for cap in [0, N] {
        let (tx, rx) = chan::<usize>(cap);
        let h = go(move || {
            (0..N)
                .map(|_| {
                    gosched();
                    rx.recv().unwrap()
                })
                .collect::<Vec<_>>()
        });
        for _ in 0..N {
            select! {
                send(tx, 1) -> r => r.unwrap(),
                send(tx, 0) -> r => r.unwrap(),
            }
        }
        let l = h.join().unwrap();
        let n1: usize = l.iter().sum();
        let n0 = N - n1;
        assert!(
            n0 > N / 10 && n1 > N / 10,
            "want pseudorandom, got {n0} zeros and {n1} ones (cap {cap})"
        );
    }
}

/// TestSelectDuplicateChannel: a goroutine can be queued on the same
/// channel twice by one select; being woken through another channel must
/// dequeue it cleanly, so a later receiver on that channel is woken.
#[test]
fn test_select_duplicate_channel() {
    let (ctx, crx) = chan::<i32>(0);
    let (dtx, drx) = chan::<i32>(0);
    let (etx, erx) = chan::<i32>(0);
    let crx2 = crx.clone();
    let a = go(move || {
        select! {
            recv(crx2) -> _v => {},
            recv(crx2) -> _v => {},
            recv(drx) -> _v => {},
        }
        etx.send(9).unwrap();
    });
    // A queues on c (twice) and d first.
    wait_until("A's select blocks", || {
        ctx.blocked_receivers() == 2 && dtx.blocked_receivers() == 1
    });
    let b = go(move || crx.recv().unwrap());
    wait_until("B queues on c too", || ctx.blocked_receivers() == 3);
    dtx.send(7).unwrap(); // wakes A, which dequeues itself from c twice
    assert_eq!(erx.recv(), Ok(9));
    a.join().unwrap();
    ctx.send(8).unwrap(); // must wake B, not A's stale entry
    assert_eq!(b.join().unwrap(), 8);
}

/// Go's `select {}` with a default and no cases takes the default; with
/// cases that are never ready (nil channels in Go) it blocks until one is.
#[test]
fn test_select_empty_and_blocking() {
    let r = select! { default => 5 };
    assert_eq!(r, 5);
    let (tx, rx) = chan::<&'static str>(0);
    let h = go(move || {
        select! {
            recv(rx) -> v => v.unwrap(),
        }
    });
    wait_until("the select blocks", || tx.blocked_receivers() == 1);
    tx.send("late").unwrap();
    assert_eq!(h.join().unwrap(), "late");
}
