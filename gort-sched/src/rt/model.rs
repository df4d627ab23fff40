//! Under `--cfg gort_loom` only: the seam between the idle protocol, which
//! the models run for real, and the goroutine context switch, which loom
//! cannot run (it switches stacks under loom's feet).
//!
//! * `execute` records the goroutine as run (its goid, in order) instead of
//!   switching to it; a goroutine "runs to completion" at once.
//! * `sched()` is the model's scheduler, built afresh by each execution
//!   ([`new_sched`]), not a process-wide singleton.
//! * The goroutine half of a descriptor (its task, context, stack, locals)
//!   has inert stand-in types ([`inert`]), so `G` keeps its one definition;
//!   stack compaction never has candidates.
//!
//! Everything else — queues, `wakep`/`startm`/`stopm`, P hand-off, idle
//! sleep, sources, `ready_g` — is the code the normal build runs, on loom's
//! atomics, locks and threads (`crate::loom`).

use super::*;
use loom::sync::{Condvar, Mutex as LoomMutex};
use std::sync::atomic::AtomicPtr as StdAtomicPtr;

/// Stand-ins for the goroutine half of a descriptor, never constructed
/// (the uninhabited ones) or never read.
pub(crate) mod inert {
    /// The runtime's configuration (`config.rs` is not built under loom).
    pub(crate) struct Config {
        pub(crate) procs: usize,
        pub(crate) stack_size: usize,
    }
    pub(crate) enum Context {}
    pub(crate) enum Suspender {}
    pub(crate) enum TaskVtable {}
    pub(crate) enum Waiter {}
    pub(crate) enum Entry {}
    pub(crate) struct Payload;
    impl Payload {
        pub(crate) const fn new() -> Payload {
            Payload
        }
    }
    pub(crate) const RUNNING: u32 = 0;
}

struct State {
    /// The model's scheduler; set before any model thread starts.
    sched: StdAtomicPtr<Sched>,
    /// Goids of the goroutines run so far, in order, and the ids of the Ms
    /// that ran them.
    ran: LoomMutex<Vec<u64>>,
    ran_on: LoomMutex<Vec<u64>>,
    ran_cv: Condvar,
}

loom::lazy_static! {
    static ref STATE: State = State {
        sched: StdAtomicPtr::new(ptr::null_mut()),
        ran: LoomMutex::new(Vec::new()),
        ran_on: LoomMutex::new(Vec::new()),
        ran_cv: Condvar::new(),
    };
}

/// The model's scheduler.
pub(crate) fn sched() -> &'static Sched {
    let s = STATE.sched.load(std::sync::atomic::Ordering::Relaxed);
    assert!(!s.is_null(), "a model must call new_sched first");
    // SAFETY: set by new_sched from a leaked Sched.
    unsafe { &*s }
}

/// "Runs" `g`: records it. Like the real `execute`, called by the M that
/// dequeued it, holding a P.
pub(crate) fn execute(_s: &'static Sched, m: &'static M, g: &'static G) {
    // SAFETY: our own thread.
    assert!(!unsafe { m.local() }.p.is_null(), "ran a goroutine without a P");
    STATE.ran_on.lock().unwrap().push(m.id);
    STATE.ran.lock().unwrap().push(g.goid());
    STATE.ran_cv.notify_all();
}

pub(super) fn compaction_due(_ml: &MLocal) -> bool {
    false // a model's goroutines never park on an M's stack
}

pub(super) fn compact_pass(_ml: &mut MLocal, _budget: usize) {
    unreachable!("no compaction candidates under loom")
}

/// A fresh scheduler with `procs` idle Ps, for this execution.
pub(crate) fn new_sched(procs: usize) -> &'static Sched {
    let s: &'static Sched = Box::leak(Box::new(Sched::new(inert::Config {
        procs,
        stack_size: 0,
    })));
    STATE
        .sched
        .store(ptr::from_ref(s).cast_mut(), std::sync::atomic::Ordering::Relaxed);
    s
}

/// A goroutine descriptor with id `goid`, fresh (bound to no M).
pub(crate) fn new_g(goid: u64) -> &'static G {
    let g: &'static G = Box::leak(Box::new(G::new()));
    g.goid.store(goid, Ordering::Relaxed);
    g
}

/// Takes an idle P off the idle list (for a model thread that acts as an M
/// busy running goroutines: it holds its P throughout).
pub(crate) fn take_p(s: &'static Sched) -> &'static P {
    let p = s.lock_idle().pidle.pop().expect("an idle P");
    s.npidle.fetch_sub(1, Ordering::Relaxed);
    p.status.store(P_RUNNING, Ordering::Relaxed);
    p
}

/// Makes the calling model thread an M holding `p` (from [`take_p`]), as
/// `mstart` and `acquirep` make a thread: an M running a goroutine, whose
/// `runq_put_here` queues on its own P. It keeps the P throughout.
pub(crate) fn become_m(s: &'static Sched, p: &'static P) -> &'static M {
    let id = s.mid_gen.fetch_add(1, Ordering::Relaxed) + 1;
    let m: &'static M = Box::leak(Box::new(M::new(id, ptr::null(), false)));
    set_current_m(m);
    acquirep_here(m, p);
    m
}

/// `acquirep` on the calling thread, which must be `m`'s (an M started by
/// [`start_m`] or made by [`become_m`]): `m` now holds `p` (from
/// [`take_p`]), not spinning.
pub(crate) fn acquirep_here(m: &'static M, p: &'static P) {
    assert!(ptr::eq(current_m(), m), "acquirep_here off m's thread");
    // SAFETY: m is the calling thread's own M (checked above).
    acquirep(m, unsafe { m.local() }, p);
}

/// Starts an M thread that runs `body` (the M is known to the thread as its
/// own, as `mstart` makes it).
pub(crate) fn start_m(
    s: &'static Sched,
    body: impl FnOnce(&'static Sched, &'static M) + Send + 'static,
) -> &'static M {
    let id = s.mid_gen.fetch_add(1, Ordering::Relaxed) + 1;
    let m: &'static M = Box::leak(Box::new(M::new(id, ptr::null(), false)));
    crate::loom::spawn_m(String::new(), move || {
        set_current_m(m);
        body(s, m)
    })
    .expect("loom spawn");
    m
}

/// Blocks until `n` goroutines have run; returns their goids in order. If
/// one is lost, every model thread ends up blocked and loom reports the
/// deadlock.
pub(crate) fn wait_ran(n: usize) -> Vec<u64> {
    let mut ran = STATE.ran.lock().unwrap();
    while ran.len() < n {
        ran = STATE.ran_cv.wait(ran).unwrap();
    }
    ran.clone()
}

/// The ids of the Ms that ran the goroutines of [`wait_ran`], in order.
pub(crate) fn ran_on() -> Vec<u64> {
    STATE.ran_on.lock().unwrap().clone()
}

/// `m`'s id (its thread would be named `gort-m<id>`).
pub(crate) fn m_id(m: &M) -> u64 {
    m.id
}

/// Makes the calling thread's M (`m`) own-only, as `lock_os_thread` or an
/// exit while locked leave it: `locked` goroutines hold a lock, `bound` are
/// bound to it (started there, parked), and with `exit` it leaves the
/// scheduler once none is bound.
pub(crate) fn make_own_only(m: &'static M, locked: u32, bound: usize, exit: bool) {
    assert!(ptr::eq(current_m(), m), "make_own_only off m's thread");
    // SAFETY: m is the calling thread's own M (checked above).
    let ml = unsafe { m.local() };
    ml.nlocked = locked;
    ml.bound_live = bound;
    ml.exit_when_idle = exit;
    m.publish_takes_fresh(ml);
}

// The protocol's entry points, for the models in `src/tests/` (which live
// outside `rt`): each forwards to the function of the same name.

/// `startm`: gives an idle P to an idle or new M.
pub(crate) fn startm(s: &'static Sched, spinning: bool) {
    super::startm(s, spinning)
}

/// `stopm`: sleeps until this M has a P.
pub(crate) fn stopm(s: &'static Sched, m: &'static M) {
    super::stopm(s, m)
}

/// `release_and_sleep`: gives up the M's P (it found nothing to run) and
/// sleeps until it has a P again.
pub(crate) fn release_and_sleep(s: &'static Sched, m: &'static M) {
    super::release_and_sleep(s, m, false)
}

/// The M's run loop (returns only if the M leaves the scheduler).
pub(crate) fn schedule(s: &'static Sched, m: &'static M) {
    super::schedule(s, m)
}

/// Gives the fresh goroutine `g` to another P as `schedule` would
/// (`place_fresh`), from the calling thread's M (made by [`become_m`],
/// holding its P); whether it did.
pub(crate) fn place(s: &'static Sched, g: &'static G) -> bool {
    let m = current_m();
    assert!(!m.is_null(), "place off an M");
    // SAFETY: Ms are immortal.
    let m = unsafe { &*m };
    // SAFETY: the calling thread's own M; no switch in here.
    let ml = unsafe { m.local() };
    super::place_fresh(s, m, ml, g, false)
}

/// Queues a fresh goroutine (as `go` does) from the calling thread.
pub(crate) fn runq_put_here(s: &'static Sched, g: &'static G, next: bool) {
    super::runq_put_here(s, g, next)
}

/// `poll_sources`: polls every source, moves `next_deadline`.
pub(crate) fn poll_sources(s: &'static Sched) -> bool {
    super::poll_sources(s)
}

/// Registers `src` as `register_source` does, without its initial
/// `note_deadline(0)` (which would start an M before the model wants one).
pub(crate) fn add_source(s: &'static Sched, src: Arc<dyn Source>) {
    if src.blocks() {
        let _ = s.eager.set(src.clone());
    }
    s.sources.write().push(src);
}

/// Makes `g` a started goroutine of `m` (as if it had run there and
/// parked): a `ready_g` then sends it to `m`'s inbox.
pub(crate) fn bind(g: &'static G, m: &'static M) {
    g.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
}

/// The earliest deadline the scheduler knows of.
pub(crate) fn next_deadline(s: &'static Sched) -> i64 {
    s.next_deadline.load(Ordering::SeqCst)
}

/// Sets the earliest deadline (model set-up only).
pub(crate) fn set_next_deadline(s: &'static Sched, d: i64) {
    s.next_deadline.store(d, Ordering::SeqCst);
}
