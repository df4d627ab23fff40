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

/// Recomputes the heap goal from what was live after the last cycle.
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
    hp.next_gc.store(goal.min(limit), Relaxed);
}

/// Requests a background cycle if the heap reached its goal.
#[inline]
pub(crate) fn maybe_trigger(live: i64) {
    let hp = heap();
    if live >= hp.next_gc.load(Relaxed) && !hp.triggered.swap(true, AcqRel) {
        wake_background();
    }
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
