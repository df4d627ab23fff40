//! tick_test.go TestTimerGC (Go 1.23): timers nobody references are
//! freed, even unstopped ones and even `After`'s — the loop
//! `select! { recv(work) ..., recv(after(hour)) ... }` must not keep an
//! hour-long timer alive per iteration (issue 12, item 3).
//!
//! Go counts `Mallocs - Frees` around 10,000 calls and fails at one live
//! allocation per call; this binary counts live allocations with a
//! counting global allocator (its own binary, so no other test's
//! allocations mix in; the runtime's threads may add a few, hence Go's
//! slack of N).

use gort_std::{after, chan, select, tick, Ticker, Timer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// Live allocations (allocations minus frees) of this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments,
// so `System`'s guarantees are ours; the counter does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract (non-zero size layout).
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded contract (`p` came from this allocator).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded contract; a realloc keeps the count.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const HOUR: Duration = Duration::from_secs(3600);

/// Go's `run`: live allocations after N calls of `f`, minus before.
fn inuse_after(f: impl Fn()) -> isize {
    const N: usize = 10_000;
    // Warm up: first-use allocations (the timer heaps' vectors, the
    // runtime's registrations, sudog caches) are not per-call.
    for _ in 0..N {
        f();
    }
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..N {
        f();
    }
    LIVE.load(Ordering::SeqCst) - before
}

fn check(what: &str, f: impl Fn() + Send + 'static) {
    let inuse = gort_sched::run(move || inuse_after(f));
    // Allow some slack, but inuse >= N means at least 1 allocation per
    // iteration.
    assert!(
        inuse < 10_000,
        "{what} did not get freed: {inuse} allocations"
    );
}

#[test]
fn test_timer_gc() {
    check("After", || drop(after(HOUR)));
    check("Tick", || drop(tick(HOUR)));
    check("NewTimer", || drop(Timer::new(HOUR)));
    check("NewTicker", || drop(Ticker::new(HOUR)));
    check("NewTimerStop", || {
        Timer::new(HOUR).stop();
    });
    check("NewTickerStop", || Ticker::new(HOUR).stop());
    // The loop: work always ready, the hour-long timeout never
    // fires; each iteration's `after` must go with its select.
    let (tx, rx) = chan::<u32>(1);
    check("select with After", move || {
        tx.send(1).unwrap();
        select! {
            recv(rx) -> w => { w.unwrap(); },
            recv(after(HOUR)) -> _t => unreachable!("an hour passed"),
        }
    });
}
