//! The runtime side: one heap per P, the scheduler source that runs them,
//! [`RawTimer`] and [`sleep`].

use crate::heap::{Entry, Heap};
use crate::loom::{AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use gort_os::clock::nanotime;
use gort_sched::{park, Source, WaitReason, Waiter};
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

/// The heaps, with the source registered (it polls through `timers()`, so
/// it is registered only after they exist, outside their initialisation).
fn timers_registered() -> &'static Timers {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let t = timers();
    REGISTERED.call_once(|| gort_sched::register_source(Arc::new(TimerSource)));
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
        for h in &t.heaps[..n] {
            let mut m = h.min();
            if m <= now {
                m = h.run(now);
            }
            next = next.min(m);
        }
        (next != i64::MAX).then_some(next)
    }
}

/// Nanotime (gort-os's monotonic clock) `d` from now, saturating.
pub fn deadline_after(d: Duration) -> i64 {
    nanotime().saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The nanotime of an `Instant` (both are the monotonic clock).
pub fn deadline_at(t: Instant) -> i64 {
    let now = Instant::now();
    let base = nanotime();
    if t >= now {
        base.saturating_add(i64::try_from((t - now).as_nanos()).unwrap_or(i64::MAX))
    } else {
        base.saturating_sub(i64::try_from((now - t).as_nanos()).unwrap_or(i64::MAX))
    }
}

/// A timer of the runtime: a callback run once at a deadline (or every
/// period), by whichever M finds it due, under its heap's lock.
///
/// The building block of `sleep`, and of gort-std's channel timers
/// (`Timer`, `Ticker`, `after`, `after_func`). Dropping it stops it, so a
/// timer nobody holds is freed at once; [`RawTimer::detach`] instead leaves
/// a one-shot timer to fire and be freed then.
///
/// The callback must be short and must not block or touch timers: it runs
/// with the heap locked (which is what makes [`RawTimer::stop`] exact).
/// Ready a waiter, try a channel send, or spawn a goroutine.
pub struct RawTimer {
    e: Option<Arc<Entry>>,
}

impl std::fmt::Debug for RawTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTimer").finish_non_exhaustive()
    }
}

impl RawTimer {
    /// An unarmed timer with callback `f`, on the calling goroutine's P's
    /// heap (heap 0 from a plain thread).
    pub fn new(f: impl FnMut() + Send + 'static) -> RawTimer {
        let t = timers_registered();
        let heap = gort_sched::proc_pin().unwrap_or(0);
        if heap >= t.used.load(Ordering::Relaxed) {
            // Release pairs with the pollers' Acquire: they see the heap.
            t.used.fetch_max(heap + 1, Ordering::Release);
        }
        RawTimer {
            e: Some(Entry::new(heap, Box::new(f))),
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
    /// When this returns, the callback is not running and will not run.
    pub fn stop(&self) -> bool {
        let e = self.entry();
        timers().heaps[e.heap].stop(e)
    }

    /// Lets an armed one-shot timer fire without a handle; it is freed when
    /// it has fired.
    pub fn detach(mut self) {
        drop(self.e.take());
    }
}

impl Drop for RawTimer {
    fn drop(&mut self) {
        if self.e.is_some() {
            self.stop();
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
    sleep_until_nanos(deadline_at(t));
}

fn sleep_until_nanos(when: i64) {
    if when <= nanotime() {
        gort_sched::gosched();
        return;
    }
    let mut w = Some(Waiter::current());
    let t = RawTimer::new(move || {
        if let Some(w) = w.take() {
            w.ready();
        }
    });
    t.reset_at(when, Duration::ZERO);
    // A wake-up before the park is kept by the waiter.
    park(WaitReason::Sleep, || true);
}
