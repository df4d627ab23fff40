//! Ports of Go's timer tests (go/src/time/sleep_test.go, tick_test.go);
//! each case names the Go test it follows. Bounds on elapsed time are
//! generous: machines are shared.

use gort_sched::go;
use gort_std::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// TestSleep: Sleep(delay) lasts at least delay, from a goroutine and from
/// a plain thread.
#[test]
fn test_sleep() {
    let delay = 50 * MS;
    let t0 = Instant::now();
    sleep(delay);
    assert!(t0.elapsed() >= delay, "thread slept {:?}", t0.elapsed());
    let el = go(move || {
        let t0 = Instant::now();
        sleep(delay);
        t0.elapsed()
    })
    .join()
    .unwrap();
    assert!(el >= delay, "goroutine slept {el:?}");
}

/// TestAfterFunc: a chain of AfterFuncs, each scheduling the next, runs to
/// the end.
#[test]
fn test_after_func() {
    let (tx, rx) = chan::<bool>(0);
    let left = Arc::new(AtomicUsize::new(10));
    fn step(left: Arc<AtomicUsize>, tx: Sender<bool>) {
        if left.fetch_sub(1, Ordering::SeqCst) > 1 {
            let (l, t) = (left.clone(), tx.clone());
            after_func(Duration::ZERO, move || step(l.clone(), t.clone()));
        } else {
            tx.send(true).unwrap();
        }
    }
    {
        let (l, t) = (left.clone(), tx.clone());
        after_func(Duration::ZERO, move || step(l.clone(), t.clone()));
    }
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
}

/// TestAfter: <-After(delay) arrives no earlier than delay, carrying a time
/// no earlier than start + delay.
#[test]
fn test_after() {
    let delay = 100 * MS;
    let start = Instant::now();
    let end = after(delay).recv().unwrap();
    assert!(start.elapsed() >= delay, "took {:?}", start.elapsed());
    assert!(end >= start + delay, "fire time too early");
}

/// TestAfterTick: ten sequential Afters take at least ten times the delay.
#[test]
fn test_after_tick() {
    let delta = 10 * MS;
    let t0 = Instant::now();
    for _ in 0..10 {
        after(delta).recv().unwrap();
    }
    let el = t0.elapsed();
    assert!(el >= 10 * delta, "{el:?}");
    assert!(el < 10 * delta + Duration::from_secs(2), "{el:?}");
}

/// TestAfterStress: many goroutines reading After channels concurrently
/// with a ticker running.
#[test]
fn test_after_stress() {
    let ticker = Ticker::new(MS);
    let hs: Vec<_> = (0..100)
        .map(|_| {
            go(|| {
                (0..10).for_each(|_| {
                    after(MS).recv().unwrap();
                })
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    ticker.stop();
}

/// TestReset: Reset reports whether the timer was pending, and the reset
/// timer fires at the new time, not the old.
#[test]
fn test_reset() {
    let t = Timer::new(50 * MS);
    sleep(10 * MS);
    assert!(t.reset(100 * MS), "reset of a pending timer returns true");
    let t0 = Instant::now();
    t.c().recv().unwrap();
    assert!(
        t0.elapsed() >= 90 * MS,
        "fired at the old time: {:?}",
        t0.elapsed()
    );
    assert!(!t.reset(MS), "reset of a fired timer returns false");
    t.c().recv().unwrap();
}

/// TestTimerStopStaleValue (Go 1.23 semantics): after Stop or Reset, a
/// value sent before is never received.
#[test]
fn test_no_stale_value_after_stop_or_reset() {
    for _ in 0..50 {
        let t = Timer::new(MS);
        sleep(3 * MS); // it fired; the value sits unreceived
        assert!(!t.stop());
        assert_eq!(
            t.c().try_recv(),
            Err(TryRecvError::Empty),
            "stale value after stop"
        );

        let t = Timer::new(MS);
        sleep(3 * MS);
        let before = Instant::now();
        t.reset(5 * MS);
        let v = t.c().recv().unwrap();
        assert!(v >= before, "received the value from before the reset");
    }
}

/// TestStop-style: a stopped timer never fires; its channel stays empty.
#[test]
fn test_stop_prevents_firing() {
    let t = Timer::new(10 * MS);
    assert!(t.stop());
    assert_eq!(t.c().recv_timeout(50 * MS), Err(RecvTimeoutError::Timeout));
    assert!(!t.stop());
}

/// TestAfterFunc stop: a stopped AfterFunc never runs; dropping its handle
/// does not cancel it (Go keeps it too).
#[test]
fn test_after_func_stop_and_drop() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let h = after_func(10 * MS, move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    assert!(h.stop());
    let r = ran.clone();
    drop(after_func(5 * MS, move || {
        r.fetch_add(10, Ordering::SeqCst);
    }));
    let t0 = Instant::now();
    while ran.load(Ordering::SeqCst) != 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "dropped AfterFunc never ran"
        );
        sleep(MS);
    }
    sleep(30 * MS);
    assert_eq!(ran.load(Ordering::SeqCst), 10, "stopped AfterFunc ran");
}

/// tick_test.go TestTicker: ticks arrive about every period; after Stop
/// none arrive.
#[test]
fn test_ticker() {
    let (count, delta) = (10, 20 * MS);
    let ticker = Ticker::new(delta);
    let t0 = Instant::now();
    for _ in 0..count {
        ticker.c().recv().unwrap();
    }
    let el = t0.elapsed();
    assert!(
        el >= delta * (count - 1),
        "{count} ticks of {delta:?} took {el:?}"
    );
    assert!(el < delta * count + Duration::from_secs(2), "{el:?}");
    ticker.stop();
    assert_eq!(
        ticker.c().recv_timeout(2 * delta),
        Err(RecvTimeoutError::Timeout)
    );
    // Reset restarts it.
    ticker.reset(delta);
    ticker.c().recv_timeout(Duration::from_secs(5)).unwrap();
}

/// tick_test.go: a slow receiver misses ticks rather than queueing them.
#[test]
fn test_ticker_drops_ticks_for_slow_receivers() {
    let ticker = Ticker::new(MS);
    sleep(30 * MS);
    assert_eq!(ticker.c().len(), 1, "ticks queued up");
}

/// tick_test.go TestNewTickerLtZeroDuration / TestTickerResetLtZeroDuration.
#[test]
fn test_ticker_zero_period_panics() {
    let e = std::panic::catch_unwind(|| Ticker::new(Duration::ZERO)).unwrap_err();
    assert!(e
        .downcast_ref::<&str>()
        .unwrap()
        .contains("non-positive interval"));
    let t = Ticker::new(MS);
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.reset(Duration::ZERO)))
        .unwrap_err();
    assert!(e
        .downcast_ref::<&str>()
        .unwrap()
        .contains("non-positive interval"));
}

/// select with After: the timeout case wins when nothing else is ready,
/// and loses to a ready channel.
#[test]
fn test_select_with_after() {
    let (tx, rx) = chan::<u8>(1);
    let r = select! {
        recv(rx) -> _v => "value",
        recv(after(20 * MS)) -> _t => "timeout",
    };
    assert_eq!(r, "timeout");
    tx.send(1).unwrap();
    let r = select! {
        recv(rx) -> _v => "value",
        recv(after(Duration::from_secs(10))) -> _t => "timeout",
    };
    assert_eq!(r, "value");
    assert_eq!(rx.recv_timeout(10 * MS), Err(RecvTimeoutError::Timeout));
    drop(tx);
    assert_eq!(rx.recv_timeout(10 * MS), Err(RecvTimeoutError::Closed));
}

/// TestSleepZeroDeadlock-style: many goroutines sleeping zero and short
/// durations on all Ps while others spin through gosched: no hang.
#[test]
fn test_sleep_many_small() {
    let hs: Vec<_> = (0..1000)
        .map(|i| go(move || sleep(Duration::from_micros(i % 3 * 100))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}
