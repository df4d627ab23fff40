//! Pacing (Go's mgcpacer.go, simplified to a reference-counted heap):
//! GOGC and GOMEMLIMIT, the heap goal, and the background collector.

use crate::heap::heap;
use crate::loom::{lock, Ordering::*};

/// Go's `heapminimum` at GOGC=100: no automatic cycle below 4 MiB.
pub(crate) const HEAP_MINIMUM: i64 = 4 << 20;

/// A GOGC or GOMEMLIMIT value that could not be used: gort-sched's
/// [`ConfigError`](gort_sched::ConfigError), the one type for every
/// runtime variable.
#[cfg(not(gort_loom))]
pub use gort_sched::ConfigError;

/// Parses a GOGC value (Go's `readGOGC`): `off` (returned as -1) or a
/// whole number of percent; a negative number also means off.
///
/// Go silently falls back to 100 for a malformed value; gort reports it.
/// This is gort-sched's [`Config::parse_gogc`](gort_sched::Config::parse_gogc),
/// the parser the runtime's start-up check uses.
#[cfg(not(gort_loom))]
pub fn parse_gogc(v: &str) -> Result<i64, ConfigError> {
    gort_sched::Config::parse_gogc(v)
}

/// Parses a GOMEMLIMIT value (Go's `readGOMEMLIMIT`/`parseByteCount`):
/// `off`, or a byte count with an optional unit suffix `B`, `KiB`, `MiB`,
/// `GiB`, `TiB`, `PiB` or `EiB`. `off` is returned as `i64::MAX`. A count
/// above `i64::MAX` bytes is "out of range", not "malformed".
///
/// This is gort-sched's
/// [`Config::parse_gomemlimit`](gort_sched::Config::parse_gomemlimit), the
/// parser the runtime's start-up check uses.
#[cfg(not(gort_loom))]
pub fn parse_gomemlimit(v: &str) -> Result<i64, ConfigError> {
    gort_sched::Config::parse_gomemlimit(v)
}

/// Reads GOGC and GOMEMLIMIT from the environment: the values to use, or
/// the first invalid one (gort-sched's
/// [`Config::gc_from_env`](gort_sched::Config::gc_from_env), which the
/// implicit runtime also checks at start).
#[cfg(not(gort_loom))]
pub fn config_from_env() -> Result<(i64, i64), ConfigError> {
    gort_sched::Config::gc_from_env()
}

/// Applies the environment on the first allocation.
///
/// An invalid value normally never gets here: the implicit runtime checks
/// the same variables with the same parser when it starts (the first
/// `gort::go`/`run` panics with `gort: invalid GOGC=...`). A `Gc` made
/// before the runtime starts, or under an explicitly configured runtime,
/// still meets the check here.
///
/// # Panics
/// On an invalid GOGC or GOMEMLIMIT, with the value and the reason (Go
/// throws "malformed GOMEMLIMIT" at start-up) — at every allocation, not
/// only the first: the error is never swallowed.
#[inline]
pub(crate) fn load_env_once() {
    if !heap().env_loaded.load(Acquire) {
        load_env_slow();
    }
}

#[cold]
// Under loom the settings block is compiled out, leaving the `return` last.
#[cfg_attr(gort_loom, allow(clippy::needless_return))]
fn load_env_slow() {
    let hp = heap();
    #[cfg(not(gort_loom))]
    let (gogc, limit) = match config_from_env() {
        Ok(v) => v,
        // Not marked loaded: the next allocation reports it again.
        Err(e) => panic!("gort: {e}"),
    };
    if hp.env_loaded.swap(true, AcqRel) {
        return;
    }
    #[cfg(not(gort_loom))]
    {
        hp.gc_percent.store(gogc, Relaxed);
        hp.mem_limit.store(limit, Relaxed);
        update_goal(hp.live.load(Relaxed).max(0));
    }
}

/// Sets GOGC (Go's `debug.SetGCPercent`): a cycle starts when the heap has
/// grown by `percent` over what was live after the previous one; negative
/// turns automatic collection off (the memory limit still applies).
/// Returns the previous setting.
pub fn set_gc_percent(percent: i32) -> i32 {
    load_env_once();
    let hp = heap();
    let p = if percent < 0 { -1 } else { percent as i64 };
    let old = hp.gc_percent.swap(p, Relaxed);
    update_goal(last_live());
    maybe_trigger(hp.live.load(Relaxed));
    old as i32
}

/// Sets the soft memory limit on the managed heap in bytes (Go's
/// `debug.SetMemoryLimit`): a cycle starts whenever the heap reaches it,
/// even with GOGC off. A negative value only queries. Returns the previous
/// limit (`i64::MAX` = none).
pub fn set_memory_limit(limit: i64) -> i64 {
    load_env_once();
    let hp = heap();
    if limit < 0 {
        return hp.mem_limit.load(Relaxed);
    }
    let old = hp.mem_limit.swap(limit, Relaxed);
    update_goal(last_live());
    maybe_trigger(hp.live.load(Relaxed));
    old
}

fn last_live() -> i64 {
    lock(&heap().collector).live_after_last
}

/// Recomputes the heap goal from what was live after the last cycle, and
/// the level at which allocators start waiting for the collector
/// ([`assist`]).
pub(crate) fn update_goal(live: i64) {
    let hp = heap();
    let pct = hp.gc_percent.load(Relaxed);
    let limit = hp.mem_limit.load(Relaxed);
    let goal = if pct < 0 {
        i64::MAX
    } else {
        let min = HEAP_MINIMUM * pct.max(1) / 100;
        (live + live.saturating_mul(pct) / 100).max(min)
    };
    let goal = goal.min(limit);
    hp.next_gc.store(goal, Relaxed);
    hp.assist_at.store(assist_level(goal, live), Relaxed);
}

/// Where allocators start waiting: 1/16 over the goal (so GOGC's goal and
/// the memory limit hold within 6.25% plus one flush per allocating
/// shard), but never below 1/8 over what the last cycle left live — when
/// the live heap alone exceeds the memory limit, the limit is soft (Go
/// lets the heap grow past it rather than collect without end), and
/// allocators must still get work done between cycles.
fn assist_level(goal: i64, live_after: i64) -> i64 {
    if goal == i64::MAX {
        return i64::MAX;
    }
    goal.saturating_add(goal / 16)
        .max(live_after.saturating_add(live_after / 8))
}

/// Requests a background cycle if the heap reached its goal.
#[inline]
pub(crate) fn maybe_trigger(live: i64) {
    let hp = heap();
    if live >= hp.next_gc.load(Relaxed) && !hp.triggered.swap(true, AcqRel) {
        wake_background();
    }
}

/// Back-pressure, Go's GC assists reduced to their effect: an allocator
/// that finds the heap past [`assist_level`] waits for the cycle in
/// progress (triggered at the goal, so one is running or about to) to end.
/// Go makes an allocating goroutine do mark work in proportion to what it
/// allocates; here the collector's phases are not split into work units a
/// mutator could take, so the allocator lends its time instead: without
/// this, one thread allocating garbage cycles in a loop outran the
/// background collector, and the heap grew to gigabytes under
/// `GOMEMLIMIT=100MiB` (issue 20).
///
/// Called at a flush (every 64 KiB a shard allocates), so the common
/// allocation pays nothing. Not waited: by the collecting goroutine itself
/// (a `Drop` or `Trace` impl the collector runs, which would wait for its
/// own cycle).
///
/// **The wait blocks the thread and keeps its P; it never parks the
/// goroutine.** `Gc::new` is not a park point: a caller may hold a `std`
/// lock across it (`node.kids.lock().unwrap().push(Gc::new(..))`). A
/// parked goroutine would let another goroutine of its M run and block the
/// shared thread on that lock, which nothing could undo. Waiting inside
/// gort-sched's `syscall` is no better: sysmon hands the P on, a fresh
/// goroutine started on it blocks that P's new thread on the same lock,
/// and when the wait ends no P is left for the holder (seen with 8
/// goroutines sharing one lock on a loaded machine). So a goroutine waits
/// as a raw blocking call does, holding its P: the collector needs no P,
/// so the wait always ends. The wait uses no thread-local, so allocating
/// from a thread-local's destructor is fine.
///
/// The wait is bounded. A cycle runs the `Drop` impls of what it frees; if
/// one of them needs a lock that a waiting allocator holds, neither could
/// go on. So a wait gives up after four times the last cycle's length or 4
/// ns per byte of heap, whichever is longer (at least [`ASSIST_MIN_WAIT`],
/// at most [`ASSIST_MAX_WAIT`]), and no allocator waits for that cycle
/// again; a cycle given up on does not lengthen the next bound. Such a
/// program pays one bounded delay per cycle, not a deadlock. Each cycle
/// end wakes every waiter; a waiter re-checks at its next flush.
#[inline]
pub(crate) fn assist(live: i64) {
    let hp = heap();
    if live >= hp.assist_at.load(Relaxed) {
        assist_slow();
    }
}

/// The shortest time an assist waits before giving up on a cycle.
#[cfg(not(gort_loom))]
const ASSIST_MIN_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// The longest: a heap whose cycles take longer than this is not held to
/// its goal (allocation goes on after this wait, once per cycle).
#[cfg(not(gort_loom))]
const ASSIST_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The state of [`assist`]'s waits (under `Heap::assists`, waited on with
/// `Heap::assist_cv`).
pub(crate) struct Assists {
    /// Cycle ends seen (a collection, or a background trigger that found
    /// nothing to do); a waiter waits for this to move.
    ended: u64,
    /// A wait for the cycle after `ended == n` timed out: no allocator waits
    /// for that cycle any more.
    gave_up: Option<u64>,
    /// How long the last collection nobody gave up on took (ns): bounds the
    /// next waits.
    last_cycle_ns: u64,
}

impl Assists {
    pub(crate) const fn new() -> Assists {
        Assists {
            ended: 0,
            gave_up: None,
            last_cycle_ns: 0,
        }
    }
}

#[cold]
fn assist_slow() {
    if crate::collect::collecting() {
        return;
    }
    let hp = heap();
    let a = lock(&hp.assists);
    let seen = a.ended;
    if a.gave_up == Some(seen) {
        return;
    }
    // Re-check under the lock: a cycle that ended since the flush lowered
    // the heap (the end publishes the new level before taking this lock).
    if hp.live.load(Relaxed) < hp.assist_at.load(Relaxed) {
        return;
    }
    // The trigger was pulled at the goal, below this level; make sure (the
    // goal may have been lowered since) so that a cycle comes.
    maybe_trigger(hp.live.load(Relaxed));
    #[cfg(not(gort_loom))]
    let mut a = {
        // Four times the last cycle, or 4 ns per byte of heap (a slow
        // collector's pace) when that is longer: the first cycle has no
        // history, and a heap that grew makes a longer cycle.
        let live = u64::try_from(hp.live.load(Relaxed)).unwrap_or(0);
        let timeout = std::time::Duration::from_nanos(
            a.last_cycle_ns
                .saturating_mul(4)
                .max(live.saturating_mul(4)),
        )
        .clamp(ASSIST_MIN_WAIT, ASSIST_MAX_WAIT);
        hp.assist_cv
            .wait_timeout_while(a, timeout, |a| a.ended == seen && a.gave_up != Some(seen))
            .map_or_else(|e| e.into_inner().0, |(a, _)| a)
    };
    #[cfg(gort_loom)]
    let mut a = {
        let mut a = a;
        while a.ended == seen && a.gave_up != Some(seen) {
            a = hp.assist_cv.wait(a).unwrap_or_else(|e| e.into_inner());
        }
        a
    };
    if a.ended == seen && a.gave_up != Some(seen) {
        // Timed out: the cycle is stuck (or slow); stop waiting for it,
        // and let the other waiters stop too.
        a.gave_up = Some(seen);
        drop(a);
        hp.assist_cv.notify_all();
    }
}

/// A cycle ended (or a trigger found nothing to do): wakes the allocators
/// waiting in [`assist`]. `took` is the collection's length, if one ran.
pub(crate) fn cycle_ended(took: Option<std::time::Duration>) {
    let hp = heap();
    let mut a = lock(&hp.assists);
    if let Some(t) = took {
        // A cycle some waiter gave up on may have been stuck on that
        // waiter's lock: its length says nothing about the next one.
        if a.gave_up != Some(a.ended) {
            a.last_cycle_ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        }
    }
    a.ended += 1;
    drop(a);
    hp.assist_cv.notify_all();
}

#[cfg(gort_loom)]
fn wake_background() {}

/// Wakes (starting it the first time) the background collector thread.
#[cfg(not(gort_loom))]
fn wake_background() {
    let hp = heap();
    if !hp.bg_started.swap(true, AcqRel) {
        std::thread::Builder::new()
            .name("gort-gc".into())
            .spawn(background)
            .expect("spawn the gort-gc thread");
        return;
    }
    if let Some(w) = lock(&hp.bg).take() {
        w.ready();
    }
}

/// The background collector: one cycle per trigger, off the allocating
/// threads.
#[cfg(not(gort_loom))]
fn background() {
    let hp = heap();
    loop {
        if hp.triggered.load(Acquire) {
            // Re-check: the goal may have moved (GOGC turned off, a forced
            // cycle ran) since the trigger.
            if hp.live.load(Relaxed) >= hp.next_gc.load(Relaxed) {
                // A user Drop/Trace panic must not kill automatic collection
                // (the cycle itself was wound down before it resumed).
                if let Err(p) = std::panic::catch_unwind(|| crate::collect::collect(false)) {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    eprintln!(
                        "gort-gc: a Drop or Trace impl panicked in a background collection: {msg}"
                    );
                }
            }
            // Allow the next trigger only after the goal was recomputed.
            hp.triggered.store(false, Release);
            // Waiters of a trigger that ran no cycle (the goal moved) must
            // not sit out their timeout.
            cycle_ended(None);
            maybe_trigger(hp.live.load(Relaxed));
            continue;
        }
        let g = lock(&hp.bg);
        // Re-check under the lock: a trigger after this load publishes its
        // waiter wake-up through the same lock.
        if hp.triggered.load(Acquire) {
            continue;
        }
        let mut g = g;
        *g = Some(crate::loom::Waiter::current());
        crate::loom::park(crate::loom::WaitReason::GcWait, move || {
            drop(g);
            true
        });
    }
}
