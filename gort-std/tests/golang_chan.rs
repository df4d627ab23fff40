//! Ports of Go's channel tests (go/src/runtime/chan_test.go); each case
//! names the Go test it follows. Go's `time.Sleep(time.Millisecond)` "make
//! sure the goroutine blocked" steps become a wait until the channel
//! reports the goroutine queued on it (`blocked_senders` /
//! `blocked_receivers`), which a loaded machine cannot fool. The select
//! cases of chan_test.go are in golang_select.rs.

mod common;
use common::wait_until;
use gort_sched::{go, gosched, Builder};
use gort_std::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// TestChan, "receive from empty chan blocks" / "non-blocking receive does
/// not block" / "send to full chan blocks" / "non-blocking send does not
/// block", for capacities 0..20.
#[test]
fn test_chan_blocking() {
    for cap in 0..20 {
        let (tx, rx) = chan::<i32>(cap);
        let recv1 = Arc::new(AtomicBool::new(false));
        let recv2 = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = [recv1.clone(), recv2.clone()]
            .into_iter()
            .map(|flag| {
                let rx = rx.clone();
                go(move || {
                    let _ = rx.recv();
                    flag.store(true, Ordering::SeqCst);
                })
            })
            .collect();
        wait_until("both receives block", || rx.blocked_receivers() == 2);
        assert!(
            !recv1.load(Ordering::SeqCst) && !recv2.load(Ordering::SeqCst),
            "chan[{cap}]: receive from empty chan"
        );
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "chan[{cap}]");
        select! {
            recv(rx) -> _v => panic!("chan[{cap}]: receive from empty chan"),
            default => {}
        }
        tx.send(0).unwrap();
        tx.send(0).unwrap();
        for h in hs {
            h.join().unwrap();
        }

        let (tx, rx) = chan::<i32>(cap);
        for i in 0..cap as i32 {
            tx.send(i).unwrap();
        }
        let sent = Arc::new(AtomicU32::new(0));
        let h = {
            let (tx, sent) = (tx.clone(), sent.clone());
            go(move || {
                tx.send(0).unwrap();
                sent.store(1, Ordering::SeqCst);
            })
        };
        wait_until("the send blocks", || tx.blocked_senders() == 1);
        assert_eq!(
            sent.load(Ordering::SeqCst),
            0,
            "chan[{cap}]: send to full chan"
        );
        assert!(
            matches!(tx.try_send(0), Err(TrySendError::Full(0))),
            "chan[{cap}]"
        );
        select! {
            send(tx, 0) -> _r => panic!("chan[{cap}]: send to full chan"),
            default => {}
        }
        rx.recv().unwrap();
        h.join().unwrap();
    }
}

/// TestChan, "we receive 0 from closed chan": buffered values first, in
/// order, then closed (Go's zero value + ok=false is `Err(RecvError)`).
#[test]
fn test_chan_recv_from_closed() {
    for cap in 0..20 {
        let (tx, rx) = chan::<i32>(cap);
        for i in 0..cap as i32 {
            tx.send(i).unwrap();
        }
        tx.close();
        for i in 0..cap as i32 {
            assert_eq!(rx.recv(), Ok(i), "chan[{cap}]");
        }
        assert_eq!(rx.recv(), Err(RecvError), "chan[{cap}]");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed), "chan[{cap}]");
    }
}

/// TestChan, "close unblocks receive".
#[test]
fn test_chan_close_unblocks_receive() {
    for cap in 0..20 {
        let (tx, rx) = chan::<i32>(cap);
        let (dtx, drx) = chan::<bool>(0);
        let h = go(move || {
            let r = rx.recv();
            dtx.send(r == Err(RecvError)).unwrap();
        });
        wait_until("the receive blocks", || tx.blocked_receivers() == 1);
        tx.close();
        assert!(
            drx.recv().unwrap(),
            "chan[{cap}]: received a value from a closed chan"
        );
        h.join().unwrap();
    }
}

/// TestChan: 100 integers arrive uncorrupted and in FIFO order; then 4
/// senders x 1000 values and 4 receivers get every value exactly P times.
#[test]
fn test_chan_fifo_and_mpmc() {
    for cap in [0, 1, 2, 7, 19] {
        let (tx, rx) = chan::<i32>(cap);
        let sender = {
            let tx = tx.clone();
            go(move || {
                for i in 0..100 {
                    tx.send(i).unwrap();
                }
            })
        };
        for i in 0..100 {
            assert_eq!(rx.recv(), Ok(i), "chan[{cap}]");
        }
        sender.join().unwrap();

        const P: usize = 4;
        const L: i32 = 1000;
        let mut hs = Vec::new();
        for _ in 0..P {
            let tx = tx.clone();
            hs.push(go(move || {
                for i in 0..L {
                    tx.send(i).unwrap();
                }
            }));
        }
        let (dtx, drx) = chan::<HashMap<i32, usize>>(0);
        for _ in 0..P {
            let (rx, dtx) = (rx.clone(), dtx.clone());
            hs.push(go(move || {
                let mut m = HashMap::new();
                for _ in 0..L {
                    *m.entry(rx.recv().unwrap()).or_insert(0) += 1;
                }
                dtx.send(m).unwrap();
            }));
        }
        drop(dtx);
        let mut all = HashMap::new();
        // A goroutine that panics drops its end: the receive fails, and
        // the joins below report its panic instead of a hang.
        for m in drx.iter().take(P) {
            for (k, v) in m {
                *all.entry(k).or_insert(0) += v;
            }
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(all.len(), L as usize, "chan[{cap}]");
        assert!(all.values().all(|&v| v == P), "chan[{cap}]");
    }
}

/// TestChan, "len/cap".
#[test]
fn test_chan_len_cap() {
    for cap in 0..20 {
        let (tx, rx) = chan::<i32>(cap);
        assert_eq!((tx.len(), tx.capacity()), (0, cap));
        for i in 0..cap as i32 {
            tx.send(i).unwrap();
        }
        assert_eq!((rx.len(), rx.capacity()), (cap, cap));
    }
}

/// TestNonblockRecvRace: a buffered value is visible to a non-blocking
/// receive in another goroutine even while the channel is being closed.
#[test]
fn test_nonblock_recv_race() {
    for _ in 0..2000 {
        let (tx, rx) = chan::<i32>(1);
        tx.send(1).unwrap();
        let h = {
            let rx = rx.clone();
            go(move || {
                select! {
                    recv(rx) -> _v => {},
                    default => panic!("chan is not ready"),
                }
            })
        };
        tx.close();
        let _ = rx.recv();
        h.join().unwrap();
    }
}

/// TestMultiConsumer: 23 workers range over a queue (Gosched-ing now and
/// then), forward to a result channel closed after a WaitGroup; the sum and
/// count are exact.
#[test]
fn test_multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 100_000;
    let pn = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31];
    let (qtx, qrx) = chan::<usize>(NWORK * 3);
    let (rtx, rrx) = chan::<usize>(NWORK * 3);
    let wg = Arc::new(WaitGroup::new());
    let mut workers = Vec::new();
    for w in 0..NWORK {
        wg.add(1);
        let (qrx, rtx, wg) = (qrx.clone(), rtx.clone(), wg.clone());
        workers.push(go(move || {
            // Go: `defer wg.Done()`, so a failing worker fails the join
            // below instead of hanging the feeder's wait.
            struct Done(Arc<WaitGroup>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.done();
                }
            }
            let _done = Done(wg);
            for v in &qrx {
                if pn[w % pn.len()] == v {
                    gosched();
                }
                rtx.send(v).unwrap();
            }
        }));
    }
    drop(qrx);
    let feeder = go(move || {
        let mut expect = 0;
        for i in 0..NITER {
            let v = pn[i % pn.len()];
            expect += v;
            qtx.send(v).unwrap();
        }
        qtx.close(); // no more work
        wg.wait(); // workers done
        rtx.close(); // so there can be no more results
        expect
    });
    let (mut n, mut s) = (0, 0);
    for v in rrx {
        n += 1;
        s += v;
    }
    let expect = feeder.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!((n, s), (NITER, expect));
}

/// TestShrinkStackDuringBlockedSend: channel operations work while the
/// blocked sender's stack is compacted away (gort's counterpart of Go
/// shrinking it). Each round waits until the sender is blocked again and a
/// compaction has happened (the process-wide count: no other test of this
/// binary opts in), instead of sleeping and hoping it did.
#[test]
fn test_compacted_stack_during_blocked_send() {
    const N: i32 = 10;
    let (tx, rx) = chan::<i32>(0);
    let (dtx, drx) = chan::<()>(0);
    // SAFETY: nothing outside this goroutine refers to its stack: the
    // channel keeps values and queue entries on the heap.
    let b = unsafe { Builder::new().compact_when_parked(true) };
    // Read before the sender can park (a stack is compacted once per park):
    // here before it starts, then while it is parked and compacted, before
    // the `recv` that lets it run on.
    let mut before = gort_os::context::compactions();
    b.spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
            // Use some stack, briefly.
            std::hint::black_box([0u8; 16 << 10]);
        }
        dtx.send(()).unwrap();
    });
    for i in 0..N {
        wait_until("the sender blocks", || rx.blocked_senders() == 1);
        // Passes run every 10 ms and compact stacks parked a whole interval.
        wait_until("the blocked sender is compacted", || {
            gort_os::context::compactions() > before
        });
        before = gort_os::context::compactions();
        assert_eq!(rx.recv(), Ok(i));
    }
    drx.recv().unwrap();
}
