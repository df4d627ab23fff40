//! Ports of Go's scheduler tests (go/src/runtime/proc_test.go, and two from
//! stack_test.go); each case names the Go test it follows and says what
//! differs and why. Goroutines are gort goroutines; Go's channels, which do
//! not exist at this layer, become joins, atomics and the park/ready
//! semaphore of `common`.
//!
//! Tests that set GOMAXPROCS, register a source, or keep every P spinning
//! (no asynchronous preemption: a spinner without preemption points holds
//! its P until it is done, so two such tests in one process could hold each
//! other's Ps forever) run in a child process of their own. Every wait has a deadline or a watchdog: a broken scheduler
//! fails the test by name instead of hanging it.
//!
//! Not ported, and why:
//! * TestYieldLockedProgress, TestYieldLocked, TestBlockLocked,
//!   TestLockOSThread*: `LockOSThread` is not implemented yet.
//! * TestPreemptionGC, TestPreemptSplitBig, TestAsyncPreempt: they test
//!   asynchronous preemption (at any instruction, or at stack growth),
//!   which gort does not have: a started goroutine never changes thread,
//!   so a goroutine yields only at preemption points (TestPreemption is
//!   ported with `preempt_point` for Go's function-call preemption).
//! * TestTimerFairness2: a `select` over a send and a receive on one
//!   channel, and system calls between them; this layer has no channels
//!   (gort-std's port of Go's chan tests covers select fairness).
//! * TestStopTheWorldDeadlock, TestGCFairness*, TestTraceSTW, TestMexitSTW:
//!   no collector or stop-the-world in the scheduler.
//! * TestSchedLocalQueue*, TestStealOrder, TestGetgThreadSwitch,
//!   TestNetpollBreak: they drive Go's internals through export_test.go
//!   hooks (gort's run queue has its own loom model, src/tests/loom_runq.rs).

mod common;
use common::{is_child, run_child_including_ignored, watchdog, Sema};
use gort_os::clock::nanotime;
use gort_sched::*;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any single wait of these tests may take before it fails. Go's
/// tests have no such bound (its test binary's 10-minute timeout is theirs).
const LIMIT: Duration = Duration::from_secs(30);

/// How long a whole test may take before its watchdog aborts the process
/// (a deadlock where no deadline check of the test can run).
const WATCHDOG: Duration = Duration::from_secs(120);

/// In the parent: runs `test` in a child process with `env` (ignored or
/// not: the parent ran, so it was asked for) and asserts it passed;
/// returns true. In the child: returns false (run the test body).
fn in_child(test: &str, env: &[(&str, &str)]) -> bool {
    if is_child() {
        return false;
    }
    let (ok, err) = run_child_including_ignored(test, env);
    assert!(ok, "child {test} {env:?} failed:\n{err}");
    true
}

/// Go's `for atomic.LoadUint32(&x) != want {}`, with a bound: after
/// [`LIMIT`] it sets `abort` (so the other spinners stop too, and every
/// goroutine can be joined) and panics saying who waited for what. Returns
/// false if another spinner gave up first.
fn spin_until(x: &AtomicU32, want: u32, abort: &AtomicBool, who: impl Fn() -> String) -> bool {
    let start = Instant::now();
    let mut n = 0u32;
    while x.load(Ordering::SeqCst) != want {
        n = n.wrapping_add(1);
        if n % 1024 == 0 {
            if abort.load(Ordering::SeqCst) {
                return false;
            }
            if start.elapsed() > LIMIT {
                abort.store(true, Ordering::SeqCst);
                panic!(
                    "{}: waited {LIMIT:?} for x == {want} (x is {}): the goroutines \
                     were not all running at the same time",
                    who(),
                    x.load(Ordering::SeqCst)
                );
            }
        }
        std::hint::spin_loop();
    }
    true
}

/// Polls `cond` from a goroutine, yielding between looks so that what it
/// waits for runs even on this goroutine's M; fails after [`LIMIT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting until {what}");
        gosched();
    }
}

/// proc_test.go TestGoroutineParallelism: with GOMAXPROCS = P, P goroutines
/// that busy-wait for each other in turn (x counts 0, 1, ..., 3P-1; each
/// waits for its own values) all run at the same time, ten times over.
///
/// Differs: the goroutines are joined instead of sending on a `done`
/// channel; a spinner gives up after 30 s with a message (Go would spin
/// until its test binary times out); there is no GC to disable; Go's
/// `-short` values (P = 3, N = 3) are not used. Go skips on a uniprocessor
/// because it "takes too long"; gort's Ms are OS threads the kernel time-
/// slices, so it runs (slowly) there too. In a child with GOMAXPROCS=4:
/// GOMAXPROCS is process-wide, and spinners hold their Ps.
#[test]
fn test_goroutine_parallelism() {
    if in_child("test_goroutine_parallelism", &[("GOMAXPROCS", "4")]) {
        return;
    }
    const P: u32 = 4;
    const N: usize = 10;
    assert_eq!(gomaxprocs(0), P as usize);
    let _w = watchdog("test_goroutine_parallelism", WATCHDOG);
    run(|| {
        for attempt in 0..N {
            let x = Arc::new(AtomicU32::new(0));
            let abort = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..P)
                .map(|p| {
                    let (x, abort) = (x.clone(), abort.clone());
                    // Test that all P goroutines are scheduled at the same time.
                    go(move || {
                        for i in 0..3 {
                            let expected = P * i + p;
                            let who = || format!("try {attempt}, goroutine {p}");
                            if !spin_until(&x, expected, &abort, who) {
                                return;
                            }
                            x.store(expected + 1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

/// A stand-in for Go's netpoller in TestGoroutineParallelism2: a source
/// that blocks an idle M (as `epoll_wait` does) until its deadline or a
/// [`Source::wake`]. It readies nothing; it only changes where idle Ms
/// sleep, and so how they must be woken for new work.
#[derive(Default)]
struct BlockingSource {
    parker: gort_os::futex::Parker,
    /// How many times an M blocked in it.
    blocked: AtomicUsize,
}

impl Source for BlockingSource {
    fn poll(&self, _now: i64) -> Option<i64> {
        None
    }

    fn blocks(&self) -> bool {
        true
    }

    fn block(&self, until: Option<i64>) {
        self.blocked.fetch_add(1, Ordering::SeqCst);
        match until {
            Some(t) => {
                let d = t - nanotime();
                if d > 0 {
                    self.parker.park_timeout(Duration::from_nanos(d as u64));
                }
            }
            None => self.parker.park(),
        }
    }

    fn wake(&self) {
        self.parker.unpark();
    }
}

/// One run of Go's testGoroutineParallelism2(load, netpoll) body (the
/// netpoll part is set up by the caller).
fn goroutine_parallelism2(load: bool) {
    const P: u32 = 4;
    const N: usize = 10;
    for attempt in 0..N {
        let mut load_hs = Vec::new();
        if load {
            // Create P goroutines and wait until they all run. When we run
            // the actual test below, worker threads running the goroutines
            // will start parking.
            let x = Arc::new(AtomicU32::new(0));
            let abort = Arc::new(AtomicBool::new(false));
            let done = Arc::new(Sema::new());
            for p in 0..P {
                let (x, abort, done) = (x.clone(), abort.clone(), done.clone());
                load_hs.push(go(move || {
                    if x.fetch_add(1, Ordering::SeqCst) + 1 == P {
                        done.release();
                        return;
                    }
                    let who = || format!("load={load} try {attempt}, load goroutine {p}");
                    spin_until(&x, P, &abort, who);
                }));
            }
            done.acquire();
        }
        let x = Arc::new(AtomicU32::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        // Spawn P goroutines in a nested fashion just to differ from
        // TestGoroutineParallelism.
        let outer: Vec<_> = (0..P / 2)
            .map(|p| {
                let (x, abort) = (x.clone(), abort.clone());
                go(move || {
                    (0..2)
                        .map(|p2| {
                            let (x, abort) = (x.clone(), abort.clone());
                            go(move || {
                                for i in 0..3 {
                                    let expected = P * i + p * 2 + p2;
                                    let who =
                                        || format!("load={load} try {attempt}, goroutine {p}.{p2}");
                                    if !spin_until(&x, expected, &abort, who) {
                                        return;
                                    }
                                    x.store(expected + 1, Ordering::SeqCst);
                                }
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in outer {
            for inner in h.join().unwrap() {
                inner.join().unwrap();
            }
        }
        for h in load_hs {
            h.join().unwrap();
        }
    }
}

/// proc_test.go TestGoroutineParallelism2: all runnable goroutines are
/// scheduled at the same time, also when they are spawned by goroutines
/// (nested), right after P other goroutines ran and their Ms are about to
/// sleep (`load`), and when idle Ms sleep in the network poller
/// (`netpoll`). As in Go, the three variants run in this order — (load),
/// (netpoll), (load, netpoll) — and once the poller is in use it stays so.
///
/// Differs: joins instead of a `done` channel (Go's load goroutines are
/// left to exit on their own; here they are joined after each try); spin
/// deadlines as in [`test_goroutine_parallelism`]; there is no GC to
/// disable. Go "enables the netpoller" by listening on a TCP socket; this
/// layer has no netpoller, so a [`BlockingSource`] takes its place (idle Ms
/// block in it as in `epoll_wait`, and must be interrupted for new work),
/// and the test checks that an M did block there. In a child with
/// GOMAXPROCS=4, as Go's P = 4.
#[test]
fn test_goroutine_parallelism2() {
    if in_child("test_goroutine_parallelism2", &[("GOMAXPROCS", "4")]) {
        return;
    }
    assert_eq!(gomaxprocs(0), 4);
    let _w = watchdog("test_goroutine_parallelism2", WATCHDOG);
    run(|| {
        goroutine_parallelism2(true);

        let poller = Arc::new(BlockingSource::default());
        // SAFETY: the source never panics, never runs user code and never
        // re-registers; it blocks only in `block`, on its parker, until its
        // deadline or `wake` (which only unparks).
        unsafe { register_source(poller.clone()) };
        // Make sure idle Ms now use it: this goroutine parks (its M goes
        // idle) until a plain thread sees an M blocked in the source.
        let seen = Arc::new(Sema::new());
        let (p2, s2) = (poller.clone(), seen.clone());
        let watcher = std::thread::spawn(move || {
            let start = Instant::now();
            while p2.blocked.load(Ordering::SeqCst) == 0 && start.elapsed() < LIMIT {
                std::thread::sleep(Duration::from_millis(1));
            }
            s2.release(); // in every case: this goroutine must not hang
            p2.blocked.load(Ordering::SeqCst)
        });
        seen.acquire();
        assert!(
            watcher.join().unwrap() > 0,
            "no idle M blocked in the registered blocking source within {LIMIT:?}"
        );

        goroutine_parallelism2(false);
        goroutine_parallelism2(true);
    });
}

/// proc_test.go TestYieldProgress (testYieldProgress(false)): a goroutine
/// that only polls a flag and yields (Gosched) does not keep the goroutine
/// that is to set the flag from running: the sender is woken while the
/// yielder loops, runs, and the yielder sees the flag and answers.
///
/// Differs: Go's main goroutine sleeps 10 ms (parked on a timer) while the
/// yielder loops; here it parks on a semaphore that a plain thread releases
/// once the yielder has yielded 1000 times — the same situation (woken from
/// outside while the yielder keeps its M busy), observed instead of timed.
/// Go's unbuffered `c <- true` is a flag plus the `cack` semaphore. Runs
/// with this process's GOMAXPROCS and, in a child, with GOMAXPROCS=1, where
/// the yielder and the woken goroutine must share the one P.
#[test]
fn test_yield_progress() {
    if !is_child() {
        in_child("test_yield_progress", &[("GOMAXPROCS", "1")]);
    }
    let _w = watchdog("test_yield_progress", WATCHDOG);
    run(|| {
        let c = Arc::new(AtomicBool::new(false));
        let cack = Arc::new(Sema::new());
        let yields = Arc::new(AtomicU64::new(0));
        let (c2, cack2, y2) = (c.clone(), cack.clone(), yields.clone());
        let yielder = go(move || loop {
            if c2.load(Ordering::SeqCst) {
                cack2.release();
                return;
            }
            y2.fetch_add(1, Ordering::Relaxed);
            gosched();
        });
        let wake = Arc::new(Sema::new());
        let (w2, y3) = (wake.clone(), yields.clone());
        let waker = std::thread::spawn(move || {
            let start = Instant::now();
            while y3.load(Ordering::Relaxed) < 1000 && start.elapsed() < LIMIT {
                std::thread::yield_now();
            }
            w2.release(); // in every case: main must not hang
            y3.load(Ordering::Relaxed)
        });
        wake.acquire();
        let n = waker.join().unwrap();
        assert!(n >= 1000, "the yielder yielded only {n} times in {LIMIT:?}");
        c.store(true, Ordering::SeqCst);
        cack.acquire();
        yielder.join().unwrap();
    });
}

/// proc_test.go TestNumGoroutine (and testprog's NumGoroutine): a fresh
/// program has exactly one goroutine, its main one; the runtime's own
/// goroutines are not counted; a goroutine entered from a foreign thread
/// (Go: a callback from C) is, while it runs; and NumGoroutine agrees with
/// the goroutines that exist.
///
/// Differs: Go checks the count against a stack dump of all goroutines,
/// retrying up to 10 times while goroutines about to exit finish. gort has
/// no dumps yet: the count is checked against the goroutines this test
/// knows exist, exactly while none can exit, and by polling (bounded) while
/// detached ones finish. "The runtime's own goroutines" (Go: the spare M's
/// goroutine, the signal handler's) are here a system goroutine
/// ([`Builder::system`], as gort-gc's finalizer goroutine). gort adds: 0
/// before the runtime starts. In a child: the count is process-wide.
#[test]
fn test_num_goroutine() {
    if in_child("test_num_goroutine", &[]) {
        return;
    }
    let _w = watchdog("test_num_goroutine", WATCHDOG);
    assert_eq!(num_goroutine(), 0, "before the runtime starts");
    run(|| {
        assert_eq!(num_goroutine(), 1, "a fresh program has just main");
        let sys_park = Arc::new(Sema::new());
        let s2 = sys_park.clone();
        let sys = Builder::new().system(true).spawn(move || s2.acquire());
        wait_until("the system goroutine parks", || sys_park.waiters() == 1);
        assert_eq!(num_goroutine(), 1, "a system goroutine was counted");

        // testprog: "the goroutine for a callback from C appears" — here a
        // plain thread that runs a function as a goroutine ([`run`]).
        // This goroutine waits for it by parking, not by blocking its M.
        let back = Arc::new(Sema::new());
        let b2 = back.clone();
        let callback = std::thread::spawn(move || {
            let n = run(num_goroutine);
            b2.release();
            n
        });
        back.acquire();
        assert_eq!(callback.join().unwrap(), 2, "main and the callback's");
        // Joined by `run` before it returned: no longer counted.
        assert_eq!(num_goroutine(), 1, "back to the initial goroutines");

        let park = Arc::new(Sema::new());
        for _ in 0..10 {
            let p = park.clone();
            drop(go(move || p.acquire())); // detached
        }
        // None can exit before it is released: the count is exact.
        assert_eq!(num_goroutine(), 11);
        wait_until("the ten goroutines park", || park.waiters() == 10);
        assert_eq!(num_goroutine(), 11);
        for _ in 0..10 {
            park.release();
        }
        // Go's retry: give goroutines about to exit a chance to exit.
        wait_until("the ten released goroutines exit", || num_goroutine() == 1);

        sys_park.release();
        sys.join().unwrap();
        assert_eq!(num_goroutine(), 1);
    });
    assert_eq!(num_goroutine(), 0, "after main returned");
}

/// What a TestPingPongHog run saw.
struct PingPong {
    hog_count: u64,
    light_count: u64,
    hog_turns: u64,
    light_turns: u64,
    /// The stop condition was not met within [`LIMIT`].
    timed_out: bool,
}

/// Go's TestPingPongHog body, on one P: two "hog" goroutines take turns,
/// counting to 1e6 on each turn; two "light" ones do the same counting to
/// 1e3. Each hands the turn to its partner (Go: a send on the pair's
/// unbuffered channel) and waits for it back. A plain thread (outside the
/// scheduler under test) stops the pairs when `stop_when(hog_turns, light_turns, elapsed)` holds, or after
/// [`LIMIT`].
fn ping_pong_hog(stop_when: fn(u64, u64, Duration) -> bool) -> PingPong {
    run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let mut hs = Vec::new();
        let mut pair = |limit: u64| {
            // Go's unbuffered channel passes the turn from one goroutine of
            // the pair to the other: here each waits on its own semaphore
            // and, after its turn, releases its partner's.
            let sems = [Arc::new(Sema::new()), Arc::new(Sema::new())];
            let count = Arc::new(AtomicU64::new(0));
            let turns = Arc::new(AtomicU64::new(0));
            for i in 0..2 {
                let (mine, theirs) = (sems[i].clone(), sems[1 - i].clone());
                let (count, turns, stop) = (count.clone(), turns.clone(), stop.clone());
                hs.push(go(move || loop {
                    mine.acquire();
                    if stop.load(Ordering::SeqCst) {
                        theirs.release(); // let the partner see it too
                        return;
                    }
                    let mut c = 0u64;
                    for _ in 0..limit {
                        c = std::hint::black_box(c) + 1;
                    }
                    count.fetch_add(c, Ordering::Relaxed);
                    turns.fetch_add(1, Ordering::Relaxed);
                    theirs.release();
                }));
            }
            let [first, _] = sems;
            (first, count, turns)
        };
        // Start two co-scheduled hog goroutines, two light ones, and hand
        // each pair its first turn.
        let (hog_start, hog_count, hog_turns) = pair(1_000_000);
        let (light_start, light_count, light_turns) = pair(1_000);
        hog_start.release();
        light_start.release();

        let wake = Arc::new(Sema::new());
        let (w2, ht, lt, st) = (
            wake.clone(),
            hog_turns.clone(),
            light_turns.clone(),
            stop.clone(),
        );
        let watcher = std::thread::spawn(move || {
            let start = Instant::now();
            let timed_out = loop {
                let (h, l) = (ht.load(Ordering::Relaxed), lt.load(Ordering::Relaxed));
                if stop_when(h, l, start.elapsed()) {
                    break false;
                }
                if start.elapsed() > LIMIT {
                    break true;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            st.store(true, Ordering::SeqCst);
            w2.release();
            timed_out
        });
        wake.acquire();
        for h in hs {
            h.join().unwrap();
        }
        PingPong {
            timed_out: watcher.join().unwrap(),
            hog_count: hog_count.load(Ordering::Relaxed),
            light_count: light_count.load(Ordering::Relaxed),
            hog_turns: hog_turns.load(Ordering::Relaxed),
            light_turns: light_turns.load(Ordering::Relaxed),
        }
    })
}

/// proc_test.go TestPingPongHog, the no-starvation half: on one P, a pair
/// of goroutines that hand the P to each other (each readies its partner
/// into `runnext`, inheriting the time slice) cannot starve another such
/// pair — both keep getting turns until 512 turns in all (a pair that
/// starved the other would time out after 30 s with a message). Go's own
/// assertion, on time shares, is [`test_ping_pong_hog_time_share`]. In a
/// child with GOMAXPROCS=1, as Go.
#[test]
fn test_ping_pong_hog() {
    if in_child("test_ping_pong_hog", &[("GOMAXPROCS", "1")]) {
        return;
    }
    assert_eq!(gomaxprocs(0), 1);
    let _w = watchdog("test_ping_pong_hog", WATCHDOG);
    let r = ping_pong_hog(|h, l, _| h + l >= 512);
    assert!(
        !r.timed_out,
        "the pairs did not reach 512 turns in {LIMIT:?}: hog {} turns, light {} turns \
         (one pair starved the other)",
        r.hog_turns, r.light_turns
    );
    assert!(
        r.hog_turns > 0 && r.light_turns > 0,
        "both pairs get turns: hog {}, light {}",
        r.hog_turns,
        r.light_turns
    );
}

/// proc_test.go TestPingPongHog with Go's own assertion: after 100 ms on
/// one P, the hog pair's work (1e6 per turn) and the light pair's (1e3 per
/// turn) are within a factor of 20 — both pairs got a similar share of CPU
/// time. As in Go, a `runnext` hand-off inherits the time slice, and sysmon
/// ends a slice that has run 10 ms (the M then lets the rest of its queues
/// go first). In a child with GOMAXPROCS=1, as Go.
#[test]
fn test_ping_pong_hog_time_share() {
    if in_child("test_ping_pong_hog_time_share", &[("GOMAXPROCS", "1")]) {
        return;
    }
    assert_eq!(gomaxprocs(0), 1);
    let _w = watchdog("test_ping_pong_hog_time_share", WATCHDOG);
    let r = ping_pong_hog(|_, _, t| t >= Duration::from_millis(100));
    // Check that hogCount and lightCount are within a factor of 20, which
    // indicates that both pairs of goroutines handed off the P within a
    // time-slice to their buddy.
    const FACTOR: u64 = 20;
    assert!(
        r.hog_count / FACTOR <= r.light_count && r.light_count / FACTOR <= r.hog_count,
        "want hogCount/lightCount in [1/{FACTOR}, {FACTOR}]; got {}/{} = {:.1} \
         (turns: hog {}, light {})",
        r.hog_count,
        r.light_count,
        r.hog_count as f64 / r.light_count.max(1) as f64,
        r.hog_turns,
        r.light_turns
    );
}

/// A one-shot timer as a scheduler source (Go's `time.After`): `poll` sets
/// `fired` once its deadline has passed.
struct OneShot {
    when: AtomicI64,
    fired: AtomicBool,
}

impl Source for OneShot {
    fn poll(&self, now: i64) -> Option<i64> {
        let w = self.when.load(Ordering::SeqCst);
        if w == i64::MAX {
            return None;
        }
        if now < w {
            return Some(w);
        }
        if self
            .when
            .compare_exchange(w, i64::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.fired.store(true, Ordering::SeqCst);
        }
        None
    }
}

/// proc_test.go TestTimerFairness: a timer fires although two goroutines
/// keep the receiver busy with messages, so that no M ever runs out of work
/// and sleeps until the timer's deadline: the timer must be noticed by Ms
/// that are busy scheduling.
///
/// Differs: Go's receiver `select`s between the channel and `time.After`;
/// this layer has neither, so the messages are a rendezvous of two
/// semaphores (send = release `c`, wait for `ack`) and the timer is a
/// source registered with the scheduler whose `poll` sets a flag the
/// receiver checks before each receive. Go has no bound (it would hang);
/// here the timer must fire within 30 s. In children with GOMAXPROCS=1
/// (the one M is always busy: only its own scheduling can notice the
/// timer) and 4 (the registered source is process-wide).
#[test]
fn test_timer_fairness() {
    if !is_child() {
        in_child("test_timer_fairness", &[("GOMAXPROCS", "1")]);
        in_child("test_timer_fairness", &[("GOMAXPROCS", "4")]);
        return;
    }
    let _w = watchdog("test_timer_fairness", WATCHDOG);
    let timer = Arc::new(OneShot {
        when: AtomicI64::new(i64::MAX),
        fired: AtomicBool::new(false),
    });
    // SAFETY: `poll` only does atomic loads and stores: it never blocks,
    // panics, runs user code or re-registers.
    unsafe { register_source(timer.clone()) };
    run(move || {
        let done = Arc::new(AtomicBool::new(false));
        let (c, ack) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (done, c, ack) = (done.clone(), c.clone(), ack.clone());
                go(move || loop {
                    c.release();
                    ack.acquire();
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                })
            })
            .collect();

        let when = nanotime() + 20_000_000; // time.After(20 * time.Millisecond)
        timer.when.store(when, Ordering::SeqCst);
        note_deadline(when);
        let start = Instant::now();
        let mut received = 0u64;
        while !timer.fired.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < LIMIT,
                "a 20 ms timer did not fire in {LIMIT:?} while goroutines kept \
                 the receiver busy ({received} messages received)"
            );
            c.acquire();
            ack.release();
            received += 1;
        }
        // close(done): each sender takes one more ack and sees it.
        done.store(true, Ordering::SeqCst);
        for _ in 0..2 {
            ack.release();
        }
        for s in senders {
            s.join().unwrap();
        }
    });
}

/// stack_test.go growStack / growStackIter: 1024 recursions of growing depth
/// (0 to 1023 frames), each frame writing through a pointer into its
/// caller's frame and checking that the callee wrote its own; at the
/// deepest frame the goroutine yields (Go calls `runtime.GC()` there, which
/// may move the stack).
fn grow_stack() {
    let n = 1 << 10;
    for i in 0..n {
        let mut x = 0;
        grow_stack_iter(&mut x, i);
        assert_eq!(x, i + 1, "stack is corrupted");
    }
    gosched();
}

#[inline(never)]
fn grow_stack_iter(p: &mut usize, n: usize) {
    if n == 0 {
        *p = n + 1;
        gosched();
        return;
    }
    *p = n + 1;
    let mut x = 0;
    grow_stack_iter(std::hint::black_box(&mut x), n - 1);
    assert_eq!(x, n, "stack is corrupted");
}

/// stack_test.go TestStackGrowth ("in a normal goroutine"): a goroutine's
/// stack holds 1024 nested frames that point into each other, intact
/// across a switch at the deepest point.
///
/// Differs: gort's stacks do not grow or move: each is reserved up front
/// (64 KiB by default; pages are committed as they are touched), so this
/// goroutine asks for 1 MiB (Go's recursion is ~1023 frames deep), and what
/// could break is a switch out and back in at depth — so besides Go's one
/// goroutine, four run at once, interleaving their deep stacks on the same
/// Ms. The locked-goroutine case (no LockOSThread yet) and the finalizer
/// case (gort-gc's, above this layer) are not ported.
#[test]
fn test_stack_growth() {
    let _w = watchdog("test_stack_growth", WATCHDOG);
    let big = || Builder::new().stack_size(1 << 20);
    big().spawn(grow_stack).join().unwrap();
    let hs: Vec<_> = (0..4).map(|_| big().spawn(grow_stack)).collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// stack_test.go useStackAndCall: uses about `n` KiB of stack, then calls
/// `f`.
#[inline(never)]
fn use_stack_and_call(n: usize, f: &dyn Fn()) {
    if n == 0 {
        f();
        return;
    }
    let b = std::hint::black_box([0u8; 1024]); // makes the frame about 1 KiB
    use_stack_and_call(n - 1 + b[99] as usize, f);
}

/// stack_test.go TestStackCache: 200 goroutines use 1, 2, 4, 8 and 16 KiB
/// of stack on request, four times over with fresh goroutines (stacks come
/// back from the stack cache with pages touched by earlier goroutines).
///
/// Differs: each goroutine's request channel is a semaphore plus the
/// requested size (0 = closed); `done` is a semaphore; the goroutines are
/// also joined.
#[test]
fn test_stack_cache() {
    const R: usize = 4;
    const G: usize = 200;
    const S: usize = 5;
    let _w = watchdog("test_stack_cache", WATCHDOG);
    run(|| {
        for _ in 0..R {
            let done = Arc::new(Sema::new());
            let reqs: Vec<Arc<(AtomicUsize, Sema)>> = (0..G)
                .map(|_| Arc::new((AtomicUsize::new(0), Sema::new())))
                .collect();
            let hs: Vec<_> = reqs
                .iter()
                .map(|r| {
                    let (r, done) = (r.clone(), done.clone());
                    // growing(c, done)
                    go(move || loop {
                        r.1.acquire();
                        let n = r.0.load(Ordering::SeqCst);
                        if n == 0 {
                            done.release();
                            return;
                        }
                        use_stack_and_call(n, &|| {});
                        done.release();
                    })
                })
                .collect();
            for s in 0..S {
                for r in &reqs {
                    r.0.store(1 << s, Ordering::SeqCst);
                    r.1.release();
                }
                for _ in 0..G {
                    done.acquire();
                }
            }
            for r in &reqs {
                r.0.store(0, Ordering::SeqCst); // close(reqchans[j])
                r.1.release();
            }
            for _ in 0..G {
                done.acquire();
            }
            for h in hs {
                h.join().unwrap();
            }
        }
    });
}

/// Work conservation, after TestGoroutineParallelism2's `load` variant
/// ("worker threads running the goroutines will start parking" while the
/// test spawns): with GOMAXPROCS=2, a goroutine spawned while the other P
/// is idle, or about to become idle, is started by another M while its
/// spawner keeps running (here: spins, never yielding). Go guarantees it
/// (proc.go, "Worker thread parking/unparking": no idle P while there is
/// runnable work; `sched.needspinning`). Each round keeps both Ms busy and
/// then lets them go idle, so that spawns race with Ms dropping their Ps;
/// 5000 rounds, each spawn given 5 s (Go starts it within microseconds).
///
/// This found a lost wake-up: the spawner's `wakep` returns when it sees
/// no idle P (`npidle == 0`), counting on the Ms that hold the Ps; but an M
/// that gave up its P *without* having been spinning did not look at the
/// run queues again, so the new goroutine sat in the spawner's P's queue
/// with the other P idle and no M spinning — forever, for a spawner that
/// waits by spinning. (Go closes the race with `sched.needspinning`.) Every
/// M that drops its P now re-checks the run queues (`release_and_sleep`).
/// Before: 4 of 5 runs stranded a goroutine within 5000 rounds.
#[test]
fn test_spawn_while_ms_park() {
    if in_child("test_spawn_while_ms_park", &[("GOMAXPROCS", "2")]) {
        return;
    }
    let _w = watchdog("test_spawn_while_ms_park", WATCHDOG);
    run(|| {
        for round in 0..5000 {
            let started = Arc::new(AtomicBool::new(false));
            let park = Arc::new(Sema::new());
            let (st, pk) = (started.clone(), park.clone());
            let g = go(move || {
                st.store(true, Ordering::SeqCst);
                pk.acquire();
            });
            let start = Instant::now();
            while !started.load(Ordering::SeqCst) {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "round {round}: a goroutine spawned with a P idle did not start in 5 s \
                     while its spawner kept running"
                );
                std::hint::spin_loop();
            }
            let done = Arc::new(AtomicBool::new(false));
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
            wait_until("the goroutine parks", || park.waiters() == 1);
            park.release();
            done.store(true, Ordering::SeqCst);
            g.join().unwrap();
            for b in busy {
                b.join().unwrap();
            }
        }
    });
}

/// proc_test.go TestPreemption: two goroutines take turns through a shared
/// word, each spinning until it is its turn. Go preempts them at the
/// function call in the loop (`preempt()`); here the loop calls
/// `preempt_point`, which yields once sysmon has seen the spinner run 10 ms.
/// In a child with GOMAXPROCS=1 (Go runs it with the default), where only
/// preemption lets the other goroutine take its turn.
#[test]
fn test_preemption() {
    if in_child("test_preemption", &[("GOMAXPROCS", "1")]) {
        return;
    }
    let _w = watchdog("test_preemption", WATCHDOG);
    const N: u32 = 5;
    let x = Arc::new(AtomicU32::new(0));
    let hs: Vec<_> = (0..2u32)
        .map(|g| {
            let x = x.clone();
            go(move || {
                let start = Instant::now();
                for _ in 0..N {
                    while x.load(Ordering::SeqCst) != g {
                        preempt_point();
                        assert!(
                            start.elapsed() < LIMIT,
                            "goroutine {g} never got its turn (no preemption)"
                        );
                    }
                    x.store(1 - g, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// proc_test.go TestPreemptionAfterSyscall: goroutines that spin with
/// blocking calls in their loop (Go: `syscall.Getpid`; here
/// `syscall(|| std::thread::sleep(1 µs))`) are still preempted: another
/// goroutine queued behind them runs. Go checks the whole test finishes
/// within 5 s per round; here the wait is bounded by [`LIMIT`]. In a child
/// with GOMAXPROCS=2, three rounds, as Go.
#[test]
fn test_preemption_after_syscall() {
    if in_child("test_preemption_after_syscall", &[("GOMAXPROCS", "2")]) {
        return;
    }
    let _w = watchdog("test_preemption_after_syscall", WATCHDOG);
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                go(move || {
                    while !stop.load(Ordering::SeqCst) {
                        syscall(|| std::thread::sleep(Duration::from_micros(1)));
                        preempt_point();
                    }
                })
            })
            .collect();
        // A goroutine queued behind the spinners must get to run.
        let ran = go(|| 1).join().unwrap();
        assert_eq!(ran, 1, "round {round}");
        stop.store(true, Ordering::SeqCst);
        for h in spinners {
            h.join().unwrap();
        }
    }
}
