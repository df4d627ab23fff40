//! The profiles' records (gort-sched's `prof`) under gort-std's channels and
//! locks: who blocks where, who made whom wait, goroutine snapshots and
//! labels, latency tracking. The encodings are tested in the facade.

use gort_os::unwind::symbolize;
use gort_sched::prof;
use gort_sched::{go, run};
use gort_std::{chan, Mutex, WaitGroup};
use std::sync::Arc;
use std::time::Duration;

/// Every function name on a stack (inlined frames included).
fn names(stack: &[usize]) -> Vec<String> {
    // Symbolisation needs a big stack: a plain thread.
    let stack = stack.to_vec();
    std::thread::spawn(move || {
        stack
            .iter()
            .enumerate()
            .flat_map(|(i, &pc)| symbolize(if i == 0 { pc } else { pc - 1 }).to_vec())
            .map(|f| f.function)
            .collect()
    })
    .join()
    .unwrap()
}

fn has(stack: &[usize], f: &str) -> bool {
    names(stack).iter().any(|n| n.contains(f))
}

/// The record whose stack holds `function` (the test fails, listing every
/// stack, if there is none).
fn record_of(recs: Vec<prof::BlockRecord>, function: &str) -> prof::BlockRecord {
    match recs.iter().find(|r| has(&r.stack, function)) {
        Some(r) => r.clone(),
        None => {
            let stacks: Vec<_> = recs.iter().map(|r| names(&r.stack)).collect();
            panic!("no record from {function}: {stacks:?}")
        }
    }
}

#[inline(never)]
fn receiver_that_blocks_long() {
    let (tx, rx) = chan::<u32>(0);
    let waiting = rx.clone();
    let h = go(move || {
        // The 30 ms count from the receiver's block (another M may run
        // this goroutine before the receiver reaches `recv`).
        while waiting.blocked_receivers() == 0 {
            gort_sched::gosched();
        }
        gort_sched::blocking(|| std::thread::sleep(Duration::from_millis(30)));
        tx.send(1).unwrap();
    });
    assert_eq!(rx.recv().unwrap(), 1);
    h.join().unwrap();
}

#[test]
fn a_blocked_receive_is_charged_to_the_receiver() {
    prof::set_block_profile_rate(1);
    run(receiver_that_blocks_long);
    let r = record_of(prof::block_profile(), "receiver_that_blocks_long");
    assert!(r.count >= 1);
    assert!(r.delay_ns >= 25_000_000, "blocked {} ns", r.delay_ns);
    assert!(has(&r.stack, "recv"), "{:?}", names(&r.stack));
}

/// `goroutines` goroutines each run `hold` on one shared Mutex `times`
/// times; returns the counter the holds incremented.
fn contend(goroutines: usize, times: usize, hold: fn(&Mutex<u64>)) -> u64 {
    run(move || {
        let m = Arc::new(Mutex::new(0u64));
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..goroutines {
            let (m, wg) = (m.clone(), wg.clone());
            wg.add(1);
            go(move || {
                for _ in 0..times {
                    hold(&m);
                }
                wg.done();
            });
        }
        wg.wait();
        let n = *m.lock();
        n
    })
}

#[inline(never)]
fn holder_that_makes_others_wait(m: &Mutex<u64>) {
    let mut g = m.lock();
    gort_sched::blocking(|| std::thread::sleep(Duration::from_millis(20)));
    *g += 1;
    drop(g); // the unlock: not a tail call (keeps this frame on its stack)
    std::hint::black_box(m);
}

#[test]
fn mutex_contention_is_charged_to_the_unlocker() {
    prof::set_mutex_profile_fraction(1);
    assert_eq!(contend(4, 3, holder_that_makes_others_wait), 12);
    let r = record_of(prof::mutex_profile(), "holder_that_makes_others_wait");
    assert!(r.count >= 1);
    assert!(r.delay_ns >= 10_000_000, "waited {} ns", r.delay_ns);
}

#[test]
fn mutex_wait_total_moves_under_contention() {
    let before = prof::mutex_wait_total_ns();
    contend(4, 300, |m| {
        let mut g = m.lock();
        gort_sched::blocking(|| std::thread::sleep(Duration::from_micros(50)));
        *g += 1;
    });
    // One tracked park in 64, each counted 64 times: ~900 waits here.
    assert!(
        prof::mutex_wait_total_ns() > before,
        "no mutex wait tracked"
    );
}

#[inline(never)]
fn parked_with_labels(rx: gort_std::Receiver<()>) {
    let _ = rx.recv();
}

#[test]
fn goroutine_profile_has_parked_stacks_and_inherited_labels() {
    run(|| {
        let (tx, rx) = chan::<()>(0);
        let h = prof::with_labels(&[("worker", "w1"), ("a", "b")], || {
            let l = prof::goroutine_labels().unwrap();
            assert_eq!(
                &l[..],
                &[("a".into(), "b".into()), ("worker".into(), "w1".into())]
            );
            go(move || parked_with_labels(rx))
        });
        assert!(
            prof::goroutine_labels().is_none(),
            "restored after with_labels"
        );
        gort_sched::gosched();
        std::thread::sleep(Duration::from_millis(10));
        let recs = prof::goroutine_profile();
        let me = gort_sched::goid().unwrap();
        assert_eq!(recs[0].goid, me, "the caller first");
        let r = recs
            .iter()
            .find(|r| has(&r.stack, "parked_with_labels"))
            .unwrap_or_else(|| panic!("parked goroutine missing: {recs:?}"));
        assert_eq!(r.state, "chan receive");
        let l = r.labels.as_ref().expect("inherited labels");
        assert!(l.iter().any(|(k, v)| k == "worker" && v == "w1"));
        drop(tx);
        h.join().unwrap();
    });
}

#[test]
fn latencies_are_tracked() {
    run(|| {
        let (tx, rx) = chan::<u32>(0);
        let h = go(move || {
            for i in 0..200 {
                tx.send(i).unwrap();
            }
        });
        for _ in 0..200 {
            rx.recv().unwrap();
        }
        h.join().unwrap();
    });
    let hist = prof::sched_latencies();
    assert_eq!(hist.buckets.len(), hist.counts.len() + 1);
    assert!(hist.counts.iter().sum::<u64>() > 0, "no latency sampled");
}

#[test]
fn plain_thread_callers_start_here() {
    let mut pcs = Vec::new();
    prof::callers(&mut pcs);
    assert!(has(&pcs, "plain_thread_callers_start_here"));
}

#[inline(never)]
fn holds_while_five_queue(m: &Arc<Mutex<u64>>) -> Vec<gort_sched::JoinHandle<()>> {
    let g = m.lock();
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hs: Vec<_> = (0..5)
        .map(|_| {
            let (m, started) = (m.clone(), started.clone());
            go(move || {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                queued_waiter(&m)
            })
        })
        .collect();
    while started.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        gort_sched::gosched();
    }
    // (They spin briefly, then queue: well within this.)
    gort_sched::blocking(|| std::thread::sleep(Duration::from_millis(100)));
    drop(g);
    std::hint::black_box(m);
    hs
}

#[inline(never)]
fn queued_waiter(m: &Mutex<u64>) {
    let mut g = m.lock();
    *g += 1;
    drop(g);
    std::hint::black_box(m);
}

/// Five goroutines wait ~100 ms each behind one holder: the profile charges
/// ~500 ms in all, not each wait again at every later unlock (the queue's
/// head and tail are re-stamped when charged, as Go's dequeue does).
#[test]
fn queued_waits_are_charged_once() {
    prof::set_mutex_profile_fraction(1);
    let ours = |r: &prof::BlockRecord| {
        has(&r.stack, "holds_while_five_queue") || has(&r.stack, "queued_waiter")
    };
    let before: i64 = prof::mutex_profile()
        .iter()
        .filter(|r| ours(r))
        .map(|r| r.delay_ns)
        .sum();
    run(|| {
        let m = Arc::new(Mutex::new(0u64));
        for h in holds_while_five_queue(&m) {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 5);
    });
    let after: i64 = prof::mutex_profile()
        .iter()
        .filter(|r| ours(r))
        .map(|r| r.delay_ns)
        .sum();
    let charged = (after - before) as f64 / 1e6;
    assert!(
        (400.0..900.0).contains(&charged),
        "charged {charged:.0} ms for ~500 ms of waiting"
    );
}
