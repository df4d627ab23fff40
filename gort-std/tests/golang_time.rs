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

/// TestChan's "Stop and Reset block old values from being received"
/// (Go 1.23, proposal go.dev/issue/37196): after Stop or Reset, a value
/// sent before is never received, and the Stop or Reset that discards it
/// reports the timer as still active (true).
#[test]
fn test_no_stale_value_after_stop_or_reset() {
    for _ in 0..50 {
        let t = Timer::new(MS);
        sleep(3 * MS); // it fired; the value sits unreceived
        assert!(t.stop(), "stop discarding a fired value returns true");
        assert_eq!(
            t.c().try_recv(),
            Err(TryRecvError::Empty),
            "stale value after stop"
        );
        assert!(!t.stop(), "a second stop finds nothing");

        let t = Timer::new(MS);
        sleep(3 * MS);
        let before = Instant::now();
        assert!(
            t.reset(5 * MS),
            "reset discarding a fired value returns true"
        );
        let v = t.c().recv().unwrap();
        assert!(v >= before, "received the value from before the reset");
    }
}

/// Go's idiom `if !t.Stop() { <-t.C }` (issue 12, item 1): with Go 1.23's
/// results it never blocks — here with the timer fired and unreceived
/// (stop discards the value and returns true) and with it pending.
#[test]
fn test_stop_then_drain_idiom_never_blocks() {
    for (d, wait) in [(MS, 10 * MS), (Duration::from_secs(3600), MS)] {
        let t = Timer::new(d);
        sleep(wait);
        if !t.stop() {
            assert!(
                t.c().recv_timeout(Duration::from_secs(30)).is_ok(),
                "stop returned false with nothing to receive: <-t.C blocks forever"
            );
        }
    }
}

/// sleep_test.go testStopResetResult: when a timer's run races with a Stop
/// (or Reset) of it, the result says whether a value can still be read:
/// if it returns false, the value was sent and `<-C` gets it. Go runs 1000
/// goroutines of 100 rounds; a wrong result blocks a receive forever, which
/// here fails the test after a generous bound instead of hanging.
fn stop_reset_result(test_stop: bool) {
    let stop_or_reset = move |t: &Timer| {
        if test_stop {
            t.stop()
        } else {
            t.reset(Duration::from_secs(3600))
        }
    };
    let (start_tx, start_rx) = chan::<()>(0);
    let wg = Arc::new(WaitGroup::new());
    const N: usize = 1000;
    let failed = Arc::new(AtomicUsize::new(0));
    for _ in 0..N {
        let (start_rx, failed) = (start_rx.clone(), failed.clone());
        wg.go_arc(move || {
            let _ = start_rx.recv(); // Go: <-start (closed to start all)
            for _ in 0..100 {
                let timer1 = Timer::new(MS);
                let timer2 = Timer::new(MS);
                let other = select! {
                    recv(timer1.c()) -> _v => &timer2,
                    recv(timer2.c()) -> _v => &timer1,
                };
                if !stop_or_reset(other) && other.c().recv_timeout(Duration::from_secs(30)).is_err()
                {
                    // Go: "The test fails if this channel read times out."
                    failed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        });
    }
    drop(start_rx);
    start_tx.close();
    wg.wait();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "a false result with no value to receive"
    );
}

/// sleep_test.go TestStopResult.
#[test]
fn test_stop_result() {
    stop_reset_result(true);
}

/// sleep_test.go TestResetResult.
#[test]
fn test_reset_result() {
    stop_reset_result(false);
}

/// Go 1.23 timer channels are synchronous: tick_test.go TestChan checks
/// `len(C) == 0` and `cap(C) == 0` (issue 12, item 2), also with a value
/// waiting to be received.
#[test]
fn test_timer_chan_len_cap_zero() {
    let t = Timer::new(MS);
    assert_eq!((t.c().len(), t.c().capacity()), (0, 0));
    sleep(10 * MS); // fired; the value waits
    assert_eq!((t.c().len(), t.c().capacity()), (0, 0));
    assert!(t.c().is_empty());
    t.c().recv().unwrap(); // still there to receive
    let tk = Ticker::new(MS);
    sleep(10 * MS);
    assert_eq!((tk.c().len(), tk.c().capacity()), (0, 0));
    let a = after(MS);
    sleep(10 * MS);
    assert_eq!((a.len(), a.capacity()), (0, 0));
    a.recv().unwrap();
    // Other channels keep their numbers.
    let (tx, rx) = chan::<u8>(3);
    tx.send(1).unwrap();
    assert_eq!((rx.len(), rx.capacity()), (1, 3));
}

/// tick_test.go TestChan's timer interface: Stop and Reset with results.
trait TimerLike {
    fn stop(&self) -> bool;
    fn reset(&self, d: Duration) -> bool;
    fn c(&self) -> &Receiver<Instant>;
    fn is_ticker(&self) -> bool;
}

impl TimerLike for Timer {
    fn stop(&self) -> bool {
        Timer::stop(self)
    }
    fn reset(&self, d: Duration) -> bool {
        Timer::reset(self, d)
    }
    fn c(&self) -> &Receiver<Instant> {
        Timer::c(self)
    }
    fn is_ticker(&self) -> bool {
        false
    }
}

/// tick_test.go tickerTimer: a Ticker whose Stop and Reset return bools,
/// to have the same signatures as Timer.
struct TickerTimer {
    t: Ticker,
    stopped: std::cell::Cell<bool>,
}

impl TimerLike for TickerTimer {
    fn stop(&self) -> bool {
        let pending = !self.stopped.replace(true);
        self.t.stop();
        pending
    }
    fn reset(&self, d: Duration) -> bool {
        let pending = !self.stopped.replace(false);
        self.t.reset(d);
        pending
    }
    fn c(&self) -> &Receiver<Instant> {
        self.t.c()
    }
    fn is_ticker(&self) -> bool {
        true
    }
}

/// tick_test.go testTimerChan with synctimerchan (asynctimerchan=0, Go
/// 1.23's semantics; the async variants test Go's pre-1.23 behaviour, which
/// gort does not have). Go's retry parameters are kept; panics in Go's
/// goroutines become results checked after joining them.
fn test_timer_chan(tim: &dyn TimerLike) {
    const SCHED: Duration = Duration::from_millis(10);
    const TRIES: usize = 100;
    const NS: Duration = Duration::from_nanos(1);
    let far = Duration::from_secs(10_000);
    let is_ticker = tim.is_ticker();
    let c = tim.c();

    let no_tick = || assert!(c.try_recv().is_err(), "extra tick");
    let assert_tick = || {
        if c.try_recv().is_ok() {
            return;
        }
        for _ in 0..TRIES {
            sleep(SCHED);
            if c.try_recv().is_ok() {
                return;
            }
        }
        panic!("missing tick");
    };
    // A `done` channel is done once it holds a value or is closed.
    let is_done = |done: &Receiver<bool>| done.try_recv() != Err(TryRecvError::Empty);
    let not_done = |done: &Receiver<bool>| assert!(!is_done(done), "early done");
    let wait_done = |done: &Receiver<bool>| {
        for _ in 0..TRIES {
            sleep(SCHED);
            if is_done(done) {
                return;
            }
        }
        panic!("never got done");
    };

    // Test simple stop; timer never in heap.
    tim.stop();
    no_tick();

    // Test modify of timer not in heap.
    tim.reset(far);
    no_tick();

    // Test modify of timer in heap.
    tim.reset(NS);
    sleep(SCHED);
    assert_eq!((c.len(), c.capacity()), (0, 0), "len(C), cap(C)");
    assert_tick();

    // Sleep long enough that a second tick must happen if this is a ticker.
    // Test that Reset does not lose the tick that should have happened.
    sleep(SCHED);
    tim.reset(far);
    no_tick();

    // Reset timer in heap (already reset above, but just in case).
    tim.reset(far);

    // Test stop while timer in heap (because goroutine is blocked on <-C).
    let (done_tx, done) = chan::<bool>(0);
    not_done(&done);
    let c2 = c.clone();
    let g = go(move || {
        let _ = c2.recv();
        done_tx.close();
    });
    sleep(SCHED);
    not_done(&done);

    // Test reset far away while timer in heap.
    tim.reset(2 * far);
    sleep(SCHED);
    not_done(&done);

    // Test imminent reset while in heap.
    tim.reset(NS);
    wait_done(&done);
    g.join().unwrap();

    // If this is a ticker, another tick should have come in already (they
    // are 1ns apart). If a timer, it should have stopped.
    if is_ticker {
        assert_tick();
    } else {
        no_tick();
    }

    tim.stop();
    no_tick();

    // Again using select and with two goroutines waiting.
    tim.reset(far);
    let (done_tx, done) = chan::<bool>(2);
    let (stop_tx, stop) = chan::<bool>(0);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (c2, done_tx, stop) = (c.clone(), done_tx.clone(), stop.clone());
            go(move || {
                select! {
                    recv(c2) -> _v => { done_tx.send(true).unwrap(); },
                    recv(stop) -> _v => {},
                }
            })
        })
        .collect();
    sleep(SCHED);
    not_done(&done);
    tim.reset(SCHED / 2);
    sleep(SCHED);
    wait_done(&done);
    tim.stop();
    stop_tx.close();
    for w in waiters {
        w.join().unwrap(); // Go: waitDone(done1), waitDone(done2)
    }
    if is_ticker {
        // An extra send might have sent done again (handled by buffering
        // done above), and an extra send after that might have filled C.
        let _ = done.try_recv();
        let _ = c.try_recv();
    }
    not_done(&done);

    // Test enqueueTimerChan when timer is stopped.
    let (stop_tx, stop) = chan::<bool>(0);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (c2, stop) = (c.clone(), stop.clone());
            go(move || {
                select! {
                    recv(c2) -> _v => false, // Go: panic("unexpected data")
                    recv(stop) -> _v => true,
                }
            })
        })
        .collect();
    sleep(SCHED);
    stop_tx.close();
    for w in waiters {
        assert!(w.join().unwrap(), "unexpected data");
    }

    // Test that Stop and Reset block old values from being received.
    // (Proposal go.dev/issue/37196.)
    tim.reset(NS);
    sleep(SCHED);
    assert!(tim.stop(), "tim.Stop() = false, want true");
    no_tick();

    tim.reset(Duration::from_secs(3600));
    no_tick();
    assert!(tim.reset(NS), "tim.Reset() = false, want true");
    assert_tick();
    sleep(SCHED);
    if is_ticker {
        assert_tick();
        sleep(SCHED);
    } else {
        no_tick();
    }
    assert_eq!(
        tim.reset(Duration::from_secs(3600)),
        is_ticker,
        "tim.Reset(Hour) result"
    );
    no_tick();
}

/// tick_test.go TestChan, Timer (asynctimerchan=0).
#[test]
fn test_chan_timer() {
    let tim = Timer::new(Duration::from_secs(10_000));
    test_timer_chan(&tim);
}

/// tick_test.go TestChan, Ticker (asynctimerchan=0).
#[test]
fn test_chan_ticker() {
    let tim = TickerTimer {
        t: Ticker::new(Duration::from_secs(10_000)),
        stopped: std::cell::Cell::new(false),
    };
    test_timer_chan(&tim);
}

/// The channel keeps its timer alive, as in Go: a clone of `t.c()` still
/// receives after the `Timer` is dropped; dropping every receiver stops it.
#[test]
fn test_timer_lives_while_its_channel_does() {
    let t = Timer::new(5 * MS);
    let c = t.c().clone();
    drop(t);
    assert!(c.recv_timeout(Duration::from_secs(30)).is_ok());
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
/// Ticks come every 20 ms; after 10 periods unread, one tick waits (the
/// ticker fired before the sleep's own later deadline), and draining at
/// once finds at most one more (a new tick landing meanwhile), not nine.
#[test]
fn test_ticker_drops_ticks_for_slow_receivers() {
    let period = 20 * MS;
    let ticker = Ticker::new(period);
    sleep(10 * period);
    let mut got = 0;
    while ticker.c().try_recv().is_ok() {
        got += 1;
    }
    assert!((1..=2).contains(&got), "{got} ticks were queued");
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

/// `tick` (Go's time.Tick) delivers every period and is freed with its
/// receiver (its TestTimerGC case is in golang_time_gc.rs).
#[test]
fn tick_delivers_periodically() {
    // Taken before the ticker exists: its k-th tick fires no earlier than
    // k periods after its creation, however loaded the machine is.
    let t0 = std::time::Instant::now();
    let c = gort_std::tick(Duration::from_millis(2));
    for _ in 0..3 {
        c.recv().unwrap();
    }
    // Three ticks take at least two full periods past the first (the bound
    // leaves a period of margin for clock granularity).
    assert!(
        t0.elapsed() >= Duration::from_millis(4),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
#[should_panic(expected = "non-positive interval for tick")]
fn tick_of_zero_panics() {
    let _ = gort_std::tick(Duration::ZERO);
}
