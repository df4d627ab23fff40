//! Ports of Go's semaphore tests (go/src/runtime/sema_test.go); each case
//! names the Go test it follows and says what differs and why.
//!
//! Go's tests set GOMAXPROCS, which is process-wide; here each runs in a
//! child process of this test binary with GOMAXPROCS in its environment.
//!
//! Cases Go cannot have, since its goroutines have no home thread, follow
//! the ports: TestSemaHandoff with the waiter started on another M than
//! the releaser — both migratable (Go's hand-off holds), only the waiter
//! migratable and neither (it does not: ignored, deviations).

use gort_sched::{go, gomaxprocs, gosched, run, Builder};
use gort_sema::{semacquire, semrelease, semwaiters};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

fn is_child() -> bool {
    std::env::var_os("GORT_TEST_CHILD").is_some()
}

/// In the parent: re-runs this test binary for `test` alone with `env`,
/// checks that the child really ran that test (a misspelt name would run
/// nothing and "pass") and that it passed; returns true. In the child:
/// returns false (run the test body). As gort-sched's tests/common.
fn in_child(test: &str, env: &[(&str, &str)]) -> bool {
    if is_child() {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    // --include-ignored: the parent ran, so the test was asked for.
    cmd.args([
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ]);
    cmd.env("GORT_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test") && stdout.contains(&format!("test {test} ... ok")),
        "the child process did not run and pass test {test:?} with {env:?}; its stdout:\n\
         {stdout}\nits stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    true
}

/// Aborts the process, naming `what`, unless the guard is dropped within
/// `limit`: a lost wake-up (a join or semacquire waiting forever, where no
/// deadline check can run) fails the test instead of hanging it.
fn watchdog(what: &'static str, limit: Duration) -> impl Drop {
    struct Guard(Arc<(Mutex<bool>, Condvar)>);
    impl Drop for Guard {
        fn drop(&mut self) {
            *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.0 .1.notify_all();
        }
    }
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let d = done.clone();
    std::thread::spawn(move || {
        let (lock, cv) = &*d;
        let g = lock.lock().unwrap();
        let (g, _) = cv.wait_timeout_while(g, limit, |done| !*done).unwrap();
        if !*g {
            eprintln!("watchdog: {what} did not finish within {limit:?}; aborting");
            std::process::abort();
        }
    });
    Guard(done)
}

/// sema_test.go testSemaHandoff: one round. A waiter is blocked in
/// semacquire; this goroutine releases with hand-off and at once races the
/// waiter to a CAS on `res`. Returns whether the waiter got there first,
/// i.e. the releaser yielded to it directly.
///
/// Differs: `done` is a flag the busy goroutines poll (Go closes a
/// channel); every goroutine is joined (Go waits for `done` only); Go's
/// `SemNwait` (waiters counted, including those about to queue) is
/// [`semwaiters`] (waiters queued), and waiting for it has a deadline.
fn sema_handoff_once() -> bool {
    let sema = Arc::new(AtomicU32::new(0));
    let res = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));

    // We're testing that the current goroutine is able to yield its time
    // slice to another goroutine. Stop the current goroutine from migrating
    // to another CPU where it can win the race (and appear to have not
    // yielded) by keeping the CPUs slightly busy.
    let busy: Vec<_> = (0..gomaxprocs(0))
        .map(|_| {
            let done = done.clone();
            go(move || {
                while !done.load(Ordering::SeqCst) {
                    gosched();
                }
            })
        })
        .collect();

    let (s2, r2, d2) = (sema.clone(), res.clone(), done.clone());
    let waiter = go(move || {
        semacquire(&s2);
        let _ = r2.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        semrelease(&s2, true);
        d2.store(true, Ordering::SeqCst);
    });
    let start = Instant::now();
    while semwaiters(&sema) == 0 {
        assert!(
            start.elapsed() < LIMIT,
            "the waiter did not block in semacquire within {LIMIT:?}"
        );
        gosched(); // wait for goroutine to block in semacquire
    }

    // The crux of the test: we release the semaphore with handoff and
    // immediately perform a CAS both here and in the waiter; we want the
    // CAS in the waiter to execute first.
    semrelease(&sema, true);
    let _ = res.compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst);

    waiter.join().unwrap();
    for b in busy {
        b.join().unwrap();
    }
    res.load(Ordering::SeqCst) == 1 // did the waiter run first?
}

/// sema_test.go TestSemaHandoff's loop: 10000 rounds, at least two thirds
/// of them direct hand-offs. Go's threshold, not a speed: the scheduler is
/// nondeterministic, so the test checks the desired outcome in a
/// significant majority of cases.
fn sema_handoff() {
    const ITER: usize = 10_000;
    let _w = watchdog("sema_handoff", Duration::from_secs(120));
    let ok = run(|| (0..ITER).filter(|_| sema_handoff_once()).count());
    assert!(
        ok >= ITER * 2 / 3,
        "direct handoff < 2/3: {ok} of {ITER} (GOMAXPROCS={})",
        gomaxprocs(0)
    );
}

/// sema_test.go TestSemaHandoff: when semrelease with hand-off is asked
/// for, the goroutine releasing the semaphore yields directly to the first
/// waiter in line (Go issue 33747), with the default GOMAXPROCS.
///
/// Differs: the rounds run in a child process (the other two ports change
/// GOMAXPROCS, which is process-wide) and on a main goroutine ([`run`]), as
/// Go's run on the test's goroutine.
#[test]
fn test_sema_handoff() {
    if in_child("test_sema_handoff", &[]) {
        return;
    }
    sema_handoff();
}

/// sema_test.go TestSemaHandoff1: TestSemaHandoff with GOMAXPROCS=1.
///
/// Differs: Go skips it when GOMAXPROCS is already 1 (TestSemaHandoff
/// covered that case); here it always runs, in a child with GOMAXPROCS=1.
#[test]
fn test_sema_handoff1() {
    if in_child("test_sema_handoff1", &[("GOMAXPROCS", "1")]) {
        return;
    }
    assert_eq!(gomaxprocs(0), 1);
    sema_handoff();
}

/// sema_test.go TestSemaHandoff2: TestSemaHandoff with GOMAXPROCS=2.
///
/// Differs: Go skips it when GOMAXPROCS <= 2 (TestSemaHandoff covered that
/// case), which would skip it on a two-CPU machine; here it always runs, in
/// a child with GOMAXPROCS=2.
#[test]
fn test_sema_handoff2() {
    if in_child("test_sema_handoff2", &[("GOMAXPROCS", "2")]) {
        return;
    }
    assert_eq!(gomaxprocs(0), 2);
    sema_handoff();
}

/// One round of testSemaHandoff with the waiter on another M than the
/// releaser (a case Go cannot have: its goroutines have no home thread).
/// The releaser (the calling goroutine) does not yield until the waiter has
/// started, so that another M starts it — and, unless `migratable`, keeps
/// it. If none has after 100 ms (Go's Ms take microseconds; a loaded
/// machine may keep the other M's thread off the CPU for milliseconds), it
/// yields and the waiter may start here (a goroutine left queued although a
/// P is idle: gort-sched's `test_spawn_while_ms_park`); such a round, and
/// one where the waiter started on the releaser's M, is played out but not
/// counted: `None`.
fn sema_handoff_other_m_once(migratable: bool) -> Option<bool> {
    let sema = Arc::new(AtomicU32::new(0));
    let res = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    // The releaser does not yield (so cannot move) until the waiter started.
    let here = std::thread::current().id();

    let (s2, r2, d2, st2) = (sema.clone(), res.clone(), done.clone(), started.clone());
    let f = move || {
        let start_thread = std::thread::current().id();
        st2.store(true, Ordering::SeqCst);
        semacquire(&s2);
        let _ = r2.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        semrelease(&s2, true);
        d2.store(true, Ordering::SeqCst);
        start_thread
    };
    let waiter = if migratable {
        // SAFETY: the waiter holds nothing thread-affine (Arcs and a
        // thread id) across its blocking calls.
        unsafe { Builder::new().migratable(true) }.spawn(f)
    } else {
        go(f)
    };
    let start = Instant::now();
    let mut yielded = false;
    while !started.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < LIMIT,
            "the waiter did not start within {LIMIT:?}"
        );
        if start.elapsed() > Duration::from_millis(100) {
            gosched(); // a migratable releaser may move: `here` is stale
            yielded = true;
        } else {
            std::hint::spin_loop();
        }
    }

    let busy: Vec<_> = (0..gomaxprocs(0))
        .map(|_| {
            let done = done.clone();
            go(move || {
                while !done.load(Ordering::SeqCst) {
                    gosched();
                }
            })
        })
        .collect();
    let start = Instant::now();
    while semwaiters(&sema) == 0 {
        assert!(
            start.elapsed() < LIMIT,
            "the waiter did not block in semacquire within {LIMIT:?}"
        );
        gosched();
    }
    semrelease(&sema, true);
    let _ = res.compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst);

    let start_thread = waiter.join().unwrap();
    for b in busy {
        b.join().unwrap();
    }
    (!yielded && start_thread != here).then(|| res.load(Ordering::SeqCst) == 1)
}
/// [`sema_handoff`] for [`sema_handoff_other_m_once`]: 200 counted rounds
/// (of at most 400; each waits for another M's thread to start the waiter,
/// milliseconds on a loaded machine), Go's two thirds. The rounds run on a
/// main goroutine that is migratable or not as `releaser_migratable`.
fn sema_handoff_other_m(waiter_migratable: bool, releaser_migratable: bool) {
    const ITER: usize = 200;
    let _w = watchdog("sema_handoff_other_m", Duration::from_secs(120));
    let rounds = move || {
        let (mut counted, mut ok) = (0, 0);
        for _ in 0..2 * ITER {
            if counted == ITER {
                break;
            }
            if let Some(direct) = sema_handoff_other_m_once(waiter_migratable) {
                counted += 1;
                ok += usize::from(direct);
            }
        }
        (counted, ok)
    };
    let main = if releaser_migratable {
        // SAFETY: the rounds hold nothing thread-affine across blocking
        // calls: Arcs, join handles, counters and thread ids (compared only
        // while the releaser does not yield).
        unsafe { Builder::new().migratable(true) }.spawn(rounds)
    } else {
        go(rounds)
    };
    let (counted, ok) = main.join().unwrap();
    assert_eq!(
        counted,
        ITER,
        "only {counted} of {} rounds had the waiter on another M",
        2 * ITER
    );
    assert!(
        ok >= ITER * 2 / 3,
        "direct handoff < 2/3: {ok} of {ITER} (waiter on another M; waiter migratable: \
         {waiter_migratable}, releaser migratable: {releaser_migratable})"
    );
}

/// TestSemaHandoff (sema_test.go) with the waiter started on another M
/// than the releaser, both migratable (the `unsafe` opt-in to Go's free
/// migration), i.e. Go's own situation: the waiter is readied into the
/// releaser's P's `runnext` (Go's `goready`), the releaser yields behind it
/// (to the global queue) and the waiter runs first. Not in Go (a gort
/// addition): it pins down that the opt-in keeps Go's hand-off. In a child
/// with GOMAXPROCS=2.
#[test]
fn test_sema_handoff_other_m_migratable() {
    if in_child(
        "test_sema_handoff_other_m_migratable",
        &[("GOMAXPROCS", "2")],
    ) {
        return;
    }
    sema_handoff_other_m(true, true);
}

/// As [`test_sema_handoff_other_m_migratable`], but the releaser is bound
/// to its M (the default) and only the waiter is migratable.
///
/// Ignored, a deviation: the waiter is readied into the P's `runnext` as
/// in Go, but the bound releaser's yield puts it into its M's own queue,
/// and the scheduler (`local_work`) takes the M's queue or the P's queue by
/// the parity of its schedule count, so the releaser often runs before the
/// waiter: whether it does follows a pattern that repeats every round, so
/// a run ends far below or above Go's two thirds. In Go, `goyield` puts the
/// releaser at the tail of the very P queue whose `runnext` holds the
/// waiter. Measured on a loaded machine: 7 of 10 runs below, with 1 to 129
/// direct hand-offs of 200 (both migratable: 10 of 10 runs pass, about 98%
/// direct); in 99.9% of the rounds the waiter ran on the releaser's M (it
/// was not stolen). In a child with GOMAXPROCS=2.
#[test]
#[ignore = "deviation: a bound releaser yields into its M's queue, which the scheduler alternates with the P's runnext by schedtick parity, so a migratable waiter handed the count does not reliably run first"]
fn test_sema_handoff_migratable_waiter_bound_releaser() {
    if in_child(
        "test_sema_handoff_migratable_waiter_bound_releaser",
        &[("GOMAXPROCS", "2")],
    ) {
        return;
    }
    sema_handoff_other_m(true, false);
}

/// TestSemaHandoff (sema_test.go) with the waiter bound to another M than
/// the releaser (both bound, gort's default): Go's hand-off promise (the
/// releaser yields its P directly to the waiter, which runs first) in the
/// one case Go cannot have.
///
/// Ignored, a deviation that follows from gort's thread binding: a started
/// goroutine is readied onto its own M (into that M's inbox, waking it), so
/// the releaser's yield cannot hand it the P; the releaser runs again after
/// the other goroutines of its own M and often wins: measured, 10 of 10
/// runs below Go's two thirds, with 0 to 127 direct hand-offs of 200. The
/// count still goes to the waiter (no barging: sync.Mutex's starvation mode
/// stays fair); only "the waiter runs first" is lost. In a child with
/// GOMAXPROCS=2.
#[test]
#[ignore = "deviation: a waiter bound to another M is readied onto that M, so semrelease's hand-off yield does not run it first"]
fn test_sema_handoff_other_m() {
    if in_child("test_sema_handoff_other_m", &[("GOMAXPROCS", "2")]) {
        return;
    }
    sema_handoff_other_m(false, false);
}
