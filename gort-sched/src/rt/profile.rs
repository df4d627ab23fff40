//! The scheduler's side of profiling (`crate::prof`): a goroutine's walk of
//! its own stack by its M, goroutine labels, and the latency tracking that
//! feeds `/sched/latencies:seconds` and `/sync/mutex/wait/total:seconds`
//! (Go's `gTrackingPeriod` sampling in `casgstatus`).

use super::*;
use crate::prof::Labels;
use std::sync::atomic::Ordering::Relaxed;

/// Every how many parks, yields (per goroutine) and spawns one is tracked.
const TRACK_PERIOD: u8 = 8;

/// Has the calling goroutine's M walk its stack into `out` (see
/// `Req::Walk`): the goroutine switches out, the M walks the suspended
/// stack on its own stack and resumes it.
pub(crate) fn walk_self(out: &mut Vec<usize>, max: usize) {
    let g = current_g().expect("walk_self from a goroutine");
    // SAFETY: the running goroutine is held by this thread; the borrow ends
    // before the switch.
    let s = unsafe {
        let gi = g.inner();
        gi.req = Req::Walk(out, max);
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: on the goroutine's own stack while it runs.
    unsafe { s.suspend() };
}

/// The M's side of `Req::Walk`.
///
/// # Safety
/// `ctx` is `g`'s suspended context, held by this M, and is resumed only
/// after this returns; `out` points to a live vector in the suspended
/// goroutine's frame.
pub(super) unsafe fn walk_for(ctx: &Context, out: *mut Vec<usize>, max: usize) {
    // SAFETY: suspended and held by this M: nothing resumes, compacts or
    // drops it meanwhile; the vector lives in its (unchanging) frame.
    unsafe { ctx.backtrace(&mut *out, max) };
}

/// The calling goroutine's labels.
pub(crate) fn labels_of_current() -> Option<Labels> {
    labels_of(current_g_any()?)
}

/// `g`'s labels. Bounded: dumps of fatal reports call this while a thread
/// that will never run again may hold the lock (then: none).
pub(super) fn labels_of(g: &G) -> Option<Labels> {
    if !g.has_labels.load(Relaxed) {
        return None;
    }
    for _ in 0..1000 {
        match g.labels.try_lock() {
            Ok(l) => return l.clone(),
            Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner().clone(),
            Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

/// Replaces the calling goroutine's labels (nothing on a plain thread).
pub(crate) fn set_labels_of_current(l: Option<Labels>) {
    if let Some(g) = current_g_any() {
        set_labels(g, l);
    }
}

fn set_labels(g: &G, l: Option<Labels>) {
    let has = l.is_some();
    *g.labels.lock().unwrap_or_else(|e| e.into_inner()) = l;
    g.has_labels.store(has, Relaxed);
}

/// At spawn: the new goroutine `g` inherits the spawner's labels (a
/// recycled descriptor drops its old ones), and one spawn in eight is
/// tracked from now.
pub(super) fn at_spawn(g: &G, goid: u64) {
    let parent = current_g_any().and_then(labels_of);
    if parent.is_some() || g.has_labels.load(Relaxed) {
        set_labels(g, parent);
    }
    let stamp = if goid % u64::from(TRACK_PERIOD) == 0 {
        nanotime().max(1)
    } else {
        0
    };
    g.ready_stamp.store(stamp, Relaxed);
}

/// At a park, on the goroutine: decides whether this park is tracked.
#[inline]
pub(super) fn at_park(g: &G, gi: &mut GInner, reason: WaitReason) {
    gi.track_seq = gi.track_seq.wrapping_add(1);
    let tracked = gi.track_seq % TRACK_PERIOD == 0;
    gi.park_stamp = 0;
    if tracked {
        g.ready_stamp.store(0, Relaxed);
        if crate::prof::is_mutex_wait(reason) {
            gi.park_stamp = nanotime();
        }
    }
    g.tracked.store(tracked, Relaxed);
}

/// At a yield, on the M: one in eight is tracked.
#[inline]
pub(super) fn at_yield(g: &G, gi: &mut GInner) {
    gi.track_seq = gi.track_seq.wrapping_add(1);
    if gi.track_seq % TRACK_PERIOD == 0 {
        g.ready_stamp.store(nanotime().max(1), Relaxed);
    }
}

/// Before the M resumes `g`: records how long it was runnable, if tracked.
#[inline]
pub(super) fn at_run(m: &M, g: &G) {
    let since = g.ready_stamp.load(Relaxed);
    if since == 0 {
        return;
    }
    g.ready_stamp.store(0, Relaxed);
    record_run(m, g, since);
}

#[cold]
fn record_run(m: &M, g: &G, since: i64) {
    let now = nanotime();
    m.latencies.record_owned(now - since);
    // SAFETY: this M holds the G (it is about to resume it).
    let gi = unsafe { g.inner() };
    if gi.park_stamp != 0 {
        let waited = (since - gi.park_stamp).max(0) as u64 * u64::from(TRACK_PERIOD);
        gi.park_stamp = 0;
        let w = &m.mutex_wait_ns;
        w.store(w.load(Relaxed) + waited, Relaxed);
    }
}

/// Adds every M's latency histogram into `into`.
pub(crate) fn add_latencies(into: &mut [u64]) {
    if let Some(s) = sched_if_started() {
        for m in s.allm.lock().iter() {
            m.latencies.add_to(into);
        }
    }
}

/// Sum of every M's tracked mutex waits.
pub(crate) fn mutex_wait_total_ns() -> u64 {
    sched_if_started().map_or(0, |s| {
        s.allm
            .lock()
            .iter()
            .map(|m| m.mutex_wait_ns.load(Relaxed))
            .sum()
    })
}
