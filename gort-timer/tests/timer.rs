//! gort-timer through its public API: sleep from goroutines and threads,
//! stop/reset results, exact stop, periodic timers, many timers.

use gort_sched::go;
use gort_timer::{sleep, sleep_until, RawTimer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn sleep_waits_at_least_the_duration() {
    for d in [1u64, 5, 20] {
        let d = Duration::from_millis(d);
        let el = go(move || {
            let t0 = Instant::now();
            sleep(d);
            t0.elapsed()
        })
        .join()
        .unwrap();
        assert!(el >= d, "slept {el:?} < {d:?}");
        // Generous: only a sleep that never woke on its own deadline (woken
        // by something unrelated, much later) fails this on a loaded machine.
        assert!(
            el < d + Duration::from_secs(10),
            "slept far too long: {el:?}"
        );
    }
    // From a plain thread too.
    let t0 = Instant::now();
    sleep(Duration::from_millis(3));
    assert!(t0.elapsed() >= Duration::from_millis(3));
    // A past deadline returns at once.
    sleep_until(Instant::now() - Duration::from_secs(1));
    sleep(Duration::ZERO);
}

#[test]
fn sleepers_do_not_block_their_m() {
    // Many more sleepers than Ms: if a sleep held its M, at most one sleeper
    // per M could be asleep at a time, and the last would start only after
    // (sleepers / Ms) x d. So: all of them must be seen started (each one
    // counts itself just before it sleeps) before any has finished. That
    // fails only if a stall (a loaded machine) kept the spawning or this
    // check from happening within `d`: then retry with a longer `d`, as
    // Go's TestReset does; a sleep that blocks its M fails at every `d`.
    const N: usize = 10_000;
    for ms in [20u64, 100, 500, 2000, 10_000] {
        let d = Duration::from_millis(ms);
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let (s, f) = (started.clone(), finished.clone());
                go(move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    let t0 = Instant::now();
                    sleep(d);
                    f.fetch_add(1, Ordering::SeqCst);
                    t0.elapsed()
                })
            })
            .collect();
        let t0 = Instant::now();
        while started.load(Ordering::SeqCst) < N {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "sleepers never all started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let all_asleep_at_once = finished.load(Ordering::SeqCst) == 0;
        for h in hs {
            let el = h.join().unwrap();
            assert!(el >= d, "slept {el:?} < {d:?}");
        }
        if all_asleep_at_once {
            return;
        }
    }
    panic!("a sleeper always finished before all {N} had started: sleeps hold their Ms");
}

#[test]
fn stop_and_reset_report_go_results_and_stop_is_exact() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let t = RawTimer::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    });
    assert!(!t.stop(), "stop of an unarmed timer");
    assert!(
        !t.reset(Duration::from_secs(3600)),
        "first reset: was not armed"
    );
    assert!(
        t.reset(Duration::from_secs(3600)),
        "second reset: was armed"
    );
    assert!(t.stop());
    assert!(!t.stop());
    // A timer stopped just before its deadline never fires. A stall
    // between reset and stop longer than the duration (a loaded machine)
    // lets it fire legitimately: then retry with a longer one, as Go's
    // TestReset does; a stop that fails within the duration is a bug.
    let mut stopped_in_time = false;
    for ms in [5u64, 20, 100, 500, 2000] {
        let d = Duration::from_millis(ms);
        let before = fired.load(Ordering::SeqCst);
        let t0 = Instant::now();
        t.reset(d);
        let stopped = t.stop();
        if !stopped {
            let el = t0.elapsed();
            assert!(el >= d, "stop {el:?} before a {d:?} deadline missed it");
            // It fired during the stall: let its callback finish, retry.
            while fired.load(Ordering::SeqCst) == before {
                assert!(t0.elapsed() < Duration::from_secs(30), "fire was lost");
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        // Wait well past the deadline: a stopped timer must never fire.
        std::thread::sleep(d * 2 + Duration::from_millis(20));
        assert_eq!(
            fired.load(Ordering::SeqCst),
            before,
            "a stopped timer fired"
        );
        stopped_in_time = true;
        break;
    }
    assert!(stopped_in_time, "never managed to stop before the deadline");
    fired.store(0, Ordering::SeqCst);
    // Armed and left alone, it fires once; then stop reports false.
    t.reset(Duration::from_millis(2));
    let t0 = Instant::now();
    while fired.load(Ordering::SeqCst) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "timer never fired");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!t.stop());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

/// Waits (polling, from the test thread) until `cond` holds; fails after
/// 30 s instead of hanging.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}: timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn periodic_timer_ticks_until_stopped() {
    // An in-lock callback (`new_unchecked`) makes stop exact: when it
    // returns, no tick is running or will run, so the count must not move
    // afterwards. (The callback only bumps an atomic: within the contract.)
    let ticks = Arc::new(AtomicUsize::new(0));
    let k = ticks.clone();
    // SAFETY: the callback is one atomic add: it returns at once, never
    // blocks, parks or panics, and touches no timer.
    let t = unsafe {
        RawTimer::new_unchecked(move || {
            k.fetch_add(1, Ordering::SeqCst);
        })
    };
    let period = Duration::from_millis(2);
    t.reset_at(gort_timer::deadline_after(period), period);
    wait_for("five ticks", || ticks.load(Ordering::SeqCst) >= 5);
    assert!(t.stop(), "a periodic timer stays armed between ticks");
    let n = ticks.load(Ordering::SeqCst);
    // Ten periods and more: a tick that survived the stop would show.
    std::thread::sleep(period * 10);
    assert_eq!(ticks.load(Ordering::SeqCst), n, "ticked after stop");
    assert!(!t.stop(), "stopped twice");
}

#[test]
fn periodic_safe_timer_stops_after_at_most_the_tick_in_flight() {
    // A safe callback runs on a goroutine its tick started, and stop does
    // not wait for that goroutine (Go's AfterFunc): one tick may land after
    // stop returns (the old test's flake: it demanded none). A periodic
    // timer drops ticks while the previous one runs, so at most one can be
    // in flight: the count may move by at most one after stop, never more.
    let ticks = Arc::new(AtomicUsize::new(0));
    let k = ticks.clone();
    let t = RawTimer::new(move || {
        k.fetch_add(1, Ordering::SeqCst);
    });
    let period = Duration::from_millis(2);
    t.reset_at(gort_timer::deadline_after(period), period);
    wait_for("five ticks", || ticks.load(Ordering::SeqCst) >= 5);
    assert!(t.stop(), "a periodic timer stays armed between ticks");
    let n = ticks.load(Ordering::SeqCst);
    std::thread::sleep(period * 10);
    let m = ticks.load(Ordering::SeqCst);
    assert!(
        m <= n + 1,
        "{} ticks after stop (at most the one in flight)",
        m - n
    );
}

#[test]
fn dropped_timers_are_removed_and_detached_ones_fire() {
    // 1000 timers armed for `d` and dropped before it passes must never
    // fire; a detached one armed for later must. If creating and dropping
    // them took longer than `d` (a loaded machine), a fire before the drop
    // would be legitimate: retry with a longer `d`, as Go's TestReset does.
    for ms in [20u64, 100, 500, 2000] {
        let d = Duration::from_millis(ms);
        let fired = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        for _ in 0..1000 {
            let f = fired.clone();
            let t = RawTimer::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            });
            t.reset(d);
            drop(t); // stops it
        }
        if t0.elapsed() >= d {
            std::thread::sleep(d + Duration::from_millis(50));
            continue;
        }
        let f = fired.clone();
        let t = RawTimer::new(move || {
            f.fetch_add(1000, Ordering::SeqCst);
        });
        // Later than every dropped timer's deadline.
        t.reset(d + Duration::from_millis(5));
        t.detach();
        while fired.load(Ordering::SeqCst) < 1000 {
            assert!(
                t0.elapsed() < d + Duration::from_secs(30),
                "detached timer never fired"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // The dropped timers' deadlines are past by now (and by more).
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fired.load(Ordering::SeqCst), 1000, "a dropped timer fired");
        return;
    }
    panic!("could not drop 1000 timers before a 2 s deadline");
}

#[test]
fn deadlines_fire_in_order() {
    // Six timers on one heap (this plain thread's, heap 0) with deadlines
    // 1 us apart from one base instant, armed in scrambled order: the heap
    // must run them in deadline order even when all are due at once. The
    // callbacks run in the heap lock (`new_unchecked`) and take a number
    // from one counter, so the recorded order is the firing order exactly
    // (with goroutine callbacks it would be the order in which goroutines
    // happened to run). If arming took until the base (a loaded machine),
    // an early timer could fire before a later-armed earlier one exists:
    // retry with a later base; otherwise the order is deterministic.
    const KS: [usize; 6] = [6, 2, 4, 1, 5, 3];
    for lead_ms in [20u64, 100, 500, 2000, 10_000] {
        let seq = Arc::new(AtomicUsize::new(0));
        let slots: Arc<[AtomicUsize; 7]> = Arc::new(Default::default());
        let base = gort_timer::deadline_after(Duration::from_millis(lead_ms));
        let timers: Vec<_> = KS
            .iter()
            .map(|&k| {
                let (seq, slots) = (seq.clone(), slots.clone());
                // SAFETY: two atomic operations: the callback returns at
                // once, never blocks, parks or panics, touches no timer.
                let t = unsafe {
                    RawTimer::new_unchecked(move || {
                        slots[k].store(seq.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    })
                };
                t.reset_at(base + k as i64 * 1_000, Duration::ZERO);
                t
            })
            .collect();
        let armed_in_time = gort_timer::deadline_after(Duration::ZERO) < base;
        wait_for("all six fired", || seq.load(Ordering::SeqCst) == 6);
        drop(timers);
        if !armed_in_time {
            continue;
        }
        let mut order: Vec<usize> = (1..=6).collect();
        order.sort_by_key(|&k| slots[k].load(Ordering::SeqCst));
        assert_eq!(order, vec![1, 2, 3, 4, 5, 6], "fired out of deadline order");
        return;
    }
    panic!("could not arm six timers before a 10 s deadline");
}

// Lazy stop (zombies): a stopped timer that is detached or dropped frees
// its callback at once, on the caller, never later under some other
// caller's heap lock; many stopped timers are cleaned in bulk.
#[test]
fn stopped_timers_free_their_callbacks_when_let_go() {
    go(|| {
        let keep: Vec<_> = (0..16)
            .map(|_| {
                let t = RawTimer::new(|| {});
                t.reset(Duration::from_secs(3600));
                t
            })
            .collect();
        for how in ["detach", "drop"] {
            let capture = Arc::new(());
            let c2 = capture.clone();
            let t = RawTimer::new(move || {
                let _ = &c2;
            });
            t.reset(Duration::from_secs(3600));
            assert!(t.stop());
            assert_eq!(
                Arc::strong_count(&capture),
                2,
                "{how}: still held by the timer"
            );
            match how {
                "detach" => t.detach(),
                _ => drop(t),
            }
            assert_eq!(
                Arc::strong_count(&capture),
                1,
                "{how}: the callback was kept"
            );
        }
        for t in &keep {
            assert!(t.stop());
            assert!(!t.stop());
        }
        drop(keep);
    })
    .join()
    .unwrap();
}

/// An `Instant` converts to the nanotime of the same moment, never earlier
/// (a deadline must not fire before `Instant::now()` reaches it) and at
/// most a millisecond later, for instants long before and after the first
/// conversion; distances between instants are kept exactly.
#[test]
fn deadline_at_is_the_same_moment_never_earlier() {
    use gort_os::clock::nanotime;
    use gort_timer::deadline_at;
    let first = deadline_at(Instant::now());
    assert!(first > 0);
    for _ in 0..1000 {
        let before = nanotime();
        let t = Instant::now();
        let after = nanotime();
        let d = deadline_at(t);
        assert!(d >= before, "converted {} ns early", before - d);
        assert!(d - after < 1_000_000, "converted {} ns late", d - after);
    }
    let now = Instant::now();
    for secs in [1u64, 3600, 86_400] {
        let span = Duration::from_secs(secs);
        assert_eq!(
            deadline_at(now + span) - deadline_at(now),
            span.as_nanos() as i64
        );
        if let Some(past) = now.checked_sub(span) {
            assert_eq!(deadline_at(now) - deadline_at(past), span.as_nanos() as i64);
        }
    }
}
