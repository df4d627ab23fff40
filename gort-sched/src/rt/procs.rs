//! GOMAXPROCS changes, and the scheduler facts sync primitives ask for
//! (`can_spin`, `can_wait_spin`, `current_p`).

use super::*;

/// Sets the number of Ps; returns the previous number.
pub(crate) fn set_gomaxprocs(n: usize) -> usize {
    assert!(
        (1..=MAX_PROCS).contains(&n),
        "gomaxprocs: {n} is out of range (1 to {MAX_PROCS})"
    );
    let s = sched();
    let mut idle = s.lock_idle();
    let old = s.gomaxprocs();
    if n == old {
        return old;
    }
    s.nprocs.store(n, Ordering::SeqCst);
    let mut moved = false;
    if n > old {
        for id in old..n {
            // A brand-new P, or a retired (dead) one, becomes available. A
            // P still held by an M that has not noticed the shrink (running,
            // or in a blocking call) simply stays with it. (Every idle <->
            // owned change of a P happens under the idle lock, which we
            // hold, so no other status means "idle but not listed".)
            let p = match s.p(id) {
                Some(p) if p.status.load(Ordering::Relaxed) == P_DEAD => p,
                Some(_) => continue,
                None => {
                    let p = new_p(id);
                    s.allp[id].store(p as *const P as *mut P, Ordering::Release);
                    p
                }
            };
            moved |= put_p(s, &mut idle, p);
        }
        drop(idle);
        for _ in old..n {
            wakep(s);
        }
    } else {
        let before = idle.pidle.len();
        idle.pidle.retain(|p| {
            let keep = p.id < n;
            if !keep {
                // (An idle P may hold gifts: `place_fresh`.)
                moved |= retire_queues(s, p);
            }
            keep
        });
        let removed = before - idle.pidle.len();
        s.npidle.fetch_sub(removed, Ordering::SeqCst);
        // A P >= n held by an M in a blocking call is taken and retired
        // now (its M gets another P when the call returns; sysmon and
        // thieves only look at Ps below gomaxprocs, so its queue would be
        // stranded until then). AcqRel: pairs with entersyscall's Release
        // store; the M's exitsyscall CAS races with this one.
        for id in n..old {
            if let Some(p) = s.p(id) {
                if p.status
                    .compare_exchange(P_SYSCALL, P_DEAD, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    moved |= retire_queues(s, p);
                }
            }
        }
        drop(idle);
        // Ps >= n still running are retired by their Ms at the next
        // schedule (retire_p); their queues move to the global queue.
    }
    if moved {
        wakep(s);
    }
    old
}

/// Whether a sync primitive that failed to get a lock should spin once more
/// (`iter` = spins so far) instead of parking: only a few times, only on a
/// multicore machine with GOMAXPROCS > 1 and at least one other P running
/// (someone may release the lock soon), and only while this M has nothing
/// else to run (spinning would delay it).
pub(crate) fn can_spin(iter: u32) -> bool {
    const ACTIVE_SPIN: u32 = 4;
    if iter >= ACTIVE_SPIN {
        return false;
    }
    let s = sched();
    if s.ncpu <= 1 {
        return false;
    }
    let m = current_m();
    if m.is_null() {
        return true; // a plain thread: a short spin before a futex sleep
    }
    // SAFETY: current_m() is this thread's own live M; no switch here.
    let (m, ml) = unsafe { (&*m, (*m).local()) };
    if ml.p.is_null() {
        return false;
    }
    let busy_others = s.gomaxprocs() as isize
        - s.npidle.load(Ordering::Relaxed) as isize
        - s.nmspinning.load(Ordering::Relaxed) as isize
        - 1;
    if busy_others <= 0 {
        return false;
    }
    // SAFETY: the P we hold.
    let p = unsafe { &*ml.p };
    ml.runnext.is_none() && ml.runq.is_empty() && !m.has_inbox() && p.runq.is_empty()
}

/// Whether a goroutine waiting for one on another P to make progress (a
/// sender facing a full channel) may keep spinning: [`can_spin`]'s
/// conditions without its iteration limit, on a goroutine (a plain thread or a `syscall` parks
/// instead), and nothing the scheduler would do instead of the spin — no
/// M waiting for a P, nothing on the global queue, no timer or poll
/// deadline due at `now`.
pub(crate) fn can_wait_spin(now: i64) -> bool {
    if current_p().is_none() || !can_spin(0) {
        return false;
    }
    let s = sched();
    s.nmwaitp.load(Ordering::Relaxed) == 0
        && s.global_len.load(Ordering::Relaxed) == 0
        && s.next_deadline.load(Ordering::Relaxed) > now
}

/// The id of the P the calling goroutine runs on (None on a plain thread).
/// It stays the same until the goroutine next parks or yields.
pub(crate) fn current_p() -> Option<usize> {
    let (m, g) = current();
    if m.is_null() || g.is_none() {
        return None;
    }
    // SAFETY: our own M; no switch here.
    let ml = unsafe { (*m).local() };
    // SAFETY: the P we hold is live.
    (!ml.p.is_null()).then(|| unsafe { &*ml.p }.id)
}
