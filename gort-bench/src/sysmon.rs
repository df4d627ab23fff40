//! gort's side of the sysmon workloads (issue 15), called from the `gort`
//! bench binary's dispatch. Go's twin is `go/sysmon.go`; both do the same
//! work with the same parameters and the same timed region.
//!
//! * `syscall_handoff [ms]` (run at `GOMAXPROCS=2`): [`BLOCKERS`]
//!   goroutines each loop on a 1 ms blocking call (`nanosleep`, one call,
//!   through [`gort::syscall`]; Go: `syscall.Nanosleep`, which enters and
//!   leaves a system call as the runtime sees it) while two goroutines
//!   ping-pong a value over two unbuffered channels for a window of `ms`
//!   milliseconds (default [`WINDOW_MS`]). Reports the window's length over
//!   the round trips done in it (`ns/rt`): the ping-pong's mean latency
//!   while the blockers' Ps are handed off (or not).
//! * `syscall_handoff_raw [ms]`: the same with the blocking call made raw,
//!   not wrapped in `syscall`, so the runtime thinks the goroutine runs
//!   and its P stays with it for the whole call (what the hand-off buys).
//!   Go's twin uses `syscall.RawSyscall(SYS_NANOSLEEP)`, Go's own "call
//!   the runtime is not told about".
//! * `preempt_point [n]`: `n` (default 100,000,000) calls of
//!   [`gort::preempt_point`] in a tight loop on one goroutine (`ns/call`):
//!   the check must be cheap enough for hot loops. gort only (Go's loops
//!   need no check); stderr shows the same loop without the call.
//!
//! The shape of the handoff workloads, the same in both languages:
//! 1. the coordinator (gort: the plain main thread; Go: the main goroutine)
//!    arms the watchdog, starts the blockers and waits until each has
//!    entered its loop;
//! 2. it then starts the pinger, which starts the ponger: both are fresh
//!    goroutines, spawned after the blockers, so in gort the blockers are
//!    all bound to Ms already (with `syscall` a blocker never switches away
//!    on its M, so the pair lands on other Ms; in gort the goroutines bound
//!    to an M wait for its blocking calls, see `gort::syscall`);
//! 3. the pinger does one round trip, then times its window: round trips
//!    in batches of [`BATCH`], the clock read after each batch, until the
//!    window has passed; the blockers' finished calls are counted over the
//!    same window;
//! 4. the coordinator stops the blockers and joins everything.
//!
//! Every blocker passes a preemption point after each call: gort's call
//! [`gort::preempt_point`] (a loop that may run long without parking must:
//! gort cannot preempt), Go's call a function whose prologue honours a
//! pending preemption request (`sysPreemptPoint`; Go's raw loop needs it:
//! `RawSyscall` is nosplit assembly and its thread sits in the kernel, so
//! async preemption finds no safe point and 4 raw blockers would hold both
//! Ps for good). Either yields only when sysmon asked, after 10 ms on the
//! P; with `syscall` the request hardly ever comes (the P is handed off
//! instead). Go's preemption signal may cut a raw nanosleep short.
//!
//! A watchdog stops the blockers [`WATCHDOG_WINDOWS`] windows after the
//! start, so a ping-pong that cannot run at all ends (with an enormous
//! figure) instead of hanging; stderr says so. stderr also gives the round
//! trips, the worst and the slow batches, the blockers' call rate, and in
//! gort whether the ping-pong pair shares a thread.
//!
//! What shows (2-core VM, 2026-11-28): with `syscall` gort's ping-pong
//! runs as fast as without blockers (chan_pingpong) and every blocker
//! keeps its call rate. Raw, gort's pair shares an M with blockers and
//! runs in bursts of 32 round trips (the M's runnext streak of 64
//! switches) between blockers' 10 ms slices: over 1000x Go, whose pair gets a
//! time slice of its own. About one gort run in 40 of `syscall_handoff` an
//! idle M steals the fresh ponger before the pinger parks, the pair is
//! split across two Ms for good and a round trip costs ~30 µs (stderr
//! says "two threads"); the median of three hides it.
//!
//! Peers: tokio's twin of `syscall_handoff` makes the call with
//! `block_in_place` (it hands the worker's core to another thread at once,
//! on every call); std's with plain threads (the OS schedules; no P to hand
//! off). Neither has a raw twin: tokio cannot preempt a task at all (4
//! tasks looping on raw calls would hold both workers for good; `yield_now`
//! yields every time, unlike a preemption point), and a thread's blocking
//! call is the same either way. may has neither a hand-off nor preemption.

use crate::report;
use gort::sync::WaitGroup;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Goroutines looping on a blocking call.
pub const BLOCKERS: usize = 4;
/// Length of each blocking call.
pub const CALL: Duration = Duration::from_millis(1);
/// Default ping-pong window, in milliseconds.
pub const WINDOW_MS: u64 = 1000;
/// Round trips between two reads of the clock.
pub const BATCH: u64 = 16;
/// A batch this long had a stall in it (a batch takes a few µs).
pub const SLOW_BATCH: Duration = Duration::from_micros(100);
/// The watchdog stops the blockers after this many windows.
pub const WATCHDOG_WINDOWS: u32 = 5;
/// Default `preempt_point` calls.
pub const PREEMPT_CALLS: u64 = 100_000_000;

/// One blocking call of [`CALL`]: a single `nanosleep`, as Go's
/// `syscall.Nanosleep` makes (no retry on EINTR; gort sends no signals).
pub fn blocking_call() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: CALL.as_nanos() as libc::c_long,
    };
    // SAFETY: a valid timespec; the remainder pointer may be null.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// The window default or given on the command line (ms).
pub fn window(n: Option<u64>) -> Duration {
    Duration::from_millis(n.unwrap_or(WINDOW_MS))
}

/// What the pinger measured.
pub struct Window {
    /// Round trips in the window.
    pub rts: u64,
    /// The window's actual length (up to the end of the last batch).
    pub elapsed: Duration,
    /// The longest time between two clock reads (one batch of round trips).
    pub worst_batch: Duration,
    /// Batches that took longer than [`SLOW_BATCH`].
    pub slow_batches: u64,
    /// Blocking calls the blockers finished during the window.
    pub calls: u64,
    /// Whether the pinger and the ponger ran on one OS thread (in gort a
    /// started goroutine keeps its thread: an idle M that steals the fresh
    /// ponger before the pinger parks splits the pair for good). `None`
    /// where it means nothing.
    pub one_thread: Option<bool>,
}

/// The pinger's clock: started after the warm-up round trip, told after
/// each batch of [`BATCH`] round trips.
pub struct WindowTimer<'a> {
    calls: &'a AtomicU64,
    calls0: u64,
    t0: Instant,
    deadline: Instant,
    last: Instant,
    rts: u64,
    worst_batch: Duration,
    slow_batches: u64,
}

impl<'a> WindowTimer<'a> {
    /// Starts the window; `calls` counts the blockers' calls.
    pub fn start(window: Duration, calls: &'a AtomicU64) -> Self {
        let calls0 = calls.load(Relaxed);
        let t0 = Instant::now();
        WindowTimer {
            calls,
            calls0,
            t0,
            deadline: t0 + window,
            last: t0,
            rts: 0,
            worst_batch: Duration::ZERO,
            slow_batches: 0,
        }
    }

    /// One more batch done; true when the window is over.
    pub fn batch_done(&mut self) -> bool {
        self.rts += BATCH;
        let now = Instant::now();
        let d = now - self.last;
        self.worst_batch = self.worst_batch.max(d);
        self.slow_batches += u64::from(d > SLOW_BATCH);
        self.last = now;
        now >= self.deadline
    }

    /// Ends the window (after the batch that saw it pass).
    pub fn finish(self) -> Window {
        let elapsed = self.t0.elapsed();
        Window {
            rts: self.rts,
            elapsed,
            worst_batch: self.worst_batch,
            slow_batches: self.slow_batches,
            calls: self.calls.load(Relaxed) - self.calls0,
            one_thread: None,
        }
    }
}

/// Prints the details on stderr and the result line (`ns/rt`).
pub fn report_window(name: &str, w: &Window, watchdog_fired: bool) {
    if watchdog_fired {
        eprintln!(
            "{name}: the watchdog stopped the blockers: the ping-pong could not finish its window"
        );
    }
    let threads = match w.one_thread {
        Some(true) => "; ping and pong on one thread",
        Some(false) => "; ping and pong on two threads",
        None => "",
    };
    eprintln!(
        "{name}: {} round trips in {:?}; batches of {BATCH}: worst {:?}, {} over {:?}; {} blocking calls meanwhile ({:.0}/s per blocker){threads}",
        w.rts,
        w.elapsed,
        w.worst_batch,
        w.slow_batches,
        SLOW_BATCH,
        w.calls,
        w.calls as f64 / w.elapsed.as_secs_f64() / BLOCKERS as f64,
    );
    report(w.elapsed.as_nanos() as f64 / w.rts.max(1) as f64, "ns/rt");
}

/// Sets `stop` [`WATCHDOG_WINDOWS`] windows from now from a plain thread;
/// the flag it returns says whether it did.
pub fn watchdog(window: Duration, stop: &Arc<AtomicBool>) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let (stop, f) = (stop.clone(), fired.clone());
    std::thread::spawn(move || {
        std::thread::sleep(window * WATCHDOG_WINDOWS);
        if !stop.swap(true, SeqCst) {
            f.store(true, SeqCst);
        }
    });
    fired
}

/// The ping-pong: runs on a fresh goroutine, spawns the ponger, times
/// round trips for `window`; counts the blockers' `calls` meanwhile.
fn ping_pong(window: Duration, calls: &AtomicU64) -> Window {
    let (atx, arx) = gort::chan::<u64>(0);
    let (btx, brx) = gort::chan::<u64>(0);
    let pong_tid = Arc::new(AtomicI32::new(0));
    let pt = pong_tid.clone();
    let pong = gort::go(move || {
        // SAFETY: gettid has no preconditions.
        pt.store(unsafe { libc::gettid() }, Relaxed);
        for v in arx {
            btx.send(v).unwrap();
        }
    });
    // One round trip first: the ponger is running.
    atx.send(0).unwrap();
    brx.recv().unwrap();
    let mut t = WindowTimer::start(window, calls);
    loop {
        for i in 0..BATCH {
            atx.send(i).unwrap();
            brx.recv().unwrap();
        }
        if t.batch_done() {
            break;
        }
    }
    let mut w = t.finish();
    // SAFETY: gettid has no preconditions.
    w.one_thread = Some(pong_tid.load(Relaxed) == unsafe { libc::gettid() });
    drop(atx);
    pong.join().unwrap();
    w
}

fn syscall_handoff(raw: bool, window: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let fired = watchdog(window, &stop);
    let started = Arc::new(WaitGroup::new());
    started.add(BLOCKERS as i32);
    let blockers: Vec<_> = (0..BLOCKERS)
        .map(|_| {
            let (stop, calls, started) = (stop.clone(), calls.clone(), started.clone());
            gort::go(move || {
                started.done();
                while !stop.load(Relaxed) {
                    if raw {
                        blocking_call();
                    } else {
                        gort::syscall(blocking_call);
                    }
                    calls.fetch_add(1, Relaxed);
                    // A loop that may run long without parking (the raw
                    // variant's) must offer to yield: gort cannot preempt.
                    gort::preempt_point();
                }
            })
        })
        .collect();
    // This is a plain thread: waiting parks the thread, never an M.
    started.wait();
    let w = gort::go(move || ping_pong(window, &calls)).join().unwrap();
    stop.store(true, SeqCst);
    for b in blockers {
        b.join().unwrap();
    }
    let name = if raw {
        "syscall_handoff_raw"
    } else {
        "syscall_handoff"
    };
    report_window(name, &w, fired.load(SeqCst));
}

fn preempt_point_cost(n: u64) {
    let (with, without) = gort::run(move || {
        let t0 = Instant::now();
        for i in 0..n {
            gort::preempt_point();
            std::hint::black_box(i);
        }
        let with = t0.elapsed();
        let t0 = Instant::now();
        for i in 0..n {
            std::hint::black_box(i);
        }
        (with, t0.elapsed())
    });
    eprintln!(
        "preempt_point: {:.2} ns/iteration with the call, {:.2} without",
        crate::per(with, n),
        crate::per(without, n)
    );
    report(crate::per(with, n), "ns/call");
}

/// Runs a sysmon workload; false if `w` is not one of them.
pub fn run(w: &str, n: Option<u64>) -> bool {
    match w {
        "syscall_handoff" | "syscall_handoff_raw" => {
            syscall_handoff(w == "syscall_handoff_raw", window(n))
        }
        "preempt_point" => preempt_point_cost(n.unwrap_or(PREEMPT_CALLS)),
        _ => return false,
    }
    true
}
