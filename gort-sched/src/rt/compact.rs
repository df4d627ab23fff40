//! Stack compaction of long-parked goroutines that opted in
//! (`Builder::compact_when_parked`): each M keeps candidates and, every
//! `COMPACT_NS`, compacts those parked through a whole interval.

use super::*;

pub(super) fn compaction_due(ml: &MLocal) -> bool {
    !ml.cands.is_empty() && nanotime() - ml.last_pass >= COMPACT_NS
}

/// One compaction pass over this M's parked goroutines: those parked since
/// before the previous pass (so for at least one whole interval) get their
/// stacks compacted and the pages returned, in one batch. At most `budget`
/// stacks are compacted; the rest wait for the next pass.
pub(super) fn compact_pass(ml: &mut MLocal, budget: usize) {
    ml.pass = ml.pass.wrapping_add(1);
    ml.last_pass = nanotime();
    let cutoff = ml.pass.wrapping_sub(1);
    let mut ranges = Vec::new();
    for _ in 0..ml.cands.len() {
        if ranges.len() >= budget {
            break;
        }
        let Some((gr, goid)) = ml.cands.pop_front() else {
            break;
        };
        if goid == 0 || gr.goid() != goid {
            continue; // exited (maybe reused elsewhere): not ours any more
        }
        if gr.migratable.load(Ordering::Relaxed)
            || !ptr::eq(gr.m.load(Ordering::Acquire), current_m())
        {
            // Moved since it was queued here (a migratable goroutine, or
            // one `lock_os_thread_alone` relocated): only its own M may
            // touch it, and a wake finished below must go to that M.
            continue;
        }
        // Pin the park: a goroutine dump on another thread may be reading
        // this stack (then try again next pass), and a wake meanwhile must
        // wait until the stack is consistent again.
        if !gr.park.pin() {
            if gr.park.is_parked() || gr.park.is_pinned() {
                // Pinned by a dump (maybe woken meanwhile, then the dump
                // finishes the wake): not ours to touch; look next pass.
                ml.cands.push_back((gr, goid));
            } else {
                // SAFETY: a live bound G of this M, not parked: only this
                // thread touches its inner state now (see below).
                unsafe { gr.inner() }.in_cand = false; // re-queued at its next park
            }
            continue;
        }
        // SAFETY: a live bound G of this M, pinned in its park: only this
        // thread touches its inner state, and no goroutine runs while the M
        // is in the scheduler.
        let gi = unsafe { gr.inner() };
        compact_one(ml, gr, goid, gi, cutoff, &mut ranges);
        if gr.park.unpin() == Notify::Resume {
            // Woken while pinned: the wake is ours to finish, as ready_g
            // would on this M.
            if let Some(prev) = ml.runnext.replace(gr) {
                ml.runq.push_back(prev);
            }
        }
    }
    if !ranges.is_empty() {
        // SAFETY: regions of stacks compacted just now, whose goroutines are
        // parked and whose live bytes are saved in their contexts.
        unsafe { gort_os::stack::release_memory(ranges) };
    }
}

/// Compacts one pinned candidate if it has been parked a whole interval.
fn compact_one(
    ml: &mut MLocal,
    gr: &'static G,
    goid: u64,
    gi: &mut GInner,
    cutoff: u32,
    ranges: &mut Vec<(usize, usize)>,
) {
    // SAFETY: pinned in its park by our caller (as `gi`): nothing else
    // touches the context until the unpin.
    let Some(ctx) = (unsafe { gr.ctx() }).as_mut() else {
        gi.in_cand = false;
        return;
    };
    if gi.wait_reason == WaitReason::Blocking {
        // Its stack may be lent to a pool thread (`blocking`): another
        // thread may read or write it while it is parked.
        gi.in_cand = false; // re-queued at its next park
        return;
    }
    if (gi.park_pass.wrapping_sub(cutoff) as i32) >= 0 {
        ml.cands.push_back((gr, goid)); // parked too recently
        return;
    }
    gi.in_cand = false;
    // SAFETY: the goroutine's spawner promised, through the unsafe
    // Builder::compact_when_parked, that nothing else touches its stack
    // while it is parked; it is parked now and pinned by us (a dump
    // cannot be reading it).
    if let Some(r) = unsafe { ctx.compact() } {
        ranges.push(r);
    }
}
