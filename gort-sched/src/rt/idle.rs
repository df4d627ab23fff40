//! The idle protocol: how Ms start, spin, hand Ps over and go to sleep
//! without losing a wake-up (Go's proc.go "Worker thread parking/unparking").
//!
//! The rule, as in Go: a goroutine made runnable while some P is idle must
//! find an M to run it, and no more Ms than needed are woken to look.
//!
//! * **Spinning.** An M with a P and nothing to run *spins* (looks for work
//!   in every queue) before it sleeps; `nmspinning` counts them. Whoever
//!   makes work runnable calls `wakep`, which starts a spinning M only if a
//!   P is idle and *nobody* is spinning — a spinning M will find the work.
//! * **Leaving the spinning state.** A spinning M that finds work stops
//!   spinning; if it was the last spinner it calls `wakep` (there may be
//!   more work than it took: Go's `resetspinning`).
//! * **Going to sleep.** An M with nothing gives its P back *under the idle
//!   lock* and, in the same critical section, puts itself on the idle list
//!   (`release_and_sleep`), so a `startm` never sees an idle P without an
//!   idle M to hand it to. A spinning M then drops `nmspinning` and looks
//!   once more at every run queue: work queued by someone who saw it
//!   spinning (and so woke nobody) is not lost.
//! * **Handing a P over.** `startm` / `put_p` store the P in the sleeping
//!   M's `nextp` and wake it (`wake_m`); an M blocked inside a source
//!   (epoll: the shared wait or its own) stores `in_source`/`in_own`
//!   before re-checking `nextp`, and the waker checks them after storing
//!   `nextp` (a SeqCst Dekker pair), so one of them sees the other and the
//!   source is woken if needed.
//! * **Bound goroutines.** An M whose goroutines are readied while it has
//!   no P waits for one on `mwaitp` (FIFO); Ps freed by others go to those
//!   Ms first, and an M that held its P for `P_QUANTUM` schedules hands it
//!   to a waiting one.

use super::*;

pub(super) fn stop_spinning(s: &'static Sched, ml: &mut MLocal) {
    if ml.spinning {
        ml.spinning = false;
        // The last spinning M to find work wakes another to keep looking
        // (Go's resetspinning): a spawner that saw us spinning woke nobody.
        // Only if fresh work is in sight, though: what we found is most
        // often a goroutine of our own back from the network or a channel,
        // and an M woken to find nothing cost the HTTP example 7% of its
        // CPU in eventfd writes alone. Work queued after our decrement is
        // the spawner's to wake for (it sees nmspinning == 0; SeqCst pairs
        // as in recheck_queues), and sysmon wakes an M for queued work it
        // finds with Ps idle.
        if s.nmspinning.fetch_sub(1, Ordering::SeqCst) == 1 {
            recheck_queues(s);
        }
    }
}

/// Go's wakep: if there is an idle P and nobody is spinning, start a
/// spinning M.
#[inline]
pub(crate) fn wakep(s: &'static Sched) {
    if s.npidle.load(Ordering::SeqCst) == 0 || s.nmspinning.load(Ordering::SeqCst) != 0 {
        return;
    }
    if s.nmspinning
        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    startm(s, true);
}

/// Gives an idle P to an idle (or new) M. With `spinning`, the caller has
/// already counted the new M in nmspinning.
pub(super) fn startm(s: &'static Sched, spinning: bool) {
    let mut idle = s.lock_idle();
    let Some(p) = idle.pidle.pop() else {
        drop(idle);
        if spinning {
            s.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    };
    took_idle_p(s);
    p.status.store(P_RUNNING, Ordering::Relaxed);
    run_p_on_idle_m(s, idle, p, spinning);
}

/// Hands `p` (owned, `P_RUNNING`) to an idle M, or to a new one if none is
/// idle, and unlocks the idle lock.
fn run_p_on_idle_m(
    s: &'static Sched,
    mut idle: MutexGuard<'_, Idle>,
    p: &'static P,
    spinning: bool,
) {
    if let Some(m) = idle.midle.pop() {
        m.start_spinning.store(spinning, Ordering::Relaxed);
        // Its holder from now, before the M wakes up and `acquirep`s it:
        // fresh goroutines may be given to the P meanwhile (`place_fresh`).
        p.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
        // SeqCst: pairs with the M's Acquire swap of nextp, and with its
        // SeqCst in_source/in_own store before re-checking nextp (see wake_m).
        m.nextp.store(p as *const P as *mut P, Ordering::SeqCst);
        drop(idle);
        wake_m(s, m);
    } else {
        drop(idle);
        newm(s, p, spinning);
    }
}

/// Releases `p`: to the first M waiting for a P, else to the idle list (or
/// retires it if gomaxprocs shrank). Caller owns the P and holds the idle
/// lock. Returns true if retiring it moved queued goroutines to the global
/// queue: the caller then calls `wakep` once it has dropped the lock.
#[must_use]
pub(super) fn put_p(s: &'static Sched, idle: &mut Idle, p: &'static P) -> bool {
    if p.id >= s.gomaxprocs() {
        return retire_queues(s, p);
    }
    if let Some(m2) = idle.mwaitp.pop_front() {
        s.nmwaitp.fetch_sub(1, Ordering::Relaxed);
        p.status.store(P_RUNNING, Ordering::Relaxed);
        m2.start_spinning.store(false, Ordering::Relaxed);
        p.m.store(ptr::from_ref(m2).cast_mut(), Ordering::Release);
        m2.nextp.store(p as *const P as *mut P, Ordering::SeqCst);
        wake_m(s, m2);
        return false;
    }
    // Two owners of one P would race on its run queue and free list: a
    // cheap check on the idle path (gomaxprocs entries at most).
    if idle.pidle.iter().any(|x| ptr::eq(*x, p)) {
        fatal(&format!("runtime: P{} put on the idle list twice", p.id));
    }
    p.status.store(P_IDLE, Ordering::Relaxed);
    idle.pidle.push(p);
    s.npidle.fetch_add(1, Ordering::SeqCst);
    false
}

/// Retires `p` (gomaxprocs shrank below its id): its queued fresh
/// goroutines go to the global queue, its free descriptors to the global
/// list, and it becomes `P_DEAD`. Caller owns the P and holds the idle
/// lock. Returns whether goroutines moved (then `wakep` after unlocking).
pub(super) fn retire_queues(s: &'static Sched, p: &'static P) -> bool {
    let mut moved = p.take_gifts();
    while let Some(g) = p.runq_get() {
        moved.push(g);
    }
    global_put_batch(s, &moved);
    // SAFETY: the caller owns the P.
    let free = unsafe { &mut *p.gfree.get() };
    s.gfree.lock().extend(free.drain(..));
    p.status.store(P_DEAD, Ordering::Relaxed);
    !moved.is_empty()
}

/// Another M has runnable goroutines but no P and we had ours long enough.
pub(super) fn handoff_to_waiting_m(s: &'static Sched, m: &'static M, p: &'static P) -> bool {
    let mut idle = s.lock_idle();
    if idle.mwaitp.is_empty() {
        return false;
    }
    drop_p_local(s, m);
    let moved = put_p(s, &mut idle, p);
    drop(idle);
    if moved {
        wakep(s);
    }
    stopm(s, m);
    true
}

/// Forgets the current P locally (the caller gives it away).
pub(super) fn drop_p_local(s: &'static Sched, m: &M) {
    // A request to yield made for the goroutine that ran here is moot once
    // the M lets go of its P (left set, it would keep every preemption
    // point on its slow path until this M runs again).
    clear_preempt(m);
    // SAFETY: our own thread.
    let ml = unsafe { m.local() };
    if !ml.p.is_null() {
        // Not ours any more: sysmon must not ask us to yield for its next
        // holder (whose acquirep sets it).
        // SAFETY: Ps are immortal.
        unsafe { &*ml.p }
            .m
            .store(ptr::null_mut(), Ordering::Relaxed);
    }
    ml.p = ptr::null();
    // Handing the P over honours a yield: left set, the flags would make
    // the next holder of a P handed back to us hand it straight on again
    // (two Ms bouncing one P, their goroutines never running).
    ml.preempted = false;
    ml.yielded = false;
    if ml.spinning {
        ml.spinning = false;
        s.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }
}

/// gomaxprocs shrank below this P's id: move its queue to the global queue
/// and give it up.
pub(super) fn retire_p(s: &'static Sched, m: &'static M, p: &'static P) {
    let idle = s.lock_idle();
    if p.id < s.gomaxprocs() {
        return; // grew back meanwhile
    }
    let moved = retire_queues(s, p);
    drop_p_local(s, m);
    drop(idle);
    if moved {
        wakep(s);
    }
    stopm(s, m);
}

/// Gives up the P (nothing to run) and sleeps until this M has work and a P.
pub(super) fn release_and_sleep(s: &'static Sched, m: &'static M, watch: bool) {
    // SAFETY: our own thread; we hold a P here.
    let p = unsafe { &*m.local().p };
    {
        let mut idle = s.lock_idle();
        // Work may have arrived on the global queue, or been given to our
        // P (`place_fresh`), after we looked.
        if s.global_len.load(Ordering::Acquire) > 0 || p.ngifts.load(Ordering::Relaxed) > 0 {
            return;
        }
        drop_p_local(s, m);
        if put_p(s, &mut idle, p) {
            // Retired with queued goroutines: they are on the global queue,
            // which the re-check below sees.
        }
        // Idle M and idle P become visible together (Go's stopm runs
        // mput under the same sched.lock as pidleput): a spawner's startm
        // that found the P but not the M would start a new thread, and
        // while that thread started, nmspinning != 0 made every later
        // wakep a no-op — a burst of spawns then all ran here.
        if !idle.midle.iter().any(|x| ptr::eq(*x, m)) {
            idle.midle.push(m);
        }
    }
    recheck_queues(s);
    stopm_watching(s, m, watch);
}

/// After an M dropped its P: work queued by someone who saw no idle P, or
/// saw an M spinning, woke nobody -- wake an M for it now.
fn recheck_queues(s: &'static Sched) {
    // A G queued on the global queue after we looked (by a thread without
    // a P) whose queuer's wakep ran before put_p made our P idle: it woke
    // nobody. SeqCst pairs with global_put_batch's store (Go checks
    // sched.runqsize under the sched.lock that globrunqput also holds; here
    // the queue has its own lock). Found by tests/loom_idle.rs, and as a
    // hang of golang_chan's test_nonblock_recv_race (regression test:
    // goroutines.rs spawns_from_a_plain_thread_are_never_stranded).
    if s.global_len.load(Ordering::SeqCst) > 0 {
        wakep(s);
        return;
    }
    // Go's findrunnable: after dropping the P (and the spinning count),
    // look once more at every run queue. A spawner that saw us spinning
    // did not wake anybody; nor did one whose wakep ran before put_p
    // made our P idle (it saw npidle == 0) -- so every M dropping its P
    // looks, not only a spinning one (Go: sched.needspinning). Found by
    // golang_proc.rs test_spawn_while_ms_park.
    for id in 0..s.gomaxprocs() {
        if let Some(v) = s.p(id) {
            if v.has_unheld_fresh() {
                wakep(s);
                break;
            }
        }
    }
}

/// An own-only M (`find_own`) gives up its P (Go's `handoffp`): to the
/// first M waiting for one; with fresh goroutines queued, straight to an
/// idle or new M that runs them (the P stays owned: no window in which it
/// is idle with work on it); else to the idle list. The M is not put on the
/// idle list: nobody may hand it a P for fresh work.
pub(super) fn give_p_away(s: &'static Sched, m: &'static M, p: &'static P) {
    let mut idle = s.lock_idle();
    drop_p_local(s, m);
    let fresh = p.has_fresh() || s.global_len.load(Ordering::SeqCst) > 0;
    if fresh && idle.mwaitp.is_empty() && p.id < s.gomaxprocs() {
        run_p_on_idle_m(s, idle, p, false);
        return;
    }
    let moved = put_p(s, &mut idle, p);
    drop(idle);
    if moved {
        wakep(s);
    }
    recheck_queues(s);
}

/// Sleeps until this M is handed a P, or has bound work and can take one.
/// Returns without a P only for an M that is to leave the scheduler
/// (`M::done`).
pub(super) fn stopm(s: &'static Sched, m: &'static M) {
    stopm_watching(s, m, false);
}

/// `stopm`; with `inbox_watch`, the M just let go of its P to an M that
/// wanted it while a goroutine of its own, parked on another goroutine,
/// is likely to be readied soon (`spin_worthy` said so): it watches its
/// inbox a while before it sleeps (see below).
pub(super) fn stopm_watching(s: &'static Sched, m: &'static M, mut inbox_watch: bool) {
    // Whether we already watched for a hand-off since queueing for a P.
    let mut watched = false;
    loop {
        // An M leaving the scheduler (nothing bound to it any more) must
        // not sleep here for good: it returns without a P, and `find_own`
        // lets it go. (It is on no idle list: nobody hands it a P.)
        // SAFETY: our own thread.
        if unsafe { m.done() } {
            remove_idle_m(s, m);
            return;
        }
        // Acquire pairs with the Release store by startm / put_p.
        let p = m.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            remove_idle_m(s, m);
            // SAFETY: our own thread; the P was handed to us and is live.
            let (ml, p) = unsafe { (m.local(), &*p) };
            acquirep(m, ml, p);
            ml.spinning = m.start_spinning.swap(false, Ordering::Relaxed);
            return;
        }
        let has_work = {
            // SAFETY: our own thread.
            let ml = unsafe { m.local() };
            m.has_inbox() || ml.runnext.is_some() || !ml.runq.is_empty()
        };
        {
            let mut idle = s.lock_idle();
            if !m.nextp.load(Ordering::Acquire).is_null() {
                continue;
            }
            idle.midle.retain(|x| !ptr::eq(*x, m));
            idle.mown.retain(|x| !ptr::eq(*x, m));
            if has_work {
                if let Some(p) = idle_p_or_wait(s, &mut idle, m) {
                    drop(idle);
                    // SAFETY: our own thread.
                    acquirep(m, unsafe { m.local() }, p);
                    return;
                }
                // Queued on mwaitp: whoever frees a P hands it to us
                // (nextp) and unparks us. Not `sleep_idle`, which returns
                // at once for an M with runnable goroutines: the M would
                // spin on the idle lock until a P came (found by the
                // locked_pingpong benchmark, 1 P).
                drop(idle);
                // The P's holder is often about to let go of it (a
                // ping-pong over one P with a goroutine of another M: it
                // just readied ours and is about to park): watch for the
                // hand-off a while before sleeping, so that it costs no
                // second wake-up (locked_pingpong at 1 P: ~30 us -> ~5 us
                // per round trip, measured A/B).
                if watched || !wait_nextp_spin(m) {
                    // (Once: woken again by more work readied to us, we
                    // still need the same P hand-off; spinning again would
                    // only burn the CPU.)
                    watched = true;
                    m.parker.park();
                }
                continue;
            } else if !idle.mwaitp.iter().any(|x| ptr::eq(*x, m)) {
                // SAFETY: our own thread.
                if unsafe { m.own_only() } {
                    // Never handed a P for fresh work: only its own
                    // goroutines, readied, wake it (then it takes a P).
                    idle.mown.push(m);
                } else {
                    idle.midle.push(m);
                }
            }
        }
        // We let go of the P to an M that wanted it while a goroutine of
        // ours, parked on another goroutine, was likely to be readied soon
        // -- by one running on that P, often (a ping-pong over one P
        // between a locked goroutine and another: each side would else
        // sleep and be woken once per message, 35-45 µs a round trip
        // here). Watch the inbox (and `nextp`) once before sleeping.
        if std::mem::take(&mut inbox_watch) && wait_inbox_spin(s, m) {
            continue;
        }
        sleep_idle(s, m);
    }
}

/// For an M with runnable work and no P (bound goroutines, or its goroutine
/// back from a blocking call whose P was retaken): takes an idle P — not
/// idle any more when this returns, the M out of `mwaitp` — or else queues
/// the M (once) on `mwaitp`, first in line for the next freed P. Caller
/// holds the idle lock.
pub(super) fn idle_p_or_wait(
    s: &'static Sched,
    idle: &mut Idle,
    m: &'static M,
) -> Option<&'static P> {
    if let Some(p) = idle.pidle.pop() {
        took_idle_p(s);
        // Not idle any more, under the lock (every idle <-> owned change of
        // a P is: see set_gomaxprocs).
        p.status.store(P_RUNNING, Ordering::Relaxed);
        if let Some(i) = idle.mwaitp.iter().position(|x| ptr::eq(*x, m)) {
            idle.mwaitp.remove(i);
            s.nmwaitp.fetch_sub(1, Ordering::Relaxed);
        }
        return Some(p);
    }
    if !idle.mwaitp.iter().any(|x| ptr::eq(*x, m)) {
        idle.mwaitp.push_back(m);
        s.nmwaitp.fetch_add(1, Ordering::Relaxed);
    }
    None
}

pub(super) fn remove_idle_m(s: &'static Sched, m: &M) {
    let mut idle = s.lock_idle();
    idle.midle.retain(|x| !ptr::eq(*x, m));
    idle.mown.retain(|x| !ptr::eq(*x, m));
}

/// Spins up to IDLE_SPIN_NS for a P handed to `m` (queued on `mwaitp`);
/// whether one came.
fn wait_nextp_spin(m: &M) -> bool {
    let start = nanotime();
    let mut i = 0u32;
    loop {
        if !m.nextp.load(Ordering::Acquire).is_null() {
            return true;
        }
        i = i.wrapping_add(1);
        if (cfg!(gort_loom) || i % 64 == 0) && nanotime() - start > IDLE_SPIN_NS {
            return false;
        }
        spin_loop();
    }
}

/// Spins up to IDLE_SPIN_NS, without a P, for a goroutine readied to `m`
/// or a P handed to it; whether either came (or a source deadline passed:
/// the M may be the one `note_deadline` woke, and `sleep_idle` polls).
/// Looks at its own wait in the eager source every `WATCH_POLL_NS`, as
/// `idle_spin` does (no other M polls it). Gives the CPU away every so
/// often: the goroutine that readies ours may run on our CPU.
fn wait_inbox_spin(s: &'static Sched, m: &M) -> bool {
    let start = nanotime();
    let own = s.eager.get().filter(|src| src.has_own());
    let mut polled = start;
    let mut i = 0u32;
    loop {
        if m.has_inbox() || !m.nextp.load(Ordering::Acquire).is_null() {
            return true;
        }
        i = i.wrapping_add(1);
        if cfg!(gort_loom) || i % 64 == 0 {
            let now = nanotime();
            if now - start > IDLE_SPIN_NS {
                return false;
            }
            if s.next_deadline.load(Ordering::Relaxed) <= now {
                return true;
            }
            if watch_poll_own(m, own, &mut polled, now) {
                return true;
            }
            #[cfg(not(gort_loom))]
            std::thread::yield_now();
        }
        spin_loop();
    }
}

/// Whether fresh goroutines wait in the queue of a P other than `p` (not
/// its gifts: they are meant for its holder).
pub(super) fn others_queued(s: &Sched, p: &P) -> bool {
    (0..s.gomaxprocs()).any(|id| id != p.id && s.p(id).is_some_and(|v| !v.runq.is_empty()))
}

/// A watching idle M's look at its own wait in the eager source (`own`,
/// if it has one there), once `WATCH_POLL_NS` passed since the last
/// (`polled`, moved to `now`): whether it readied one of our goroutines
/// (onto our own queues: we are their M).
fn watch_poll_own(m: &M, own: Option<&Arc<dyn Source>>, polled: &mut i64, now: i64) -> bool {
    let Some(src) = own.filter(|_| now - *polled >= WATCH_POLL_NS) else {
        return false;
    };
    *polled = now;
    src.poll_own();
    // SAFETY: our own thread; no switch happens in here.
    let ml = unsafe { m.local() };
    ml.runnext.is_some() || !ml.runq.is_empty()
}

/// Spins up to `budget_ns` for work: our inbox, the global queue, or
/// another P's queue; and, every `WATCH_POLL_NS`, what the eager source
/// has for us if this M has a wait of its own there (no other M polls it:
/// the netpoller's per-M instance). Returns whether something turned up;
/// false at once when an M waits for a P (it gets ours).
pub(super) fn idle_spin(s: &'static Sched, m: &M, p: &P, budget_ns: i64) -> bool {
    let start = nanotime();
    let own = s.eager.get().filter(|src| src.has_own());
    let mut polled = start;
    let mut i = 0u32;
    loop {
        if m.has_inbox()
            || s.global_len.load(Ordering::Relaxed) > 0
            || p.ngifts.load(Ordering::Relaxed) > 0
        {
            return true;
        }
        if s.nmwaitp.load(Ordering::Relaxed) > 0 {
            // An M with runnable goroutines waits for a P: ours, now.
            return false;
        }
        i = i.wrapping_add(1);
        // (Every round under loom, whose clock moves 1 ms per spin.)
        if cfg!(gort_loom) || i % 64 == 0 {
            let others = others_queued(s, p);
            let now = nanotime();
            if others || now - start > budget_ns {
                return others;
            }
            if watch_poll_own(m, own, &mut polled, now) {
                return true;
            }
        }
        spin_loop();
    }
}
