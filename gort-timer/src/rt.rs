//! The runtime side: one heap per P, the scheduler source that runs them,
//! [`RawTimer`] and [`sleep`].

use crate::heap::{callback_panicked, Callback, Entry, Fire, Heap};
use crate::loom::{AtomicBool, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use gort_os::clock::nanotime;
use gort_sched::{park, Goexit, Source, WaitReason, Waiter};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

struct Timers {
    /// One heap per P id (Go keeps them in the P); plain threads use heap 0.
    heaps: Box<[CachePadded<Heap>]>,
    /// 1 + the highest heap index ever used: pollers scan only these, and
    /// a heap keeps its timers when GOMAXPROCS shrinks.
    used: AtomicUsize,
}

fn timers() -> &'static Timers {
    static T: OnceLock<Timers> = OnceLock::new();
    T.get_or_init(|| Timers {
        heaps: (0..gort_sched::MAX_PROCS)
            .map(|_| CachePadded::new(Heap::new()))
            .collect(),
        used: AtomicUsize::new(1),
    })
}

/// Timers armed now, in every P's heap (Go has no such metric; gort's
/// `/gort/timers/pending:timers`). Locks each heap in use for a moment; does
/// not start the timer machinery.
pub fn timers_pending() -> usize {
    let t = timers();
    let used = t.used.load(std::sync::atomic::Ordering::Acquire);
    t.heaps[..used].iter().map(|h| h.len()).sum()
}

/// The heaps, with the source registered (it polls through `timers()`, so
/// it is registered only after they exist, outside their initialisation).
fn timers_registered() -> &'static Timers {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let t = timers();
    // SAFETY: TimerSource::poll runs due timers: unchecked callbacks are
    // tiny and non-blocking by their own contract, safe callbacks only spawn
    // a goroutine, and a panicking callback aborts the process (heap.rs).
    REGISTERED.call_once(|| unsafe { gort_sched::register_source(Arc::new(TimerSource)) });
    t
}

/// The scheduler's view of the timers: any M that looks for work after the
/// earliest deadline, or before it sleeps, runs every due heap — so no
/// timer waits for a busy or sleeping P (Go's stealWork running other Ps'
/// timers).
struct TimerSource;

impl Source for TimerSource {
    fn poll(&self, now: i64) -> Option<i64> {
        let t = timers();
        let n = t.used.load(Ordering::Acquire);
        let mut next = i64::MAX;
        let mut fired = Vec::new();
        for h in &t.heaps[..n] {
            let mut m = h.min();
            if m <= now {
                // Skipped while another M runs it (see `try_run`).
                m = h.try_run(now, &mut fired);
            }
            next = next.min(m);
        }
        // Outside every heap lock: free what fired for the last time.
        for e in fired {
            retire(e);
        }
        (next != i64::MAX).then_some(next)
    }

    /// Any timer armed (stopped ones may still count until their heap drops
    /// them: only ever too cautious for sysmon's deadlock check).
    fn pending(&self) -> bool {
        let t = timers();
        let n = t.used.load(Ordering::Acquire);
        t.heaps[..n].iter().any(|h| h.min() != i64::MAX)
    }
}

/// Drops a fired one-shot entry outside the heap lock. If this was its last
/// reference and its callback holds user code, the drop (which may drop the
/// user's closure, running its captures' `Drop`s) happens on a goroutine,
/// not on this M's scheduler stack, where blocking would stall the M.
fn retire(e: Arc<Entry>) {
    if !e.user {
        return; // runtime callbacks: dropping their captures never blocks
    }
    if let Some(e) = Arc::into_inner(e) {
        // A runtime helper, not the program's: a system goroutine.
        drop(
            gort_sched::Builder::new()
                .system(true)
                .spawn(move || run_user(move || drop(e))),
        );
    }
}

/// Runs user code of a timer on the current goroutine: a panic is fatal
/// (as in Go, where a panic in an `AfterFunc` function crashes the
/// program), never silently lost with a detached goroutine; `goexit` just
/// ends the goroutine.
fn run_user(f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        if !p.is::<Goexit>() {
            callback_panicked(p);
        }
    }
}

/// The state a safe timer's fires share: the user's function and, for a
/// periodic timer, whether a tick's goroutine is still running it.
struct UserCallback<F> {
    f: F,
    /// Set by the fire that starts a periodic tick's goroutine (Acquire),
    /// cleared by that goroutine when `f` returns (Release).
    busy: AtomicBool,
}

/// The heap's fire: hand `f` to a new goroutine.
impl<F: Fn() + Send + Sync + 'static> Fire for UserCallback<F> {
    fn fire(self: Arc<Self>, periodic: bool) {
        // A tick that comes while the previous tick's goroutine still
        // runs is dropped (as a Ticker drops ticks a slow receiver has
        // not taken): a slow callback never piles up goroutines.
        if periodic && self.busy.swap(true, Ordering::Acquire) {
            return;
        }
        drop(gort_sched::go(move || self.run(periodic)));
    }
}

impl<F: Fn() + Send + Sync + 'static> UserCallback<F> {
    /// One fire's goroutine.
    fn run(&self, periodic: bool) {
        /// Clears `busy` however `f` ends (a goexit unwinds through it).
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = periodic.then(|| Done(&self.busy));
        run_user(|| (self.f)());
    }
}

/// Nanotime (gort-os's monotonic clock) `d` from now, saturating.
pub fn deadline_after(d: Duration) -> i64 {
    nanotime().saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The nanotime of an `Instant`, never earlier than the instant itself (a
/// deadline converted here does not fire before `Instant::now()` reaches
/// it).
///
/// On Linux both clocks are `CLOCK_MONOTONIC` (std's `Instant` and
/// gort-os's `nanotime`), so one pair of readings taken at the first call
/// converts every instant by its distance from that pair: no clock read
/// per call (a clock read costs 25-30 ns on the VM gort is measured on, and
/// a server that sets a deadline per request made four per deadline). The
/// pair's `nanotime` is read after its `Instant`, so the conversion errs
/// late, by at most the gap between the reads (kept under a microsecond):
/// so a caller deciding whether `t` has passed compares `Instant`s, not
/// this against `nanotime` (gort-netpoll's deadlines and `sleep_until`
/// do). Elsewhere `Instant` may be another clock: each call reads both.
/// If std ever moved Linux's `Instant` to `CLOCK_BOOTTIME` (proposed,
/// rust-lang/rust#87906), conversions would run late by the time the
/// machine slept since the first call: this would have to read both clocks
/// again (as it does elsewhere).
pub fn deadline_at(t: Instant) -> i64 {
    #[cfg(all(target_os = "linux", not(gort_loom)))]
    let (base, base_ns) = *clock_pair();
    #[cfg(not(all(target_os = "linux", not(gort_loom))))]
    let (base, base_ns) = (Instant::now(), nanotime());
    if t >= base {
        base_ns.saturating_add(i64::try_from((t - base).as_nanos()).unwrap_or(i64::MAX))
    } else {
        base_ns.saturating_sub(i64::try_from((base - t).as_nanos()).unwrap_or(i64::MAX))
    }
}

/// An `Instant` and a `nanotime` read together (see [`deadline_at`]): the
/// nanotime no earlier than the instant's, and at most a microsecond
/// later unless the thread was descheduled between the reads every time.
#[cfg(all(target_os = "linux", not(gort_loom)))]
fn clock_pair() -> &'static (Instant, i64) {
    static PAIR: OnceLock<(Instant, i64)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let mut best: Option<(i64, (Instant, i64))> = None;
        for _ in 0..16 {
            let before = nanotime();
            let at = Instant::now();
            let after = nanotime();
            let gap = after - before;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, (at, after)));
            }
            if gap < 1_000 {
                break;
            }
        }
        best.expect("sixteen tries").1
    })
}

/// A timer of the runtime: a callback run once at a deadline (or every
/// period).
///
/// The building block of `sleep`, and of gort-std's channel timers
/// (`Timer`, `Ticker`, `after`, `after_func`). Dropping it stops it, so a
/// timer nobody holds is freed at once; [`RawTimer::detach`] instead leaves
/// a one-shot timer to fire and be freed then.
///
/// Two kinds of callback:
/// * [`RawTimer::new`] (safe): each fire runs the function on a goroutine
///   of its own, as Go's `time.AfterFunc` does. It may block, sleep, use
///   timers; a panic in it ends the process (`fatal error: panic in a timer
///   callback: ...`). A stop prevents fires that have not happened yet; it
///   does not wait for a goroutine a fire has already started.
/// * [`RawTimer::new_unchecked`] (`unsafe`): the callback runs on the M
///   that finds the timer due, under its heap's lock, which makes
///   [`RawTimer::stop`] exact (when it returns, the callback is neither
///   running nor going to run). It must be tiny and must not block: ready a
///   waiter, try a channel send, spawn a goroutine.
pub struct RawTimer {
    e: Option<Arc<Entry>>,
}

impl std::fmt::Debug for RawTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTimer").finish_non_exhaustive()
    }
}

impl RawTimer {
    /// An unarmed timer that runs `f` on a new goroutine at each fire (Go's
    /// `time.AfterFunc`), never under a runtime lock; on the calling
    /// goroutine's P's heap (heap 0 from a plain thread).
    ///
    /// `f` may do anything a goroutine may: block, sleep, create, stop and
    /// reset timers (this one included). Fires of a one-shot timer that is
    /// re-armed may run concurrently, as in Go; a tick of a periodic timer
    /// that comes while the previous tick's goroutine still runs is
    /// dropped. A panic in `f` ends the process with `fatal error: panic in
    /// a timer callback: <message>` (Go: a panic in a timer function is
    /// fatal); [`gort_sched::goexit`] in `f` just ends that goroutine.
    ///
    /// [`RawTimer::stop`] and [`RawTimer::reset`] keep Go's results (true
    /// if they prevented a pending fire), but do not wait for a goroutine
    /// that a fire already started: `f` may still be running, or about to
    /// start, when they return false.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> RawTimer {
        let cb = Arc::new(UserCallback {
            f,
            busy: AtomicBool::new(false),
        });
        Self::with_callback(Callback::User(cb))
    }

    /// An unarmed timer whose callback `f` runs on whichever M finds it
    /// due, under its heap's lock: what makes [`RawTimer::stop`] exact.
    ///
    /// A panic in `f` still ends the process with `fatal error: panic in a
    /// timer callback: <message>` (it would otherwise leave the heap
    /// locked and every later timer hung), but that is a last resort: see
    /// the contract.
    ///
    /// # Safety
    /// `f` runs with a timer heap locked, on an M's scheduler stack. It must
    /// return promptly without blocking or parking (no locks that may be
    /// held long, no blocking channel operations, no `sleep`, no `join`,
    /// no gort-gc `Gc` allocation, which may wait for the collector),
    /// must not panic, and must not create, arm, stop, reset or drop any
    /// timer. Readying a [`Waiter`], a `try_send` on a channel, setting a
    /// flag and spawning a goroutine are fine. Breaking this deadlocks the
    /// heap (and every timer and `sleep` on it) or the M.
    pub unsafe fn new_unchecked(mut f: impl FnMut() + Send + 'static) -> RawTimer {
        Self::with_callback(Callback::Raw(Box::new(move |_periodic| f())))
    }

    fn with_callback(f: Callback) -> RawTimer {
        let t = timers_registered();
        let heap = gort_sched::proc_pin().unwrap_or(0);
        if heap >= t.used.load(Ordering::Relaxed) {
            // Release pairs with the pollers' Acquire: they see the heap.
            t.used.fetch_max(heap + 1, Ordering::Release);
        }
        RawTimer {
            e: Some(Entry::new(heap, f)),
        }
    }

    fn entry(&self) -> &Arc<Entry> {
        self.e.as_ref().expect("RawTimer entry")
    }

    /// Arms the timer for `when` (nanotime), repeating every `period` if it
    /// is non-zero; returns whether it was armed (Go's Reset result).
    pub fn reset_at(&self, when: i64, period: Duration) -> bool {
        let e = self.entry();
        let period = i64::try_from(period.as_nanos()).unwrap_or(i64::MAX);
        let (was, first) = timers().heaps[e.heap].reset(e, when, period);
        if first {
            gort_sched::note_deadline(when);
        }
        was
    }

    /// Arms the timer `d` from now (once).
    pub fn reset(&self, d: Duration) -> bool {
        self.reset_at(deadline_after(d), Duration::ZERO)
    }

    /// Disarms the timer; returns whether it was armed (Go's Stop result).
    /// When this returns, the callback is not running and will not run —
    /// for a timer made with [`RawTimer::new`], no *new* goroutine will
    /// run it; one that a fire started already is not waited for.
    pub fn stop(&self) -> bool {
        let e = self.entry();
        timers().heaps[e.heap].stop(e)
    }

    /// Lets an armed one-shot timer fire without a handle; it is freed when
    /// it has fired (a stopped one is freed now).
    pub fn detach(mut self) {
        if let Some(e) = self.e.take() {
            // A stopped timer must not linger as a zombie with no handle:
            // its callback's captures would drop wherever it is cleaned up.
            timers().heaps[e.heap].remove_zombie(&e);
        }
    }
}

/// Dropping a timer disarms it and frees it. A one-shot that already
/// fired is not waited for: its callback may still be returning on another
/// thread (it owns what it uses; nothing is freed under it).
impl Drop for RawTimer {
    fn drop(&mut self) {
        if let Some(e) = &self.e {
            // Out of the heap at once, not left as a zombie (heap.rs).
            timers().heaps[e.heap].remove(e);
        }
    }
}

/// Blocks the calling goroutine (or thread) for at least `d`; the M runs
/// other goroutines meanwhile. A zero duration yields.
pub fn sleep(d: Duration) {
    sleep_until_nanos(deadline_after(d));
}

/// Blocks until `t` (at once if it has passed).
pub fn sleep_until(t: Instant) {
    // Decided on `Instant`s: `deadline_at` may be up to a microsecond late.
    if t <= Instant::now() {
        gort_sched::gosched();
        return;
    }
    sleep_until_nanos(deadline_at(t));
}

fn sleep_until_nanos(when: i64) {
    if when <= nanotime() {
        gort_sched::gosched();
        return;
    }
    let t = RawTimer::with_callback(Callback::Wake(Waiter::current()));
    t.reset_at(when, Duration::ZERO);
    // A wake-up before the park is kept by the waiter.
    park(WaitReason::Sleep, || true);
}
