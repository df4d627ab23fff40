//! The scheduler singleton (Go's `schedt`): idle Ps and Ms, the global run
//! queue, counters, start-up with a validated configuration, and
//! `num_goroutine`.

use super::*;

pub(super) struct Idle {
    /// Idle Ps.
    pub(super) pidle: Vec<&'static P>,
    /// Idle Ms with no bound work.
    pub(super) midle: Vec<&'static M>,
    /// Ms with runnable bound goroutines waiting for a P, FIFO.
    pub(super) mwaitp: VecDeque<&'static M>,
    /// Idle Ms that run only their own goroutines (`find_own`): asleep
    /// until one of them is readied, never handed a P for fresh work.
    pub(super) mown: Vec<&'static M>,
}

/// The global run queue: G references in a ring buffer, so that taking a
/// batch reads contiguous memory instead of chasing links through cold Gs.
pub(super) struct GQueue(VecDeque<&'static G>);

pub(crate) struct Sched {
    /// P descriptors by id; slots fill as gomaxprocs grows and are never
    /// cleared (a shrunk P is P_DEAD and reused when it grows again).
    pub(super) allp: Box<[AtomicPtr<P>]>,
    /// GOMAXPROCS. Written under `idle`; read racily by everyone.
    pub(super) nprocs: AtomicUsize,
    pub(super) idle: Mutex<Idle>,
    /// Mirrors `idle.pidle.len()`, for lock-free checks in wakep.
    pub(super) npidle: AtomicUsize,
    /// Spinning Ms (looking for work with a P).
    pub(super) nmspinning: AtomicUsize,
    /// Mirrors `idle.mwaitp.len()`.
    pub(super) nmwaitp: AtomicUsize,
    pub(super) global: Mutex<GQueue>,
    /// Mirrors `global.len` for lock-free emptiness checks.
    pub(super) global_len: AtomicUsize,
    /// Free descriptors of threads without a P, and Ps' spills.
    pub(super) gfree: Mutex<Vec<&'static G>>,
    pub(super) goid_gen: AtomicU64,
    pub(super) mid_gen: AtomicU64,
    /// Goroutines spawned minus finished by threads without a P (each P
    /// counts its own; num_goroutine sums them all).
    pub(super) ngoroutine_ext: AtomicIsize,
    pub(super) sources: RwLock<Vec<Arc<dyn Source>>>,
    /// The first blocking source (the netpoller), polled without blocking
    /// by every M that runs dry, before it spins (no lock on this path).
    pub(super) eager: std::sync::OnceLock<Arc<dyn Source>>,
    /// Earliest deadline any source reported (i64::MAX: none).
    pub(super) next_deadline: AtomicI64,
    /// The M sleeping with a timeout for `next_deadline`, if any.
    pub(super) timekeeper: AtomicPtr<M>,
    /// Whether some M is blocked inside a source's wait.
    pub(super) source_blocked: AtomicBool,
    /// Default stack size for new goroutines.
    pub(super) stack_size: AtomicUsize,
    /// Logical CPUs, read once at start (spinning is pointless on one).
    pub(super) ncpu: usize,
    /// Every M ever started (Ms are never freed), for sysmon's deadlock
    /// check and schedtrace.
    pub(super) allm: Mutex<Vec<&'static M>>,
    /// Ms that left the scheduler (`leave_sched`), for reuse by `alloc_m`:
    /// a program that spawns locked goroutines in a loop reuses a few.
    pub(super) mfree: Mutex<Vec<&'static M>>,
    /// Set by sysmon before it sleeps until some P stops being idle; whoever
    /// takes a P off the idle list then wakes it (`took_idle_p`). SeqCst
    /// with `npidle` (a Dekker pair: sysmon stores this, then re-reads
    /// npidle; a taker decrements npidle, then reads this).
    pub(super) sysmon_wait: AtomicBool,
    /// Sysmon sleeps on this.
    pub(super) sysmon_parker: Parker,
    /// When an M last polled the network (nanotime; 0 while one is blocked
    /// in the poller), for sysmon's "nobody polled for 10 ms" duty.
    pub(super) last_poll: AtomicI64,
    /// Every chunk of goroutine descriptors (never freed), for the deadlock
    /// report.
    pub(super) allgs: Mutex<Vec<&'static [G]>>,
}

cfg_not_loom! {
static SCHED: OnceLock<Sched> = OnceLock::new();

/// The runtime, started with the environment's configuration on first use.
#[inline]
pub(crate) fn sched() -> &'static Sched {
    match SCHED.get() {
        Some(s) => s,
        None => start_default(),
    }
}

#[cold]
pub(super) fn start_default() -> &'static Sched {
    SCHED.get_or_init(|| match Config::from_env() {
        Ok(c) => {
            start_sysmon();
            Sched::new(c)
        }
        Err(e) => panic!("gort: {e}"),
    })
}

/// Checks an explicit configuration against the ranges the environment
/// variables accept.
pub(crate) fn check_config(cfg: &Config) -> Result<(), crate::config::ConfigError> {
    use gort_os::stack::{MAX_STACK_SIZE, MIN_STACK_SIZE};
    let err = |var, value: usize, reason: String| crate::config::ConfigError {
        var,
        value: value.to_string(),
        reason,
    };
    if cfg.procs == 0 || cfg.procs > MAX_PROCS {
        return Err(err(
            "Config::procs",
            cfg.procs,
            format!("must be from 1 to {MAX_PROCS}"),
        ));
    }
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&cfg.stack_size) {
        return Err(err(
            "Config::stack_size",
            cfg.stack_size,
            format!("must be from {MIN_STACK_SIZE} to {MAX_STACK_SIZE} bytes"),
        ));
    }
    Ok(())
}

/// Starts the runtime with `cfg`; false if it was already running.
pub(crate) fn init(cfg: Config) -> bool {
    let mut fresh = false;
    SCHED.get_or_init(|| {
        fresh = true;
        // (Its thread waits for this initialisation to finish.)
        start_sysmon();
        Sched::new(cfg)
    });
    fresh
}

pub(crate) fn started() -> bool {
    SCHED.get().is_some()
}
}

impl Sched {
    pub(super) fn new(cfg: Config) -> Sched {
        let n = cfg.procs;
        let allp: Box<[AtomicPtr<P>]> = (0..MAX_PROCS)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        let mut pidle = Vec::with_capacity(n);
        for id in (0..n).rev() {
            let p = new_p(id);
            allp[id].store(p as *const P as *mut P, Ordering::Release);
            pidle.push(p);
        }
        Sched {
            allp,
            nprocs: AtomicUsize::new(n),
            idle: Mutex::new(Idle {
                pidle,
                midle: Vec::new(),
                mwaitp: VecDeque::new(),
                mown: Vec::new(),
            }),
            npidle: AtomicUsize::new(n),
            nmspinning: AtomicUsize::new(0),
            nmwaitp: AtomicUsize::new(0),
            global: Mutex::new(GQueue(VecDeque::new())),
            global_len: AtomicUsize::new(0),
            gfree: Mutex::new(Vec::new()),
            goid_gen: AtomicU64::new(0),
            mid_gen: AtomicU64::new(0),
            ngoroutine_ext: AtomicIsize::new(0),
            sources: RwLock::new(Vec::new()),
            eager: std::sync::OnceLock::new(),
            next_deadline: AtomicI64::new(i64::MAX),
            timekeeper: AtomicPtr::new(ptr::null_mut()),
            source_blocked: AtomicBool::new(false),
            stack_size: AtomicUsize::new(cfg.stack_size),
            ncpu: gort_os::cpu::num_cpu(),
            allm: Mutex::new(Vec::new()),
            mfree: Mutex::new(Vec::new()),
            sysmon_wait: AtomicBool::new(false),
            sysmon_parker: Parker::new(),
            last_poll: AtomicI64::new(nanotime()),
            allgs: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn lock_idle(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock()
    }

    pub(super) fn p(&self, id: usize) -> Option<&'static P> {
        let p = self.allp[id].load(Ordering::Acquire);
        // SAFETY: Ps are leaked, so a non-null slot is a live &'static P.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    pub(crate) fn num_goroutine(&self) -> usize {
        let mut n = self.ngoroutine_ext.load(Ordering::Acquire);
        for slot in self.allp.iter() {
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                break; // slots fill in order and are never cleared
            }
            // SAFETY: Ps are leaked.
            n += unsafe { &*p }.ngoroutine.load(Ordering::Acquire);
        }
        n.max(0) as usize
    }

    pub(crate) fn gomaxprocs(&self) -> usize {
        self.nprocs.load(Ordering::Relaxed)
    }

    pub(crate) fn default_stack_size(&self) -> usize {
        self.stack_size.load(Ordering::Relaxed)
    }
}

pub(super) fn global_put_batch(s: &'static Sched, gs: &[&'static G]) {
    if gs.is_empty() {
        return;
    }
    let mut q = s.global.lock();
    q.0.extend(gs.iter().copied());
    // Release pairs with the Acquire checks before taking the lock. SeqCst:
    // the queuer then loads npidle and nmspinning (wakep); an M giving up
    // its P stores npidle (put_p) and nmspinning (drop_p_local) and then
    // loads global_len (release_and_sleep), so one of them sees the other
    // (a Dekker pair, modelled in tests/loom_idle.rs).
    s.global_len.store(q.0.len(), Ordering::SeqCst);
}

/// Takes a fair share of the global queue: returns one G to run and puts the
/// rest on `p`'s local queue (Go's globrunqget).
pub(super) fn global_get(s: &'static Sched, p: &P, max: usize) -> Option<&'static G> {
    if s.global_len.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut taken: [Option<&'static G>; crate::loom::RUNQ_SIZE / 2] =
        [None; crate::loom::RUNQ_SIZE / 2];
    let n;
    {
        let mut q = s.global.lock();
        let len = q.0.len();
        if len == 0 {
            return None;
        }
        let np = s.gomaxprocs().max(1);
        let mut want = len.min(len / np + 1).min(taken.len());
        if max > 0 {
            want = want.min(max);
        }
        for (slot, g) in taken.iter_mut().zip(q.0.drain(..want)) {
            *slot = Some(g);
        }
        n = want;
        s.global_len.store(q.0.len(), Ordering::Release);
    }
    let first = taken[0];
    for g in taken[1..n].iter().flatten() {
        if let Err(batch) = p.runq_put(g, false) {
            global_put_batch(s, &batch);
        }
    }
    first
}

/// Adds `d` to the live goroutine count for the running goroutine `g`
/// (its task calls it with -1 when it is done), unless `g` is a system
/// goroutine.
///
/// # Safety
/// `g` is the caller's own goroutine.
pub(crate) unsafe fn goroutine_count(g: &G, d: isize) {
    if !g.sys.load(Ordering::Relaxed) {
        count_goroutines(sched(), d);
    }
}

/// Adds `d` to the goroutine count of the current P (no atomic read-modify-
/// write: only the M holding the P writes its counter), or of the runtime
/// for threads without a P.
#[inline]
pub(super) fn count_goroutines(s: &'static Sched, d: isize) {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        // SAFETY: the P we hold.
        let c = &unsafe { &*ml.p }.ngoroutine;
        // Release pairs with num_goroutine's Acquire loads.
        c.store(c.load(Ordering::Relaxed) + d, Ordering::Release);
        return;
    }
    s.ngoroutine_ext.fetch_add(d, Ordering::AcqRel);
}

cfg_not_loom! {
/// Blocks until no goroutine is alive (used after the main goroutine calls
/// goexit; polling keeps the hot exit path free of any check).
pub(crate) fn wait_no_goroutines() {
    let s = sched();
    while s.num_goroutine() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
}

cfg_not_loom! {
/// A snapshot of the scheduler's counters (`crate::sched_stats`).
pub(crate) fn stats() -> crate::SchedStats {
    let s = sched();
    let ms = s.allm.lock().len();
    let (pool_threads, pool_busy) = crate::blocking::pool_state();
    let (idle_ms, waitp) = {
        let idle = s.lock_idle();
        (idle.midle.len() + idle.mown.len(), idle.mwaitp.len())
    };
    crate::SchedStats {
        goroutines: s.num_goroutine(),
        goroutines_created: s.goid_gen.load(Ordering::Relaxed),
        gomaxprocs: s.gomaxprocs(),
        idle_procs: s.npidle.load(Ordering::Relaxed),
        // The Ms, sysmon, and the blocking pool's threads.
        threads: ms + 1 + pool_threads,
        idle_threads: idle_ms,
        spinning_threads: s.nmspinning.load(Ordering::Relaxed),
        threads_waiting_for_p: waitp,
        blocking_pool_threads: pool_threads,
        blocking_calls: pool_busy,
        global_runq: s.global_len.load(Ordering::Relaxed),
        descriptors: s.allgs.lock().iter().map(|c| c.len()).sum(),
        descriptor_size: std::mem::size_of::<G>(),
    }
}
}

cfg_not_loom! {
/// Live goroutines by state (`crate::goroutine_states`): one pass over
/// every descriptor, racy snapshots of each.
pub(crate) fn goroutine_states() -> crate::GoroutineStates {
    let s = sched();
    let mut st = crate::GoroutineStates::default();
    let chunks: Vec<&'static [G]> = s.allgs.lock().clone();
    for g in chunks.iter().flat_map(|c| c.iter()) {
        if g.goid() == 0 || g.sys.load(Ordering::Relaxed) {
            continue; // free, or a runtime helper (not counted, as in num_goroutine)
        }
        if g.park.is_parked() {
            st.waiting += 1;
            continue;
        }
        match g.status.load(Ordering::Relaxed) {
            G_RUNNING => st.running += 1,
            G_SYSCALL => st.syscall += 1,
            _ => {
                st.runnable += 1;
                if !g.m.load(Ordering::Relaxed).is_null() && !g.migratable.load(Ordering::Relaxed) {
                    st.runnable_bound += 1;
                }
            }
        }
    }
    st
}
}
