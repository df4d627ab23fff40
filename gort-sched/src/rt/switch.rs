//! The context switch: `execute` resumes a goroutine on its M and handles
//! its request when it switches back (park, yield, exit); `park_g` and
//! `gosched` are the goroutine's side (Go's `execute`/`gogo`, `park_m`,
//! `gosched_m`). This is the only part of `rt` that switches stacks, so the
//! only part loom cannot run: under `--cfg gort_loom`, `model.rs` stands in
//! (its `execute` counts the goroutine as run).

use super::*;
use gort_os::context::{Label, Resumed};
use gort_os::stack::Stack;

/// Runs `g` on this M until it parks, yields or exits.
pub(super) fn execute(s: &'static Sched, m: &'static M, g: &'static G) {
    let gr = g; // we hold it: we dequeued it
    // SAFETY: we hold the G (and it is not parked, so no reader pinned
    // it): the context is ours until the G is handed on, after which this
    // borrow is never used again (every hand-off below ends the loop).
    let slot = unsafe { gr.ctx() };
    let ctx = match slot {
        Some(c) => c,
        None => slot.insert(start_g(s, m, g)),
    };
    set_current_g(Some(g));
    // SAFETY: we hold the G (it is not parked: no dump reads it); the
    // borrow ends before the switch, and `ctx` is suspended until the
    // resume below.
    let gi = unsafe { gr.inner() };
    park_ended(m, gi);
    at_run(m, g, gi, ctx);
    loop {
        gr.status.store(G_RUNNING, Ordering::Relaxed);
        let r = ctx.resume();
        gr.status.store(G_RUNNABLE, Ordering::Relaxed);
        match r {
            Resumed::Finished => {
                set_current_g(None);
                // SAFETY: as above (the goroutine finished; we hold it).
                let done = unsafe { gr.ctx() }.take().expect("the finished context");
                drop(done.into_stack()); // back to this M's stack cache
                gr.park.retire();
                // Compaction candidates recognise the exit by the zero goid.
                gr.goid.store(0, Ordering::Relaxed);
                // SAFETY: the goroutine finished; we hold its descriptor.
                unsafe { gr.inner() }.suspender = None;
                if !gr.migratable.load(Ordering::Relaxed) {
                    // SAFETY: our own M; no switch here.
                    unsafe { m.local() }.bound_live -= 1;
                }
                if gr.locks.load(Ordering::Relaxed) > 0 {
                    exit_locked(m, gr);
                }
                release_g(g);
                return;
            }
            Resumed::Suspended => {
                // SAFETY: the goroutine is switched out; we hold it.
                let gi = unsafe { gr.inner() };
                let req = std::mem::replace(&mut gi.req, Req::None);
                match req {
                    Req::Park => {
                        if gi.compactable {
                            // SAFETY: our own M; no switch here.
                            let ml = unsafe { m.local() };
                            gi.park_pass = ml.pass;
                            if !gi.in_cand {
                                gi.in_cand = true;
                                ml.cands.push_back((g, gr.goid()));
                            }
                        }
                        // Counted before the park is published: a bound G
                        // runs again only on this M, through `park_ended`.
                        let bound = !gr.migratable.load(Ordering::Relaxed);
                        let quiet = bound
                            && matches!(gi.wait_reason, WaitReason::IoWait | WaitReason::Sleep);
                        if quiet {
                            gi.quiet = true;
                            // SAFETY: our own M; no switch here.
                            unsafe { m.local() }.quiet_parked += 1;
                        } else {
                            gi.sync_park = bound;
                        }
                        // Release (in try_park): after this a waker may run
                        // the G (its context is in place in the G).
                        if gr.park.try_park() {
                            break;
                        }
                        // Woken while switching out: run it again now.
                        park_ended(m, gi);
                        park_abandoned(g, gi);
                    }
                    Req::Yield => {
                        at_yield(g, gi);
                        if gr.migratable.load(Ordering::Relaxed) {
                            global_put_batch(s, &[g]);
                        } else {
                            // SAFETY: our own M.
                            let ml = unsafe { m.local() };
                            ml.runq.push_back(g);
                            ml.yielded = ml.nlocked > 0 || ml.exit_when_idle;
                        }
                        break;
                    }
                    Req::Relocate => {
                        relocate(s, m, g);
                        break;
                    }
                    Req::Walk => {
                        // SAFETY: our own M; the goroutine set `walk_out`
                        // (a vector in its frame) just before switching out.
                        let out = std::mem::replace(
                            &mut unsafe { m.local() }.walk_out,
                            ptr::null_mut(),
                        );
                        // SAFETY: `g` is suspended on this M, resumed only
                        // by the next loop turn.
                        unsafe { walk_for(ctx, out) };
                    }
                    Req::None => fatal("goroutine switched out with no request"),
                }
            }
        }
    }
    set_current_g(None);
}

/// A bound goroutine of this M runs again after a park: the M's counts
/// and its notes for `MLocal::spin_worthy`.
fn park_ended(m: &M, gi: &mut GInner) {
    if std::mem::take(&mut gi.quiet) {
        // SAFETY: our own M, on its thread; no switch here.
        let ml = unsafe { m.local() };
        ml.quiet_parked -= 1;
        // (A sleep's end is known in advance: no reason to watch for it.)
        ml.quiet_resumed |= gi.wait_reason == WaitReason::IoWait;
    } else if std::mem::take(&mut gi.sync_park) {
        // SAFETY: as above.
        unsafe { m.local() }.sync_resumed = true;
    }
}

/// First run of a fresh G on this M: give it a stack and bind it here.
pub(super) fn start_g(s: &'static Sched, m: &'static M, g: &'static G) -> Context {
    let gr = g;
    // SAFETY: we hold the G.
    let gi = unsafe { gr.inner() };
    let size = if gi.stack_size == 0 {
        s.default_stack_size()
    } else {
        gi.stack_size
    };
    let stack = Stack::new(size).unwrap_or_else(|e| {
        fatal(&format!(
            "runtime: cannot allocate a {size}-byte stack for goroutine {}: {e}",
            gr.goid()
        ))
    });
    gi.given = false;
    // Release pairs with wakers' Acquire load of `m`.
    gr.m.store(m as *const M as *mut M, Ordering::Release);
    if !gr.migratable.load(Ordering::Relaxed) {
        // SAFETY: our own M; no switch here.
        unsafe { m.local() }.bound_live += 1;
    }
    let label = Label {
        id: gr.goid(),
        name: gi.name.clone(),
    };
    // SAFETY: a goroutine suspends only through its own Suspender (park_g
    // and gosched use the running G's), and user code cannot reach a raw
    // Context of its own without `unsafe`.
    let ctx = unsafe { Context::new(stack, label, move |sus| goroutine_main(g, sus)) };
    if gr.has_labels.load(Ordering::Relaxed) {
        ctx.set_tag(tag_of(gr)); // its CPU profile samples carry its labels
    }
    ctx
}

pub(super) fn goroutine_main(g: &'static G, sus: Suspender) {
    // SAFETY: this goroutine holds its own descriptor while it runs; the
    // borrow ends before the task runs (which may switch).
    let run = unsafe {
        let gi = g.inner();
        gi.suspender = Some(sus);
        gi.task.expect("fresh goroutine has a task").run
    };
    // SAFETY: called once, by this goroutine on its own stack.
    unsafe { run(g) };
}

pub(crate) fn park_g<F: FnOnce() -> bool>(gr: &'static G, reason: WaitReason, commit: F) {
    // `gr` is the running goroutine: this thread holds it.
    if !commit() {
        gr.park.retire(); // the abandoned park's waiters go stale
        return;
    }
    if gr.park.consume_notified() {
        return; // woken before we even switched
    }
    if std::thread::panicking() {
        warn_park_while_unwinding(gr);
    }
    // SAFETY: as above; the borrow ends before the switch.
    let s = unsafe {
        let gi = gr.inner();
        gi.req = Req::Park;
        gi.wait_reason = reason;
        gi.wait_since = coarse_now();
        at_park(gr, gi, reason);
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: we are on this goroutine's stack, and it is running.
    unsafe { s.suspend() };
}

/// A goroutine about to park while its thread unwinds (a `Drop` run by a
/// panic or `goexit` that blocks) lets other goroutines of this thread run
/// with std's per-thread panic state set. Say so, once per process. (The
/// check is one relaxed load of std's global panic count on the park path.)
#[cold]
pub(super) fn warn_park_while_unwinding(gr: &G) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "gort: goroutine {} parks while its thread is unwinding (a Drop run by a panic \
             or goexit that blocks, in this goroutine or in another one of this thread \
             parked mid-unwind); until that goroutine resumes, every goroutine on the \
             thread sees std::thread::panicking() == true (std Mutexes they unlock get \
             poisoned). See the README, \"Goroutines share their thread\".",
            gr.goid()
        );
    }
}

/// Gosched: lets other goroutines run, then continues.
pub(crate) fn gosched() {
    let Some(g) = current_g() else {
        std::thread::yield_now();
        return;
    };
    // SAFETY: the running goroutine is held by this thread.
    let s = unsafe {
        let gi = g.inner();
        gi.req = Req::Yield;
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: on the goroutine's own stack while it runs.
    unsafe { s.suspend() };
}

