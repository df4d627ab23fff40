//! Channels and select through the public API: the Rust-side semantics
//! (drop closes / disconnects, values never lost or leaked), misuse panics,
//! plain threads, large and zero-sized values.

mod common;
use common::wait_until;
use gort_sched::go;
use gort_std::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Counts live instances, to prove values are dropped exactly once.
struct Tracked(Arc<AtomicUsize>, #[allow(dead_code)] [u64; 8]);
impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Tracked {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone(), [7; 8])
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(self.1, [7; 8], "dropped a corrupted value");
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_last_sender_closes() {
    let (tx, rx) = chan::<u32>(4);
    let tx2 = tx.clone();
    let h = go(move || rx.iter().sum::<u32>());
    for i in 0..100 {
        if i % 2 == 0 { &tx } else { &tx2 }.send(i).unwrap();
    }
    drop(tx);
    tx2.send(1000).unwrap();
    drop(tx2);
    assert_eq!(h.join().unwrap(), 4950 + 1000);
}

#[test]
fn dropping_the_last_receiver_fails_senders_and_drops_buffered_values() {
    let live = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::<Tracked>(2);
    tx.send(Tracked::new(&live)).unwrap();
    tx.send(Tracked::new(&live)).unwrap();
    // A third send blocks (buffer full); dropping the receiver fails it.
    let (tx2, l2) = (tx.clone(), live.clone());
    let blocked = go(move || tx2.send(Tracked::new(&l2)).map_err(|SendError(v)| v));
    wait_until("the third send blocks", || rx.blocked_senders() == 1);
    drop(rx);
    let back = blocked.join().unwrap().unwrap_err();
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "buffered values dropped, the blocked one returned"
    );
    drop(back);
    assert!(matches!(
        tx.try_send(Tracked::new(&live)),
        Err(TrySendError::Disconnected(_))
    ));
    assert!(tx.send(Tracked::new(&live)).is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn send_on_closed_channel_panics() {
    let (tx, _rx) = chan::<u8>(1);
    tx.close();
    let e = std::panic::catch_unwind(|| tx.send(1)).unwrap_err();
    assert_eq!(panic_message(e), "send on closed channel");
    let e = std::panic::catch_unwind(|| tx.try_send(1)).unwrap_err();
    assert_eq!(panic_message(e), "send on closed channel");
    let e = std::panic::catch_unwind(|| tx.close()).unwrap_err();
    assert_eq!(panic_message(e), "close of closed channel");
    assert!(tx.is_closed());
}

#[test]
fn close_wakes_a_blocked_sender_which_panics() {
    for cap in [0, 1] {
        let (tx, rx) = chan::<u8>(cap);
        if cap == 1 {
            tx.send(0).unwrap();
        }
        let tx2 = tx.clone();
        let h = go(move || tx2.send(1));
        wait_until("the send blocks", || tx.blocked_senders() == 1);
        tx.close();
        let e = h.join().unwrap_err();
        assert!(e.to_string().contains("send on closed channel"), "{e}");
        // Buffered values are still received, then closed.
        if cap == 1 {
            assert_eq!(rx.recv(), Ok(0));
        }
        assert_eq!(rx.recv(), Err(RecvError));
    }
}

#[test]
fn close_wakes_every_blocked_receiver() {
    let (tx, rx) = chan::<u8>(0);
    let hs: Vec<_> = (0..50)
        .map(|_| {
            let rx = rx.clone();
            go(move || rx.recv())
        })
        .collect();
    wait_until("all 50 receives block", || tx.blocked_receivers() == 50);
    tx.close();
    for h in hs {
        assert_eq!(h.join().unwrap(), Err(RecvError));
    }
}

#[test]
fn plain_threads_and_goroutines_mix() {
    // thread -> goroutine -> thread over unbuffered channels.
    let (tx1, rx1) = chan::<u64>(0);
    let (tx2, rx2) = chan::<u64>(0);
    let g = go(move || {
        for v in rx1 {
            tx2.send(v * 2).unwrap();
        }
    });
    let consumer = std::thread::spawn(move || rx2.iter().sum::<u64>());
    for i in 0..10_000 {
        tx1.send(i).unwrap();
    }
    drop(tx1);
    g.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 2 * (0..10_000).sum::<u64>());
}

#[test]
fn large_and_zero_sized_values() {
    // Larger than a sudog's inline slot: through the buffer, a rendezvous,
    // and a blocked select.
    let (tx, rx) = chan::<[u64; 64]>(0);
    let h = go(move || {
        let a = rx.recv().unwrap();
        let b = select! { recv(rx) -> v => v.unwrap() };
        (a, b)
    });
    tx.send([1; 64]).unwrap();
    wait_until("the select blocks", || tx.blocked_receivers() == 1);
    tx.send([2; 64]).unwrap();
    assert_eq!(h.join().unwrap(), ([1; 64], [2; 64]));

    let (tx, rx) = chan::<()>(3);
    for _ in 0..3 {
        tx.send(()).unwrap();
    }
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.try_iter().count(), 3);
}

#[test]
fn select_drops_unsent_values_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let (tx_a, rx_a) = chan::<Tracked>(0);
    let (tx_b, rx_b) = chan::<Tracked>(0);
    let receiver = go(move || {
        let mut got = 0;
        for i in 0..1000 {
            // Alternate which channel is read so both sends win sometimes.
            let v = if i % 2 == 0 { rx_a.recv() } else { rx_b.recv() };
            drop(v.unwrap());
            got += 1;
        }
        got
    });
    for _ in 0..1000 {
        select! {
            send(tx_a, Tracked::new(&live)) -> r => r.unwrap(),
            send(tx_b, Tracked::new(&live)) -> r => r.unwrap(),
        }
    }
    assert_eq!(receiver.join().unwrap(), 1000);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "a losing send's value leaked or double-dropped"
    );
}

#[test]
fn select_send_to_a_channel_without_receivers_returns_the_value() {
    let (tx, rx) = chan::<String>(0);
    drop(rx);
    let r = select! {
        send(tx, "hello".to_string()) -> r => r,
    };
    assert_eq!(r.unwrap_err().0, "hello");
}

#[test]
fn select_send_on_closed_channel_panics() {
    let (tx, _rx) = chan::<u8>(0);
    tx.close();
    let e = std::panic::catch_unwind(|| {
        select! {
            send(tx, 1) -> _r => {},
        }
    })
    .unwrap_err();
    assert_eq!(panic_message(e), "send on closed channel");
}

#[test]
fn select_recv_reports_close() {
    let (tx, rx) = chan::<u8>(0);
    let h = go(move || select! { recv(rx) -> v => v });
    wait_until("the select blocks", || tx.blocked_receivers() == 1);
    drop(tx);
    assert_eq!(h.join().unwrap(), Err(RecvError));
}

#[test]
fn select_from_a_plain_thread_blocks_and_wakes() {
    let (tx, rx) = chan::<u8>(0);
    let (_tx2, rx2) = chan::<u8>(0);
    let t = std::thread::spawn(move || {
        select! {
            recv(rx2) -> _v => unreachable!(),
            recv(rx) -> v => v.unwrap(),
        }
    });
    wait_until("the thread's select blocks", || tx.blocked_receivers() == 1);
    go(move || tx.send(42).unwrap()).join().unwrap();
    assert_eq!(t.join().unwrap(), 42);
}

#[test]
fn select_macro_control_flow() {
    let (tx, rx) = chan::<u32>(10);
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let mut sum = 0;
    loop {
        select! {
            recv(rx) -> v => match v {
                Ok(3) => continue,
                Ok(v) => sum += v,
                Err(_) => break,
            },
        }
    }
    assert_eq!(sum, 45 - 3);
}

#[test]
fn finish_with_a_case_that_was_not_chosen_panics() {
    let (tx, rx) = chan::<u8>(1);
    let (_tx2, rx2) = chan::<u8>(1);
    tx.send(1).unwrap();
    let mut sel = Select::new();
    let _a = sel.recv(&rx);
    let b = sel.recv(&rx2);
    sel.select();
    let e =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.finish(&mut sel))).unwrap_err();
    assert!(panic_message(e).contains("did not choose"));
}

#[test]
fn many_selects_over_many_channels() {
    // 8 goroutines each select over all 16 channels (more than the inline
    // case capacity) while 16 senders feed them; every value arrives once.
    const PER: usize = 2000;
    let chans: Vec<_> = (0..16).map(|i| chan::<usize>(i % 3)).collect();
    let total = Arc::new(AtomicUsize::new(0));
    let count = Arc::new(AtomicUsize::new(0));
    let rxs: Arc<Vec<Receiver<usize>>> = Arc::new(chans.iter().map(|c| c.1.clone()).collect());
    let receivers: Vec<_> = (0..8)
        .map(|_| {
            let (rxs, total, count) = (rxs.clone(), total.clone(), count.clone());
            go(move || {
                // Go's idiom: a closed channel's case is dropped (set to nil).
                let mut open = vec![true; rxs.len()];
                while open.iter().any(|&o| o) {
                    let mut sel = Select::new();
                    let cases: Vec<_> = (0..rxs.len())
                        .filter(|&k| open[k])
                        .map(|k| (k, sel.recv(&rxs[k])))
                        .collect();
                    let i = sel.select();
                    let (k, case) = cases.into_iter().find(|(_, c)| c.index() == i).unwrap();
                    match case.finish(&mut sel) {
                        Ok(v) => {
                            total.fetch_add(v, Ordering::SeqCst);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => open[k] = false,
                    }
                }
            })
        })
        .collect();
    let senders: Vec<_> = chans
        .into_iter()
        .map(|(tx, _)| {
            go(move || {
                for v in 0..PER {
                    tx.send(v).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    for h in receivers {
        h.join().unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 16 * PER);
    assert_eq!(total.load(Ordering::SeqCst), 16 * (PER * (PER - 1) / 2));
}

#[test]
fn select_over_two_busy_channels_delivers_each_value_once() {
    for round in 0..20 {
        let n = 200_000u64;
        let (atx, arx) = chan::<u64>(1024);
        let (btx, brx) = chan::<u64>(1024);
        // Keep a sender of each: a producer finishing must not close its
        // channel (a closed channel would be always ready).
        let (_keep_a, _keep_b) = (atx.clone(), btx.clone());
        let pa = go(move || (0..n).for_each(|i| atx.send(i).unwrap()));
        let pb = go(move || (0..n).for_each(|i| btx.send(n + i).unwrap()));
        let mut seen = vec![0u8; 2 * n as usize];
        for _ in 0..2 * n {
            let v = select! {
                recv(arx) -> v => v.unwrap(),
                recv(brx) -> v => v.unwrap(),
            };
            seen[v as usize] += 1;
        }
        let dup = seen.iter().filter(|&&c| c > 1).count();
        let miss = seen.iter().filter(|&&c| c == 0).count();
        assert_eq!((dup, miss), (0, 0), "round {round}");
        pa.join().unwrap();
        pb.join().unwrap();
    }
}
