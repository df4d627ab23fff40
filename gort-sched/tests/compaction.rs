//! Long-parked goroutines that allow it (`Builder::compact_when_parked`)
//! have their stacks compacted (live bytes saved on the heap, pages returned
//! to the kernel) and resume with every byte and every pointer into their
//! stack intact. Goroutines that did not opt in are never compacted.

mod common;
use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    // Passes run every 10-20 ms; wait (bounded) until they have reached
    // every parked stack.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = gort_os::context::compactions() - before;
        if done >= N as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {N} parked stacks were compacted in 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
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
    // A stack is compacted only after a park spanning a whole pass interval
    // (>= 10 ms). Each goroutine counts its own parks that long: only a
    // stall of the machine makes one, and each allows one compaction.
    let long = |t: Instant| u64::from(t.elapsed() >= Duration::from_millis(10));
    // SAFETY: nothing outside the goroutines touches their stacks.
    let builder = unsafe { Builder::new().compact_when_parked(true) };
    let pong = builder.clone().spawn(move || {
        let mut long_parks = 0;
        loop {
            let t = Instant::now();
            a2.acquire();
            long_parks += long(t);
            if stop2.load(std::sync::atomic::Ordering::Acquire) {
                break long_parks;
            }
            b2.release();
        }
    });
    let ping = builder.spawn(move || {
        let (t0, mut long_parks, mut rounds) = (Instant::now(), 0, 0u64);
        while t0.elapsed() < Duration::from_millis(60) {
            a.release();
            let t = Instant::now();
            b.acquire();
            long_parks += long(t);
            rounds += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        a.release();
        (long_parks, rounds)
    });
    let (ping_long, rounds) = ping.join().unwrap();
    let pong_long = pong.join().unwrap();
    let n = gort_os::context::compactions() - before;
    assert!(rounds > 0);
    assert!(
        n <= ping_long + pong_long,
        "{n} compactions, but only {} parks of 10 ms or more in {rounds} round trips",
        ping_long + pong_long
    );
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while gate.waiters() < 100 {
        assert!(Instant::now() < deadline, "the goroutines never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A control that opted in, parked after them: once compaction has
    // reached it, passes have run while the 100 were parked longer still.
    let control_gate = Arc::new(Sema::new());
    let cg = control_gate.clone();
    // SAFETY: nothing outside the goroutine touches its stack.
    let control = unsafe { Builder::new().compact_when_parked(true) }.spawn(move || cg.acquire());
    while gort_os::context::compactions() == before {
        assert!(
            Instant::now() < deadline,
            "the opted-in control was never compacted"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Two more pass intervals for any (wrong) compaction of the others.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        gort_os::context::compactions(),
        before + 1,
        "goroutines that did not opt in were compacted"
    );
    control_gate.release();
    control.join().unwrap();
    for _ in 0..100 {
        gate.release();
    }
    for h in hs {
        h.join().unwrap();
    }
}
