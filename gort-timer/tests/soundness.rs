//! Regression tests for issue 11, item 8: `RawTimer::new` is safe, but its
//! callback ran under the timer-heap lock on an M. A panic killed the M and
//! left the heap locked (every later `sleep` hung, the process never
//! exited); a callback that slept, made a timer or blocked deadlocked.
//!
//! Now the safe constructor runs the function on a goroutine of its own:
//! a panic ends the process with a clear message (Go: a panic in a timer
//! function is fatal), blocking is fine. The `unsafe` `new_unchecked`
//! keeps the in-lock callback, and a panic there (a broken contract) is the
//! same clear fatal error, never a hang.
//!
//! The panicking cases run in a child process: this binary re-executes
//! itself with `--exact <test>` and an environment variable naming the
//! test, and the parent checks the child printed its start marker (a
//! renamed test would run nothing and "pass"), did not survive, said why,
//! and did not hang.

use gort_sched::go;
use gort_sema::{semacquire, semrelease};
use gort_timer::{sleep, RawTimer};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "GORT_TIMER_SOUNDNESS_CHILD";

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// Runs test `test` of this binary in a child process, killing it after
/// `limit`. Returns (exited successfully, timed out, stdout + stderr).
fn run_child(test: &str, limit: Duration) -> (bool, bool, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut timed_out = false;
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !timed_out, timed_out, text)
}

/// Fails the test (ends the process) if it is still running after
/// `limit`: a deadlocked heap must be a failure, not a hung test run.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(name: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !d.load(Ordering::SeqCst) {
                if t0.elapsed() > limit {
                    // Straight to fd 2: the harness's capture of eprintln!
                    // is lost on exit.
                    let _ = writeln!(
                        std::io::stderr(),
                        "{name}: still running after {limit:?}: a timer deadlock"
                    );
                    std::process::exit(101);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (polling, from the test thread) until `cond` holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{what}: timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a child whose timer callback panics: sleeps (on the timer heaps) in
/// 100 ms steps for up to 60 s, long past the 1 ms timer even on a loaded
/// machine; the callback's fatal error ends the process first. Reaching the
/// end prints the line the parent fails on.
fn outlive_the_fatal_error() {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        sleep(Duration::from_millis(100));
    }
    println!("CHILD SURVIVED");
}

/// The child of `safe_callback_panic_is_fatal`.
#[test]
fn child_safe_callback_panics() {
    if !is_child("child_safe_callback_panics") {
        return;
    }
    println!("CHILD STARTED: safe callback panics");
    let t = RawTimer::new(|| panic!("boom in a safe timer callback"));
    t.reset(Duration::from_millis(1));
    // Old code: the panic killed the M with this heap locked, and this
    // sleep (same heap) never returned.
    outlive_the_fatal_error();
}

#[test]
fn safe_callback_panic_is_fatal() {
    let (ok, timed_out, out) = run_child("child_safe_callback_panics", Duration::from_secs(120));
    assert!(
        out.contains("CHILD STARTED: safe callback panics"),
        "the child did not run its test: {out}"
    );
    assert!(!timed_out, "the child hung after the panic: {out}");
    assert!(!ok, "the child survived a panicking timer callback: {out}");
    assert!(!out.contains("CHILD SURVIVED"), "{out}");
    assert!(
        out.contains("fatal error: panic in a timer callback: boom in a safe timer callback"),
        "{out}"
    );
}

/// The child of `unchecked_callback_panic_is_fatal_not_a_hang`.
#[test]
fn child_unchecked_callback_panics() {
    if !is_child("child_unchecked_callback_panics") {
        return;
    }
    println!("CHILD STARTED: unchecked callback panics");
    // SAFETY: breaks the contract (no panic) on purpose, in a child
    // process, to check that the heap turns it into a fatal error instead
    // of unwinding out of the M with the heap locked.
    let t = unsafe { RawTimer::new_unchecked(|| panic!("boom in an unchecked timer callback")) };
    t.reset(Duration::from_millis(1));
    outlive_the_fatal_error();
}

#[test]
fn unchecked_callback_panic_is_fatal_not_a_hang() {
    let (ok, timed_out, out) =
        run_child("child_unchecked_callback_panics", Duration::from_secs(120));
    assert!(
        out.contains("CHILD STARTED: unchecked callback panics"),
        "the child did not run its test: {out}"
    );
    assert!(!timed_out, "the child hung after the panic: {out}");
    assert!(!ok, "the child survived: {out}");
    assert!(
        out.contains("fatal error: panic in a timer callback: boom in an unchecked timer callback"),
        "{out}"
    );
}

/// A safe callback may sleep, create and wait for another timer, and block
/// on a semaphore released only after the test's own sleep returned (so a
/// heap held by the callback would deadlock). Later sleeps still work.
#[test]
fn safe_callback_may_sleep_use_timers_and_block() {
    let _w = Watchdog::new(
        "safe_callback_may_sleep_use_timers_and_block",
        Duration::from_secs(30),
    );
    static SEM: AtomicU32 = AtomicU32::new(0);
    let steps = Arc::new(AtomicUsize::new(0));
    let s = steps.clone();
    let t = RawTimer::new(move || {
        sleep(Duration::from_millis(5));
        s.fetch_add(1, Ordering::SeqCst); // 1: slept
                                          // A timer made and fired from inside a timer callback.
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let inner = RawTimer::new(move || f.store(true, Ordering::SeqCst));
        inner.reset(Duration::from_millis(2));
        while !fired.load(Ordering::SeqCst) {
            sleep(Duration::from_millis(1));
        }
        s.fetch_add(1, Ordering::SeqCst); // 2: the inner timer fired
                                          // Blocks until the test thread has slept (on the same heap: both
                                          // the thread and this timer use heap 0 or their P's).
        semacquire(&SEM);
        s.fetch_add(1, Ordering::SeqCst); // 3: unblocked
    });
    t.reset(Duration::from_millis(1));
    wait_for("callback slept and fired a timer", || {
        steps.load(Ordering::SeqCst) >= 2
    });
    // The callback is blocked now: timers and sleeps still work, from a
    // thread and from goroutines.
    let t0 = Instant::now();
    sleep(Duration::from_millis(10));
    assert!(t0.elapsed() >= Duration::from_millis(10));
    go(|| sleep(Duration::from_millis(10))).join().unwrap();
    assert_eq!(steps.load(Ordering::SeqCst), 2);
    semrelease(&SEM, false);
    wait_for("callback unblocked", || steps.load(Ordering::SeqCst) == 3);
    let hs: Vec<_> = (0..100)
        .map(|_| go(|| sleep(Duration::from_millis(2))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// A safe callback may stop and re-arm its own timer.
#[test]
fn safe_callback_may_touch_its_own_timer() {
    let _w = Watchdog::new(
        "safe_callback_may_touch_its_own_timer",
        Duration::from_secs(30),
    );
    let slot: Arc<Mutex<Option<Arc<RawTimer>>>> = Arc::new(Mutex::new(None));
    let runs = Arc::new(AtomicUsize::new(0));
    let (s, r) = (slot.clone(), runs.clone());
    let t = Arc::new(RawTimer::new(move || {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        let t = s.lock().unwrap().clone().expect("timer published");
        t.stop();
        if n < 3 {
            t.reset(Duration::from_millis(1)); // fires again
        }
    }));
    *slot.lock().unwrap() = Some(t.clone());
    t.reset(Duration::from_millis(1));
    wait_for("three runs", || runs.load(Ordering::SeqCst) >= 3);
    sleep(Duration::from_millis(10));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    slot.lock().unwrap().take(); // break the cycle
}

/// A periodic safe timer whose function is slower than its period runs it
/// one tick at a time: ticks that come meanwhile are dropped, not piled up
/// as goroutines.
#[test]
fn slow_periodic_callback_does_not_pile_up() {
    let _w = Watchdog::new(
        "slow_periodic_callback_does_not_pile_up",
        Duration::from_secs(30),
    );
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (cur, m, n) = (running.clone(), max.clone(), runs.clone());
    let t = RawTimer::new(move || {
        let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        sleep(Duration::from_millis(10));
        n.fetch_add(1, Ordering::SeqCst);
        cur.fetch_sub(1, Ordering::SeqCst);
    });
    t.reset_at(
        gort_timer::deadline_after(Duration::from_millis(1)),
        Duration::from_millis(1),
    );
    wait_for("a few slow ticks", || runs.load(Ordering::SeqCst) >= 4);
    t.stop();
    wait_for("the last tick", || running.load(Ordering::SeqCst) == 0);
    assert_eq!(max.load(Ordering::SeqCst), 1, "ticks overlapped");
}

/// Records where it was dropped: on a goroutine or not.
struct DropProbe(Arc<Mutex<Option<bool>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        // A blocking Drop would stall an M's scheduler if it ran there.
        sleep(Duration::from_millis(1));
        *self.0.lock().unwrap() = Some(gort_sched::goid().is_some());
    }
}

/// The closure of a detached safe timer is user code when it drops (its
/// captures' `Drop`): that happens on a goroutine, never on the M's
/// scheduler stack or under the heap lock.
#[test]
fn detached_safe_timer_closure_drops_on_a_goroutine() {
    let _w = Watchdog::new(
        "detached_safe_timer_closure_drops_on_a_goroutine",
        Duration::from_secs(30),
    );
    for _ in 0..20 {
        let where_dropped = Arc::new(Mutex::new(None));
        let probe = DropProbe(where_dropped.clone());
        let t = RawTimer::new(move || {
            let _keep = &probe;
        });
        t.reset(Duration::from_millis(1));
        t.detach();
        wait_for("the probe dropped", || {
            where_dropped.lock().unwrap().is_some()
        });
        assert_eq!(
            *where_dropped.lock().unwrap(),
            Some(true),
            "a timer closure was dropped off a goroutine"
        );
    }
}

/// Stop before the fire still prevents the call (Go's Stop result), for a
/// safe timer too. A stall between reset and stop longer than the duration
/// (a loaded machine) lets it fire legitimately: then stop reports false
/// and the case is retried with a longer duration, as Go's TestReset does;
/// a stop that fails before the deadline is a bug.
#[test]
fn safe_timer_stop_prevents_the_call() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let t = RawTimer::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    });
    let mut stopped_in_time = false;
    for ms in [20u64, 100, 500, 2000, 10_000] {
        let d = Duration::from_millis(ms);
        let before = fired.load(Ordering::SeqCst);
        let t0 = Instant::now();
        t.reset(d);
        if !t.stop() {
            let el = t0.elapsed();
            assert!(el >= d, "stop {el:?} before a {d:?} deadline missed it");
            wait_for("the fire that beat the stop", || {
                fired.load(Ordering::SeqCst) > before
            });
            continue;
        }
        // Past the deadline and more: a stopped timer never calls.
        sleep(d * 2);
        assert_eq!(
            fired.load(Ordering::SeqCst),
            before,
            "a stopped timer fired"
        );
        stopped_in_time = true;
        break;
    }
    assert!(stopped_in_time, "never managed to stop before the deadline");
    let before = fired.load(Ordering::SeqCst);
    t.reset(Duration::from_millis(1));
    wait_for("the fire", || fired.load(Ordering::SeqCst) == before + 1);
    assert!(!t.stop(), "stop after the fire reports false");
}
