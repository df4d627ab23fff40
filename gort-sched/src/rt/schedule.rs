//! The run loop (Go's `schedule`): `find_runnable` picks the next goroutine
//! (bound ones first, then the P's, the global queue's, stolen ones),
//! `execute` switches to it and handles its request when it switches back
//! (park, yield, exit); `ready_g` and `park_g` are the two halves of every
//! blocking operation.

use super::*;

/// Rounds of scheduling (Go's `schedule`): find a runnable goroutine
/// (blocking, without a P, while there is none) and run it until it parks,
/// yields or exits. Returns, without a P, only when the M leaves the
/// scheduler (`MLocal::exit_when_idle`).
pub(super) fn schedule(s: &'static Sched, m: &'static M) {
    loop {
        // SAFETY: our own thread; no switch until execute.
        let g = if unsafe { m.own_only() } {
            match find_own(s, m) {
                Some(g) => g,
                None => return,
            }
        } else {
            let g = find_runnable(s, m);
            // SAFETY: our own thread; no switch until execute.
            let ml = unsafe { m.local() };
            ml.gift_waited = false;
            let fresh = g.m.load(Ordering::Relaxed).is_null();
            let from_next = std::mem::take(&mut ml.fresh_next);
            if fresh && place_fresh(s, m, ml, g, from_next) {
                continue;
            }
            // Counting a fresh goroutine about to start (start_g counts it
            // in bound_live): an M that just started a long runner must
            // not look free.
            let load = ml.load() + u32::from(fresh);
            if load != m.load_pub.load(Ordering::Relaxed) {
                m.load_pub.store(load, Ordering::Relaxed);
            }
            g
        };
        // SAFETY: our own thread; no switch until execute.
        let ml = unsafe { m.local() };
        publish_queue_len(m, ml);
        if !ml.inherit {
            // A new time slice: sysmon's long-runner clock restarts (a plain
            // store: only the P's holder writes it), and a request to yield
            // made for the previous slice is void.
            // SAFETY: find_runnable returns holding a P.
            unsafe { &*ml.p }
                .schedtick
                .store(ml.schedtick, Ordering::Relaxed);
            clear_preempt(m);
        }
        execute(s, m, g);
    }
}

/// For `GODEBUG=schedtrace`: the M's local queue length (one relaxed load
/// of a flag otherwise).
#[inline]
fn publish_queue_len(m: &M, ml: &MLocal) {
    #[cfg(not(gort_loom))]
    if SCHEDTRACE.load(std::sync::atomic::Ordering::Relaxed) {
        let n = ml.runq.len() + usize::from(ml.runnext.is_some());
        m.nbound.store(n as u32, Ordering::Relaxed);
    }
    #[cfg(gort_loom)]
    let _ = (m, ml);
}

/// The calling thread's M-local state, if it is an M holding a P.
///
/// # Safety
/// The result must not be held across a goroutine switch (it is the M's
/// own state, which its scheduler loop also uses).
#[inline]
pub(super) unsafe fn local_with_p<'a>() -> Option<&'a mut MLocal> {
    let m = current_m();
    if m.is_null() {
        return None;
    }
    // SAFETY: current_m() is this thread's own M; the caller keeps the
    // borrow within one stretch of code without a switch.
    let ml = unsafe { (*m).local() };
    (!ml.p.is_null()).then_some(ml)
}

/// Queues a fresh or migratable G on the current P (runnext if `next`), or
/// on the global queue from a thread without a P; then wakes an M if one
/// could help.
pub(super) fn runq_put_here(s: &'static Sched, g: &'static G, next: bool) {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        // SAFETY: a P we hold is live and ours.
        let p = unsafe { &*ml.p };
        if let Err(batch) = p.runq_put(g, next) {
            global_put_batch(s, &batch);
        }
        wakep(s);
        return;
    }
    global_put_batch(s, &[g]);
    wakep(s);
}

/// Makes a parked G runnable. Called by the waker that won its park.
pub(crate) fn ready_g(g: &'static G) {
    let gr = g;
    if gr.tracked.load(std::sync::atomic::Ordering::Relaxed) {
        // A tracked park (prof.rs): runnable from now. Published to the M
        // that runs it by the hand-off below.
        gr.ready_stamp
            .store(nanotime().max(1), std::sync::atomic::Ordering::Relaxed);
    }
    if gr.migratable.load(Ordering::Relaxed) {
        // Go's goready: the waker's P runs it next.
        runq_put_here(sched(), g, true);
        return;
    }
    // Acquire pairs with the M's store before the goroutine first ran.
    let owner = gr.m.load(Ordering::Acquire);
    debug_assert!(!owner.is_null(), "a parked goroutine has an M");
    if ptr::eq(owner, current_m()) {
        // SAFETY: we are on the owner's thread; no switch in between.
        let ml = unsafe { (*owner).local() };
        if let Some(prev) = ml.runnext.replace(g) {
            ml.runq.push_back(prev);
        }
        return;
    }
    // SAFETY: Ms are immortal.
    let m = unsafe { &*owner };
    let mut head = m.inbox.load(Ordering::Relaxed);
    loop {
        gr.link.store(head, Ordering::Relaxed);
        // Release publishes the G's link (and the waker's prior writes) to
        // the M's Acquire swap in take_inbox.
        match m.inbox.compare_exchange_weak(
            head,
            ptr::from_ref(g).cast_mut(),
            Ordering::SeqCst,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    // SeqCst (in wake_m) pairs with the M's SeqCst store of in_source or
    // in_own before it re-checks its inbox: either it sees our G, or we see
    // it blocked in the source.
    wake_m(sched(), m);
}

/// Moves everything in the M's inbox to its local queue, oldest first.
pub(super) fn take_inbox(m: &M, ml: &mut MLocal) {
    // Acquire pairs with the Release CAS in ready_g.
    let mut g = m.inbox.swap(ptr::null_mut(), Ordering::Acquire);
    if g.is_null() {
        return;
    }
    let start = ml.runq.len();
    while !g.is_null() {
        // SAFETY: ready_g pushes only `&'static G`s (descriptors are never
        // freed); the G is ours now, its link published by the CAS.
        let gr: &'static G = unsafe { &*g };
        ml.runq.push_back(gr);
        g = gr.link.load(Ordering::Relaxed);
    }
    // The stack gave newest first; restore FIFO.
    ml.runq.make_contiguous()[start..].reverse();
}

/// Yields the CPU to another runnable thread, if any (`sched_yield`).
#[inline]
fn yield_cpu() {
    #[cfg(not(gort_loom))]
    std::thread::yield_now();
    #[cfg(gort_loom)]
    spin_loop();
}

/// Gives the fresh goroutine `g` (held by us, about to start here) to
/// another P if that P's holder has at least `BALANCE_MARGIN` less load
/// (`MLocal::load`, plus the gifts not taken yet; ours counts the fresh
/// goroutines queued on our P while the holder is still waking up);
/// returns whether it did (`from_next`: `g` came from our P's `runnext`).
/// The P is a random other one, held by an M that starts fresh goroutines.
/// A goroutine is given at most once: its holder takes it (`p_fresh`), or
/// an M with nothing else to do if the holder is busy for `GIFT_GRACE_NS`
/// (`reclaim_gift`), or any M once sysmon moved it to the global queue
/// after 10 ms; none gives it on. A started goroutine never leaves its M,
/// so the first placement decides the balance for good: without this,
/// whichever M happened to be awake during a spawn burst started most of
/// it (rwmutex_read's readers 7/1 in every run, tcp_echo's 200
/// goroutines 150/52 or 200/2 in some: 1.2-1.4x slower).
pub(super) fn place_fresh(
    s: &'static Sched,
    m: &M,
    ml: &mut MLocal,
    g: &'static G,
    from_next: bool,
) -> bool {
    // Counting g.
    let load = ml.load() + 1;
    // SAFETY: find_runnable returned holding a P.
    let mine = unsafe { &*ml.p };
    let n = s.gomaxprocs();
    if n < 2 || g.migratable.load(Ordering::Relaxed) {
        return false;
    }
    // Not worth a look at another P, unless a burst is queued here while an
    // M is on its way to an idle P (see below) -- and `g` is not the one
    // the spawner made last (`runnext`, `from_next`), which runs here next
    // as in Go: it is likely the spawner's partner (a waiter it is about to
    // hand a semaphore to: golang_sema's test_sema_handoff2 failed when the
    // burst rule gave it away, 59-439 direct hand-offs in 10,000).
    if load <= BALANCE_MARGIN
        && (from_next
            || s.nmspinning.load(Ordering::Relaxed) == 0
            || mine.runq.len() as u32 + load <= BALANCE_MARGIN)
    {
        return false;
    }
    // SAFETY: we hold the G (fresh, dequeued by us); the borrow ends here.
    if unsafe { g.inner() }.given {
        return false;
    }
    let id = (mine.id + 1 + fastrand(ml) as usize % (n - 1)) % n;
    let Some(p) = s.p(id) else { return false };
    if p.status.load(Ordering::Relaxed) != P_RUNNING {
        return false;
    }
    // Acquire pairs with the Release store of the P's holder (acquirep and
    // the hand-offs): the M's fields are initialised.
    let t = p.m.load(Ordering::Acquire);
    if t.is_null() || ptr::eq(t, m) {
        return false;
    }
    // SAFETY: Ms are immortal.
    let t = unsafe { &*t };
    let theirs = t.load_pub.load(Ordering::Relaxed) + p.ngifts.load(Ordering::Relaxed);
    // A burst queued here counts too while the holder is on its way to
    // the P (woken for it: 20-60 µs, a new thread up to milliseconds): its
    // goroutines may each park on the network at once (tcp_echo's
    // clients), no bound load, and we would start them all before the
    // holder is awake to steal some. An awake holder steals from our queue
    // in batches, cheaper than gifts one by one (counting the queue
    // whatever the holder does made spawn_join 1.4-1.8x slower).
    let load = if !from_next && ptr::eq(t.nextp.load(Ordering::Relaxed), p) {
        load + mine.runq.len() as u32
    } else {
        load
    };
    if !t.takes_fresh.load(Ordering::Relaxed) || load < theirs + 1 + BALANCE_MARGIN {
        return false;
    }
    {
        let mut q = p.gifts.lock();
        // Not if the P was retired meanwhile: its retirement stores the
        // new GOMAXPROCS before it takes the gifts under this lock.
        if p.id >= s.gomaxprocs() {
            return false;
        }
        // SAFETY: as above (published by the push, under the lock).
        unsafe { g.inner() }.given = true;
        q.push_back((g, nanotime()));
        // SeqCst: as a run queue put before wakep (below).
        p.ngifts.fetch_add(1, Ordering::SeqCst);
    }
    // The holder looks at its P's gifts wherever it is (scheduling, or
    // watching for work in `idle_spin`; an M holding a P never blocks);
    // if it let go of the P meanwhile, an M is woken for it.
    wakep(s);
    true
}

/// For an M with nothing else to do: a gift (`place_fresh`) that waited
/// `GIFT_GRACE_NS` on another P whose holder is busy (it runs a long
/// goroutine, or blocks in a call), or one on a P nobody holds, to start
/// here. Else `Err` with the P of the oldest younger gift for a busy
/// holder and when that gift comes of age, if there is one. Gifts for a
/// holder that is waking up (its P handed over, not taken yet) are left to
/// it however long that takes: on a machine whose CPUs are all busy it is slow to
/// wake, and starting them here would undo the balance for good. (sysmon
/// moves gifts that waited `FORCE_PREEMPT_NS` to the global queue,
/// whatever their holder does.)
fn reclaim_gift(s: &'static Sched, p: &P) -> Result<&'static G, Option<(&'static P, i64)>> {
    let mut due = None;
    let mut now = 0;
    for id in (0..s.gomaxprocs()).filter(|&id| id != p.id) {
        let Some(v) = s.p(id) else { continue };
        if v.ngifts.load(Ordering::Relaxed) == 0 {
            continue;
        }
        if v.status.load(Ordering::Relaxed) != P_RUNNING {
            // Nobody holds it (its holder let go of it since): take it
            // now, as a thief takes a queued goroutine.
            if let Some(g) = v.take_gift(i64::MAX) {
                return Ok(g);
            }
            continue;
        }
        // Acquire: as in place_fresh.
        let t = v.m.load(Ordering::Acquire);
        // SAFETY: Ms are immortal.
        if !t.is_null() && !unsafe { &*t }.nextp.load(Ordering::Relaxed).is_null() {
            continue; // its holder is waking up
        }
        if now == 0 {
            now = nanotime();
        }
        if let Some(g) = v.take_gift(now - GIFT_GRACE_NS) {
            return Ok(g);
        }
        if let Some(at) = v.oldest_gift() {
            let d = at + GIFT_GRACE_NS;
            if due.is_none_or(|(_, x)| d < x) {
                due = Some((v, d));
            }
        }
    }
    Err(due)
}

/// Watches, until `due` or until `v` (the P of the gift we wait for) has
/// no gifts left, for work of our own (inbox, global queue, gifts to our
/// P), fresh goroutines queued on other Ps, a source deadline or an M
/// waiting for a P, giving the CPU away meanwhile (the busy holder of the
/// gift may be short of one). A spinning caller stays counted: it does
/// look at the other Ps' queues, as a spinning M does.
fn wait_for_gift(s: &'static Sched, m: &M, p: &P, v: &P, due: i64) {
    loop {
        let now = nanotime();
        if now >= due
            || v.ngifts.load(Ordering::Relaxed) == 0
            || m.has_inbox()
            || s.global_len.load(Ordering::Relaxed) > 0
            || p.ngifts.load(Ordering::Relaxed) > 0
            || s.nmwaitp.load(Ordering::Relaxed) > 0
            || s.next_deadline.load(Ordering::Relaxed) <= now
            || others_queued(s, p)
        {
            return;
        }
        yield_cpu();
    }
}

pub(super) fn fastrand(ml: &mut MLocal) -> u32 {
    let mut x = ml.rand;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ml.rand = x;
    x
}

/// Returns the next goroutine for this M to run. Blocks (giving up the P)
/// when there is none. On return the M holds a P. Not for an own-only M
/// (`schedule` sends it to `find_own`; only a goroutine running on the M
/// can make it own-only, so it stays what it was during the search).
pub(super) fn find_runnable(s: &'static Sched, m: &'static M) -> &'static G {
    loop {
        // SAFETY: our own thread; no switch happens inside this function.
        let ml = unsafe { m.local() };
        // SAFETY: we hold a P here.
        let p: &'static P = unsafe { &*ml.p };
        ml.schedtick = ml.schedtick.wrapping_add(1);
        ml.inherit = false;

        if p.id >= s.gomaxprocs() {
            retire_p(s, m, p);
            continue;
        }
        // Another M waits for a P (its bound goroutines are runnable, or its
        // goroutine is back from a blocking call): hand ours over after a
        // quantum of schedules, or at once when the goroutine just switched
        // out used up its time slice (sysmon's request).
        if s.nmwaitp.load(Ordering::Relaxed) > 0
            && (ml.schedtick.wrapping_sub(ml.ptick) > P_QUANTUM || ml.preempted)
            && handoff_to_waiting_m(s, m, p)
        {
            continue;
        }
        check_deadline(s);
        every_so_often_poll(s, ml.schedtick);
        // Sources may have readied goroutines of this M, through ready_g's
        // own borrow of the M-local state: take ours afresh.
        // SAFETY: our own thread; no switch happens inside this function.
        let ml = unsafe { m.local() };
        if ml.schedtick % 256 == 0 && compaction_due(ml) {
            // Holding a P: bound the pause for runnable goroutines.
            compact_pass(ml, COMPACT_BUSY_MAX);
        }

        if let Some(g) = local_work(s, m, ml, p) {
            stop_spinning(s, ml);
            return g;
        }
        if let Some(g) = global_get(s, p, 0) {
            stop_spinning(s, ml);
            ml.fresh_found = true;
            return g;
        }

        // Nothing here: steal fresh goroutines from other Ps.
        if !ml.spinning {
            let busy = s
                .gomaxprocs()
                .saturating_sub(s.npidle.load(Ordering::Relaxed));
            if 2 * s.nmspinning.load(Ordering::Relaxed) < busy {
                ml.spinning = true;
                s.nmspinning.fetch_add(1, Ordering::SeqCst);
            }
        }
        if ml.spinning {
            if let Some(g) = steal_work(s, ml, p) {
                stop_spinning(s, ml);
                ml.fresh_found = true;
                return g;
            }
        }

        // Nothing to steal either: ask the network poller before idling.
        // Goroutines waiting on sockets are readied only by whoever polls.
        // (Go's findRunnable polls before stealing; here a spinning M steals
        // first, which keeps the poll off the busy path.) What it readies
        // for this M lands in our own queues; it returns at once when
        // nobody waits on a descriptor.
        if let Some(src) = s.eager.get() {
            let now = nanotime();
            s.last_poll.store(now, Ordering::Relaxed);
            src.poll(now);
            // As above: the poll may have readied our goroutines.
            // SAFETY: our own thread; no switch happens inside this function.
            let ml = unsafe { m.local() };
            if m.has_inbox() || ml.runnext.is_some() || !ml.runq.is_empty() {
                continue;
            }
        }
        // SAFETY: as above.
        let ml = unsafe { m.local() };

        // Our own goroutines may be readied from another thread any moment
        // (a ping-pong across Ms), or more fresh ones queued (a spawner on
        // another M): watch for them a while before giving up the P.
        let worthy = ml.spin_worthy();
        if worthy.is_some_and(|ns| idle_spin(s, m, p, ns)) {
            continue;
        }
        // The watch gave up because an M waits for our P: watch on without
        // it (`stopm`).
        let watch_on = worthy == Some(IDLE_SPIN_NS) && s.nmwaitp.load(Ordering::Relaxed) > 0;
        if poll_sources(s) {
            continue;
        }
        // SAFETY: as above.
        let ml = unsafe { m.local() };
        match reclaim_gift(s, p) {
            Ok(g) => {
                stop_spinning(s, ml);
                ml.fresh_found = true;
                return g;
            }
            // A gift for a busy holder comes of age soon: wait for it
            // (once per idle spell: a stream of gifts that their holder
            // takes in time must not keep us here), then look again.
            Err(Some((v, due))) if !std::mem::replace(&mut ml.gift_waited, true) => {
                wait_for_gift(s, m, p, v, due);
            }
            Err(_) => release_and_sleep(s, m, watch_on),
        }
    }
}

/// A busy M polls its own wait in the eager source (the netpoller's
/// per-M instance) every `POLL_TICKS` schedules: events for its goroutines
/// arrive there, which no other M harvests, and must not wait until it
/// runs out of work.
#[inline]
fn every_so_often_poll(s: &'static Sched, schedtick: u32) {
    if schedtick % POLL_TICKS == 0 {
        if let Some(src) = s.eager.get() {
            src.poll_own();
        }
    }
}

/// Bound goroutines of this M, then the P's fresh ones, with the fairness
/// rules from the crate docs.
#[inline]
pub(super) fn local_work(
    s: &'static Sched,
    m: &M,
    ml: &mut MLocal,
    p: &'static P,
) -> Option<&'static G> {
    if m.has_inbox() {
        take_inbox(m, ml);
    }
    // Every 61st schedule, the global queue goes first (Go's fairness rule).
    // Right after a goroutine yielded to a preemption request, so do the
    // global queue and then the P's fresh goroutines (Go queues a preempted
    // goroutine on the global queue, behind the waiting ones; a bound one
    // cannot go there, so it waits at the back of its M's queue) -- unless
    // another M is free to run them. A fresh goroutine can run on any M; the
    // yielder only on this one. Running a fresh one here would bind it to
    // this M for good, and one that never reaches a preemption point (a
    // spinner waiting for the yielder, say) would strand the yielder behind
    // it while other Ps idle. Then they are left to the free Ms (woken if
    // asleep) and this M goes on with its own.
    let preempted = std::mem::take(&mut ml.preempted);
    let take_fresh = preempted && !others_free(s);
    if preempted && !take_fresh && fresh_queued(s, p) {
        wakep(s);
    }
    if ml.schedtick % 61 == 0 || take_fresh {
        if let Some(g) = global_get(s, p, 1) {
            return Some(g);
        }
    }
    if take_fresh {
        if let Some(g) = p_fresh(p, ml) {
            return Some(g);
        }
    }
    ml.inherit = false;
    if let Some(g) = ml.runnext.take() {
        // Go's time-slice inheritance: `runnext` jumps the line, inheriting
        // the slice, until sysmon says the slice (10 ms) is used up.
        if !m.preempt.load(Ordering::Relaxed) {
            ml.inherit = true;
            return Some(g);
        }
        // Used up: it goes behind everything else (Go puts a preempted G
        // on the global queue), fresh goroutines of the P first unless a
        // free M can take them (as above).
        ml.runq.push_back(g);
        if !others_free(s) {
            if let Some(g) = p_fresh(p, ml) {
                return Some(g);
            }
        } else if fresh_queued(s, p) {
            wakep(s);
        }
        return ml.runq.pop_front();
    }
    if ml.schedtick & 1 == 0 || preempted {
        if let Some(g) = ml.runq.pop_front() {
            return Some(g);
        }
        p_fresh(p, ml)
    } else {
        if let Some(g) = p_fresh(p, ml) {
            return Some(g);
        }
        ml.runq.pop_front()
    }
}

/// The P's next fresh goroutine: a gift (`place_fresh`: meant for this P)
/// or one from the P's queue, each first for two schedules in four (so
/// that neither starves the other; bit 0 of the tick already orders bound
/// and fresh work in `local_work`).
#[inline]
fn p_fresh(p: &P, ml: &mut MLocal) -> Option<&'static G> {
    let queued = |ml: &mut MLocal| {
        p.runq_get_next().map(|(g, next)| {
            ml.fresh_next = next;
            g
        })
    };
    ml.fresh_next = false;
    if ml.schedtick & 2 == 0 {
        p.take_gift(i64::MAX).or_else(|| queued(ml))
    } else {
        queued(ml).or_else(|| p.take_gift(i64::MAX))
    }
}

/// `find_runnable` for an M that runs only its own goroutines (one of them
/// is locked to the thread, or the M leaves once they are done): Go's
/// locked M. It never takes a fresh goroutine. When it has nothing to run
/// it gives its P away at once -- unless nobody wants it: then it watches
/// its inbox for `IDLE_SPIN_NS` first (a locked goroutine woken right away
/// keeps the P; Go's locked M always hands it off, at the cost of two
/// thread wake-ups per round trip). Returns None, without a P, when the M
/// should leave the scheduler (nothing bound to it any more).
pub(super) fn find_own(s: &'static Sched, m: &'static M) -> Option<&'static G> {
    loop {
        // SAFETY: our own thread; no switch happens inside this function.
        let ml = unsafe { m.local() };
        // First: an M with nothing bound to it any more leaves (before any
        // path below that may put it to sleep: `stopm` returns at once for
        // it, without a P, and we come back here).
        // SAFETY: as above.
        if unsafe { m.done() } {
            if !ml.p.is_null() {
                // SAFETY: we hold it.
                give_p_away(s, m, unsafe { &*ml.p });
            }
            return None;
        }
        // SAFETY: we hold a P here (stopm returned with one, or we are done).
        let p: &'static P = unsafe { &*ml.p };
        ml.schedtick = ml.schedtick.wrapping_add(1);
        ml.inherit = false;
        if p.id >= s.gomaxprocs() {
            retire_p(s, m, p);
            continue;
        }
        if s.nmwaitp.load(Ordering::Relaxed) > 0
            && (ml.schedtick.wrapping_sub(ml.ptick) > P_QUANTUM || ml.preempted || ml.yielded)
            && handoff_to_waiting_m(s, m, p)
        {
            continue;
        }
        check_deadline(s);
        every_so_often_poll(s, ml.schedtick);
        // SAFETY: as above (sources may have readied our goroutines).
        let ml = unsafe { m.local() };
        if m.has_inbox() {
            take_inbox(m, ml);
        }
        // The goroutine just switched out yielded (gosched, or sysmon's
        // request), or a `runnext` chain used up its time slice (sysmon's
        // request, pending): fresh goroutines waiting for a P go first --
        // to a free M, or else to this P, handed to an M that runs them
        // while we wait for a P (Go: a locked M's Gosched hands its P off).
        let yielded = std::mem::take(&mut ml.preempted) | std::mem::take(&mut ml.yielded);
        let slice_over = m.preempt.load(Ordering::Relaxed);
        let runnable = ml.runnext.is_some() || !ml.runq.is_empty();
        if runnable && (yielded || slice_over) && fresh_queued(s, p) {
            if !others_free(s) {
                give_p_away(s, m, p);
                stopm(s, m);
                continue;
            }
            wakep(s);
        }
        if let Some(g) = ml.runnext.take() {
            // Time-slice inheritance as in `local_work`: sysmon sees a
            // ping-ponging pair as one long runner and asks it to yield;
            // then the rest of our queue goes first.
            if !slice_over {
                ml.inherit = true;
                return Some(g);
            }
            ml.runq.push_back(g);
        }
        if let Some(g) = ml.runq.pop_front() {
            return Some(g);
        }
        let worthy = ml.spin_worthy();
        if worthy.is_some_and(|ns| !p_wanted(s, p) && own_spin(s, m, p, ns)) {
            continue;
        }
        // As in find_runnable: the P is wanted, watch on without it.
        let watch_on = worthy == Some(IDLE_SPIN_NS) && p_wanted(s, p);
        give_p_away(s, m, p);
        stopm_watching(s, m, watch_on);
    }
}

/// Whether someone needs `p` more than an M that has nothing to run: fresh
/// goroutines wait on it or globally, or an M waits for a P.
#[inline]
fn p_wanted(s: &Sched, p: &P) -> bool {
    fresh_queued(s, p) || s.nmwaitp.load(Ordering::Relaxed) > 0
}

/// An own-only M's short watch of its inbox while it keeps its P: true if
/// one of its goroutines was readied, false once `budget_ns` passed or
/// someone else wants the P.
fn own_spin(s: &Sched, m: &M, p: &P, budget_ns: i64) -> bool {
    let start = nanotime();
    let mut i = 0u32;
    loop {
        if m.has_inbox() {
            return true;
        }
        i = i.wrapping_add(1);
        // (Every round under loom, whose clock moves 1 ms per spin.)
        if (cfg!(gort_loom) || i % 64 == 0) && (p_wanted(s, p) || nanotime() - start > budget_ns) {
            return false;
        }
        spin_loop();
    }
}

/// Whether another M could run a fresh goroutine now: a P is idle (an M can
/// be woken for it) or an M is already looking for work.
#[inline]
fn others_free(s: &Sched) -> bool {
    s.npidle.load(Ordering::Relaxed) > 0 || s.nmspinning.load(Ordering::Relaxed) > 0
}

/// Whether fresh goroutines wait on `p` or the global queue (racy looks).
#[inline]
fn fresh_queued(s: &Sched, p: &P) -> bool {
    p.has_fresh() || s.global_len.load(Ordering::Relaxed) > 0
}

pub(super) fn steal_work(s: &'static Sched, ml: &mut MLocal, p: &P) -> Option<&'static G> {
    let n = s.gomaxprocs();
    for round in 0..4 {
        let start = fastrand(ml) as usize % n.max(1);
        for i in 0..n {
            let id = (start + i) % n;
            if id == p.id {
                continue;
            }
            let Some(v) = s.p(id) else { continue };
            if let Some(g) = v.runq_steal(p, round == 3) {
                return Some(g);
            }
        }
        if let Some(g) = global_get(s, p, 0) {
            return Some(g);
        }
    }
    None
}
