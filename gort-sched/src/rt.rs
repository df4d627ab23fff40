//! The runtime proper: G, M, P, the scheduler loop (`schedule` /
//! `find_runnable`), spinning and wake-up of Ms (`wakep` / `startm` /
//! `stopm`), the global run queue, goroutine descriptors' free lists,
//! `gomaxprocs` and the source hooks. Go's runtime/proc.go is the model; the
//! differences all come from one rule (a started goroutine never changes
//! OS thread) and are described in the crate docs ("The one departure from
//! Go", "Goroutines share their thread").

use crate::config::Config;
use crate::loom::{
    AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use crate::park_state::ParkState;
use crate::runq::RunQueue;
use crate::source::Source;
use crate::task::{Payload, TaskVtable, DETACHED, DONE, RUNNING, WAITING};
use crate::waiter::{park, WaitReason, Waiter};
use gort_os::clock::nanotime;
use gort_os::context::{Context, Label, Resumed, Suspender};
use gort_os::futex::Parker;
use gort_os::stack::Stack;
use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

/// Most Ps a runtime may have.
pub const MAX_PROCS: usize = 1024;

/// The timekeeper M sleeps until this long before the next deadline, then
/// spins to it (bounded CPU per timer wake-up, for ~µs timer accuracy).
const TIMER_EARLY_NS: i64 = 25_000;

/// How many goroutines an M runs from `runnext` in a row before it lets the
/// rest of its queues go first (Go's time-slice inheritance, by count).
const RUNNEXT_STREAK: u32 = 64;
/// How long an idle M that has parked goroutines of its own keeps its P and
/// watches its inbox before sleeping. A cross-thread hand-off (ping-pong
/// between goroutines bound to different Ms) then costs a cache-line
/// transfer instead of a futex wake-up (~20-50 us on a VM) per message.
const IDLE_SPIN_NS: i64 = 50_000;
/// Schedules an M may run on its P while another M waits for one.
const P_QUANTUM: u32 = 64;
/// Free goroutine descriptors a P keeps.
const GFREE_MAX: usize = 64;
/// Interval of an M's stack-compaction passes: a goroutine parked through a
/// whole interval (10-20 ms) has its stack compacted (gort-os `context.rs`).
const COMPACT_NS: i64 = 10_000_000;
/// Most stacks an M compacts in one pass while it holds a P (an idle M has
/// no limit).
const COMPACT_BUSY_MAX: usize = 1024;

// ---------------------------------------------------------------------------
// G

/// What a goroutine asks its M to do after it switched out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Req {
    None,
    Park,
    Yield,
}

/// A goroutine descriptor. Never freed (like Go's `allgs`): exited
/// descriptors are reused, so a [`Waiter`] pointer is always valid memory and
/// the park epoch tells a stale one apart.
pub(crate) struct G {
    /// Park handshake; see `park_state.rs`.
    pub(crate) park: ParkState,
    /// Intrusive link for an M's inbox (a Treiber stack). Written by the
    /// waker that pushes the G; published by the inbox CAS.
    link: AtomicPtr<G>,
    /// The M this goroutine is bound to once it has run (null while fresh).
    /// Written by that M before the goroutine first runs; read by wakers
    /// after they won `park` (Acquire, pairing with the park's Release).
    m: AtomicPtr<M>,
    /// Set at spawn before the G is published; read by wakers.
    migratable: AtomicBool,
    /// Goroutine id; written at spawn before publication, read by anyone.
    goid: AtomicU64,
    /// References: the goroutine's and its JoinHandle's. The last one to let
    /// go recycles the descriptor (AcqRel).
    refs: AtomicU32,
    /// Join handshake (task.rs): RUNNING, DONE or WAITING.
    join_state: AtomicU32,
    /// The joiner's waiter; written by the joiner before its Release CAS to
    /// WAITING, taken by the goroutine after its AcqRel swap to DONE.
    join_waiter: UnsafeCell<Option<Waiter>>,
    /// Closure, then result (task.rs). Owned by the goroutine until DONE,
    /// then by the handle.
    payload: UnsafeCell<Payload>,
    /// Goroutine-local scopes (local.rs): touched only by the goroutine
    /// itself, on its own stack, never across a switch. Empty when it exits.
    locals: UnsafeCell<Vec<crate::local::Entry>>,
    /// Owned by the thread that currently holds the G: the spawner until
    /// queued, then the M that dequeued or runs it. Never accessed by two
    /// threads at once; hand-offs go through queues (Release/Acquire).
    inner: UnsafeCell<GInner>,
}

struct GInner {
    task: Option<TaskVtable>,
    ctx: Option<Context>,
    suspender: Option<Suspender>,
    name: Option<Arc<str>>,
    stack_size: usize,
    req: Req,
    wait_reason: WaitReason,
    /// The M's compaction pass number when this goroutine last parked.
    park_pass: u32,
    /// Whether the G is in its M's compaction candidates.
    in_cand: bool,
    /// Whether the spawner allowed compaction of this goroutine's stack
    /// while it is parked (`Builder::compact_when_parked`, unsafe).
    compactable: bool,
    /// A runtime helper (`Builder::system`): not counted by num_goroutine.
    system: bool,
}

impl G {
    fn new() -> G {
        G {
            park: ParkState::new(),
            link: AtomicPtr::new(ptr::null_mut()),
            m: AtomicPtr::new(ptr::null_mut()),
            migratable: AtomicBool::new(false),
            goid: AtomicU64::new(0),
            refs: AtomicU32::new(0),
            join_state: AtomicU32::new(RUNNING),
            join_waiter: UnsafeCell::new(None),
            payload: UnsafeCell::new(Payload::new()),
            locals: UnsafeCell::new(Vec::new()),
            inner: UnsafeCell::new(GInner {
                task: None,
                ctx: None,
                suspender: None,
                name: None,
                stack_size: 0,
                req: Req::None,
                wait_reason: WaitReason::Unspecified,
                park_pass: 0,
                in_cand: false,
                compactable: false,
                system: false,
            }),
        }
    }

    pub(crate) fn goid(&self) -> u64 {
        self.goid.load(Ordering::Relaxed)
    }

    /// # Safety
    /// The caller holds the G (see the field docs of `inner`).
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut GInner {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.inner.get() }
    }
}

// ---------------------------------------------------------------------------
// P

const P_IDLE: u32 = 0;
const P_RUNNING: u32 = 1;
const P_DEAD: u32 = 2;

/// A processor: the right to run goroutines, with a local run queue of fresh
/// (and migratable) goroutines that other Ps may steal.
pub(crate) struct P {
    id: usize,
    runq: RunQueue<G>,
    /// P_IDLE / P_RUNNING / P_DEAD; changed under the scheduler lock (or by
    /// the M taking the P from the idle list), read racily by thieves.
    status: AtomicU32,
    /// Free descriptors; only the M holding the P touches it.
    gfree: UnsafeCell<Vec<*mut G>>,
    /// Goroutines spawned minus finished on this P. Written only by the M
    /// holding the P (load + Release store, no lock prefix); read by
    /// num_goroutine. Ownership of the P moves through the idle lock.
    ngoroutine: AtomicIsize,
}

// SAFETY: `gfree` is only touched by the M that holds the P (ownership of a P
// passes through the scheduler lock or the nextp hand-off, both of which
// synchronise); everything else is atomic.
unsafe impl Sync for P {}
// SAFETY: as above.
unsafe impl Send for P {}

// ---------------------------------------------------------------------------
// M

/// A machine: one OS thread running goroutines. Ms are never freed.
pub(crate) struct M {
    /// The M sleeps on this when idle; wakers unpark it.
    parker: Parker,
    /// Bound goroutines readied by other threads: a Treiber stack that the
    /// M takes whole (swap) and reverses. Pushed with Release CAS, taken
    /// with an Acquire swap.
    inbox: AtomicPtr<G>,
    /// A P handed to this M while it sleeps (by startm or a P hand-off);
    /// stored under the scheduler lock, taken by the M (Acquire swap).
    nextp: AtomicPtr<P>,
    /// Whether the M handed `nextp` should start out spinning.
    start_spinning: AtomicBool,
    /// True while the M blocks inside a source's wait; wakers of its bound
    /// goroutines then also call the source's wake. SeqCst with the inbox
    /// check (a Dekker pair).
    in_source: AtomicBool,
    /// Owner-thread-only scheduling state.
    local: UnsafeCell<MLocal>,
}

struct MLocal {
    p: *const P,
    /// Bound goroutine readied on this thread, to run next.
    runnext: *mut G,
    /// Bound goroutines ready to resume on this M.
    runq: VecDeque<*mut G>,
    spinning: bool,
    schedtick: u32,
    /// `schedtick` when the current P was acquired.
    ptick: u32,
    /// Consecutive goroutines taken from `runnext`.
    streak: u32,
    /// Started, unfinished goroutines bound to this M (they may be readied
    /// from other threads at any time).
    bound_live: usize,
    /// Parked goroutines to consider for stack compaction, with their goid
    /// when queued (a finished G's goid is zeroed, so stale entries are
    /// recognised without touching a recycled descriptor).
    cands: VecDeque<(*mut G, u64)>,
    /// Compaction pass number and the time of the last pass.
    pass: u32,
    last_pass: i64,
    rand: u32,
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
    unsafe fn local(&self) -> &mut MLocal {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.local.get() }
    }

    fn has_inbox(&self) -> bool {
        !self.inbox.load(Ordering::Acquire).is_null()
    }
}

// ---------------------------------------------------------------------------
// Thread-local state. Read through non-inlined functions, so that code on a
// migratable goroutine never uses a TLS address cached from another thread.

/// This thread's M and the goroutine it runs, in one thread-local so that
/// code that needs both pays for one TLS lookup.
struct Cur {
    m: Cell<*const M>,
    g: Cell<*mut G>,
}

// Right across a park: it says which M this thread is and which goroutine it
// runs *now*, set by the M at every switch; read through non-inlined
// functions so no goroutine keeps a stale address of it across a switch.
thread_local! {
    static CUR: Cur = const {
        Cur {
            m: Cell::new(ptr::null()),
            g: Cell::new(ptr::null_mut()),
        }
    };
}

#[inline(never)]
fn current_m() -> *const M {
    CUR.with(|c| c.m.get())
}

/// The running goroutine, or null on a plain thread (or an M's own stack).
#[inline(never)]
pub(crate) fn current_g() -> *mut G {
    CUR.with(|c| c.g.get())
}

/// Both at once.
#[inline(never)]
fn current() -> (*const M, *mut G) {
    CUR.with(|c| (c.m.get(), c.g.get()))
}

fn set_current_g(g: *mut G) {
    CUR.with(|c| c.g.set(g));
}

// ---------------------------------------------------------------------------
// The scheduler

struct Idle {
    /// Idle Ps.
    pidle: Vec<&'static P>,
    /// Idle Ms with no bound work.
    midle: Vec<&'static M>,
    /// Ms with runnable bound goroutines waiting for a P, FIFO.
    mwaitp: VecDeque<&'static M>,
}

/// The global run queue: G pointers in a ring buffer, so that taking a
/// batch reads contiguous memory instead of chasing links through cold Gs.
struct GQueue(VecDeque<*mut G>);

// SAFETY: the queue is only accessed under its Mutex; it only moves pointers.
unsafe impl Send for GQueue {}

pub(crate) struct Sched {
    /// P descriptors by id; slots fill as gomaxprocs grows and are never
    /// cleared (a shrunk P is P_DEAD and reused when it grows again).
    allp: Box<[AtomicPtr<P>]>,
    /// GOMAXPROCS. Written under `idle`; read racily by everyone.
    nprocs: AtomicUsize,
    idle: Mutex<Idle>,
    /// Mirrors `idle.pidle.len()`, for lock-free checks in wakep.
    npidle: AtomicUsize,
    /// Spinning Ms (looking for work with a P).
    nmspinning: AtomicUsize,
    /// Mirrors `idle.mwaitp.len()`.
    nmwaitp: AtomicUsize,
    global: Mutex<GQueue>,
    /// Mirrors `global.len` for lock-free emptiness checks.
    global_len: AtomicUsize,
    gfree: Mutex<Vec<usize>>,
    goid_gen: AtomicU64,
    mid_gen: AtomicU64,
    /// Goroutines spawned minus finished by threads without a P (each P
    /// counts its own; num_goroutine sums them all).
    ngoroutine_ext: AtomicIsize,
    sources: RwLock<Vec<Arc<dyn Source>>>,
    /// The first blocking source (the netpoller), polled without blocking
    /// by every M that runs dry, before it spins (no lock on this path).
    eager: std::sync::OnceLock<Arc<dyn Source>>,
    /// Earliest deadline any source reported (i64::MAX: none).
    next_deadline: AtomicI64,
    /// The M sleeping with a timeout for `next_deadline`, if any.
    timekeeper: AtomicPtr<M>,
    /// Whether some M is blocked inside a source's wait.
    source_blocked: AtomicBool,
    /// Default stack size for new goroutines.
    stack_size: AtomicUsize,
    /// Logical CPUs, read once at start (spinning is pointless on one).
    ncpu: usize,
}

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
fn start_default() -> &'static Sched {
    SCHED.get_or_init(|| match Config::from_env() {
        Ok(c) => Sched::new(c),
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
        Sched::new(cfg)
    });
    fresh
}

pub(crate) fn started() -> bool {
    SCHED.get().is_some()
}

impl Sched {
    fn new(cfg: Config) -> Sched {
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
        }
    }

    fn lock_idle(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn p(&self, id: usize) -> Option<&'static P> {
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

fn new_p(id: usize) -> &'static P {
    Box::leak(Box::new(P {
        id,
        runq: RunQueue::new(),
        status: AtomicU32::new(P_IDLE),
        gfree: UnsafeCell::new(Vec::new()),
        ngoroutine: AtomicIsize::new(0),
    }))
}

// ---------------------------------------------------------------------------
// Spawning (newproc) and goroutine descriptors

pub(crate) struct Spawn {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) stack_size: usize,
    pub(crate) migratable: bool,
    pub(crate) compactable: bool,
    pub(crate) system: bool,
}

/// Creates a goroutine whose task `install` writes into the payload, and
/// queues it. Returns the G (with a reference held for the JoinHandle) and
/// its id.
pub(crate) fn newproc(
    sp: Spawn,
    task: TaskVtable,
    install: impl FnOnce(*mut Payload),
) -> (*mut G, u64) {
    let s = sched();
    let g = gfget(s);
    // SAFETY: a descriptor from the free list belongs to us until queued.
    let gr = unsafe { &*g };
    let goid = s.goid_gen.fetch_add(1, Ordering::Relaxed) + 1;
    gr.goid.store(goid, Ordering::Relaxed);
    gr.m.store(ptr::null_mut(), Ordering::Relaxed);
    gr.migratable.store(sp.migratable, Ordering::Relaxed);
    gr.refs.store(2, Ordering::Relaxed);
    gr.join_state.store(RUNNING, Ordering::Relaxed);
    install(gr.payload.get());
    // SAFETY: we hold the G (not yet published).
    let gi = unsafe { gr.inner() };
    gi.task = Some(task);
    gi.name = sp.name;
    gi.stack_size = sp.stack_size;
    gi.req = Req::None;
    gi.in_cand = false;
    gi.compactable = sp.compactable && !sp.migratable;
    gi.system = sp.system;
    if !sp.system {
        count_goroutines(s, 1);
    }
    runq_put_here(s, g, true);
    (g, goid)
}

/// The goroutine-local scopes of `g` (local.rs).
///
/// # Safety
/// `g` is the calling goroutine; the borrow ends before it can switch.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn locals<'a>(g: *mut G) -> &'a mut Vec<crate::local::Entry> {
    // SAFETY: only the goroutine itself touches the cell (forwarded).
    unsafe { &mut *(*g).locals.get() }
}

/// The payload of a G (task.rs).
pub(crate) fn payload(g: *mut G) -> *mut Payload {
    // SAFETY: Gs are immortal; this only computes a field address.
    unsafe { (*g).payload.get() }
}

/// Goroutine side of the join handshake, after the result is stored.
/// Returns true if the handle was dropped meanwhile (state `DETACHED`): the
/// result is then still the goroutine's, to drop on its own stack.
///
/// # Safety
/// `g` is the running goroutine, which has written its result.
pub(crate) unsafe fn join_complete(g: *mut G) -> bool {
    // SAFETY: Gs are immortal.
    let gr = unsafe { &*g };
    // AcqRel: Release publishes the result to the joiner; Acquire pairs
    // with the joiner's Release CAS to WAITING (its waiter is visible).
    match gr.join_state.swap(DONE, Ordering::AcqRel) {
        WAITING => {
            // SAFETY: the joiner stored the waiter before its CAS and will
            // not touch the cell again.
            if let Some(w) = unsafe { (*gr.join_waiter.get()).take() } {
                w.ready();
            }
            false
        }
        DETACHED => true,
        _ => false,
    }
}

/// Goroutine side, before storing its result: whether the handle is gone
/// already (then nobody will ever read the result).
pub(crate) fn join_detached(g: *mut G) -> bool {
    // SAFETY: Gs are immortal. Acquire pairs with join_detach's CAS.
    unsafe { &*g }.join_state.load(Ordering::Acquire) == DETACHED
}

/// Handle side, when it is dropped unjoined: `RUNNING -> DETACHED`, so the
/// goroutine drops its own result on its own stack. Returns false if the
/// goroutine has finished already (`DONE`): the result is the handle's to
/// drop.
pub(crate) fn join_detach(g: *mut G) -> bool {
    // SAFETY: Gs are immortal; the caller holds a reference.
    let gr = unsafe { &*g };
    // AcqRel: Release/Acquire with the goroutine's swap in join_complete
    // (whichever runs second sees the other's writes).
    gr.join_state
        .compare_exchange(RUNNING, DETACHED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Whether the goroutine has published its result.
pub(crate) fn join_done(g: *mut G) -> bool {
    // SAFETY: Gs are immortal. Acquire pairs with join_complete's swap.
    unsafe { &*g }.join_state.load(Ordering::Acquire) == DONE
}

/// Handle side: waits until the goroutine published its result.
pub(crate) fn join_wait(g: *mut G) {
    // SAFETY: Gs are immortal; the caller holds a reference.
    let gr = unsafe { &*g };
    while gr.join_state.load(Ordering::Acquire) != DONE {
        // SAFETY: only the (single) handle writes the cell, and only while
        // the state is RUNNING (the goroutine reads it after WAITING).
        unsafe { *gr.join_waiter.get() = Some(Waiter::current()) };
        match gr.join_state.compare_exchange(
            RUNNING,
            WAITING,
            // Release publishes the waiter to join_complete's Acquire.
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => park(WaitReason::Join, || true),
            Err(_) => {
                // DONE already: the goroutine never looks at the cell.
                // SAFETY: as above; nobody else touches it now.
                unsafe { *gr.join_waiter.get() = None };
            }
        }
    }
}

/// Drops one reference to `g`; the last one recycles the descriptor.
pub(crate) fn release_g(g: *mut G) {
    // SAFETY: Gs are immortal.
    let gr = unsafe { &*g };
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

/// The calling thread's M-local state, if it is an M holding a P.
///
/// # Safety
/// The result must not be held across a goroutine switch (it is the M's
/// own state, which its scheduler loop also uses).
#[inline]
unsafe fn local_with_p<'a>() -> Option<&'a mut MLocal> {
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
fn runq_put_here(s: &'static Sched, g: *mut G, next: bool) {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        // SAFETY: a P we hold is live and ours.
        let p = unsafe { &*ml.p };
        if let Err(batch) = p.runq.put(g, next) {
            global_put_batch(s, &batch);
        }
        wakep(s);
        return;
    }
    global_put_batch(s, &[g]);
    wakep(s);
}

fn gfget(s: &'static Sched) -> *mut G {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        // SAFETY: only the M holding the P touches gfree.
        let free = unsafe { &mut *(*ml.p).gfree.get() };
        if free.is_empty() {
            let mut gl = s.gfree.lock().unwrap_or_else(|e| e.into_inner());
            let n = gl.len().min(GFREE_MAX / 2);
            let at = gl.len() - n;
            free.extend(gl.drain(at..).map(|a| a as *mut G));
        }
        if free.is_empty() {
            free.extend(alloc_gs());
        }
        return free.pop().expect("just refilled");
    }
    let mut gl = s.gfree.lock().unwrap_or_else(|e| e.into_inner());
    if gl.is_empty() {
        gl.extend(alloc_gs().map(|g| g as usize));
    }
    gl.pop().expect("just refilled") as *mut G
}

/// Allocates a chunk of descriptors (they are never freed).
fn alloc_gs() -> impl Iterator<Item = *mut G> {
    const CHUNK: usize = 32;
    let chunk: &'static mut [G] = Box::leak((0..CHUNK).map(|_| G::new()).collect());
    chunk.iter_mut().map(|g| g as *mut G)
}

/// Returns a recycled G to the current P's free list, or the global one
/// from a thread without a P.
fn gfput_any(s: &'static Sched, g: *mut G) {
    // SAFETY: no switch in this function.
    if let Some(ml) = unsafe { local_with_p() } {
        gfput(s, ml, g);
        return;
    }
    s.gfree
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(g as usize);
}

/// Returns an exited G's descriptor to the current P's free list.
fn gfput(s: &'static Sched, ml: &mut MLocal, g: *mut G) {
    // SAFETY: the P we hold; only we touch its gfree.
    let free = unsafe { &mut *(*ml.p).gfree.get() };
    free.push(g);
    if free.len() > GFREE_MAX {
        let mut gl = s.gfree.lock().unwrap_or_else(|e| e.into_inner());
        gl.extend(free.drain(..GFREE_MAX / 2).map(|g| g as usize));
    }
}

// ---------------------------------------------------------------------------
// The global run queue

fn global_put_batch(s: &'static Sched, gs: &[*mut G]) {
    if gs.is_empty() {
        return;
    }
    let mut q = s.global.lock().unwrap_or_else(|e| e.into_inner());
    q.0.extend(gs.iter().copied());
    // Release pairs with the Acquire checks before taking the lock.
    s.global_len.store(q.0.len(), Ordering::Release);
}

/// Takes a fair share of the global queue: returns one G to run and puts the
/// rest on `p`'s local queue (Go's globrunqget).
fn global_get(s: &'static Sched, p: &P, max: usize) -> Option<*mut G> {
    if s.global_len.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut taken = [ptr::null_mut::<G>(); crate::loom::RUNQ_SIZE / 2];
    let n;
    {
        let mut q = s.global.lock().unwrap_or_else(|e| e.into_inner());
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
            *slot = g;
        }
        n = want;
        s.global_len.store(q.0.len(), Ordering::Release);
    }
    let first = taken[0];
    for &g in &taken[1..n] {
        if let Err(batch) = p.runq.put(g, false) {
            global_put_batch(s, &batch);
        }
    }
    Some(first)
}

// ---------------------------------------------------------------------------
// Readying goroutines

/// Makes a parked G runnable. Called by the waker that won its park.
pub(crate) fn ready_g(g: *mut G) {
    // SAFETY: Gs are immortal.
    let gr = unsafe { &*g };
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
        if !ml.runnext.is_null() {
            ml.runq.push_back(ml.runnext);
        }
        ml.runnext = g;
        return;
    }
    // SAFETY: Ms are immortal.
    let m = unsafe { &*owner };
    let mut head = m.inbox.load(Ordering::Relaxed);
    loop {
        gr.link.store(head, Ordering::Relaxed);
        // Release publishes the G's link (and the waker's prior writes) to
        // the M's Acquire swap in take_inbox.
        match m
            .inbox
            .compare_exchange_weak(head, g, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    m.parker.unpark();
    // SeqCst pairs with the M's SeqCst store of in_source before it re-checks
    // its inbox: either it sees our G, or we see it blocked in the source.
    if m.in_source.load(Ordering::SeqCst) {
        wake_sources(sched());
    }
}

/// Moves everything in the M's inbox to its local queue, oldest first.
fn take_inbox(m: &M, ml: &mut MLocal) {
    // Acquire pairs with the Release CAS in ready_g.
    let mut g = m.inbox.swap(ptr::null_mut(), Ordering::Acquire);
    if g.is_null() {
        return;
    }
    let start = ml.runq.len();
    while !g.is_null() {
        ml.runq.push_back(g);
        // SAFETY: the G is ours now; its link was published by the CAS.
        g = unsafe { (*g).link.load(Ordering::Relaxed) };
    }
    // The stack gave newest first; restore FIFO.
    ml.runq.make_contiguous()[start..].reverse();
}

// ---------------------------------------------------------------------------
// Park / yield from a goroutine

pub(crate) fn park_g<F: FnOnce() -> bool>(g: *mut G, reason: WaitReason, commit: F) {
    // SAFETY: `g` is the running goroutine: this thread holds it.
    let gr = unsafe { &*g };
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
fn warn_park_while_unwinding(gr: &G) {
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
    let g = current_g();
    if g.is_null() {
        std::thread::yield_now();
        return;
    }
    // SAFETY: the running goroutine is held by this thread.
    let s = unsafe {
        let gi = (*g).inner();
        gi.req = Req::Yield;
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: on the goroutine's own stack while it runs.
    unsafe { s.suspend() };
}

// ---------------------------------------------------------------------------
// M lifecycle

fn newm(s: &'static Sched, p: &'static P, spinning: bool) {
    let id = s.mid_gen.fetch_add(1, Ordering::Relaxed) + 1;
    let m: &'static M = Box::leak(Box::new(M {
        parker: Parker::new(),
        inbox: AtomicPtr::new(ptr::null_mut()),
        nextp: AtomicPtr::new(p as *const P as *mut P),
        start_spinning: AtomicBool::new(spinning),
        in_source: AtomicBool::new(false),
        local: UnsafeCell::new(MLocal {
            p: ptr::null(),
            runnext: ptr::null_mut(),
            runq: VecDeque::new(),
            spinning: false,
            schedtick: 0,
            ptick: 0,
            streak: 0,
            bound_live: 0,
            cands: VecDeque::new(),
            pass: 0,
            last_pass: 0,
            rand: (id as u32).wrapping_mul(0x9E37_79B9) | 1,
        }),
    }));
    let r = gort_os::thread::spawn_named(format!("gort-m{id}"), 0, move || mstart(s, m));
    if let Err(e) = r {
        fatal(&format!(
            "runtime: failed to create new OS thread for M{id}: {e}"
        ));
    }
}

fn mstart(s: &'static Sched, m: &'static M) -> ! {
    CUR.with(|c| c.m.set(m));
    // SAFETY: this is m's thread.
    let ml = unsafe { m.local() };
    let p = m.nextp.swap(ptr::null_mut(), Ordering::Acquire);
    // SAFETY: newm gave us a live P.
    acquirep(ml, unsafe { &*p });
    ml.spinning = m.start_spinning.swap(false, Ordering::Relaxed);
    loop {
        let g = find_runnable(s, m);
        execute(s, m, g);
    }
}

fn acquirep(ml: &mut MLocal, p: &'static P) {
    p.status.store(P_RUNNING, Ordering::Relaxed);
    ml.p = p;
    ml.ptick = ml.schedtick;
}

#[cold]
pub(crate) fn fatal(msg: &str) -> ! {
    eprintln!("fatal error: {msg}");
    std::process::abort()
}

/// Runs `g` on this M until it parks, yields or exits.
fn execute(s: &'static Sched, m: &'static M, g: *mut G) {
    // SAFETY: Gs are immortal and we hold this one (we dequeued it).
    let gr = unsafe { &*g };
    // SAFETY: we hold the G; the borrow ends before any switch.
    let mut ctx = match unsafe { gr.inner() }.ctx.take() {
        Some(c) => c,
        None => start_g(s, m, g),
    };
    set_current_g(g);
    loop {
        let r = ctx.resume();
        match r {
            Resumed::Finished => {
                set_current_g(ptr::null_mut());
                drop(ctx.into_stack()); // back to this M's stack cache
                gr.park.retire();
                // Compaction candidates recognise the exit by the zero goid.
                gr.goid.store(0, Ordering::Relaxed);
                // SAFETY: the goroutine finished; we hold its descriptor.
                unsafe { gr.inner() }.suspender = None;
                if !gr.migratable.load(Ordering::Relaxed) {
                    // SAFETY: our own M; no switch here.
                    unsafe { m.local() }.bound_live -= 1;
                }
                release_g(g);
                return;
            }
            Resumed::Suspended => {
                // SAFETY: the goroutine is switched out; we hold it.
                let gi = unsafe { gr.inner() };
                let req = std::mem::replace(&mut gi.req, Req::None);
                gi.ctx = Some(ctx);
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
                        // Release (in try_park): after this a waker may run
                        // the G, so its context must already be stored.
                        if gr.park.try_park() {
                            break;
                        }
                        // Woken while switching out: run it again now.
                        ctx = gi.ctx.take().expect("context just stored");
                    }
                    Req::Yield => {
                        if gr.migratable.load(Ordering::Relaxed) {
                            global_put_batch(s, &[g]);
                        } else {
                            // SAFETY: our own M.
                            unsafe { m.local() }.runq.push_back(g);
                        }
                        break;
                    }
                    Req::None => fatal("goroutine switched out with no request"),
                }
            }
        }
    }
    set_current_g(ptr::null_mut());
}

/// First run of a fresh G on this M: give it a stack and bind it here.
fn start_g(s: &'static Sched, m: &'static M, g: *mut G) -> Context {
    // SAFETY: we hold the G.
    let gr = unsafe { &*g };
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
    let gp = g as usize;
    // SAFETY: a goroutine suspends only through its own Suspender (park_g
    // and gosched use the running G's), and user code cannot reach a raw
    // Context of its own without `unsafe`.
    unsafe { Context::new(stack, label, move |sus| goroutine_main(gp as *mut G, sus)) }
}

fn goroutine_main(g: *mut G, sus: Suspender) {
    // SAFETY: this goroutine holds its own descriptor while it runs; the
    // borrow ends before the task runs (which may switch).
    let run = unsafe {
        let gi = (*g).inner();
        gi.suspender = Some(sus);
        gi.task.expect("fresh goroutine has a task").run
    };
    // SAFETY: called once, by this goroutine on its own stack.
    unsafe { run(g) };
}

/// Adds `d` to the live goroutine count for the running goroutine `g`
/// (its task calls it with -1 when it is done), unless `g` is a system
/// goroutine.
pub(crate) fn goroutine_count(g: *mut G, d: isize) {
    // SAFETY: the running goroutine holds its own descriptor; the borrow
    // ends here.
    if !unsafe { (*g).inner() }.system {
        count_goroutines(sched(), d);
    }
}

/// Adds `d` to the goroutine count of the current P (no atomic read-modify-
/// write: only the M holding the P writes its counter), or of the runtime
/// for threads without a P.
#[inline]
fn count_goroutines(s: &'static Sched, d: isize) {
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

/// Blocks until no goroutine is alive (used after the main goroutine calls
/// goexit; polling keeps the hot exit path free of any check).
pub(crate) fn wait_no_goroutines() {
    let s = sched();
    while s.num_goroutine() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// Finding work

fn fastrand(ml: &mut MLocal) -> u32 {
    let mut x = ml.rand;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ml.rand = x;
    x
}

/// Returns the next goroutine for this M to run. Blocks (giving up the P)
/// when there is none. On return the M holds a P.
fn find_runnable(s: &'static Sched, m: &'static M) -> *mut G {
    loop {
        // SAFETY: our own thread; no switch happens inside this function.
        let ml = unsafe { m.local() };
        // SAFETY: we hold a P here.
        let p: &'static P = unsafe { &*ml.p };
        ml.schedtick = ml.schedtick.wrapping_add(1);

        if p.id >= s.gomaxprocs() {
            retire_p(s, m, p);
            continue;
        }
        if s.nmwaitp.load(Ordering::Relaxed) > 0
            && ml.schedtick.wrapping_sub(ml.ptick) > P_QUANTUM
            && handoff_to_waiting_m(s, m, p)
        {
            continue;
        }
        check_deadline(s);
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
                return g;
            }
        }

        // Ask the network poller before spinning: goroutines waiting on
        // sockets are readied only by whoever polls (Go's findrunnable
        // polls the network before stealing). What it readies for this M
        // lands in our own queues. (It returns at once when nobody waits
        // on a descriptor.)
        if let Some(src) = s.eager.get() {
            src.poll(nanotime());
            // As above: the poll may have readied our goroutines.
            // SAFETY: our own thread; no switch happens inside this function.
            let ml = unsafe { m.local() };
            if m.has_inbox() || !ml.runnext.is_null() || !ml.runq.is_empty() {
                continue;
            }
        }
        // SAFETY: as above.
        let ml = unsafe { m.local() };

        // Our own goroutines may be readied from another thread any moment
        // (a ping-pong across Ms): watch for them a while before giving up
        // the P.
        if ml.bound_live > 0 && idle_spin(s, m, p) {
            continue;
        }
        if poll_sources(s) {
            continue;
        }
        release_and_sleep(s, m);
    }
}

fn compaction_due(ml: &MLocal) -> bool {
    !ml.cands.is_empty() && nanotime() - ml.last_pass >= COMPACT_NS
}

/// One compaction pass over this M's parked goroutines: those parked since
/// before the previous pass (so for at least one whole interval) get their
/// stacks compacted and the pages returned, in one batch. At most `budget`
/// stacks are compacted; the rest wait for the next pass.
fn compact_pass(ml: &mut MLocal, budget: usize) {
    ml.pass = ml.pass.wrapping_add(1);
    ml.last_pass = nanotime();
    let cutoff = ml.pass.wrapping_sub(1);
    let mut ranges = Vec::new();
    for _ in 0..ml.cands.len() {
        if ranges.len() >= budget {
            break;
        }
        let Some((g, goid)) = ml.cands.pop_front() else {
            break;
        };
        // SAFETY: Gs are immortal; goid is atomic.
        let gr = unsafe { &*g };
        if goid == 0 || gr.goid() != goid {
            continue; // exited (maybe reused elsewhere): not ours any more
        }
        // SAFETY: a live bound G of this M; only this thread touches its
        // inner state, and no goroutine runs while the M is in the scheduler.
        let gi = unsafe { gr.inner() };
        let Some(ctx) = gi.ctx.as_mut() else {
            gi.in_cand = false;
            continue;
        };
        if !gr.park.is_parked() {
            gi.in_cand = false; // runnable again; re-queued at its next park
            continue;
        }
        if (gi.park_pass.wrapping_sub(cutoff) as i32) >= 0 {
            ml.cands.push_back((g, goid)); // parked too recently
            continue;
        }
        gi.in_cand = false;
        // SAFETY: the goroutine's spawner promised, through the unsafe
        // Builder::compact_when_parked, that nothing else touches its stack
        // while it is parked; it is parked now (checked above, on its M).
        if let Some(r) = unsafe { ctx.compact() } {
            ranges.push(r);
        }
    }
    if !ranges.is_empty() {
        // SAFETY: regions of stacks compacted just now, whose goroutines are
        // parked and whose live bytes are saved in their contexts.
        unsafe { gort_os::stack::release_memory(ranges) };
    }
}

/// Spins up to IDLE_SPIN_NS for work: our inbox, the global queue, or
/// another P's queue. Returns whether something turned up.
fn idle_spin(s: &'static Sched, m: &M, p: &P) -> bool {
    let start = nanotime();
    let mut i = 0u32;
    loop {
        if m.has_inbox() || s.global_len.load(Ordering::Relaxed) > 0 {
            return true;
        }
        i = i.wrapping_add(1);
        if i % 64 == 0 {
            let n = s.gomaxprocs();
            let others = (0..n).any(|id| id != p.id && s.p(id).is_some_and(|v| !v.runq.is_empty()));
            if others || nanotime() - start > IDLE_SPIN_NS {
                return others;
            }
        }
        std::hint::spin_loop();
    }
}

/// Bound goroutines of this M, then the P's fresh ones, with the fairness
/// rules from the crate docs.
#[inline]
fn local_work(s: &'static Sched, m: &M, ml: &mut MLocal, p: &'static P) -> Option<*mut G> {
    if m.has_inbox() {
        take_inbox(m, ml);
    }
    // Every 61st schedule, the global queue goes first (Go's fairness rule).
    if ml.schedtick % 61 == 0 {
        if let Some(g) = global_get(s, p, 1) {
            return Some(g);
        }
    }
    if !ml.runnext.is_null() {
        let g = std::mem::replace(&mut ml.runnext, ptr::null_mut());
        if ml.streak < RUNNEXT_STREAK {
            ml.streak += 1;
            return Some(g);
        }
        ml.runq.push_back(g);
    }
    ml.streak = 0;
    if ml.schedtick & 1 == 0 {
        if let Some(g) = ml.runq.pop_front() {
            return Some(g);
        }
        p.runq.get().map(|(g, _)| g)
    } else {
        if let Some((g, _)) = p.runq.get() {
            return Some(g);
        }
        ml.runq.pop_front()
    }
}

fn steal_work(s: &'static Sched, ml: &mut MLocal, p: &P) -> Option<*mut G> {
    let n = s.gomaxprocs();
    for round in 0..4 {
        let start = fastrand(ml) as usize % n.max(1);
        for i in 0..n {
            let id = (start + i) % n;
            if id == p.id {
                continue;
            }
            let Some(v) = s.p(id) else { continue };
            if let Some(g) = v.runq.steal_into(&p.runq, round == 3) {
                return Some(g);
            }
        }
        if let Some(g) = global_get(s, p, 0) {
            return Some(g);
        }
    }
    None
}

fn stop_spinning(s: &'static Sched, ml: &mut MLocal) {
    if ml.spinning {
        ml.spinning = false;
        // The last spinning M to find work wakes another to keep looking
        // (Go's resetspinning): there may be more work than we took.
        if s.nmspinning.fetch_sub(1, Ordering::SeqCst) == 1 {
            wakep(s);
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
fn startm(s: &'static Sched, spinning: bool) {
    let mut idle = s.lock_idle();
    let Some(p) = idle.pidle.pop() else {
        drop(idle);
        if spinning {
            s.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    };
    s.npidle.fetch_sub(1, Ordering::SeqCst);
    p.status.store(P_RUNNING, Ordering::Relaxed);
    if let Some(m) = idle.midle.pop() {
        m.start_spinning.store(spinning, Ordering::Relaxed);
        // SeqCst: pairs with the M's Acquire swap of nextp, and with its
        // SeqCst in_source store before re-checking nextp (see hand_p_wake).
        m.nextp.store(p as *const P as *mut P, Ordering::SeqCst);
        drop(idle);
        hand_p_wake(s, m);
    } else {
        drop(idle);
        newm(s, p, spinning);
    }
}

/// Releases `p`: to the first M waiting for a P, else to the idle list (or
/// retires it if gomaxprocs shrank). Caller holds the idle lock.
fn put_p(s: &'static Sched, idle: &mut Idle, p: &'static P) {
    if p.id >= s.gomaxprocs() {
        p.status.store(P_DEAD, Ordering::Relaxed);
        return;
    }
    if let Some(m2) = idle.mwaitp.pop_front() {
        s.nmwaitp.fetch_sub(1, Ordering::Relaxed);
        p.status.store(P_RUNNING, Ordering::Relaxed);
        m2.start_spinning.store(false, Ordering::Relaxed);
        m2.nextp.store(p as *const P as *mut P, Ordering::SeqCst);
        hand_p_wake(s, m2);
        return;
    }
    p.status.store(P_IDLE, Ordering::Relaxed);
    idle.pidle.push(p);
    s.npidle.fetch_add(1, Ordering::SeqCst);
}

/// Another M has runnable goroutines but no P and we had ours long enough.
fn handoff_to_waiting_m(s: &'static Sched, m: &'static M, p: &'static P) -> bool {
    let mut idle = s.lock_idle();
    if idle.mwaitp.is_empty() {
        return false;
    }
    drop_p_local(s, m);
    put_p(s, &mut idle, p);
    drop(idle);
    stopm(s, m);
    true
}

/// Forgets the current P locally (the caller gives it away).
fn drop_p_local(s: &'static Sched, m: &M) {
    // SAFETY: our own thread.
    let ml = unsafe { m.local() };
    ml.p = ptr::null();
    if ml.spinning {
        ml.spinning = false;
        s.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }
}

/// gomaxprocs shrank below this P's id: move its queue to the global queue
/// and give it up.
fn retire_p(s: &'static Sched, m: &'static M, p: &'static P) {
    let idle = s.lock_idle();
    if p.id < s.gomaxprocs() {
        return; // grew back meanwhile
    }
    let mut moved = Vec::new();
    while let Some((g, _)) = p.runq.get() {
        moved.push(g);
    }
    global_put_batch(s, &moved);
    // SAFETY: we hold the P.
    let free = unsafe { &mut *p.gfree.get() };
    s.gfree
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(free.drain(..).map(|g| g as usize));
    p.status.store(P_DEAD, Ordering::Relaxed);
    drop_p_local(s, m);
    drop(idle);
    if !moved.is_empty() {
        wakep(s);
    }
    stopm(s, m);
}

/// Gives up the P (nothing to run) and sleeps until this M has work and a P.
fn release_and_sleep(s: &'static Sched, m: &'static M) {
    // SAFETY: our own thread; we hold a P here.
    let (p, was_spinning) = unsafe {
        let ml = m.local();
        (&*ml.p, ml.spinning)
    };
    {
        let mut idle = s.lock_idle();
        // Work may have arrived on the global queue after we looked.
        if s.global_len.load(Ordering::Acquire) > 0 {
            return;
        }
        drop_p_local(s, m);
        put_p(s, &mut idle, p);
        // Idle M and idle P become visible together (Go's stopm runs
        // mput under the same sched.lock as pidleput): a spawner's startm
        // that found the P but not the M would start a new thread, and
        // while that thread started, nmspinning != 0 made every later
        // wakep a no-op — a burst of spawns then all ran here.
        if !idle.midle.iter().any(|x| ptr::eq(*x, m)) {
            idle.midle.push(m);
        }
    }
    // Go's findrunnable: after dropping the P (and the spinning count), look
    // once more at every run queue; a spawner that saw us spinning did not
    // wake anybody.
    if was_spinning {
        for id in 0..s.gomaxprocs() {
            if let Some(v) = s.p(id) {
                if !v.runq.is_empty() {
                    wakep(s);
                    break;
                }
            }
        }
    }
    stopm(s, m);
}

/// Sleeps until this M is handed a P, or has bound work and can take one.
fn stopm(s: &'static Sched, m: &'static M) {
    loop {
        // Acquire pairs with the Release store by startm / put_p.
        let p = m.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            remove_idle_m(s, m);
            // SAFETY: our own thread; the P was handed to us and is live.
            let (ml, p) = unsafe { (m.local(), &*p) };
            acquirep(ml, p);
            ml.spinning = m.start_spinning.swap(false, Ordering::Relaxed);
            return;
        }
        let has_work = {
            // SAFETY: our own thread.
            let ml = unsafe { m.local() };
            m.has_inbox() || !ml.runnext.is_null() || !ml.runq.is_empty()
        };
        {
            let mut idle = s.lock_idle();
            if !m.nextp.load(Ordering::Acquire).is_null() {
                continue;
            }
            idle.midle.retain(|x| !ptr::eq(*x, m));
            if has_work {
                if let Some(p) = idle.pidle.pop() {
                    s.npidle.fetch_sub(1, Ordering::SeqCst);
                    if let Some(i) = idle.mwaitp.iter().position(|x| ptr::eq(*x, m)) {
                        idle.mwaitp.remove(i);
                        s.nmwaitp.fetch_sub(1, Ordering::Relaxed);
                    }
                    drop(idle);
                    // SAFETY: our own thread.
                    acquirep(unsafe { m.local() }, p);
                    return;
                }
                if !idle.mwaitp.iter().any(|x| ptr::eq(*x, m)) {
                    idle.mwaitp.push_back(m);
                    s.nmwaitp.fetch_add(1, Ordering::Relaxed);
                }
            } else if !idle.mwaitp.iter().any(|x| ptr::eq(*x, m)) {
                idle.midle.push(m);
            }
        }
        sleep_idle(s, m);
    }
}

/// Wakes an idle M that was just handed a P (`nextp`, stored SeqCst): it
/// may sleep on its parker or block inside a source's wait (epoll), which
/// the parker cannot interrupt. The M stores `in_source` (SeqCst) before it
/// re-checks `nextp`: either it sees the P, or we see it in the source.
fn hand_p_wake(s: &'static Sched, m: &'static M) {
    m.parker.unpark();
    if m.in_source.load(Ordering::SeqCst) {
        wake_sources(s);
    }
}

fn remove_idle_m(s: &'static Sched, m: &M) {
    let mut idle = s.lock_idle();
    idle.midle.retain(|x| !ptr::eq(*x, m));
}

// ---------------------------------------------------------------------------
// Sources (timers, netpoll) and sleeping until their deadlines

pub(crate) fn register_source(src: Arc<dyn Source>) {
    let s = sched();
    if src.blocks() {
        let _ = s.eager.set(src.clone());
    }
    s.sources
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(src);
    note_deadline(s, 0);
}

/// A source has something due at `when` (nanotime): make sure some M looks
/// by then.
pub(crate) fn note_deadline(s: &'static Sched, when: i64) {
    let prev = s.next_deadline.fetch_min(when, Ordering::SeqCst);
    if when >= prev {
        return; // someone already waits for an earlier one
    }
    let tk = s.timekeeper.load(Ordering::SeqCst);
    if !tk.is_null() {
        // SAFETY: Ms are immortal.
        unsafe { &*tk }.parker.unpark();
        return;
    }
    if s.source_blocked.load(Ordering::SeqCst) {
        wake_sources(s);
        return;
    }
    // Wake an idle M (it needs no P to poll), or start one if Ps are idle.
    let m = s.lock_idle().midle.last().copied();
    match m {
        Some(m) => m.parker.unpark(),
        None => wakep(s),
    }
}

fn wake_sources(s: &'static Sched) {
    for src in s.sources.read().unwrap_or_else(|e| e.into_inner()).iter() {
        src.wake();
    }
}

/// Runs the sources if their earliest deadline has passed.
#[inline]
fn check_deadline(s: &'static Sched) {
    let d = s.next_deadline.load(Ordering::Relaxed);
    if d != i64::MAX && d <= nanotime() {
        poll_sources(s);
    }
}

/// Polls every source without blocking; returns whether any reported
/// progress possible (a deadline now due).
fn poll_sources(s: &'static Sched) -> bool {
    let srcs = s.sources.read().unwrap_or_else(|e| e.into_inner());
    if srcs.is_empty() {
        return false;
    }
    // `next_deadline` may be lowered by anyone (note_deadline's fetch_min)
    // but raised only here, by CAS from the value seen *before* polling: a
    // deadline noted meanwhile either changed the word (the CAS fails and we
    // look again) or was no earlier than it — and then was pushed before our
    // CAS, so the next round's poll sees it.
    let mut next = i64::MAX;
    for _ in 0..4 {
        let seen = s.next_deadline.load(Ordering::SeqCst);
        let now = nanotime();
        next = srcs
            .iter()
            .filter_map(|src| src.poll(now))
            .min()
            .unwrap_or(i64::MAX);
        if next <= seen {
            s.next_deadline.fetch_min(next, Ordering::SeqCst);
            break;
        }
        // Raising: look once more after a successful CAS (see above).
        let _ = s
            .next_deadline
            .compare_exchange(seen, next, Ordering::SeqCst, Ordering::SeqCst);
    }
    s.next_deadline.fetch_min(next, Ordering::SeqCst);
    next <= nanotime()
}

/// Sleeps an idle M until woken, or until the next source deadline (one M
/// keeps time; one may block inside a blocking source).
fn sleep_idle(s: &'static Sched, m: &'static M) {
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
        if !ml.runnext.is_null() || !ml.runq.is_empty() || m.has_inbox() {
            return;
        }
    }
    let source_deadline = s.next_deadline.load(Ordering::SeqCst);
    let deadline = source_deadline.min(compact_at);
    let blocking = {
        let srcs = s.sources.read().unwrap_or_else(|e| e.into_inner());
        srcs.iter().find(|x| x.blocks()).cloned()
    };
    if let Some(src) = blocking {
        if s.source_blocked
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            m.in_source.store(true, Ordering::SeqCst);
            if !m.has_inbox() && m.nextp.load(Ordering::SeqCst).is_null() {
                src.block((deadline != i64::MAX).then_some(deadline));
            }
            m.in_source.store(false, Ordering::SeqCst);
            s.source_blocked.store(false, Ordering::SeqCst);
            return;
        }
    }
    if source_deadline != i64::MAX
        && s.timekeeper
            .compare_exchange(
                ptr::null_mut(),
                m as *const M as *mut M,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        let wait = deadline - nanotime();
        if wait > 0 {
            // Wake a little early and spin the rest: a futex timeout fires
            // tens of microseconds late (more in VMs), and timers are the
            // point of this sleep.
            let early = wait.min(TIMER_EARLY_NS);
            let woken = wait > early
                && m.parker
                    .park_timeout(std::time::Duration::from_nanos((wait - early) as u64));
            if !woken {
                while nanotime() < deadline && !m.has_inbox() {
                    std::hint::spin_loop();
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

// ---------------------------------------------------------------------------
// GOMAXPROCS

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
    if n > old {
        for id in old..n {
            let p = match s.p(id) {
                Some(p) => p,
                None => {
                    let p = new_p(id);
                    s.allp[id].store(p as *const P as *mut P, Ordering::Release);
                    p
                }
            };
            // A P still held by an M that has not noticed the shrink simply
            // stays with it; a retired one becomes available again.
            if p.status.load(Ordering::Relaxed) == P_DEAD
                || (p.status.load(Ordering::Relaxed) == P_IDLE
                    && !idle.pidle.iter().any(|x| ptr::eq(*x, p)))
            {
                put_p(s, &mut idle, p);
            }
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
                p.status.store(P_DEAD, Ordering::Relaxed);
            }
            keep
        });
        let removed = before - idle.pidle.len();
        s.npidle.fetch_sub(removed, Ordering::SeqCst);
        // Ps >= n still running are retired by their Ms at the next
        // schedule (retire_p); their queues move to the global queue.
    }
    old
}

// ---------------------------------------------------------------------------
// Spinning for sync primitives (Go's sync_runtime_canSpin / doSpin)

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
    ml.runnext.is_null() && ml.runq.is_empty() && !m.has_inbox() && p.runq.is_empty()
}

/// The id of the P the calling goroutine runs on (None on a plain thread).
/// It stays the same until the goroutine next parks or yields.
pub(crate) fn current_p() -> Option<usize> {
    let (m, g) = current();
    if m.is_null() || g.is_null() {
        return None;
    }
    // SAFETY: our own M; no switch here.
    let ml = unsafe { (*m).local() };
    // SAFETY: the P we hold is live.
    (!ml.p.is_null()).then(|| unsafe { &*ml.p }.id)
}
