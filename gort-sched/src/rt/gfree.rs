//! Spawning (Go's `newproc`) and the descriptors' free lists: per-P lists
//! of up to `GFREE_MAX`, spilling to and refilling from a global one; a
//! descriptor is recycled when its goroutine and its handle both let go.

use super::*;

pub(crate) struct Spawn {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) stack_size: usize,
    pub(crate) migratable: bool,
    pub(crate) compactable: bool,
    pub(crate) system: bool,
    /// Where `go` was called (`#[track_caller]`), for dumps.
    pub(crate) site: &'static std::panic::Location<'static>,
    /// On a thread of its own, locked to it (`Builder::lock_os_thread`).
    pub(crate) locked: bool,
    /// Run by the caller on its own thread (`run_on_this_thread`): not
    /// queued anywhere.
    pub(crate) here: bool,
}

/// Creates a goroutine whose task `install` writes into the payload, and
/// queues it. Returns the G (with a reference held for the JoinHandle) and
/// its id.
pub(crate) fn newproc(
    sp: Spawn,
    task: TaskVtable,
    install: impl FnOnce(*mut Payload),
) -> (&'static G, u64) {
    let s = sched();
    let g = gfget(s);
    let gr = g;
    let goid = s.goid_gen.fetch_add(1, Ordering::Relaxed) + 1;
    gr.m.store(ptr::null_mut(), Ordering::Relaxed);
    // A locked goroutine never moves.
    let migratable = sp.migratable && !sp.locked;
    gr.migratable.store(migratable, Ordering::Relaxed);
    gr.refs.store(2, Ordering::Relaxed);
    gr.join_state.store(RUNNING, Ordering::Relaxed);
    gr.status.store(G_RUNNABLE, Ordering::Relaxed);
    gr.creator
        .store(current_g_any().map_or(0, |c| c.goid()), Ordering::Relaxed);
    gr.site
        .store(ptr::from_ref(sp.site).cast_mut(), Ordering::Relaxed);
    // After what dumps read beside it (creator, site, join state): a dump
    // that sees this id (Acquire) sees them too, never the previous
    // goroutine's (see `snapshot_others`).
    gr.goid.store(goid, Ordering::Release);
    install(gr.payload.get());
    // SAFETY: we hold the G (not yet published).
    let gi = unsafe { gr.inner() };
    gi.task = Some(task);
    gi.name = sp.name;
    gi.stack_size = sp.stack_size;
    gi.req = Req::None;
    gi.in_cand = false;
    gi.compactable = sp.compactable && !migratable;
    gi.lock_pinned = false;
    gr.sys.store(sp.system, Ordering::Relaxed);
    gr.tracked.store(false, std::sync::atomic::Ordering::Relaxed);
    at_spawn(gr, goid);
    gr.locks.store(u32::from(sp.locked), Ordering::Relaxed);
    if !sp.system {
        count_goroutines(s, 1);
    }
    if sp.locked {
        newm_locked(s, g);
    } else if !sp.here {
        runq_put_here(s, g, true);
    }
    (g, goid)
}

/// Drops one reference to `g`; the last one recycles the descriptor.
pub(crate) fn release_g(g: &'static G) {
    let gr = g;
    // AcqRel: the last releaser sees every write of the other side.
    if gr.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: no other reference: we own the G and its payload.
    let gi = unsafe { gr.inner() };
    if let Some(t) = gi.task.take() {
        let p = gr.payload.get();
        // A panicking destructor of an unjoined result must not unwind
        // into the scheduler.
        // SAFETY: the payload holds the task's state (pending or done).
        if panic::catch_unwind(AssertUnwindSafe(|| unsafe { (t.destroy)(p) })).is_err() {
            fatal("a goroutine's result panicked while being dropped");
        }
    }
    gi.name = None;
    gfput_any(sched(), g);
}

pub(super) fn gfget(s: &'static Sched) -> &'static G {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        // SAFETY: only the M holding the P touches gfree.
        let free = unsafe { &mut *(*ml.p).gfree.get() };
        if free.is_empty() {
            let mut gl = s.gfree.lock();
            let n = gl.len().min(GFREE_MAX / 2);
            let at = gl.len() - n;
            free.extend(gl.drain(at..));
        }
        if free.is_empty() {
            free.extend(alloc_gs(s));
        }
        return free.pop().expect("just refilled");
    }
    let mut gl = s.gfree.lock();
    if gl.is_empty() {
        gl.extend(alloc_gs(s));
    }
    gl.pop().expect("just refilled")
}

/// Allocates a chunk of descriptors (they are never freed).
pub(super) fn alloc_gs(s: &'static Sched) -> impl Iterator<Item = &'static G> {
    const CHUNK: usize = 32;
    let chunk: &'static [G] = Box::leak((0..CHUNK).map(|_| G::new()).collect());
    s.allgs.lock().push(chunk);
    chunk.iter()
}

/// Returns a recycled G to the current P's free list, or the global one
/// from a thread without a P.
pub(super) fn gfput_any(s: &'static Sched, g: &'static G) {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        gfput(s, ml, g);
        return;
    }
    s.gfree.lock().push(g);
}

/// Returns an exited G's descriptor to the current P's free list.
pub(super) fn gfput(s: &'static Sched, ml: &mut MLocal, g: &'static G) {
    // SAFETY: the P we hold; only we touch its gfree.
    let free = unsafe { &mut *(*ml.p).gfree.get() };
    free.push(g);
    if free.len() > GFREE_MAX {
        let mut gl = s.gfree.lock();
        gl.extend(free.drain(..GFREE_MAX / 2));
    }
}
