//! Regression tests for issue 11 (no undefined behaviour, crash or silent
//! hang reachable from safe code), gort-std's part.
//!
//! Item 1: releasing a raw lock is `unsafe` now, so `m.raw().unlock()`
//! under a live guard no longer compiles from safe code (the `compile_fail`
//! doc tests on `RawMutex::unlock`, `RawRwLock::read_unlock` and
//! `RawRwLock::write_unlock` check that). Here: the guard API still works,
//! the documented `unsafe` escape hatch works, and Go's misuse checks stay.
//!
//! Item 8 (gort-std's side): `after_func` runs the user's function on its
//! own goroutine, never under the timer heap's lock — a function that
//! blocks does not stop other timers; one that panics ends the process
//! with a clear message instead of killing an M and hanging the heap.

use gort_std::{after_func, chan, sleep, Mutex, RawMutex, RwLock, Timer};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn mutex_guards_still_exclude_and_release() {
    let m = Mutex::new(vec![1u32]);
    {
        let mut g = m.lock();
        g.push(2);
        assert!(m.raw().is_locked());
        assert!(m.try_lock().is_none(), "a second guard while one is live");
    }
    assert!(!m.raw().is_locked(), "the guard's drop released the lock");
    m.lock().push(3);
    assert_eq!(*m.lock(), vec![1, 2, 3]);
    // From goroutines too.
    let m = std::sync::Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            gort_sched::go(move || {
                for _ in 0..1000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 8000);
}

#[test]
fn rwlock_guards_still_exclude_and_release() {
    let l = RwLock::new(String::from("a"));
    {
        let r1 = l.read();
        let r2 = l.read();
        assert_eq!(*r1, *r2);
        assert!(l.try_write().is_none(), "a writer beside readers");
    }
    {
        let mut w = l.write();
        w.push('b');
        assert!(l.try_read().is_none(), "a reader beside the writer");
        assert!(l.try_write().is_none(), "two writers");
    }
    assert_eq!(*l.read(), "ab");
    assert!(l.try_write().is_some(), "the guards released the lock");
}

/// The escape hatch for a forgotten guard: releasing the hold is an
/// explicit `unsafe` act whose contract the caller discharges.
#[test]
fn forgotten_guard_released_through_unsafe_raw_unlock() {
    let m = Mutex::new(5);
    std::mem::forget(m.lock());
    assert!(m.raw().is_locked());
    // SAFETY: the forgotten guard's hold is ours and no guard is live.
    unsafe { m.raw().unlock() };
    assert_eq!(*m.lock(), 5);
}

/// Go's misuse check is still there behind the `unsafe`.
#[test]
fn raw_unlock_of_unlocked_mutex_still_panics() {
    let m = RawMutex::new();
    // SAFETY: breaks the contract on purpose (no hold to release) to check
    // the misuse panic; nothing else uses this mutex and it guards no data.
    let e = std::panic::catch_unwind(|| unsafe { m.unlock() }).unwrap_err();
    let msg = e.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(msg, "sync: unlock of unlocked mutex");
    m.lock();
    // SAFETY: locked just above by this thread.
    unsafe { m.unlock() };
    assert!(!m.is_locked());
}

/// `after_func`'s function may block (here: sleep, make and wait for a
/// timer, receive on a channel): it runs on its own goroutine, so the heap
/// is free and later timers and sleeps still work.
#[test]
fn after_func_may_block() {
    let (tx, rx) = chan::<u32>(0);
    let (done_tx, done_rx) = chan::<u32>(1);
    let _f = after_func(Duration::from_millis(1), move || {
        sleep(Duration::from_millis(2));
        Timer::new(Duration::from_millis(2)).c().recv().unwrap();
        let v = rx.recv().unwrap(); // blocks until the main goroutine sends
        done_tx.send(v + 1).unwrap();
    });
    gort_sched::run(move || {
        // Once the function blocks in its receive (the channel says so)...
        let t0 = Instant::now();
        while tx.blocked_receivers() != 1 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "after_func's function never blocked"
            );
            sleep(Duration::from_millis(1));
        }
        // ... the heap is not held by it: sleeping works.
        let t0 = Instant::now();
        sleep(Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        tx.send(41).unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)),
            Ok(42),
            "after_func's function never finished"
        );
        let t0 = Instant::now();
        sleep(Duration::from_millis(5));
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "a 5 ms sleep never returned"
        );
    });
}

const CHILD_ENV: &str = "GORT_STD_SOUNDNESS_CHILD";

/// Runs one test of this binary in a child process, killed after 120 s;
/// returns whether it succeeded and its stdout + stderr.
fn run_child(test: &str) -> (bool, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill(); // hung: fails below
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // A renamed test would run nothing and "pass": the child must have
    // started exactly this test.
    assert!(
        stdout.contains("running 1 test") && stdout.contains(&format!("test {test} ...")),
        "the child process did not run test {test:?}; its stdout:\n{stdout}"
    );
    let text = stdout + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// The child of `after_func_panic_is_fatal`.
#[test]
fn child_after_func_panics() {
    if !is_child("child_after_func_panics") {
        return;
    }
    println!("CHILD STARTED: after_func panics");
    let _f = after_func(Duration::from_millis(1), || panic!("boom in after_func"));
    // The process must end; if it does not, the parent sees this marker.
    // (Long enough for the timer to fire on a stalled machine.)
    sleep(Duration::from_secs(60));
    println!("CHILD SURVIVED");
}

/// A panic in `after_func`'s function ends the process with Go's kind of
/// message (a panic in a timer func is fatal in Go), instead of killing an
/// M with the heap locked.
#[test]
fn after_func_panic_is_fatal() {
    let (ok, out) = run_child("child_after_func_panics");
    assert!(
        out.contains("CHILD STARTED: after_func panics"),
        "the child did not run the test: {out}"
    );
    assert!(!ok, "the child survived the panic: {out}");
    assert!(!out.contains("CHILD SURVIVED"), "{out}");
    assert!(
        out.contains("fatal error: panic in a timer callback: boom in after_func"),
        "{out}"
    );
}
