//! Pacing (Go's mgcpacer.go, simplified to a reference-counted heap):
//! GOGC and GOMEMLIMIT, the heap goal, and the background collector.

use crate::heap::heap;
use crate::loom::{lock, Ordering::*};
use std::fmt;

/// Go's `heapminimum` at GOGC=100: no automatic cycle below 4 MiB.
pub(crate) const HEAP_MINIMUM: i64 = 4 << 20;

/// A GOGC or GOMEMLIMIT value that could not be used (the same shape as
/// gort-sched's `ConfigError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, `GOGC` or `GOMEMLIMIT`.
    pub var: &'static str,
    /// The value as found.
    pub value: String,
    /// What was wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: {}", self.var, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Parses a GOGC value (Go's `readGOGC`): `off` (returned as -1) or a
/// whole number of percent; a negative number also means off.
///
/// Go silently falls back to 100 for a malformed value; gort reports it.
pub fn parse_gogc(v: &str) -> Result<i64, ConfigError> {
    let t = v.trim();
    if t == "off" {
        return Ok(-1);
    }
    match t.parse::<i32>() {
        Ok(n) if n < 0 => Ok(-1),
        Ok(n) => Ok(n as i64),
        Err(_) => Err(ConfigError {
            var: "GOGC",
            value: v.to_string(),
            reason: "expected a whole number of percent or \"off\"".into(),
        }),
    }
}

/// Parses a GOMEMLIMIT value (Go's `readGOMEMLIMIT`/`parseByteCount`):
/// `off`, or a byte count with an optional unit suffix `B`, `KiB`, `MiB`,
/// `GiB`, `TiB`, `PiB` or `EiB`. `off` is returned as `i64::MAX`.
pub fn parse_gomemlimit(v: &str) -> Result<i64, ConfigError> {
    let err = |reason: &str| ConfigError {
        var: "GOMEMLIMIT",
        value: v.to_string(),
        reason: reason.to_string(),
    };
    if v == "off" {
        return Ok(i64::MAX);
    }
    parse_byte_count(v).ok_or_else(|| {
        err("malformed GOMEMLIMIT; expected bytes with an optional unit (B, KiB, MiB, GiB, TiB) or \"off\"")
    })
}

/// Go's `parseByteCount`.
fn parse_byte_count(s: &str) -> Option<i64> {
    let digits = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse::<i64>().ok().map(|n| n as u64)
    };
    let b = s.as_bytes();
    let last = *b.last()?;
    if last.is_ascii_digit() {
        return digits(s).map(|n| n as i64);
    }
    if last != b'B' || b.len() < 2 {
        return None;
    }
    let c = b[b.len() - 2];
    if c.is_ascii_digit() {
        return digits(&s[..s.len() - 1]).map(|n| n as i64);
    }
    if c != b'i' || b.len() < 4 {
        return None;
    }
    let power = match b[b.len() - 3] {
        b'K' => 1,
        b'M' => 2,
        b'G' => 3,
        b'T' => 4,
        b'P' => 5,
        b'E' => 6,
        _ => return None,
    };
    let m = 1024u64.pow(power);
    let n = digits(&s[..s.len() - 3])?;
    let un = n.checked_mul(m)?;
    if un > i64::MAX as u64 {
        return None;
    }
    Some(un as i64)
}

/// Reads GOGC and GOMEMLIMIT from the environment: the values to use, or
/// the first invalid one.
pub fn config_from_env() -> Result<(i64, i64), ConfigError> {
    let gogc = match std::env::var("GOGC") {
        Ok(v) if !v.is_empty() => parse_gogc(&v)?,
        _ => 100,
    };
    let limit = match std::env::var("GOMEMLIMIT") {
        Ok(v) if !v.is_empty() => parse_gomemlimit(&v)?,
        _ => i64::MAX,
    };
    Ok((gogc, limit))
}

/// Applies the environment on the first allocation.
///
/// # Panics
/// On an invalid GOGC or GOMEMLIMIT, with the value and the reason (Go
/// throws "malformed GOMEMLIMIT" at start-up).
#[inline]
pub(crate) fn load_env_once() {
    if !heap().env_loaded.load(Acquire) {
        load_env_slow();
    }
}

#[cold]
fn load_env_slow() {
    let hp = heap();
    if hp.env_loaded.swap(true, AcqRel) {
        return;
    }
    #[cfg(not(gort_loom))]
    match config_from_env() {
        Ok((gogc, limit)) => {
            hp.gc_percent.store(gogc, Relaxed);
            hp.mem_limit.store(limit, Relaxed);
            update_goal(hp.live.load(Relaxed).max(0));
        }
        Err(e) => panic!("gort-gc: {e}"),
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
