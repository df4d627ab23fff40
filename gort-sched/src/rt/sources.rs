//! Sources (timers, the netpoller) and idle sleep: the earliest deadline
//! any source reported, the one M that keeps time (sleeping until it), the
//! one that may block inside a blocking source (epoll), and how a new
//! earlier deadline or a readied goroutine gets them out.

use super::*;

pub(crate) fn register_source(src: Arc<dyn Source>) {
    let s = sched();
    if src.blocks() {
        let _ = s.eager.set(src.clone());
    }
    s.sources.write().push(src);
    note_deadline(s, 0);
}

/// A source has something due at `when` (nanotime): lowers `next_deadline`
/// to `when` if it is later, and then makes sure some M looks by then.
/// Every lowering goes through here, a poll's too:
/// a poller that skipped a heap another M was running (`try_run`) may
/// raise the word past that heap's next timer, and an M may go to keep
/// time until the raised deadline meanwhile; the runner's own poll then
/// lowers the word again, and must wake that timekeeper (it failed to
/// take the role itself, and would sleep with no deadline). Seen as
/// golang_time's timer tests stalling 30 s in about 1 run of 13, until a 30 s
/// timer came due.
pub(crate) fn note_deadline(s: &'static Sched, when: i64) {
    let prev = s.next_deadline.fetch_min(when, Ordering::SeqCst);
    if when >= prev {
        return; // someone already waits for an earlier one
    }
    let tk = s.timekeeper.load(Ordering::SeqCst);
    if !tk.is_null() {
        // SAFETY: Ms are immortal.
        wake_m(s, unsafe { &*tk });
        return;
    }
    if s.source_blocked.load(Ordering::SeqCst) {
        wake_sources(s);
        return;
    }
    // Wake an idle M (it needs no P to poll), or start one if Ps are idle.
    let m = s.lock_idle().midle.last().copied();
    match m {
        Some(m) => wake_m(s, m),
        None => wakep(s),
    }
}

/// Wakes `m` wherever it sleeps: on its parker, in the blocking source all
/// Ms share (`in_source`), or in its own wait (`in_own`). The caller has
/// published what `m` is to find (SeqCst), so that either `m` sees it
/// after storing its flag, or we see the flag.
pub(super) fn wake_m(s: &'static Sched, m: &M) {
    m.parker.unpark();
    if m.in_source.load(Ordering::SeqCst) {
        wake_sources(s);
    }
    if m.in_own.load(Ordering::SeqCst) {
        if let Some(src) = s.eager.get() {
            src.wake_own(m.id);
        }
    }
}

pub(super) fn wake_sources(s: &'static Sched) {
    for src in s.sources.read().iter() {
        src.wake();
    }
}

/// Runs the sources if their earliest deadline has passed.
#[inline]
pub(super) fn check_deadline(s: &'static Sched) {
    let d = s.next_deadline.load(Ordering::Relaxed);
    if d != i64::MAX && d <= nanotime() {
        poll_sources(s);
    }
}

/// Polls every source without blocking; returns whether any reported
/// progress possible (a deadline now due).
pub(super) fn poll_sources(s: &'static Sched) -> bool {
    let srcs = s.sources.read();
    if srcs.is_empty() {
        return false;
    }
    // `next_deadline` may be lowered by anyone (note_deadline's fetch_min)
    // but raised only here, by CAS from the value seen *before* polling: a
    // deadline noted meanwhile either changed the word (the CAS fails and we
    // look again) or was no earlier than it — and then was pushed before our
    // CAS, so the next round's poll sees it.
    //
    // The last round never raises: a deadline noted between its load and a
    // raising CAS would have no further round to see it (found by the loom
    // model `note_deadline_racing_the_last_raise_between`). Leaving the word
    // low only costs an extra poll later.
    const ROUNDS: usize = 4;
    let mut next = i64::MAX;
    for round in 0..ROUNDS {
        let seen = s.next_deadline.load(Ordering::SeqCst);
        let now = nanotime();
        next = srcs
            .iter()
            .filter_map(|src| src.poll(now))
            .min()
            .unwrap_or(i64::MAX);
        if next <= seen || round == ROUNDS - 1 {
            break;
        }
        // Raising: look once more after a successful CAS (see above).
        let _ = s
            .next_deadline
            .compare_exchange(seen, next, Ordering::SeqCst, Ordering::SeqCst);
    }
    // (Outside the sources' read lock: the wake may take it again.)
    drop(srcs);
    note_deadline(s, next);
    next <= nanotime()
}

/// Makes `m` the timekeeper (the M that sleeps until the next source
/// deadline), unless another M is.
fn take_timekeeper(s: &'static Sched, m: &'static M) -> bool {
    s.timekeeper
        .compare_exchange(
            ptr::null_mut(),
            m as *const M as *mut M,
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Blocks an idle M in its own wait in the eager source (the descriptors
/// its goroutines wait on: the kernel wakes exactly the M whose goroutine
/// an event is for), keeping time too if no M does.
fn own_wait(
    s: &'static Sched,
    m: &'static M,
    src: &dyn Source,
    source_deadline: i64,
    compact_at: i64,
) {
    let keeper = source_deadline != i64::MAX && take_timekeeper(s, m);
    let until = if keeper {
        source_deadline.min(compact_at)
    } else {
        compact_at
    };
    m.in_own.store(true, Ordering::SeqCst);
    // SeqCst store, then these checks (see wake_m): work handed to us, or
    // an earlier deadline noted (note_deadline wakes the timekeeper or an
    // idle M, us perhaps, through wake_m: our parker alone would not end
    // the wait), and we do not block.
    if m.inbox.load(Ordering::SeqCst).is_null()
        && m.nextp.load(Ordering::SeqCst).is_null()
        && s.next_deadline.load(Ordering::SeqCst) >= source_deadline
    {
        src.block_own((until != i64::MAX).then_some(until));
    }
    m.in_own.store(false, Ordering::SeqCst);
    if keeper {
        s.timekeeper.store(ptr::null_mut(), Ordering::SeqCst);
    }
}

/// Sleeps an idle M until woken, or until the next source deadline (one M
/// keeps time; one may block inside a blocking source).
pub(super) fn sleep_idle(s: &'static Sched, m: &'static M) {
    let compact_at = {
        // SAFETY: our own thread, no switch.
        let ml = unsafe { m.local() };
        if compaction_due(ml) {
            compact_pass(ml, usize::MAX);
        }
        if ml.cands.is_empty() {
            i64::MAX
        } else {
            ml.last_pass + COMPACT_NS
        }
    };
    poll_sources(s);
    // Polling may have readied our own goroutines (onto our local queue,
    // since we are their M): then do not sleep.
    {
        // SAFETY: our own thread, no switch.
        let ml = unsafe { m.local() };
        if ml.runnext.is_some() || !ml.runq.is_empty() || m.has_inbox() {
            return;
        }
    }
    let source_deadline = s.next_deadline.load(Ordering::SeqCst);
    let deadline = source_deadline.min(compact_at);
    if let Some(src) = s.eager.get().filter(|src| src.has_own()) {
        own_wait(s, m, &**src, source_deadline, compact_at);
        return;
    }
    let blocking = {
        let srcs = s.sources.read();
        srcs.iter().find(|x| x.blocks()).cloned()
    };
    if let Some(src) = blocking {
        if s.source_blocked
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            m.in_source.store(true, Ordering::SeqCst);
            // SeqCst stores, then these checks (the Dekker pairs with
            // `wake_m` and with `note_deadline`, which lowers the deadline
            // and then looks at `source_blocked`): work handed to us, or a
            // deadline noted earlier than the one we would block until,
            // and we do not block.
            if m.inbox.load(Ordering::SeqCst).is_null()
                && m.nextp.load(Ordering::SeqCst).is_null()
                && s.next_deadline.load(Ordering::SeqCst) >= source_deadline
            {
                // 0: an M is blocked in the poller (sysmon need not poll).
                s.last_poll.store(0, Ordering::Relaxed);
                src.block((deadline != i64::MAX).then_some(deadline));
                s.last_poll.store(nanotime(), Ordering::Relaxed);
            }
            m.in_source.store(false, Ordering::SeqCst);
            s.source_blocked.store(false, Ordering::SeqCst);
            return;
        }
    }
    if source_deadline != i64::MAX && take_timekeeper(s, m) {
        // `note_deadline` lowers the deadline, then wakes the timekeeper
        // if there is one, else some other M: a deadline noted after our
        // poll and before our CAS woke nobody who keeps time (the other M
        // it woke found us keeping it, and went back to sleep). SeqCst CAS,
        // then this load; the noter's SeqCst RMW, then its load of
        // `timekeeper`: either we see the earlier deadline here, or it
        // sees us and unparks us. (golang_time's timer tests stalled 30 s
        // in about 1 run of 13 until a 30 s timer came due.)
        if s.next_deadline.load(Ordering::SeqCst) < source_deadline {
            s.timekeeper.store(ptr::null_mut(), Ordering::SeqCst);
            return;
        }
        let wait = deadline - nanotime();
        if wait > 0 {
            // Wake a little early and spin the rest: a futex timeout fires
            // tens of microseconds late (more in VMs), and timers are the
            // point of this sleep.
            let early = wait.min(TIMER_EARLY_NS);
            let woken = wait > early
                && m.parker
                    .park_timeout(std::time::Duration::from_nanos((wait - early) as u64));
            // Spin only the last stretch: a timed park also returns without
            // a token before its time (a signal, a futex wake meant for an
            // earlier park of ours), and spinning from there to a far
            // deadline would burn a CPU for as long (found by a loom model
            // whose stale wake did just that); the caller's loop sleeps
            // again instead.
            if !woken && deadline - nanotime() <= TIMER_EARLY_NS {
                while nanotime() < deadline && !m.has_inbox() {
                    spin_loop();
                }
            }
        }
        s.timekeeper.store(ptr::null_mut(), Ordering::SeqCst);
        return;
    }
    if compact_at != i64::MAX {
        let wait = compact_at - nanotime();
        if wait > 0 {
            m.parker
                .park_timeout(std::time::Duration::from_nanos(wait as u64));
        }
        return;
    }
    m.parker.park();
}
