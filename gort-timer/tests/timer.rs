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
        assert!(
            el < d + Duration::from_secs(1),
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
    // Many more sleepers than Ms, each sleeping 20 ms: all done in about
    // 20 ms, not 20 ms x sleepers / Ms.
    let t0 = Instant::now();
    let hs: Vec<_> = (0..10_000)
        .map(|_| go(|| sleep(Duration::from_millis(20))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let el = t0.elapsed();
    assert!(el >= Duration::from_millis(20));
    assert!(el < Duration::from_secs(3), "{el:?}");
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
                assert!(t0.elapsed() < Duration::from_secs(10), "fire was lost");
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
        assert!(t0.elapsed() < Duration::from_secs(5), "timer never fired");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!t.stop());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[test]
fn periodic_timer_ticks_until_stopped() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let k = ticks.clone();
    let t = RawTimer::new(move || {
        k.fetch_add(1, Ordering::SeqCst);
    });
    t.reset_at(
        gort_timer::deadline_after(Duration::from_millis(2)),
        Duration::from_millis(2),
    );
    let t0 = Instant::now();
    while ticks.load(Ordering::SeqCst) < 5 {
        assert!(t0.elapsed() < Duration::from_secs(5), "ticker stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(t.stop());
    let n = ticks.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ticks.load(Ordering::SeqCst), n, "ticked after stop");
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
                t0.elapsed() < d + Duration::from_secs(10),
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
    // Deadlines from one base instant, `step` apart, set in scrambled
    // order; they must fire in deadline order. A stall longer than a step
    // (a loaded machine) can make several due at once on different timer
    // heaps, so a failure is retried with wider steps, as Go's TestReset
    // does; a real ordering bug fails every attempt.
    let mut last = Vec::new();
    for step_ms in [5i64, 20, 80, 320] {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let base = gort_timer::deadline_after(Duration::from_millis(5));
        let timers: Vec<_> = [6i64, 2, 4, 1, 5, 3]
            .iter()
            .map(|&k| {
                let o = order.clone();
                let t = RawTimer::new(move || o.lock().unwrap().push(k));
                t.reset_at(base + k * step_ms * 1_000_000, Duration::ZERO);
                t
            })
            .collect();
        let t0 = Instant::now();
        while order.lock().unwrap().len() < 6 {
            assert!(t0.elapsed() < Duration::from_secs(20), "timers never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(timers);
        last = order.lock().unwrap().clone();
        if last == vec![1, 2, 3, 4, 5, 6] {
            return;
        }
    }
    panic!("fired out of deadline order at every spacing: last {last:?}");
}
