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
    // A timer stopped just before its deadline never fires.
    t.reset(Duration::from_millis(5));
    assert!(t.stop());
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(fired.load(Ordering::SeqCst), 0);
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
    let fired = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let f = fired.clone();
        let t = RawTimer::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        t.reset(Duration::from_millis(1));
        drop(t); // stops it
    }
    let f = fired.clone();
    let t = RawTimer::new(move || {
        f.fetch_add(1000, Ordering::SeqCst);
    });
    t.reset(Duration::from_millis(1));
    t.detach();
    let t0 = Instant::now();
    while fired.load(Ordering::SeqCst) < 1000 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "detached timer never fired"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(fired.load(Ordering::SeqCst), 1000, "a dropped timer fired");
}

#[test]
fn deadlines_fire_in_order() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let timers: Vec<_> = [30u64, 10, 20, 5, 25, 15]
        .iter()
        .map(|&ms| {
            let o = order.clone();
            let t = RawTimer::new(move || o.lock().unwrap().push(ms));
            t.reset(Duration::from_millis(ms));
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(*order.lock().unwrap(), vec![5, 10, 15, 20, 25, 30]);
    drop(timers);
}
