//! Back-pressure (the pacer's assists): an allocator that outruns the
//! background collector waits for it, so the heap stays near its goal under
//! any allocation rate — and the wait never deadlocks on a lock held by the
//! waiting allocator. (Its own test binary: it changes global settings.)

use gort_gc::{read_mem_stats, set_gc_percent, set_memory_limit, Gc, Trace};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// One node of a two-object cycle (garbage only the cycle collector frees).
#[derive(Trace)]
struct Cyc {
    v: u64,
    p: Mutex<Option<Gc<Cyc>>>,
}

fn cycle(v: u64) {
    let a = Gc::new(Cyc {
        v,
        p: Mutex::new(None),
    });
    let b = Gc::new(Cyc {
        v,
        p: Mutex::new(Some(a.clone())),
    });
    *a.p.lock().unwrap() = Some(b);
}

const LIMIT: i64 = 8 << 20;

/// Allocates `n` garbage cycles; the largest `heap_alloc` seen meanwhile.
fn pressure(n: u64) -> u64 {
    let mut peak = 0;
    for i in 0..n {
        cycle(i);
        if i % 1024 == 0 {
            peak = peak.max(read_mem_stats().heap_alloc);
        }
    }
    peak
}

/// Runs `f` on a thread of its own; panics if it has not finished in 120 s
/// (a deadlock) instead of hanging the test run.
fn within_deadline(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        panic!("{what}: did not finish in 120 s (the allocator and the collector deadlocked?)");
    }
}

#[test]
fn assists() {
    // GOGC off, an 8 MiB limit: only the limit paces. 1M cycles are over
    // 140 MB of objects, far more than one collector thread frees while a
    // loop allocates them unhindered.
    set_gc_percent(-1);
    set_memory_limit(LIMIT);
    let before = read_mem_stats().num_gc;

    // A plain thread: it parks on its futex with a timeout.
    let peak = pressure(1_000_000);
    // The pacer counts more than the objects' bytes (their footprint), so
    // the objects alone stay below the limit.
    assert!(
        peak <= LIMIT as u64,
        "thread: heap_alloc reached {peak} bytes with an {LIMIT}-byte limit"
    );

    // A goroutine: it parks with a runtime timer as its bound.
    let peak = gort_sched::go(|| pressure(1_000_000)).join().unwrap();
    assert!(
        peak <= LIMIT as u64,
        "goroutine: heap_alloc reached {peak} bytes with an {LIMIT}-byte limit"
    );
    assert!(read_mem_stats().num_gc > before + 10);

    // The collector runs the Drop of what it frees. Here that Drop takes a
    // lock the allocator holds while it allocates (and so while it may wait
    // for the collector): the wait must give up instead of deadlocking.
    static HELD: Mutex<u64> = Mutex::new(0);
    struct Locks;
    impl Drop for Locks {
        fn drop(&mut self) {
            *HELD.lock().unwrap() += 1;
        }
    }
    // SAFETY: no handles.
    unsafe impl Trace for Locks {
        fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
    }
    #[derive(Trace)]
    struct Node {
        _l: Locks,
        p: Mutex<Option<Gc<Node>>>,
    }
    fn locked_pressure(rounds: u64) {
        for _ in 0..rounds {
            let _g = HELD.lock().unwrap();
            for _ in 0..20_000 {
                let a = Gc::new(Node {
                    _l: Locks,
                    p: Mutex::new(None),
                });
                *a.p.lock().unwrap() = Some(a.clone());
            }
        }
    }
    within_deadline("thread", || locked_pressure(20));
    within_deadline("goroutine", || {
        gort_sched::go(|| locked_pressure(20)).join().unwrap()
    });
    gort_gc::gc();
    assert!(*HELD.lock().unwrap() > 0, "no Drop ran");

    set_memory_limit(i64::MAX);
    set_gc_percent(100);
}
