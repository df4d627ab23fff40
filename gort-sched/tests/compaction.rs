//! Long-parked goroutines that allow it (`Builder::compact_when_parked`)
//! have their stacks compacted (live bytes saved on the heap, pages returned
//! to the kernel) and resume with every byte and every pointer into their
//! stack intact. Goroutines that did not opt in are never compacted.

mod common;
use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn long_parked_stacks_are_compacted_and_restored() {
    if !is_child() {
        // Own process, so the compaction counter is ours alone.
        let (ok, err) = run_child("long_parked_stacks_are_compacted_and_restored", &[]);
        assert!(ok, "{err}");
        return;
    }
    const N: usize = 2000;
    let parked = Arc::new(Sema::new());
    let gate = Arc::new(Sema::new());
    let before = gort_os::context::compactions();
    let hs: Vec<_> = (0..N)
        .map(|i| {
            let (p, g) = (parked.clone(), gate.clone());
            // SAFETY: nothing outside the goroutine touches its stack.
            let b = unsafe { Builder::new().compact_when_parked(true) };
            b.spawn(move || {
                // Stack data and a pointer into it, live across the park.
                let mut arr = [0u64; 100];
                for (j, x) in arr.iter_mut().enumerate() {
                    *x = (i * 1000 + j) as u64;
                }
                let r: &u64 = &arr[42];
                p.release();
                g.acquire();
                let tid = std::thread::current().id();
                (arr.iter().sum::<u64>(), *r, tid)
            })
        })
        .collect();
    for _ in 0..N {
        parked.acquire();
    }
    // Two compaction intervals and a margin.
    std::thread::sleep(Duration::from_millis(80));
    let done = gort_os::context::compactions() - before;
    assert!(
        done >= N as u64,
        "only {done} of {N} parked stacks were compacted"
    );
    for _ in 0..N {
        gate.release();
    }
    for (i, h) in hs.into_iter().enumerate() {
        let (sum, r, _tid) = h.join().unwrap();
        let want: u64 = (0..100).map(|j| (i * 1000 + j) as u64).sum();
        assert_eq!(sum, want, "goroutine {i}'s stack came back wrong");
        assert_eq!(r, (i * 1000 + 42) as u64);
    }
}

#[test]
fn busy_goroutines_are_not_compacted_and_pingpong_is_unaffected() {
    if !is_child() {
        let (ok, err) = run_child(
            "busy_goroutines_are_not_compacted_and_pingpong_is_unaffected",
            &[],
        );
        assert!(ok, "{err}");
        return;
    }
    let before = gort_os::context::compactions();
    let (a, b) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a2, b2, stop2) = (a.clone(), b.clone(), stop.clone());
    // SAFETY: nothing outside the goroutines touches their stacks.
    let builder = unsafe { Builder::new().compact_when_parked(true) };
    let pong = builder.clone().spawn(move || loop {
        a2.acquire();
        if stop2.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        b2.release();
    });
    let ping = builder.spawn(move || {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(60) {
            a.release();
            b.acquire();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        a.release();
    });
    ping.join().unwrap();
    pong.join().unwrap();
    // Neither goroutine was parked for a whole interval (a stall of the
    // machine could park each of them once for that long, no more).
    let n = gort_os::context::compactions() - before;
    assert!(n <= 2, "{n} compactions of goroutines that never idled");
}

#[test]
fn goroutines_that_did_not_opt_in_are_never_compacted() {
    if !is_child() {
        let (ok, err) = run_child("goroutines_that_did_not_opt_in_are_never_compacted", &[]);
        assert!(ok, "{err}");
        return;
    }
    let before = gort_os::context::compactions();
    let gate = Arc::new(Sema::new());
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let g = gate.clone();
            go(move || g.acquire())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(gort_os::context::compactions(), before);
    for _ in 0..100 {
        gate.release();
    }
    for h in hs {
        h.join().unwrap();
    }
}
