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

/// Allocates `n` garbage cycles; the largest heap seen meanwhile, counted
/// low: the objects' bytes plus 72 per object (the pacer counts at least
/// 8 bytes of malloc header and 64 of bookkeeping more per object).
fn pressure(n: u64) -> u64 {
    let mut peak = 0;
    for i in 0..n {
        cycle(i);
        if i % 1024 == 0 {
            let s = read_mem_stats();
            peak = peak.max(s.heap_alloc + 72 * s.heap_objects);
        }
    }
    peak
}

/// The limit and then some: 1/16 over the goal where allocators wait, plus
/// what shards have not yet published (64 KiB each) and the objects made
/// between two looks.
const PEAK_MAX: u64 = LIMIT as u64 * 5 / 4;

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

    // A plain thread.
    let peak = pressure(1_000_000);
    assert!(
        peak <= PEAK_MAX,
        "thread: the heap reached {peak} bytes with an {LIMIT}-byte limit"
    );

    // A goroutine (it blocks its thread, keeping its P).
    let peak = gort_sched::go(|| pressure(1_000_000)).join().unwrap();
    assert!(
        peak <= PEAK_MAX,
        "goroutine: the heap reached {peak} bytes with an {LIMIT}-byte limit"
    );

    // Goroutines that hold a std lock across `Gc::new` (ordinary code:
    // `kids.lock().unwrap().push(Gc::new(..))`). Had the assist parked the
    // goroutine, another goroutine of its M could run, block the shared
    // thread on the lock, and the parked holder could never resume.
    static SHARED: Mutex<u64> = Mutex::new(0);
    within_deadline("goroutines sharing a std lock", || {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                gort_sched::go(|| {
                    for r in 0..20 {
                        let mut g = SHARED.lock().unwrap();
                        for i in 0..10_000 {
                            cycle(r * 10_000 + i);
                        }
                        *g += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(*SHARED.lock().unwrap(), 8 * 20);

    // From a thread-local's destructor, when the thread's other locals may
    // be gone: the wait uses none.
    struct AtExit;
    impl Drop for AtExit {
        fn drop(&mut self) {
            pressure(100_000);
        }
    }
    // Right across a park: it holds no state, only its destructor matters,
    // and it lives on a plain std thread (not an M), so no other goroutine
    // ever shares it.
    thread_local! {
        static AT_EXIT: AtExit = const { AtExit };
    }
    within_deadline("a thread-local destructor", || {
        std::thread::spawn(|| AT_EXIT.with(|_| ())).join().unwrap();
    });
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
