//! `lock_os_thread` / `unlock_os_thread` (Go's `LockOSThread`): counts per
//! goroutine, and per M the number of its goroutines holding a lock. An M
//! with a locked goroutine runs only goroutines already bound to it
//! (`find_own`); a locked goroutine that ends while locked takes its thread
//! with it (`exit_locked`: the M leaves once nothing is bound to it).
//!
//! Every function here runs on the calling goroutine's own M (or is a
//! no-op on a plain thread), so the M-local state needs no lock; the
//! goroutine's count is an atomic only so that dumps can read it.

use super::*;

/// The calling goroutine and its M, also inside `syscall` (the goroutine
/// then has no P, but its M is the same). None on a plain thread.
fn caller() -> Option<(&'static M, &'static G)> {
    let g = current_g_any()?;
    // SAFETY: a goroutine's thread is an M; Ms are immortal.
    Some((unsafe { &*current_m() }, g))
}

pub(crate) fn lock_os_thread() {
    let Some((m, g)) = caller() else { return };
    let n = g.locks.load(Ordering::Relaxed);
    let Some(n1) = n.checked_add(1) else {
        panic!("gort::lock_os_thread: nesting overflow (locked {n} times)");
    };
    g.locks.store(n1, Ordering::Relaxed);
    if n > 0 {
        return;
    }
    // SAFETY: our own M's thread; no switch in this function.
    let ml = unsafe { m.local() };
    ml.nlocked += 1;
    m.publish_takes_fresh(ml);
    if g.migratable.load(Ordering::Relaxed) {
        // A migratable goroutine stays here while locked: it is bound to
        // this M until it unlocks (a waker reads `m` only after winning a
        // park, and we are running, not parked).
        g.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
        g.migratable.store(false, Ordering::Relaxed);
        // SAFETY: the running goroutine holds its own descriptor.
        unsafe { g.inner() }.lock_pinned = true;
        ml.bound_live += 1;
    }
}

pub(crate) fn unlock_os_thread() {
    let Some((m, g)) = caller() else { return };
    let n = g.locks.load(Ordering::Relaxed);
    if n == 0 {
        return; // Go: unlocking an unlocked goroutine is a no-op
    }
    g.locks.store(n - 1, Ordering::Relaxed);
    if n > 1 {
        return;
    }
    // SAFETY: our own M's thread; no switch in this function.
    let ml = unsafe { m.local() };
    ml.nlocked -= 1;
    m.publish_takes_fresh(ml);
    // SAFETY: the running goroutine holds its own descriptor.
    let gi = unsafe { g.inner() };
    if std::mem::take(&mut gi.lock_pinned) {
        ml.bound_live -= 1;
        g.migratable.store(true, Ordering::Relaxed);
    }
}

/// `lock_os_thread` with Go's whole guarantee from any goroutine: if other
/// goroutines are bound to the caller's thread, the caller moves to a new
/// thread of its own first (see the public `lock_os_thread_alone` for the
/// contract that makes this sound).
///
/// # Safety
/// The public function's.
pub(crate) unsafe fn lock_os_thread_alone() {
    let Some((m, g)) = caller() else { return };
    assert!(
        current_g().is_some(),
        "gort::lock_os_thread_alone called inside gort::syscall (a goroutine in a blocking \
         call cannot switch threads)"
    );
    if os_thread_siblings() == 0 {
        lock_os_thread();
        return;
    }
    if std::thread::panicking() {
        // std's panic count is per thread: moving an unwinding goroutine
        // would leave it behind on this thread and underflow it there.
        fatal("gort::lock_os_thread_alone called while the thread unwinds (from a Drop run by a panic or goexit)");
    }
    let n = g.locks.load(Ordering::Relaxed);
    let Some(n1) = n.checked_add(1) else {
        panic!("gort::lock_os_thread: nesting overflow (locked {n} times)");
    };
    // Shared: leave this M (our lock, if any, stops counting here), and
    // let the M hand us to a new one (`relocate`), which counts it there.
    // SAFETY: our own M's thread; no switch until the suspend below.
    let ml = unsafe { m.local() };
    if g.locks.load(Ordering::Relaxed) > 0 {
        ml.nlocked -= 1;
        m.publish_takes_fresh(ml);
    }
    // SAFETY: the running goroutine holds its own descriptor; the borrow
    // ends before the switch.
    let sus = unsafe {
        let gi = g.inner();
        gi.req = Req::Relocate;
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: on this goroutine's own stack while it runs; the caller
    // promised that nothing on it is tied to this thread.
    unsafe { sus.suspend() };
    // Resumed on the new M, which counts us as locked and bound.
    g.locks.store(n1, Ordering::Relaxed);
}

/// The M side of `lock_os_thread_alone`: `g` (switched out, held by us)
/// leaves this M for a new one of its own, which resumes it.
pub(super) fn relocate(s: &'static Sched, m: &'static M, g: &'static G) {
    // SAFETY: our own M's thread, on its scheduler stack.
    let ml = unsafe { m.local() };
    if g.migratable.load(Ordering::Relaxed) {
        g.migratable.store(false, Ordering::Relaxed);
        // SAFETY: we hold the switched-out goroutine.
        unsafe { g.inner() }.lock_pinned = true;
    } else {
        ml.bound_live -= 1;
    }
    // Only its own M may compact a goroutine's stack.
    ml.cands.retain(|(x, _)| !ptr::eq(*x, g));
    // SAFETY: as above.
    unsafe { g.inner() }.in_cand = false;
    newm_relocated(s, g);
}

/// The calling goroutine's lock count (0 on a plain thread).
pub(crate) fn os_thread_locks() -> u32 {
    caller().map_or(0, |(_, g)| g.locks.load(Ordering::Relaxed))
}

/// Goroutines other than the caller bound to the caller's thread (started
/// there, not finished). 0 on a plain thread.
pub(crate) fn os_thread_siblings() -> usize {
    let Some((m, g)) = caller() else { return 0 };
    // SAFETY: our own M's thread; no switch in this function.
    let live = unsafe { m.local() }.bound_live;
    if g.migratable.load(Ordering::Relaxed) {
        live
    } else {
        live - 1
    }
}

/// `g` ended while locked (its M holds it, finished): the M starts nothing
/// from now on and leaves the scheduler, its thread exiting, once the
/// goroutines still bound to it have ended (Go kills the thread at once; a
/// started goroutine cannot move, so here they finish first).
pub(super) fn exit_locked(m: &'static M, g: &'static G) {
    g.locks.store(0, Ordering::Relaxed);
    // SAFETY: the M's own thread, on its scheduler stack.
    let ml = unsafe { m.local() };
    ml.nlocked -= 1;
    ml.exit_when_idle = true;
    m.publish_takes_fresh(ml);
    // SAFETY: the goroutine finished; its M holds the descriptor.
    unsafe { g.inner() }.lock_pinned = false;
}
