//! Ports of Go's timer tests (go/src/time/sleep_test.go, tick_test.go);
//! each case names the Go test it follows. Bounds on elapsed time are
//! generous: machines are shared.

use gort_sched::go;
use gort_std::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// A bound for waits that only a bug makes long: it fails the test
/// instead of hanging it.
const LONG: Duration = Duration::from_secs(30);

/// Returns once an `after(d)` made now has fired, which proves that every
/// timer this plain thread made with an earlier deadline has fired too: a
/// plain thread's timers all go to heap 0, and a heap runs its due timers
/// in deadline order. (A sleep would only hope so: on a loaded machine the
/// heap runs late, and the sleeper may wake first.)
fn wait_fired_before(d: Duration) {
    assert!(
        gort_sched::goid().is_none(),
        "heap order holds for one heap: call this from the plain test thread"
    );
    after(d).recv_timeout(LONG).expect("after(d) never fired");
}

/// Waits until `n` operations are blocked receiving on `c` (the runtime's
/// own count: the goroutine is queued on the channel, not just started).
fn wait_blocked_receivers<T>(c: &Receiver<T>, n: usize) {
    let t0 = Instant::now();
    while c.blocked_receivers() != n {
        assert!(
            t0.elapsed() < LONG,
            "{} blocked receivers, want {n}",
            c.blocked_receivers()
        );
        std::thread::yield_now();
    }
}

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
    // Go: at most 3x the target; far more slack here, for a loaded machine.
    assert!(el < 10 * delta + Duration::from_secs(10), "{el:?}");
}

/// TestAfterStress: a 1 ns ticker read 100 times while another goroutine
/// runs collections in a loop (Go: `runtime.GC(); Sleep(Nanosecond)`);
/// here also with 100 goroutines reading After channels meanwhile. The
/// ticks are read only once a collection has finished, so they overlap
/// the collector's loop. A lost tick hangs Go's test; here it fails after
/// a generous bound.
#[test]
fn test_after_stress() {
    let stop = Arc::new(AtomicBool::new(false));
    let collections = Arc::new(AtomicUsize::new(0));
    let collector = {
        let (stop, collections) = (stop.clone(), collections.clone());
        go(move || {
            while !stop.load(Ordering::SeqCst) {
                gort_gc::gc();
                collections.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_nanos(1));
            }
        })
    };
    let readers: Vec<_> = (0..100)
        .map(|_| {
            go(|| {
                for _ in 0..10 {
                    after(MS).recv_timeout(LONG).expect("an After never fired");
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    while collections.load(Ordering::SeqCst) == 0 {
        assert!(t0.elapsed() < LONG, "no collection finished");
        std::thread::yield_now();
    }
    let ticker = Ticker::new(Duration::from_nanos(1));
    for i in 0..100 {
        if let Err(e) = ticker.c().recv_timeout(LONG) {
            panic!("tick {i} of a 1 ns ticker: {e}");
        }
    }
    ticker.stop();
    stop.store(true, Ordering::SeqCst);
    collector.join().unwrap();
    for h in readers {
        h.join().unwrap();
    }
}

/// sleep_test.go testReset: Reset of a pending timer returns true; the
/// timer fires at the new time (not before, not much after); Reset of a
/// timer whose value was received returns false.
fn try_reset(d: Duration) -> Result<(), String> {
    let t0 = Timer::new(2 * d);
    sleep(d);
    if !t0.reset(3 * d) {
        return Err("resetting unfired timer returned false".into());
    }
    sleep(2 * d);
    if t0.c().try_recv().is_ok() {
        return Err("timer fired early".into());
    }
    sleep(2 * d);
    if t0.c().try_recv().is_err() {
        return Err("reset timer did not fire".into());
    }
    if t0.reset(50 * MS) {
        return Err("resetting expired timer returned true".into());
    }
    Ok(())
}

/// sleep_test.go TestReset: as Go, tries growing multiples of 25 ms until
/// one passes, so a slow, loaded machine (a sleep overshooting into the
/// timer's new deadline, a timer run late) is not a failure, and fails
/// only if every duration fails.
#[test]
fn test_reset() {
    const UNIT: Duration = Duration::from_millis(25);
    let mut errs = Vec::new();
    for d in [UNIT, 3 * UNIT, 7 * UNIT, 15 * UNIT] {
        match try_reset(d) {
            Ok(()) => return,
            Err(e) => errs.push(format!("{d:?}: {e}")),
        }
    }
    panic!("every duration failed: {errs:?}");
}

/// TestChan's "Stop and Reset block old values from being received"
/// (Go 1.23, proposal go.dev/issue/37196): after Stop or Reset, a value
/// sent before is never received, and the Stop or Reset that discards it
/// reports the timer as still active (true).
#[test]
fn test_no_stale_value_after_stop_or_reset() {
    for _ in 0..50 {
        let t = Timer::new(MS);
        wait_fired_before(3 * MS); // it fired; the value sits unreceived
        assert!(t.stop(), "stop discarding a fired value returns true");
        assert_eq!(
            t.c().try_recv(),
            Err(TryRecvError::Empty),
            "stale value after stop"
        );
        assert!(!t.stop(), "a second stop finds nothing");

        let t = Timer::new(MS);
        wait_fired_before(3 * MS);
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
        wait_fired_before(wait);
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
    wait_fired_before(3 * MS); // fired; the value waits
    assert_eq!((t.c().len(), t.c().capacity()), (0, 0));
    assert!(t.c().is_empty());
    assert!(t.c().try_recv().is_ok(), "the fired value is still there");
    let tk = Ticker::new(MS);
    wait_fired_before(3 * MS);
    assert_eq!((tk.c().len(), tk.c().capacity()), (0, 0));
    let a = after(MS);
    wait_fired_before(3 * MS);
    assert_eq!((a.len(), a.capacity()), (0, 0));
    assert!(a.try_recv().is_ok(), "the fired value is still there");
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
    wait_blocked_receivers(c, 1); // Go: sleep(), hoping it blocked
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
    wait_blocked_receivers(c, 2);
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
    wait_blocked_receivers(c, 2);
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

/// sleep_test.go TestAfterStop, for AfterFunc: a stopped AfterFunc never
/// runs (not even once a later timer has fired), a second Stop returns
/// false; and dropping an AfterFunc's handle does not cancel it (Go keeps
/// it too). As Go, a Stop that comes too late (the machine ran the
/// function first) is retried, here with growing durations, and fails the
/// test only if every try does.
#[test]
fn test_after_func_stop_and_drop() {
    let mut errs = Vec::new();
    for d in [10 * MS, 50 * MS, 200 * MS, 1000 * MS] {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let h = after_func(d, move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        if !h.stop() {
            errs.push(format!("{d:?}: failed to stop"));
            continue;
        }
        let (tx, rx) = chan::<()>(1);
        let r = ran.clone();
        drop(after_func(d / 2, move || {
            r.fetch_add(10, Ordering::SeqCst);
            let _ = tx.try_send(());
        }));
        rx.recv_timeout(LONG).expect("dropped AfterFunc never ran");
        // Past the stopped one's deadline, with time for its goroutine.
        after(2 * d).recv_timeout(LONG).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 10, "stopped AfterFunc ran");
        assert!(!h.stop(), "Stop returned true twice");
        return;
    }
    panic!("every duration failed: {errs:?}");
}

/// tick_test.go TestTicker: count/2 ticks of delta, then a Reset to
/// 2*delta and count/2 more ticks take 3*delta*count/2, within 30%; after
/// Stop no tick arrives. As Go, a try that misses (a loaded machine) is
/// retried with longer ticks, (10, 20 ms) then (8, 1 s), and the test fails
/// only if both do. gort adds: a reset restarts a stopped ticker.
#[test]
fn test_ticker() {
    let mut errs = Vec::new();
    for (count, delta) in [(10u32, 20 * MS), (8, Duration::from_secs(1))] {
        let ticker = Ticker::new(delta);
        let t0 = Instant::now();
        for _ in 0..count / 2 {
            ticker.c().recv_timeout(LONG).expect("missing tick");
        }
        ticker.reset(delta * 2);
        for _ in 0..count - count / 2 {
            ticker.c().recv_timeout(LONG).expect("missing tick");
        }
        ticker.stop();
        let dt = t0.elapsed();
        let target = 3 * delta * (count / 2);
        let slop = target * 3 / 10;
        if dt < target - slop || dt > target + slop {
            errs.push(format!(
                "{} {delta:?} ticks then {} {:?} ticks took {dt:?}, expected [{:?},{:?}]",
                count / 2,
                count - count / 2,
                delta * 2,
                target - slop,
                target + slop
            ));
            if dt > target + slop {
                // Go: the system may be overloaded; let it recover.
                sleep(Duration::from_millis(500));
            }
            continue;
        }
        // Now test that the ticker stopped.
        sleep(2 * delta);
        if ticker.c().try_recv().is_ok() {
            errs.push("Ticker did not shut down".into());
            continue;
        }
        ticker.reset(delta);
        ticker
            .c()
            .recv_timeout(LONG)
            .expect("a reset ticker ticks again");
        return;
    }
    panic!("saw {} errors: {errs:?}", errs.len());
}

/// The ticker "drops ticks to make up for slow receivers" (Go's NewTicker
/// doc): after 10 periods unread, at most one stale tick waits and the
/// next ones keep the period, so four receives take more than a period
/// (nine queued ticks would take no time). Why it holds under load: the
/// channel holds one tick, so the second one is sent only after the stale
/// one is received (after `t0`); each later tick is due on the period grid
/// after the run that sent the one before. The third and fourth are then
/// due a full period apart, the fourth more than a period after that run.
/// That run samples the clock a moment before it sends, which a stalled M
/// can stretch: a miss is retried with longer periods, as Go retries its
/// ticker tests, and only failing every time fails the test.
#[test]
fn test_ticker_drops_ticks_for_slow_receivers() {
    let mut errs = Vec::new();
    for period in [20 * MS, 100 * MS, 500 * MS] {
        let ticker = Ticker::new(period);
        sleep(10 * period);
        let t0 = Instant::now();
        for _ in 0..4 {
            ticker.c().recv_timeout(LONG).expect("missing tick");
        }
        let el = t0.elapsed();
        if el > period {
            return;
        }
        errs.push(format!("4 ticks of {period:?} in {el:?}"));
    }
    panic!("a slow receiver found ticks queued up: {errs:?}");
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

/// Not a Go port: timers made from a plain thread keep firing while
/// goroutines on every P arm, race and stop short timers of their own
/// (the pattern of `test_reset_result` beside
/// `test_no_stale_value_after_stop_or_reset`). A poller that skipped a
/// heap another M was running could raise the scheduler's next deadline
/// past that heap's next timer, and an idle M then kept time until the
/// raised deadline while the runner, failing to take that role, slept with
/// none: the timers here waited until the next far timer came due (30 s
/// in golang_time's runs, about 1 run in 13 stalled; here an hour). Each wait is
/// bounded at 20 s by a std channel (a bound made of a gort timer would be
/// on the same heap, and fire after the stalled timer when a poll finally
/// came), so the lost wake-up fails by name.
#[test]
fn timers_fire_while_other_heaps_run() {
    let _far = Timer::new(Duration::from_secs(3600));
    let stop = Arc::new(AtomicBool::new(false));
    let wg = Arc::new(WaitGroup::new());
    for _ in 0..200 {
        let stop = stop.clone();
        wg.go_arc(move || {
            while !stop.load(Ordering::Relaxed) {
                let timer1 = Timer::new(MS);
                let timer2 = Timer::new(MS);
                let other = select! {
                    recv(timer1.c()) -> _v => &timer2,
                    recv(timer2.c()) -> _v => &timer1,
                };
                other.stop();
            }
        });
    }
    for round in 0..1000 {
        let (tx, rx) = std::sync::mpsc::channel();
        let _t = after_func(MS, move || {
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("round {round}: a 1 ms timer did not fire in 20 s"));
    }
    stop.store(true, Ordering::Relaxed);
    wg.wait();
}
