//! M: one OS thread running goroutines; its owner-only state (`MLocal`),
//! the thread-local "which M, which G" record, and the M lifecycle
//! (`newm`, `mstart`, `acquirep`).

use super::*;

/// A machine: one OS thread running goroutines. Ms are never freed.
pub(crate) struct M {
    /// M number (1, 2, ...: the thread is named `gort-m<id>`).
    pub(super) id: u64,
    /// The M sleeps on this when idle; wakers unpark it.
    pub(super) parker: Parker,
    /// Bound goroutines readied by other threads: a Treiber stack that the
    /// M takes whole (swap) and reverses. Pushed with Release CAS, taken
    /// with an Acquire swap.
    pub(super) inbox: AtomicPtr<G>,
    /// A P handed to this M while it sleeps (by startm or a P hand-off);
    /// stored under the scheduler lock, taken by the M (Acquire swap).
    pub(super) nextp: AtomicPtr<P>,
    /// Whether the M handed `nextp` should start out spinning.
    pub(super) start_spinning: AtomicBool,
    /// True while the M blocks inside a source's wait; wakers of its bound
    /// goroutines then also call the source's wake. SeqCst with the inbox
    /// check (a Dekker pair).
    pub(super) in_source: AtomicBool,
    /// True while the M blocks in its own wait in the eager source
    /// ([`Source::block_own`]: its epoll instance); wakers then also call
    /// [`Source::wake_own`]. SeqCst, as `in_source`.
    pub(super) in_own: AtomicBool,
    /// Set by sysmon when the goroutine running here has run 10 ms without
    /// switching; honoured (cleared, and the goroutine yields) at its next
    /// preemption point, cleared at every switch.
    pub(crate) preempt: AtomicBool,
    /// Bound goroutines in the M's local queue (runnext included) at its
    /// last schedule, published only while schedtrace is on.
    pub(super) nbound: AtomicU32,
    /// For the placement of fresh goroutines (`place_fresh`): the M's load
    /// (`MLocal::load`) as of its last schedule, stored only when it
    /// changed (the line stays shared while the load does not move) ...
    pub(super) load_pub: AtomicU32,
    /// ... and whether it starts fresh goroutines (false while it runs only
    /// its own: `own_only`). A hint: a gift on the P of an own-only M goes
    /// to another M anyway (`find_own` gives the P away for fresh work).
    pub(super) takes_fresh: AtomicBool,
    /// Scheduling latencies of the tracked goroutines this M ran, and the
    /// tracked mutex waits they ended (prof.rs): written by the M only
    /// (loads and stores), read by metrics.
    pub(super) latencies: crate::prof_types::TimeHistogram,
    pub(super) mutex_wait_ns: std::sync::atomic::AtomicU64,
    /// Owner-thread-only scheduling state.
    pub(super) local: UnsafeCell<MLocal>,
}

pub(super) struct MLocal {
    pub(super) p: *const P,
    /// The P this M held when its goroutine entered `syscall` (`p` is null
    /// meanwhile, so that nothing run inside the call uses the P, which
    /// sysmon may hand to another M).
    pub(super) syscall_p: *const P,
    /// Bound goroutine readied on this thread, to run next.
    pub(super) runnext: Option<&'static G>,
    /// Bound goroutines ready to resume on this M.
    pub(super) runq: VecDeque<&'static G>,
    pub(super) spinning: bool,
    pub(super) schedtick: u32,
    /// `schedtick` when the current P was acquired.
    pub(super) ptick: u32,
    /// Whether the goroutine about to run came from `runnext` and inherits
    /// the current time slice (Go's `inheritTime`): the P's schedule tick
    /// does not move, so sysmon sees a ping-ponging pair as one long runner
    /// after 10 ms and asks it to yield.
    pub(super) inherit: bool,
    /// The goroutine just switched out yielded to sysmon's request: other
    /// queues go first at the next schedule.
    pub(super) preempted: bool,
    /// Started, unfinished goroutines bound to this M (they may be readied
    /// from other threads at any time).
    pub(super) bound_live: usize,
    /// Of those, the ones parked on the network or in a sleep (`IoWait`,
    /// `Sleep`): usually a poll of the sources readies them, which an M
    /// spinning for its own goroutines does not do (`spin_worthy`).
    pub(super) quiet_parked: usize,
    /// A goroutine of this M parked for another reason (a channel, a lock)
    /// resumed since the M last went idle (`spin_worthy`).
    pub(super) sync_resumed: bool,
    /// The M took a fresh goroutine from the global queue or another P
    /// since it last went idle (`spin_worthy`).
    pub(super) fresh_found: bool,
    /// The M waited for a gift to come of age since it last found work
    /// (`reclaim_gift`).
    pub(super) gift_waited: bool,
    /// The fresh goroutine just taken from the P came from its `runnext`
    /// (`p_fresh`; for `place_fresh`).
    pub(super) fresh_next: bool,
    /// A goroutine of this M parked on the network resumed since the M
    /// last went idle (`spin_worthy`).
    pub(super) quiet_resumed: bool,
    /// Goroutines bound here whose `lock_os_thread` count is above zero.
    /// While any is, the M starts no fresh goroutine (`find_own`).
    pub(super) nlocked: u32,
    /// The M leaves the scheduler once it has no bound goroutine left,
    /// starting none meanwhile: a locked goroutine ended while locked (its
    /// thread may be tainted: Go kills it), or the M borrows the caller's
    /// thread (`run_on_this_thread`), which goes back to the caller.
    pub(super) exit_when_idle: bool,
    /// The goroutine just switched out of an own-only M yielded (`gosched`,
    /// or a preemption request): fresh goroutines waiting for a P get this
    /// M's (`find_own`), as Go's locked M hands its P off on `Gosched`.
    pub(super) yielded: bool,
    /// Parked goroutines to consider for stack compaction, with their goid
    /// when queued (a finished G's goid is zeroed, so stale entries are
    /// recognised without touching a recycled descriptor).
    pub(super) cands: VecDeque<(&'static G, u64)>,
    /// Compaction pass number and the time of the last pass.
    pub(super) pass: u32,
    pub(super) last_pass: i64,
    pub(super) rand: u32,
    /// The block profile's stack buffer, reused (prof.rs).
    pub(super) walk_buf: Vec<usize>,
    /// Where the goroutine that switched out with `Req::Walk` wants its
    /// return addresses (a vector in its frame): set by that goroutine,
    /// running on this M's thread, just before it switches out; read by
    /// the M right after (profile.rs).
    pub(super) walk_out: *mut Vec<usize>,
}

// SAFETY: `local` is only touched by the M's own thread; the rest is atomic.
unsafe impl Sync for M {}

// SAFETY: as above.
unsafe impl Send for M {}

impl M {
    /// # Safety
    /// Only the M's own thread may call this, and must not hold the result
    /// across a goroutine switch.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn local(&self) -> &mut MLocal {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.local.get() }
    }

    /// Whether the M runs only goroutines already bound to it (see
    /// `MLocal::nlocked` and `MLocal::exit_when_idle`).
    ///
    /// # Safety
    /// As for [`M::local`].
    pub(super) unsafe fn own_only(&self) -> bool {
        // SAFETY: forwarded to the caller.
        let ml = unsafe { self.local() };
        ml.nlocked > 0 || ml.exit_when_idle
    }

    /// Whether the M is to leave the scheduler now: it leaves when idle and
    /// nothing is bound to it or queued on it (a fresh goroutine queued on
    /// a starting `run_on_this_thread` M is not bound yet).
    ///
    /// # Safety
    /// As for [`M::local`].
    pub(super) unsafe fn done(&self) -> bool {
        // SAFETY: forwarded to the caller.
        let ml = unsafe { self.local() };
        ml.exit_when_idle && ml.bound_live == 0 && ml.runnext.is_none() && ml.runq.is_empty()
    }

    /// Publishes whether the M starts fresh goroutines, after its own-only
    /// state (`ml`: its local state) changed (see `takes_fresh`).
    pub(super) fn publish_takes_fresh(&self, ml: &MLocal) {
        let takes = ml.nlocked == 0 && !ml.exit_when_idle;
        if self.takes_fresh.load(Ordering::Relaxed) != takes {
            self.takes_fresh.store(takes, Ordering::Relaxed);
        }
    }

    pub(super) fn has_inbox(&self) -> bool {
        !self.inbox.load(Ordering::Acquire).is_null()
    }
}

// Thread-local state. Read through non-inlined functions, so that code on a
// migratable goroutine never uses a TLS address cached from another thread.

/// This thread's M and the goroutine it runs, in one thread-local so that
/// code that needs both pays for one TLS lookup.
pub(super) struct Cur {
    pub(super) m: Cell<*const M>,
    pub(super) g: Cell<Option<&'static G>>,
    /// The goroutine inside `syscall` (then `g` is None: it acts as a plain
    /// thread), for what stays per goroutine (goroutine-locals).
    pub(super) sys: Cell<Option<&'static G>>,
}

// Right across a park: it says which M this thread is and which goroutine it
// runs *now*, set by the M at every switch; read through non-inlined
// functions so no goroutine keeps a stale address of it across a switch.
cfg_not_loom! {
    thread_local! {
        static CUR: Cur = const {
            Cur {
                m: Cell::new(ptr::null()),
                g: Cell::new(None),
                sys: Cell::new(None),
            }
        };
    }
}

// Under loom every model thread runs on one OS thread: loom's thread-local,
// one per model thread (each M is a loom thread). No goroutine switch exists
// under loom (rt/model.rs), so no two goroutines share an M's entry.
cfg_loom! {
    loom::thread_local! {
        static CUR: Cur = Cur {
            m: Cell::new(ptr::null()),
            g: Cell::new(None),
            sys: Cell::new(None),
        };
    }
}

#[inline(never)]
pub(super) fn current_m() -> *const M {
    CUR.with(|c| c.m.get())
}

/// The calling thread's M number, if it is an M.
pub(crate) fn current_m_id() -> Option<u64> {
    let m = current_m();
    // SAFETY: Ms are immortal.
    (!m.is_null()).then(|| unsafe { (*m).id })
}

/// The running goroutine; None on a plain thread (or an M's own stack).
#[inline(never)]
pub(crate) fn current_g() -> Option<&'static G> {
    CUR.with(|c| c.g.get())
}

/// Whether the calling thread is an M (runs goroutines).
pub(crate) fn on_m() -> bool {
    !current_m().is_null()
}

/// Both at once.
#[inline(never)]
pub(super) fn current() -> (*const M, Option<&'static G>) {
    CUR.with(|c| (c.m.get(), c.g.get()))
}

pub(super) fn set_current_g(g: Option<&'static G>) {
    CUR.with(|c| c.g.set(g));
}

/// The running goroutine, also while it is inside `syscall` (for state
/// that belongs to the goroutine whatever it does: goroutine-locals).
#[inline(never)]
pub(crate) fn current_g_any() -> Option<&'static G> {
    CUR.with(|c| c.g.get().or(c.sys.get()))
}

pub(super) fn set_syscall_g(g: Option<&'static G>) {
    CUR.with(|c| c.sys.set(g));
}

impl M {
    /// M number `id`, to be handed `nextp` (may be null) when it starts.
    pub(super) fn new(id: u64, nextp: *const P, spinning: bool) -> M {
        M {
            id,
            parker: Parker::new(),
            inbox: AtomicPtr::new(ptr::null_mut()),
            nextp: AtomicPtr::new(nextp.cast_mut()),
            start_spinning: AtomicBool::new(spinning),
            in_source: AtomicBool::new(false),
            in_own: AtomicBool::new(false),
            preempt: AtomicBool::new(false),
            nbound: AtomicU32::new(0),
            load_pub: AtomicU32::new(0),
            takes_fresh: AtomicBool::new(true),
            latencies: crate::prof_types::TimeHistogram::new(),
            mutex_wait_ns: std::sync::atomic::AtomicU64::new(0),
            local: UnsafeCell::new(MLocal::new(id)),
        }
    }
}

impl MLocal {
    /// How long an idle M with goroutines of its own should watch for work
    /// before it sleeps, if at all (decided once per idle spell: it
    /// consumes the flags), from what the recent past says about the next
    /// wake-up:
    /// * `IDLE_SPIN_NS` if one of its goroutines is parked on something
    ///   another goroutine may release any moment (a channel, a lock) and
    ///   such a park of this M ended since it was last idle (a ping-pong
    ///   across Ms; a goroutine parked for good, like an idle worker or
    ///   the finalizer goroutine, is no reason);
    /// * `QUIET_SPIN_NS` if only network parks ended since (a sleep's end
    ///   is known in advance: no watch for it), or it took a fresh
    ///   goroutine from another P or the global queue. Network parks are
    ///   ended by whichever M polls, often within a few µs (a loopback
    ///   exchange between goroutines of two Ms: without the watch each
    ///   reply cost a futex wake-up, and tcp_conns_ms took over twice as
    ///   long), but the watch does not poll and the wake-up may come from
    ///   another process that needs the CPU (wrk on the HTTP example on 2
    ///   cores: 50 µs watches were 17% of the server's CPU).
    pub(super) fn spin_worthy(&mut self) -> Option<i64> {
        debug_assert!(self.quiet_parked <= self.bound_live);
        if cfg!(gort_loom) {
            // The models' stand-in for `execute` notes no resumes: watch
            // whenever a goroutine of ours is parked, so that they explore
            // the watches racing the wakes.
            return (self.bound_live > 0).then_some(IDLE_SPIN_NS);
        }
        let sync = std::mem::take(&mut self.sync_resumed);
        let quiet = std::mem::take(&mut self.quiet_resumed);
        let fresh = std::mem::take(&mut self.fresh_found);
        if sync && self.bound_live > self.quiet_parked {
            Some(IDLE_SPIN_NS)
        } else if (quiet || fresh) && self.bound_live > 0 {
            Some(QUIET_SPIN_NS)
        } else {
            None
        }
    }

    /// The goroutines bound here that compete for the M's time: running,
    /// runnable, or parked on another goroutine (a channel, a lock). Those
    /// parked on the network or a timer are not counted: ten thousand idle
    /// connections are no load (`place_fresh` balances this).
    pub(super) fn load(&self) -> u32 {
        debug_assert!(self.quiet_parked <= self.bound_live);
        (self.bound_live - self.quiet_parked) as u32
    }

    fn new(id: u64) -> MLocal {
        MLocal {
            walk_buf: Vec::new(),
            walk_out: ptr::null_mut(),
            p: ptr::null(),
            syscall_p: ptr::null(),
            runnext: None,
            runq: VecDeque::new(),
            spinning: false,
            schedtick: 0,
            ptick: 0,
            inherit: false,
            preempted: false,
            bound_live: 0,
            quiet_parked: 0,
            sync_resumed: false,
            fresh_found: false,
            gift_waited: false,
            fresh_next: false,
            quiet_resumed: false,
            nlocked: 0,
            exit_when_idle: false,
            yielded: false,
            cands: VecDeque::new(),
            pass: 0,
            last_pass: 0,
            rand: (id as u32).wrapping_mul(0x9E37_79B9) | 1,
        }
    }
}

pub(super) fn newm(s: &'static Sched, p: &'static P, spinning: bool) {
    let m = alloc_m(s, p);
    // The P's holder from now (see run_p_on_idle_m).
    p.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
    m.start_spinning.store(spinning, Ordering::Relaxed);
    start_thread(s, m);
}

/// A new M, on `allm`, to be handed `nextp` (may be null) when it starts:
/// one that left the scheduler (`mfree`: a locked goroutine's thread that
/// exited, a `run_on_this_thread` caller gone back), or a fresh one.
fn alloc_m(s: &'static Sched, nextp: *const P) -> &'static M {
    let reused = s.mfree.lock().pop();
    let m = match reused {
        Some(m) => {
            // Nobody reaches a left M (see leave_sched): only its atomics
            // need resetting, and its local state, which we own now.
            debug_assert!(!m.has_inbox(), "a left M had goroutines readied to it");
            m.nextp.store(nextp.cast_mut(), Ordering::Relaxed);
            m.start_spinning.store(false, Ordering::Relaxed);
            m.in_source.store(false, Ordering::Relaxed);
            m.in_own.store(false, Ordering::Relaxed);
            m.nbound.store(0, Ordering::Relaxed);
            m.load_pub.store(0, Ordering::Relaxed);
            // A request sysmon made through a stale `p.m` after it left.
            clear_preempt(m);
            // SAFETY: the M has no thread: its local state is ours.
            let ml = unsafe { &mut *m.local.get() };
            *ml = MLocal::new(m.id);
            m.publish_takes_fresh(ml);
            m
        }
        None => {
            let id = s.mid_gen.fetch_add(1, Ordering::Relaxed) + 1;
            Box::leak(Box::new(M::new(id, nextp, false)))
        }
    };
    s.allm.lock().push(m);
    m
}

fn start_thread(s: &'static Sched, m: &'static M) {
    let id = m.id;
    let r = crate::loom::spawn_m(format!("gort-m{id}"), move || mstart(s, m));
    if let Err(e) = r {
        fatal(&format!(
            "runtime: failed to create new OS thread for M{id}: {e}"
        ));
    }
}

/// An M that runs only `g` (a fresh goroutine, not yet queued anywhere,
/// whose lock count is already 1): `Builder::lock_os_thread`, Go's
/// `newm` for a goroutine that calls `LockOSThread` first thing. The
/// thread starts without a P and takes one when one is idle, or waits for
/// one (`mwaitp`).
pub(super) fn newm_locked(s: &'static Sched, g: &'static G) {
    let m = alloc_m(s, ptr::null());
    // SAFETY: the M's thread has not started: nobody else touches its state.
    let ml = unsafe { m.local() };
    ml.nlocked = 1;
    ml.runq.push_back(g);
    m.publish_takes_fresh(ml);
    start_thread(s, m);
}

/// A new M for `g`, a started goroutine switched out of another M
/// (`relocate`): bound to the new M before its thread starts, locked to
/// it, resumed by it.
pub(super) fn newm_relocated(s: &'static Sched, g: &'static G) {
    let m = alloc_m(s, ptr::null());
    // SAFETY: the M's thread has not started: nobody else touches its state.
    let ml = unsafe { m.local() };
    ml.nlocked = 1;
    ml.bound_live = 1;
    ml.runq.push_back(g);
    m.publish_takes_fresh(ml);
    // Release: published to wakers (who read `m` after winning a park) by
    // the goroutine's later parks; the thread start orders it for the M.
    g.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
    start_thread(s, m);
}

/// Makes `m` the calling thread's M.
pub(super) fn set_current_m(m: &'static M) {
    CUR.with(|c| c.m.set(m));
}

/// An M thread's body: run goroutines until the M leaves the scheduler
/// (only an M whose locked goroutine ended while locked does), then let
/// the thread exit.
pub(super) fn mstart(s: &'static Sched, m: &'static M) {
    set_current_m(m);
    // CPU profile samples of the scheduler's own code walk this stack.
    #[cfg(not(gort_loom))]
    gort_os::cpuprof::register_thread_stack();
    // SAFETY: this is m's thread.
    let ml = unsafe { m.local() };
    let p = m.nextp.swap(ptr::null_mut(), Ordering::Acquire);
    if p.is_null() {
        // A locked goroutine's M: it has work; take a P when it can.
        stopm(s, m);
    } else {
        // SAFETY: newm gave us a live P.
        acquirep(m, ml, unsafe { &*p });
        ml.spinning = m.start_spinning.swap(false, Ordering::Relaxed);
    }
    schedule(s, m);
    leave_sched(s, m);
}

/// The M has left its schedule loop (without a P, nothing bound to it):
/// forget it, so that the deadlock check and schedtrace count only live
/// threads, and keep it for reuse (`alloc_m`). Nobody can reach it any
/// more: no goroutine is bound to it, it is on no idle list.
pub(super) fn leave_sched(s: &'static Sched, m: &'static M) {
    // A request sysmon made of its last goroutine would never be honoured,
    // and would keep every preemption point on its slow path.
    clear_preempt(m);
    // Cumulative metrics must not go backwards: its counts join the
    // departed Ms' totals, and it is reused empty.
    #[cfg(not(gort_loom))]
    fold_m_counts(m);
    s.allm.lock().retain(|x| !ptr::eq(*x, m));
    CUR.with(|c| c.m.set(ptr::null()));
    // Reusable once its thread stops touching it, which is now (a locked
    // thread exits; the caller of run_on_this_thread is a plain thread
    // again). Ms are never freed, so a stale pointer to it (a late unpark
    // of its parker, a sysmon look at `p.m`) stays harmless.
    s.mfree.lock().push(m);
}

cfg_not_loom! {
/// Runs the fresh goroutine `g` on the calling thread, which becomes an M
/// that runs nothing else, until `g` (and anything bound here: nothing
/// else can be) has finished; the thread is then a plain thread again.
pub(crate) fn run_on_this_thread(s: &'static Sched, g: &'static G) {
    gort_os::cpuprof::register_thread_stack();
    assert!(
        current_m().is_null(),
        "gort::run_on_this_thread called on a thread that runs goroutines"
    );
    let m = alloc_m(s, ptr::null());
    {
        // SAFETY: the M is not published to any thread but ours.
        let ml = unsafe { m.local() };
        ml.exit_when_idle = true;
        ml.runq.push_back(g);
        m.publish_takes_fresh(ml);
    }
    set_current_m(m);
    stopm(s, m);
    schedule(s, m);
    leave_sched(s, m);
}
}

pub(super) fn acquirep(m: &'static M, ml: &mut MLocal, p: &'static P) {
    p.status.store(P_RUNNING, Ordering::Relaxed);
    p.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
    ml.p = p;
    ml.ptick = ml.schedtick;
}
